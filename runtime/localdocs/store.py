"""A LocalDocs collection: one SQLite file under $RUNTIME_HOME/localdocs/ holding its folders, the files
indexed (size, mtime, sha256), their chunks (text, character offsets, PDF page), each chunk's embedding
(float32 blob) and an FTS5 index over the chunk text for BM25.

Each file's rows are replaced in one transaction, so an interrupted `add` leaves whole files behind and a
rerun picks up where it stopped. Vectors are searched exactly with one matrix product (numpy) over a copy
kept in memory and reloaded when another connection changes the file (PRAGMA data_version): sqlite-vec
cannot load here (this Python's sqlite3 is built without enable_load_extension) and an exact flat search
is what faiss would do at these sizes too.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.registry import runtime_home

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY, folder TEXT NOT NULL REFERENCES folders(path) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, page INTEGER,
    text TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id);
CREATE TABLE IF NOT EXISTS bad_files (
    path TEXT PRIMARY KEY, folder TEXT NOT NULL REFERENCES folders(path) ON DELETE CASCADE,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
"""


class LocalDocsError(ValueError):
    """A collection that cannot be made, found or read; the message says which and why."""


@dataclass(frozen=True)
class StoredFile:
    id: int
    folder: str
    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class ChunkRow:
    """A chunk to store: where it sits in its file's text, and its embedding."""

    position: int
    start: int
    end: int
    page: int | None
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk: its file (absolute, and relative to its collection folder), text and place."""

    collection: str
    path: str
    relative: str
    text: str
    score: float
    start: int
    end: int
    page: int | None
    chunk_id: int

    def as_json(self, absolute: bool = True) -> dict[str, object]:
        """The hit as JSON; absolute=False names the file relative to its folder (what a server shows)."""
        return {"collection": self.collection, "path": self.path if absolute else self.relative, "text": self.text,
                "score": round(self.score, 6), "page": self.page, "start": self.start, "end": self.end}


def collections_dir() -> Path:
    return runtime_home() / "localdocs"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise LocalDocsError(f"collection name {name!r}: use letters, digits, '_', '-' or '.' (at most 64, "
                             "starting with a letter or digit)")
    return name


def collection_names() -> list[str]:
    return sorted(p.stem for p in collections_dir().glob("*.sqlite"))


class Collection:
    """One collection's index; `Collection.open(name)` for an existing one, `create` for a new one."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path
        # The server searches from a worker thread per request, one at a time under its model lock.
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.executescript(SCHEMA)
        self._vectors: tuple[int, np.ndarray, np.ndarray] | None = None  # (data_version, ids, matrix)

    @classmethod
    def open(cls, name: str) -> Collection:
        path = collections_dir() / f"{check_name(name)}.sqlite"
        if not path.is_file():
            known = ", ".join(collection_names()) or "none yet (python -m runtime docs add NAME DIR)"
            raise LocalDocsError(f"no LocalDocs collection named {name!r}; collections: {known}")
        return cls(name, path)

    @classmethod
    def create(cls, name: str) -> Collection:
        """The collection called `name`, made empty if it does not exist."""
        path = collections_dir() / f"{check_name(name)}.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(name, path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: committed when the block ends, rolled back on any error (or interruption)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self._vectors = None  # data_version moves only for other connections' writes

    # -- metadata ---------------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def folders(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT path FROM folders ORDER BY path")]

    def add_folders(self, folders: list[Path]) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO folders VALUES (?)", [(str(f),) for f in folders])

    def counts(self) -> dict[str, int]:
        one = self.db.execute
        return {"files": one("SELECT count(*) FROM files").fetchone()[0],
                "chunks": one("SELECT count(*) FROM chunks").fetchone()[0],
                "bad_files": one("SELECT count(*) FROM bad_files").fetchone()[0]}

    # -- files ------------------------------------------------------------------------------------

    def files(self, folder: str) -> dict[str, StoredFile]:
        rows = self.db.execute("SELECT id, folder, path, size, mtime_ns, sha256 FROM files WHERE folder = ?", (folder,))
        return {row[2]: StoredFile(*row) for row in rows}

    def bad_files(self, folder: str | None = None) -> dict[str, tuple[int, int, str, str]]:
        """path -> (size, mtime_ns, reason, detail) of the files that gave no text."""
        query = "SELECT path, size, mtime_ns, reason, detail FROM bad_files"
        rows = self.db.execute(query + " WHERE folder = ?", (folder,)) if folder else self.db.execute(query)
        return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]

    def replace_file(self, folder: str, path: str, size: int, mtime_ns: int, sha256: str, chunks: list[ChunkRow]) -> None:
        """Store a file's chunks in place of whatever the index held for it, atomically."""
        with self.transaction() as db:
            db.execute("DELETE FROM files WHERE path = ?", (path,))
            db.execute("DELETE FROM bad_files WHERE path = ?", (path,))
            file_id = db.execute("INSERT INTO files (folder, path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?, ?)",
                                 (folder, path, size, mtime_ns, sha256)).lastrowid
            db.executemany(
                'INSERT INTO chunks (file_id, position, start, "end", page, text, vector) VALUES (?, ?, ?, ?, ?, ?, ?)',
                [(file_id, c.position, c.start, c.end, c.page, c.text, c.vector.astype(np.float32).tobytes())
                 for c in chunks])

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        """A file whose bytes are unchanged (same sha256) but whose size or mtime moved."""
        with self.transaction() as db:
            db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))

    def mark_bad(self, folder: str, path: str, size: int, mtime_ns: int, reason: str, detail: str) -> None:
        """A file that gave no text: whatever it contributed before leaves the index."""
        with self.transaction() as db:
            db.execute("DELETE FROM files WHERE path = ?", (path,))
            db.execute("INSERT OR REPLACE INTO bad_files VALUES (?, ?, ?, ?, ?, ?)",
                       (path, folder, size, mtime_ns, reason, detail))

    def drop_file(self, path: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM files WHERE path = ?", (path,))
            db.execute("DELETE FROM bad_files WHERE path = ?", (path,))

    # -- retrieval --------------------------------------------------------------------------------

    def bm25(self, words: list[str], limit: int) -> list[int]:
        """Chunk ids by FTS5's BM25 for any of `words`, best first."""
        if not words:
            return []
        query = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = self.db.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) "
                               "LIMIT ?", (query, limit))
        return [row[0] for row in rows]

    def nearest(self, vector: np.ndarray, limit: int) -> list[int]:
        """Chunk ids by cosine similarity to a unit `vector`, best first."""
        ids, matrix = self.vectors()
        if not len(ids):
            return []
        scores = matrix @ vector.astype(np.float32)
        top = np.argpartition(-scores, min(limit, len(ids)) - 1)[:limit]
        return [int(ids[i]) for i in top[np.argsort(-scores[top])]]

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if self._vectors is None or self._vectors[0] != version:
            rows = self.db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            dim = len(rows[0][1]) // 4 if rows else 0
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            self._vectors = (version, ids, matrix)
        return self._vectors[1], self._vectors[2]

    def hits(self, scored: list[tuple[int, float]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in the order given."""
        if not scored:
            return []
        marks = ",".join("?" * len(scored))
        rows = self.db.execute(
            f'SELECT c.id, f.path, f.folder, c.text, c.start, c."end", c.page FROM chunks c JOIN files f '
            f"ON f.id = c.file_id WHERE c.id IN ({marks})", [i for i, _ in scored])
        by_id = {row[0]: row for row in rows}
        out = []
        for chunk_id, score in scored:
            if (row := by_id.get(chunk_id)) is not None:
                _, path, folder, text, start, end, page = row
                out.append(Hit(self.name, path, str(Path(path).relative_to(folder)), text, score, start, end, page,
                               chunk_id))
        return out
