"""`python -m runtime models | download | generate | chat | serve | docs`.

MODEL is a registry name (see `models`) or a path to a .gguf file; left out, the bundled
SmolLM2-135M-Instruct is used.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from runtime.localdocs.cli import app as docs_app
from runtime.registry import Registry, RegistryError, download
from runtime.server import DEFAULT_HOST, DEFAULT_PORT

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Chat with local GGUF models on the CPU.")
app.add_typer(docs_app, name="docs")
err = Console(stderr=True, soft_wrap=True)

ThreadsOption = Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all cores, up to 8).")]
ContextOption = Annotated[int, typer.Option("--n-ctx", help="Context window in tokens.")]
DocsOption = Annotated[list[str] | None, typer.Option("--docs", help="A LocalDocs collection (`docs add`); repeatable.")]


def fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(1)


def load(model: str | None, n_ctx: int, threads: int | None):  # noqa: ANN201 - GPT4All, imported lazily
    from runtime.model import GPT4All

    try:
        return GPT4All(model, n_ctx=n_ctx, n_threads=threads, allow_download=False)
    except (RegistryError, ValueError) as exc:
        raise fail(exc) from None


@app.command()
def models() -> None:
    """List the registry: bundled, user-installed and every run's quantized models."""
    try:
        registry = Registry.default()
    except RegistryError as exc:
        raise fail(exc) from None
    table = Table("name", "quant", "params", "size (MB)", "installed", "path / url")
    for entry in registry.entries.values():
        size = f"{entry.filesize / 1e6:.0f}" if entry.filesize else "?"
        where = str(entry.path) if entry.installed else (entry.url or str(entry.path))
        table.add_row(entry.name, entry.quant or "", entry.parameters or "", size, "yes" if entry.installed else "no", where)
    # A pipe gets the full width, so names and paths are never cut.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command(name="download")
def download_model(name: Annotated[str, typer.Argument(help="Registry name.")]) -> None:
    """Download a registry model (resumes a partial download; checks sha256)."""
    registry = Registry.default()
    try:
        path = download(registry.get(name), registry.models_dir)
    except RegistryError as exc:
        raise fail(exc) from None
    typer.echo(str(path))


@app.command()
def generate(
    first: Annotated[str, typer.Argument(metavar="[MODEL] PROMPT", help="Model (optional) then prompt.")],
    second: Annotated[str | None, typer.Argument(show_default=False, hidden=True)] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n")] = 200,
    temp: Annotated[float, typer.Option("--temp")] = 0.7,
    chat: Annotated[bool, typer.Option("--chat/--raw", help="Apply the chat template (default) or not.")] = True,
    n_ctx: ContextOption = 2048,
    threads: ThreadsOption = None,
) -> None:
    """Answer one prompt, streaming to stdout."""
    model_name, prompt = (first, second) if second is not None else (None, first)
    model = load(model_name, n_ctx, threads)
    try:
        with model.chat_session() if chat else nullcontext():
            for piece in model.generate(prompt, max_tokens=max_tokens, temp=temp, streaming=True):
                sys.stdout.write(piece)
                sys.stdout.flush()
    except ValueError as exc:
        raise fail(exc) from None
    sys.stdout.write("\n")


@app.command()
def chat(
    model: Annotated[str | None, typer.Argument(help="Registry name or .gguf path.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="System message.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n")] = 200,
    temp: Annotated[float, typer.Option("--temp")] = 0.7,
    n_ctx: ContextOption = 2048,
    threads: ThreadsOption = None,
    docs: DocsOption = None,
) -> None:
    """Chat in the terminal (/reset, /exit); with --docs, answers from LocalDocs collections cite their sources."""
    from runtime.chat import chat_loop

    loaded = load(model, n_ctx, threads)
    try:
        chat_loop(loaded, sys.stdin, sys.stdout, system_prompt=system, max_tokens=max_tokens, temp=temp,
                  localdocs=docs)
    except ValueError as exc:
        raise fail(exc) from None


@app.command()
def serve(
    model: Annotated[str | None, typer.Argument(help="Registry name or .gguf path.")] = None,
    host: Annotated[str, typer.Option("--host")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port")] = DEFAULT_PORT,
    n_ctx: ContextOption = 2048,
    threads: ThreadsOption = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="RUNTIME_API_KEY", show_envvar=True,
                                                help="Require `Authorization: Bearer KEY` on /v1/.")] = None,
    allowed_hosts: Annotated[list[str] | None, typer.Option(
        "--allowed-hosts", help="Host names requests may name besides localhost/127.0.0.1/::1 ('*': any).")] = None,
    max_queue: Annotated[int, typer.Option("--max-queue", min=0, help="Requests waiting beyond the running one; "
                                                                      "more get 429 with Retry-After.")] = 8,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001, help="Request body cap (413).")] = 4.0,
    docs: Annotated[list[str] | None, typer.Option(
        "--docs", help="Publish a LocalDocs collection: requests may answer from it (none by default); repeatable.")] = None,
) -> None:
    """Serve the OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions, /v1/localdocs)."""
    import logging

    from runtime.guard import LOOPBACK_NAMES, GuardConfig
    from runtime.model import GPT4All
    from runtime.server import GracefulServer, ModelPool, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        pool = ModelPool(model, n_ctx=n_ctx, n_threads=threads, loader=GPT4All, max_queue=max_queue)
    except (RegistryError, ValueError) as exc:
        raise fail(exc) from None
    hosts = set(LOOPBACK_NAMES) | {h.lower() for h in allowed_hosts or []}
    if host not in ("0.0.0.0", "::"):
        hosts.add(host.lower())
    if host not in LOOPBACK_NAMES and not api_key:
        err.print(f"[bold red]WARNING: serving on {host} without --api-key: anyone who can reach this machine "
                  "can use the model.[/]")
    guard = GuardConfig(allowed_hosts=hosts, api_key=api_key, max_body_bytes=int(max_body_mb * 2**20))
    library = None
    if docs:
        from runtime.localdocs import Library

        try:
            library = Library(docs)
        except ValueError as exc:
            raise fail(exc) from None
        err.print(f"publishing LocalDocs: {', '.join(library.names)}", highlight=False)
    err.print(f"serving {pool.current.name} on http://{host}:{port}/v1", highlight=False)
    GracefulServer(create_app(pool, guard, library), pool, host, port).run()


def main() -> None:
    app()
