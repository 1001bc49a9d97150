"""An OpenAI-compatible HTTP server over the local runtime (`python -m runtime serve`).

    GET  /v1/models
    POST /v1/completions        {"model", "prompt", "max_tokens", "stream", ...}
    POST /v1/chat/completions   {"model", "messages", "max_tokens", "stream", ...}

Generation runs in a worker thread, one request at a time (two CPU cores gain nothing from more);
concurrent requests queue. Errors use OpenAI's JSON error body. Streaming is server-sent events.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime import protocol
from runtime.model import ContextOverflowError, GenerationStats, GPT4All, ModelLoadError, SamplingParams
from runtime.registry import Registry
from runtime.stops import StopScanner
from runtime.templates import ChatTemplateError

STATIC = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4891
# OpenAI's default for /v1/completions; chat answers default to GPT4All's generate() length.
COMPLETION_MAX_TOKENS = 16
CHAT_MAX_TOKENS = SamplingParams().max_tokens
# The server prefills with large batches: GPT4All's n_batch=8 suits a UI on slow machines, not an API.
SERVER_N_BATCH = 512


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on `host` right now (for servers started by tests, benchmarks, collect)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class APIError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param


class ModelPool:
    """Models by name, loaded on first use; one resident at a time, one generation at a time."""

    def __init__(self, default: str | None, n_ctx: int = 2048, n_threads: int | None = None,
                 loader: Callable[..., GPT4All] = GPT4All) -> None:
        self.registry = Registry.default()
        self.n_ctx, self.n_threads, self.loader = n_ctx, n_threads, loader
        self.lock = threading.Lock()
        self.current: GPT4All = loader(default, n_ctx=n_ctx, n_threads=n_threads, allow_download=False)

    def ids(self) -> list[str]:
        """The served model first, then every installed registry model."""
        installed = [name for name, entry in self.registry.entries.items() if entry.installed]
        return [self.current.name, *(name for name in installed if name != self.current.name)]

    def check(self, name: str) -> None:
        if name not in self.ids():
            raise APIError(404, f"The model '{name}' does not exist; available: {', '.join(self.ids())}",
                           "invalid_request_error", code="model_not_found", param="model")

    def get(self, name: str) -> GPT4All:
        """The model called `name`, swapping it in if needed (call with `lock` held)."""
        if name != self.current.name:
            self.current = self.loader(name, n_ctx=self.n_ctx, n_threads=self.n_threads, allow_download=False)
        return self.current


@dataclass
class Job:
    """A request's generation, opened under the pool lock in a worker thread."""

    open_stream: Callable[[GPT4All], Iterator[str]]
    model_name: str
    stops: list[str]


@dataclass
class Outcome:
    """Filled in by the worker: the model that answered and why the answer ended."""

    model: GPT4All | None = None
    stopped_by_sequence: bool = False
    stats: GenerationStats = field(default_factory=GenerationStats)  # this request's, copied under the lock

    @property
    def finish_reason(self) -> str:
        return "stop" if self.stopped_by_sequence else self.stats.finish_reason


async def run_job(pool: ModelPool, job: Job) -> tuple[AsyncIterator[str], Outcome]:
    """Start a generation in a worker thread; raise APIError before any output if it cannot start."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()
    outcome = Outcome()

    def post(kind: str, value: Any = None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def worker() -> None:
        with pool.lock:
            try:
                outcome.model = pool.get(job.model_name)
                stream = job.open_stream(outcome.model)
            except Exception as exc:  # reported to the client as an OpenAI error
                post("error", exc)
                return
            post("ready")
            scanner = StopScanner(stream, job.stops)
            try:
                for piece in scanner:
                    if cancelled.is_set():  # the client went away
                        break
                    post("piece", piece)
                outcome.stopped_by_sequence = scanner.stopped
            except Exception as exc:
                post("error", exc)
                return
            finally:
                stream.close()  # type: ignore[attr-defined]  # releases the model for the next request
                # The model's stats belong to whichever request ran last: copy them before the lock goes.
                outcome.stats = replace(outcome.model.stats)
            post("done")

    threading.Thread(target=worker, daemon=True, name="generation").start()
    kind, value = await queue.get()
    if kind == "error":
        raise as_api_error(value)

    async def pieces() -> AsyncIterator[str]:
        try:
            while True:
                kind, value = await queue.get()
                if kind == "piece":
                    yield value
                elif kind == "error":
                    raise as_api_error(value)
                else:
                    return
        finally:
            cancelled.set()

    return pieces(), outcome


def as_api_error(exc: Exception) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ContextOverflowError):
        return APIError(400, str(exc), "invalid_request_error", code="context_length_exceeded", param="messages")
    if isinstance(exc, (ChatTemplateError, ValueError)) and not isinstance(exc, ModelLoadError):
        return APIError(400, str(exc), "invalid_request_error")
    return APIError(500, f"{type(exc).__name__}: {exc}", "server_error")


def create_app(pool: ModelPool) -> FastAPI:
    """The FastAPI application serving `pool`."""
    app = FastAPI(title="GPT4All-style local runtime", docs_url="/docs")
    app.state.pool = pool
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        """The chat window: plain HTML, CSS and JavaScript from this package; nothing fetched elsewhere."""
        return FileResponse(STATIC / "index.html")

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(protocol.error_body(exc.message, exc.kind, exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems, first = [], None
        for err in exc.errors():
            if err["type"] == "json_invalid":
                problems.append(f"the request body is not valid JSON ({err['ctx'].get('error', 'parse error')})")
                continue
            param = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
            first = first or param
            problems.append(f"{param}: {err['msg']}")
        message = "; ".join(problems)
        return JSONResponse(protocol.error_body(message, "invalid_request_error", first), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(protocol.error_body(str(exc.detail), kind), status_code=exc.status_code)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        created = int(time.time())
        data = [{"id": name, "object": "model", "created": created, "owned_by": "local"} for name in pool.ids()]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: protocol.ChatRequest) -> JSONResponse | EventSourceResponse:
        pool.check(body.model)
        params = body.sampling(CHAT_MAX_TOKENS, SERVER_N_BATCH)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        job = Job(lambda model: model.stream_chat(messages, params), body.model, body.stop_list())
        return await respond(pool, job, body, "chatcmpl", chat=True)

    @app.post("/v1/completions", response_model=None)
    async def completions(body: protocol.CompletionRequest) -> JSONResponse | EventSourceResponse:
        pool.check(body.model)
        params = body.sampling(COMPLETION_MAX_TOKENS, SERVER_N_BATCH)
        job = Job(lambda model: model.stream_text(body.prompt_text(), params), body.model, body.stop_list())
        return await respond(pool, job, body, "cmpl", chat=False)

    return app


async def respond(pool: ModelPool, job: Job, body: protocol.GenerationRequest, prefix: str,
                  chat: bool) -> JSONResponse | EventSourceResponse:
    """Run the job and answer as one JSON body or as an SSE stream of chunks."""
    pieces, outcome = await run_job(pool, job)
    assert outcome.model is not None
    response_id, name = protocol.new_id(prefix), outcome.model.name

    def choice(text: str | None, reason: str | None) -> dict[str, Any]:
        if chat:
            return protocol.chat_choice(text, reason, delta=body.stream)
        return protocol.completion_choice(text or "", reason)

    if not body.stream:
        text = "".join([piece async for piece in pieces])
        kind = "chat.completion" if chat else "text_completion"
        used = protocol.usage(outcome.stats.prompt_tokens, outcome.stats.completion_tokens)
        return JSONResponse(protocol.envelope(response_id, kind, name, choice(text, outcome.finish_reason), usage=used))

    kind = "chat.completion.chunk" if chat else "text_completion"

    async def events() -> AsyncIterator[str]:
        async for piece in pieces:
            yield json.dumps(protocol.envelope(response_id, kind, name, choice(piece, None)))
        yield json.dumps(protocol.envelope(response_id, kind, name, choice(None, outcome.finish_reason)))
        yield "[DONE]"

    return EventSourceResponse(events())
