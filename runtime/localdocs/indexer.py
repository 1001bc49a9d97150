"""Bring a collection's index in line with its folders: new files in, changed files re-embedded, deleted
files out, unchanged files (same size and mtime, or same sha256) untouched. Each file is committed on its
own, so an interrupted run loses at most the file it was on and the next run resumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from runtime.documents import ExtractionError, chunk_document, extract, find_files
from runtime.localdocs.store import ChunkRow, Collection

Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, dim) unit vectors

# Chunks of ~160 tokens (runtime.documents' estimate), 24 carried over: under all-MiniLM-L6-v2's 254-token
# window (one vector per chunk, nothing averaged away), and small enough that several fit a 2048 context.
CHUNK_TOKENS = 160
OVERLAP_TOKENS = 24


@dataclass
class SyncReport:
    """What one pass did. `bad` lists every file skipped for having no text (path, reason, detail)."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0  # chunks embedded in this pass
    bytes: int = 0  # bytes of the files read and indexed in this pass
    bad: list[tuple[str, str, str]] = field(default_factory=list)
    missing_folders: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Work:
    folder: str
    path: Path
    size: int
    mtime_ns: int
    known_sha256: str | None  # the indexed version's, when the file is indexed already


def sync(collection: Collection, embed: Embed, show_progress: bool = True) -> SyncReport:
    """Index what changed in every folder of the collection. A folder that is gone is reported and its
    files stay in the index (a missing drive must not empty a collection)."""
    report = SyncReport()
    work: list[Work] = []
    for folder in collection.folders():
        try:
            found = find_files(Path(folder))
        except FileNotFoundError:
            report.missing_folders.append(folder)
            continue
        work += plan(collection, folder, found, report)
    collection.set_meta("state", "indexing")
    size = int(collection.get_meta("chunk_tokens", CHUNK_TOKENS))
    overlap = int(collection.get_meta("overlap_tokens", OVERLAP_TOKENS))
    with tqdm(total=sum(w.size for w in work), desc=f"indexing {collection.name}", unit="B", unit_scale=True,
              disable=not show_progress or not work, leave=False) as bar:
        for item in work:
            index_file(collection, item, embed, size, overlap, report)
            bar.update(item.size)
    collection.set_meta("state", "ready")
    for folder in collection.folders():
        if folder not in report.missing_folders:
            report.bad += [(path, reason, detail) for path, (_, _, reason, detail) in collection.bad_files(folder).items()]
    return report


def plan(collection: Collection, folder: str, found: list[Path], report: SyncReport) -> list[Work]:
    """The files of `folder` that need reading; drops from the index the files that are gone."""
    stored, bad = collection.files(folder), collection.bad_files(folder)
    present = {str(path) for path in found}
    for gone in (set(stored) | set(bad)) - present:
        collection.drop_file(gone)
        report.removed += gone in stored
    work = []
    for path in found:
        try:
            stat = path.stat()
        except OSError as exc:
            collection.mark_bad(folder, str(path), 0, 0, "unreadable", exc.strerror or type(exc).__name__)
            continue
        known = stored.get(str(path))
        if known and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            report.unchanged += 1
            continue
        if str(path) in bad and bad[str(path)][:2] == (stat.st_size, stat.st_mtime_ns):
            continue  # the same bad file as last time
        work.append(Work(folder, path, stat.st_size, stat.st_mtime_ns, known.sha256 if known else None))
    return work


def index_file(collection: Collection, item: Work, embed: Embed, size: int, overlap: int, report: SyncReport) -> None:
    """Read, chunk, embed and store one file (or record why it has no text)."""
    path = str(item.path)
    try:
        document = extract(item.path)  # reads the file once and hashes it; an unreadable one is an ExtractionError
    except ExtractionError as exc:
        collection.mark_bad(item.folder, path, item.size, item.mtime_ns, exc.reason, exc.detail)
        return
    if document.sha256 == item.known_sha256:  # touched, not changed: nothing to embed
        collection.touch_file(path, item.size, item.mtime_ns)
        report.unchanged += 1
        return
    chunks = chunk_document(document, size=size, overlap=overlap)
    vectors = embed([chunk.text for chunk in chunks])
    rows = [ChunkRow(c.index, c.start, c.end, c.page, c.text, v) for c, v in zip(chunks, vectors, strict=True)]
    collection.replace_file(item.folder, path, item.size, item.mtime_ns, document.sha256, rows)
    if item.known_sha256 is None:
        report.added += 1
    else:
        report.changed += 1
    report.chunks += len(rows)
    report.bytes += item.size
