"""What stands in front of the API (an ASGI middleware): the Host and Origin a request may come with (so
a web page cannot drive the local server through DNS rebinding), an optional API key (Bearer, as OpenAI),
a cap on the request body read before anything parses it, and one access-log line per request with its
id and duration. Secrets never reach the log."""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from runtime.protocol import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
access_log = logging.getLogger("runtime.access")


@dataclass
class GuardConfig:
    allowed_hosts: set[str] = field(default_factory=lambda: set(LOOPBACK_NAMES))  # "*" allows any
    api_key: str | None = None
    max_body_bytes: int = 4 * 2**20

    def host_allowed(self, host: str | None) -> bool:
        return "*" in self.allowed_hosts or (host is not None and host.lower() in self.allowed_hosts)


def hostname(value: str) -> str | None:
    """The host name of a Host header ("127.0.0.1:4891", "[::1]:4891") or an Origin URL."""
    netloc = urlsplit(value if "://" in value else f"//{value}").hostname
    return netloc or None


class Guard:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], config: GuardConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = "".join(c for c in headers.get("x-request-id", "") if c.isalnum() or c in "-_")[:64]
        request_id = request_id or uuid.uuid4().hex[:16]
        started, status = time.perf_counter(), [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            refusal = self.refusal(scope, headers)
            if refusal is not None:
                await reply(send_with_id, *refusal)
                return
            body = await self.read_body(receive, headers)
            if body is None:
                await reply(send_with_id, 413, f"the request body is larger than {self.config.max_body_bytes} bytes",
                            "invalid_request_error", "request_too_large")
                return
            await self.app(scope, replay(body, receive), send_with_id)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info('%s "%s %s" %d %.0f ms id=%s', client[0], scope["method"], scope["path"], status[0],
                            (time.perf_counter() - started) * 1000, request_id)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str, str] | None:
        if not self.config.host_allowed(hostname(headers.get("host", ""))):
            return 403, "this host name is not allowed (start the server with --allowed-hosts to add it)", \
                "invalid_request_error", "host_not_allowed"
        origin = headers.get("origin")
        if origin and origin != "null" and not self.config.host_allowed(hostname(origin)):
            return 403, "requests from this origin are not allowed", "invalid_request_error", "origin_not_allowed"
        if self.config.api_key and scope["path"].startswith("/v1/"):
            given = headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not secrets.compare_digest(given.encode(), self.config.api_key.encode()):
                return 401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
        return None

    async def read_body(self, receive: Receive, headers: dict[str, str]) -> bytes | None:
        """The whole body, or None as soon as it is over the cap (a Content-Length says so before any byte)."""
        cap = self.config.max_body_bytes
        if headers.get("content-length", "0").isdigit() and int(headers.get("content-length", "0")) > cap:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > cap:
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then listens to the client (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def reply(send: Send, status: int, message: str, kind: str, code: str) -> None:
    body = json.dumps(error_body(message, kind, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
