"""An OpenAI-compatible HTTP server over the local runtime (`python -m runtime serve`).

    GET  /v1/models
    GET  /v1/localdocs          the LocalDocs collections this server publishes (`serve --docs NAME`)
    POST /v1/completions        {"model", "prompt", "max_tokens", "stream", ...}
    POST /v1/chat/completions   {"model", "messages", "max_tokens", "stream", "localdocs", ...}

Generation runs in a worker thread, one request at a time (two CPU cores gain nothing from more);
concurrent requests queue. Errors use OpenAI's JSON error body. Streaming is server-sent events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime import protocol
from runtime.errors import ContextOverflowError, RegistryError
from runtime.guard import Guard, GuardConfig
from runtime.model import GenerationStats, GPT4All, SamplingParams, is_gguf
from runtime.registry import Registry
from runtime.stops import StopScanner
from runtime.templates import ChatTemplateError

if TYPE_CHECKING:
    from runtime.localdocs import Library

STATIC = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4891
# OpenAI's default for /v1/completions; chat answers default to GPT4All's generate() length.
COMPLETION_MAX_TOKENS = 16
CHAT_MAX_TOKENS = SamplingParams().max_tokens
log = logging.getLogger("runtime.server")
# The server prefills with large batches: GPT4All's n_batch=8 suits a UI on slow machines, not an API.
SERVER_N_BATCH = 512


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on `host` right now (for servers started by tests, benchmarks, collect)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class APIError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers = headers


class ModelPool:
    """Models by name, loaded on first use; one resident at a time, one generation at a time, and at most
    `max_queue` requests waiting for it (beyond that: 429 with Retry-After)."""

    def __init__(self, default: str | None, n_ctx: int = 2048, n_threads: int | None = None,
                 loader: Callable[..., GPT4All] = GPT4All, max_queue: int = 8) -> None:
        self.registry = Registry.default()
        self.n_ctx, self.n_threads, self.loader, self.max_queue = n_ctx, n_threads, loader, max_queue
        self.lock = threading.Lock()
        self.current: GPT4All = loader(default, n_ctx=n_ctx, n_threads=n_threads, allow_download=False)
        self.admitted = 0  # requests running or waiting for the model
        self.admission = threading.Lock()
        self.seconds_per_job = 5.0  # a running average, for Retry-After
        self.stopping = threading.Event()  # set on shutdown: every generation stops at its next token

    def ids(self) -> list[str]:
        """The served model first, then every installed registry model whose file is a GGUF."""
        loadable = [name for name, entry in self.registry.entries.items() if entry.path and is_gguf(entry.path)]
        return [self.current.name, *(name for name in loadable if name != self.current.name)]

    def check(self, name: str) -> None:
        if name not in self.ids():
            raise APIError(404, f"The model '{name}' does not exist; available: {', '.join(self.ids())}",
                           "invalid_request_error", code="model_not_found", param="model")

    def get(self, name: str) -> GPT4All:
        """The model called `name`, swapping it in if needed (call with `lock` held)."""
        if name != self.current.name:
            self.current = self.loader(name, n_ctx=self.n_ctx, n_threads=self.n_threads, allow_download=False)
        return self.current

    def admit(self) -> None:
        """Count a request in, or refuse it fast when the queue is full."""
        with self.admission:
            if self.admitted > self.max_queue:
                wait = max(1, round(self.seconds_per_job * self.admitted))
                raise APIError(429, f"the server is busy: {self.admitted} requests ahead (queue limit "
                                    f"{self.max_queue}); retry in about {wait} s", "rate_limit_error",
                               code="queue_full", headers={"Retry-After": str(wait)})
            self.admitted += 1

    def release(self, seconds: float) -> None:
        with self.admission:
            self.admitted -= 1
            self.seconds_per_job = 0.8 * self.seconds_per_job + 0.2 * seconds


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
    logprobs: list[protocol.Piece] = field(default_factory=list)  # likewise, when asked for

    @property
    def finish_reason(self) -> str:
        return "stop" if self.stopped_by_sequence else self.stats.finish_reason


async def run_job(pool: ModelPool, job: Job, watch: Request | None = None) -> tuple[AsyncIterator[str], Outcome]:
    """Start a generation in a worker thread; raise APIError before any output if it cannot start. With
    `watch` (a request answered in one body), a client that disconnects, while queued or while its answer
    is generated, stops the work within a token (streams are stopped by their response closing)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()
    outcome = Outcome()

    def post(kind: str, value: Any = None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    pool.admit()
    started = time.monotonic()

    def worker() -> None:
        try:
            generate()
        finally:
            pool.release(time.monotonic() - started)

    def generate() -> None:
        with pool.lock:
            if cancelled.is_set() or pool.stopping.is_set():  # gave up while waiting in the queue
                post("error", APIError(499, "the client went away", "invalid_request_error"))
                return
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
                    if cancelled.is_set() or pool.stopping.is_set():  # the client went away; shutdown
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
                outcome.logprobs = logprob_pieces(outcome.model)
            post("done")

    async def watch_disconnect(request: Request) -> None:
        """The body is read already, so the next message from the client is its disconnect."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancelled.set()  # the worker stops at its next token, or as soon as it would start
        queue.put_nowait(("error", APIError(499, "the client went away", "invalid_request_error")))

    watcher = asyncio.create_task(watch_disconnect(watch)) if watch is not None else None

    def stop() -> None:
        cancelled.set()
        if watcher is not None:
            watcher.cancel()

    threading.Thread(target=worker, daemon=True, name="generation").start()
    try:
        kind, value = await queue.get()
    except BaseException:
        stop()
        raise
    if kind == "error":
        stop()
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
            stop()

    return pieces(), outcome


def logprob_pieces(model: GPT4All) -> list[protocol.Piece]:
    """The last generation's token log-probabilities with each token's text."""
    def text(token: int) -> str:
        return model.llama.detokenize([token], special=False).decode("utf-8", "replace")

    return [(text(e.token), e.logprob, [(text(t), p) for t, p in e.top]) for e in model.logprobs]


def within(pieces: list[protocol.Piece], text: str) -> list[protocol.Piece]:
    """The tokens that make up `text` (a stop sequence may have cut the generated text short)."""
    kept, length = [], 0
    for piece in pieces:
        if length >= len(text):
            break
        kept.append(piece)
        length += len(piece[0])
    return kept


ABSOLUTE_PATH = re.compile(r"(?:/[^/\s:'\"]+)+/")


def redact_paths(text: str) -> str:
    """File names without their folders: error bodies never show where files lie on this machine."""
    return ABSOLUTE_PATH.sub("", text)


def as_api_error(exc: Exception) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ContextOverflowError):
        return APIError(400, str(exc), "invalid_request_error", code="context_length_exceeded", param="messages")
    if isinstance(exc, (ChatTemplateError, ValueError)) and not isinstance(exc, RegistryError):
        return APIError(400, redact_paths(str(exc)), "invalid_request_error")
    log.error("request failed", exc_info=exc)
    return APIError(500, f"{type(exc).__name__}: {redact_paths(str(exc))}", "server_error")


def create_app(pool: ModelPool, guard: GuardConfig | None = None, library: Library | None = None) -> FastAPI:
    """The FastAPI application serving `pool`, behind the guard (loopback host names, no key by default);
    chat requests may answer from the LocalDocs collections in `library` (none by default), and only those."""
    app = FastAPI(title="GPT4All-style local runtime", docs_url="/docs")
    app.state.pool = pool
    app.add_middleware(Guard, config=guard or GuardConfig())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        """The chat window: plain HTML, CSS and JavaScript from this package; nothing fetched elsewhere."""
        return FileResponse(STATIC / "index.html")

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(protocol.error_body(exc.message, exc.kind, exc.param, exc.code), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems, first = [], None
        for err in exc.errors():
            if err["type"] == "json_invalid":
                problems.append(f"the request body is not valid JSON ({err['ctx'].get('error', 'parse error')})")
                continue
            param = ".".join(str(p) for p in err["loc"] if p != "body")
            message = err["msg"].removeprefix("Value error, ")
            if not param and ": " in message:  # a check across fields names its field first
                param = message.split(": ", 1)[0]
                message = message.split(": ", 1)[1]
            param = param or "body"
            first = first or param
            problems.append(f"{param}: {message}")
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

    @app.get("/v1/localdocs")
    async def list_localdocs() -> dict[str, Any]:
        """The published collections (what a request's `localdocs` may name)."""
        return {"object": "list", "data": [{"id": name, "object": "localdocs.collection"}
                                           for name in (library.names if library else [])]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: protocol.ChatRequest, request: Request) -> JSONResponse | EventSourceResponse:
        pool.check(body.model)
        params = sampling(body, CHAT_MAX_TOKENS, pool)
        messages = [m.as_dict() for m in body.messages]
        check_length(sum(len(m["content"]) for m in messages), pool, "messages")
        if not body.localdocs:
            job = Job(lambda model: model.stream_chat(messages, params), body.model, body.stop_list())
            return await respond(pool, job, body, request, "chatcmpl", chat=True)
        check_published(library, body.localdocs)
        assert library is not None
        sources: list[dict[str, Any]] = []

        def answer_from_docs(model: GPT4All) -> Iterator[str]:
            with_docs = localdocs_messages(model, library, body.localdocs, messages, params.max_tokens, sources)
            return model.stream_chat(with_docs, params)

        job = Job(answer_from_docs, body.model, body.stop_list())
        return await respond(pool, job, body, request, "chatcmpl", chat=True, sources=sources)

    @app.post("/v1/completions", response_model=None)
    async def completions(body: protocol.CompletionRequest, request: Request) -> JSONResponse | EventSourceResponse:
        pool.check(body.model)
        params = sampling(body, COMPLETION_MAX_TOKENS, pool)
        check_length(len(body.prompt_text()), pool, "prompt")
        job = Job(lambda model: model.stream_text(body.prompt_text(), params), body.model, body.stop_list())
        return await respond(pool, job, body, request, "cmpl", chat=False)

    return app


def sampling(body: protocol.GenerationRequest, default_max_tokens: int, pool: ModelPool) -> SamplingParams:
    """The request's sampling, checked against the served context (400 naming the field)."""
    try:
        params = body.sampling(default_max_tokens, SERVER_N_BATCH)
    except ValueError as exc:
        raise APIError(400, str(exc), "invalid_request_error", param="response_format") from None
    for name, value in (("max_tokens", params.max_tokens), ("repeat_last_n", params.repeat_last_n)):
        if value > pool.n_ctx:
            raise APIError(400, f"{name}: {value} is more than the context window ({pool.n_ctx} tokens)",
                           "invalid_request_error", param=name)
    return params


def check_published(library: Library | None, names: list[str]) -> None:
    """A collection the server was not started with is refused with the same answer whether or not it
    exists on this machine, so the port reveals nothing of collections the owner did not publish."""
    published = library.names if library else []
    if any(name not in published for name in names):
        raise APIError(404, "localdocs: not a collection this server publishes; it publishes: "
                            f"{', '.join(published) or 'none'}", "invalid_request_error",
                       code="collection_not_found", param="localdocs")


def localdocs_messages(model: GPT4All, library: Library, names: list[str], messages: list[dict[str, str]],
                       max_tokens: int, sources: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation with the last question headed by the excerpts that fit beside a max_tokens answer;
    `sources` gets those excerpts (files named relative to their collection folder)."""
    def prompt_tokens(text: str) -> int:
        return len(model.chat_tokens([*messages[:-1], {"role": "user", "content": text}]))

    text, chosen = library.excerpted(messages[-1]["content"], prompt_tokens, model.n_ctx - max_tokens, names)
    sources.extend(hit.as_json(absolute=False) for hit in chosen)
    return [*messages[:-1], {"role": "user", "content": text}]


CHARS_PER_TOKEN_MAX = 32  # no tokenizer packs more characters than this into a token on real text


def check_length(chars: int, pool: ModelPool, param: str) -> None:
    """Refuse text that cannot fit the context before tokenizing it (a 20 MB prompt took 39 s to tokenize)."""
    if chars > pool.n_ctx * CHARS_PER_TOKEN_MAX:
        raise APIError(400, f"{param}: {chars} characters cannot fit the context window of {pool.n_ctx} tokens",
                       "invalid_request_error", code="context_length_exceeded", param=param)


async def respond(pool: ModelPool, job: Job, body: protocol.GenerationRequest, request: Request, prefix: str,
                  chat: bool, sources: list[dict[str, Any]] | None = None) -> JSONResponse | EventSourceResponse:
    """Run the job and answer as one JSON body or as an SSE stream of chunks; LocalDocs `sources` (filled
    in when the job starts) go top-level in the body, or in the final chunk."""
    pieces, outcome = await run_job(pool, job, watch=None if body.stream else request)
    assert outcome.model is not None
    response_id, name = protocol.new_id(prefix), outcome.model.name
    cited = {} if sources is None else {"sources": sources}

    def choice(text: str | None, reason: str | None) -> dict[str, Any]:
        if chat:
            return protocol.chat_choice(text, reason, delta=body.stream)
        return protocol.completion_choice(text or "", reason)

    if not body.stream:
        text = "".join([piece async for piece in pieces])
        kind = "chat.completion" if chat else "text_completion"
        used = protocol.usage(outcome.stats.prompt_tokens, outcome.stats.completion_tokens)
        answer = choice(text, outcome.finish_reason)
        if outcome.logprobs:
            scored = within(outcome.logprobs, text)
            answer["logprobs"] = protocol.chat_logprobs(scored) if chat else protocol.completion_logprobs(scored)
        return JSONResponse(protocol.envelope(response_id, kind, name, answer, usage=used, **cited))

    kind = "chat.completion.chunk" if chat else "text_completion"

    async def events() -> AsyncIterator[str]:
        async for piece in pieces:
            yield json.dumps(protocol.envelope(response_id, kind, name, choice(piece, None)))
        yield json.dumps(protocol.envelope(response_id, kind, name, choice(None, outcome.finish_reason), **cited))
        if body.include_usage:  # OpenAI's stream_options.include_usage: a last chunk with usage, no choices
            used = protocol.usage(outcome.stats.prompt_tokens, outcome.stats.completion_tokens)
            yield json.dumps({**protocol.envelope(response_id, kind, name, {}), "choices": [], "usage": used})
        yield "[DONE]"

    return EventSourceResponse(events())


class GracefulServer:
    """uvicorn, with SIGTERM/SIGINT stopping every generation at its next token first, so a busy server
    exits in a moment instead of after its longest answer."""

    def __init__(self, app: FastAPI, pool: ModelPool, host: str, port: int) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                pool.stopping.set()
                super().handle_exit(sig, frame)

        config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                                timeout_graceful_shutdown=5)
        self.server = Server(config)

    def run(self) -> None:
        self.server.run()
