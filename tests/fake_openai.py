"""A real OpenAI-protocol HTTP server on 127.0.0.1 that injects faults, for tests and benchmarks.

Directives inside the last user message choose the fault, on the first attempts for that prompt:
  [429]   first attempt: 429 with Retry-After: 1
  [500x2] first two attempts: 500
  [slow]  first attempt: answers only after `slow_s` (past the client's timeout)
  [drop]  first attempt: the connection is closed without a response
  [fail]  every attempt: 500
  [long]  the answer ends with finish_reason "length"
Every request is counted per prompt (`attempts`) and every 200 answer too (`answered`). A 200 answer's text is
"Answer to: PROMPT", or what `reply(PROMPT)` returns when one is given.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, latency_s: float = 0.0, slow_s: float = 3.0, max_rps: float | None = None,
                 api_key: str | None = None, reply: Callable[[str], str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.latency_s, self.slow_s, self.max_rps, self.api_key = latency_s, slow_s, max_rps, api_key
        self.reply = reply or (lambda prompt: f"Answer to: {prompt}")
        self.attempts: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.over_limit = 0
        self.lock = threading.Lock()
        self._tokens, self._refilled = max_rps or 0.0, time.monotonic()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and hung up ([slow]) is expected, not an error

    def admit(self) -> bool:
        """Server-side rate limit: a token bucket holding one second of `max_rps`; over it -> 429."""
        if self.max_rps is None:
            return True
        with self.lock:
            now = time.monotonic()
            self._tokens = min(self.max_rps, self._tokens + (now - self._refilled) * self.max_rps)
            self._refilled = now
            if self._tokens < 1:
                self.over_limit += 1
                return False
            self._tokens -= 1
            return True


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {"error": {"message": message, "type": "server_error", "code": None}}, headers)

    def authorized(self) -> bool:
        if self.server.api_key and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            self.send_json(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802
        if self.authorized():
            self.send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "test"}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.authorized():
            return
        prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        with self.server.lock:
            self.server.attempts[prompt] += 1
            attempt = self.server.attempts[prompt]
        if not self.server.admit():
            self.error(429, "rate limit", {"Retry-After": "0.2"})
            return
        time.sleep(self.server.latency_s)
        if "[429]" in prompt and attempt == 1:
            self.error(429, "slow down", {"Retry-After": "1"})
        elif ("[500x2]" in prompt and attempt <= 2) or "[fail]" in prompt:
            self.error(500, "boom")
        elif "[drop]" in prompt and attempt == 1:
            self.close_connection = True
            self.connection.shutdown(2)
        elif "[slow]" in prompt and attempt == 1:
            time.sleep(self.server.slow_s)  # past the client's timeout: nobody reads this answer
            self.answer(body, prompt, delivered=False)
        else:
            self.answer(body, prompt)

    def answer(self, body: dict[str, Any], prompt: str, delivered: bool = True) -> None:
        """A 200 answer; `answered` counts only those a client can still receive (a late one is not)."""
        text = self.server.reply(prompt)
        if delivered:
            with self.server.lock:
                self.server.answered[prompt] += 1
        self.send_json(200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "length" if "[long]" in prompt else "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                      "total_tokens": len(prompt.split()) + len(text.split())},
        })
