"""`python -m runtime docs add | list | update | remove | search`: LocalDocs collections in the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from runtime.localdocs.indexer import CHUNK_TOKENS, OVERLAP_TOKENS, SyncReport, sync
from runtime.localdocs.search import TextEmbedder, search
from runtime.localdocs.store import Collection, LocalDocsError, collection_names

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="LocalDocs: index folders of documents and search them (chat --docs / serve --docs).")
err = Console(stderr=True, soft_wrap=True, highlight=False)

NameArgument = Annotated[str, typer.Argument(help="Collection name (letters, digits, '_', '-', '.').")]
ThreadsOption = Annotated[int | None, typer.Option("--threads", help="CPU threads for embedding.")]


def fail(message: object) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def opened(name: str) -> Collection:
    try:
        return Collection.open(name)
    except LocalDocsError as exc:
        raise fail(exc) from None


def run_sync(collection: Collection, embed: TextEmbedder) -> bool:
    """Index the collection and print what happened; False when a folder is missing."""
    report = sync(collection, embed, show_progress=sys.stderr.isatty())
    print_report(collection, report)
    return not report.missing_folders


def print_report(collection: Collection, report: SyncReport) -> None:
    counts = collection.counts()
    err.print(f"{collection.name}: {report.added} added, {report.changed} changed, {report.removed} removed, "
              f"{report.unchanged} unchanged, {len(report.bad)} skipped; {report.chunks} chunks embedded "
              f"({report.bytes / 1e6:.2f} MB); now {counts['files']} files, {counts['chunks']} chunks")
    for path, reason, detail in report.bad:
        err.print(f"  [yellow]skipped[/yellow] {path}: {reason} ({detail})")
    for folder in report.missing_folders:
        err.print(f"  [red]missing folder[/red] {folder}: not found; its files stay in the index (restore it, or "
                  f"`docs remove {collection.name}`)")


@app.command()
def add(
    name: NameArgument,
    folders: Annotated[list[Path], typer.Argument(help="Folders to index (recursively).")],
    chunk_tokens: Annotated[int | None, typer.Option(
        "--chunk-tokens", min=16, help=f"Chunk size in tokens (new collections; default {CHUNK_TOKENS}).")] = None,
    overlap_tokens: Annotated[int | None, typer.Option(
        "--overlap-tokens", min=0, help=f"Tokens carried into the next chunk (default {OVERLAP_TOKENS}).")] = None,
    threads: ThreadsOption = None,
) -> None:
    """Make a collection of folders (or add folders to one) and index it; rerun to resume."""
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise fail(f"not a folder: {', '.join(missing)}")
    size = CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
    overlap = OVERLAP_TOKENS if overlap_tokens is None else overlap_tokens
    if overlap >= size:
        raise fail(f"--overlap-tokens ({overlap}) must be less than --chunk-tokens ({size})")
    try:
        collection = Collection.create(name)
    except LocalDocsError as exc:
        raise fail(exc) from None
    with collection:
        stored = {"chunk_tokens": collection.get_meta("chunk_tokens"),
                  "overlap_tokens": collection.get_meta("overlap_tokens")}
        asked = {"chunk_tokens": chunk_tokens, "overlap_tokens": overlap_tokens}
        if stored["chunk_tokens"] is not None:
            changed = [f"--{k.replace('_', '-')} {v} (it has {stored[k]})" for k, v in asked.items()
                       if v is not None and int(stored[k]) != v]
            if changed:
                raise fail(f"collection {name} is already chunked otherwise: {', '.join(changed)}; "
                           f"`docs remove {name}` first to rechunk it")
        else:
            collection.set_meta("chunk_tokens", size)
            collection.set_meta("overlap_tokens", overlap)
            collection.set_meta("embedding_model", "all-MiniLM-L6-v2")
        collection.add_folders([f.resolve() for f in folders])
        if not run_sync(collection, TextEmbedder(threads)):
            raise typer.Exit(1)


@app.command(name="list")
def list_collections(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The collections: folders, files, chunks, skipped files, state."""
    rows = []
    for name in collection_names():
        with Collection.open(name) as collection:
            folders = [{"path": f, "present": Path(f).is_dir()} for f in collection.folders()]
            rows.append({"name": name, "folders": folders, **collection.counts(),
                         "state": collection.get_meta("state", "empty")})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table("name", "folders", "files", "chunks", "skipped", "state")
    for row in rows:
        shown = "\n".join(f["path"] + ("" if f["present"] else " (missing)") for f in row["folders"])
        state = "interrupted: run `docs update`" if row["state"] == "indexing" else row["state"]
        table.add_row(row["name"], shown, str(row["files"]), str(row["chunks"]), str(row["bad_files"]), state)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def update(name: Annotated[str | None, typer.Argument(help="Collection (default: all).")] = None,
           threads: ThreadsOption = None) -> None:
    """Re-index what changed: new and edited files in, deleted files out."""
    names = [name] if name else collection_names()
    embed, complete = TextEmbedder(threads), True
    for each in names:
        with opened(each) as collection:
            complete &= run_sync(collection, embed)
    if not complete:
        raise typer.Exit(1)


@app.command()
def remove(name: NameArgument) -> None:
    """Delete a collection's index (the documents themselves are not touched)."""
    with opened(name) as collection:
        path = collection.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    err.print(f"removed collection {name}")


@app.command(name="search")
def search_command(
    name: NameArgument,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1)] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, vector or bm25.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, best first.")] = False,
) -> None:
    """The chunks that best answer QUERY, best first."""
    if mode not in ("hybrid", "vector", "bm25"):
        raise fail(f"--mode {mode!r}: use hybrid, vector or bm25")
    with opened(name) as collection:
        vector = None if mode == "bm25" else TextEmbedder()([query])[0]
        hits = search(collection, query, vector, top_k, mode=mode)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps([hit.as_json() for hit in hits], indent=1, ensure_ascii=False))
        return
    for n, hit in enumerate(hits, start=1):
        where = f"page {hit.page}" if hit.page is not None else f"chars {hit.start}-{hit.end}"
        typer.echo(f"[{n}] {hit.path} ({where}, score {hit.score:.4f})\n{hit.text}\n")

