"""Per-document score cache: every answer an lm-eval model gave, kept in SQLite.

Key: (model fingerprint, lm-eval version, task, document, request). The fingerprint is the backend plus
the SHA-256 of the model's files (weights, config, tokenizer), so a rerun, a larger `limit`, or the same
base model in another run scores only what is new; the model itself is loaded only when something is.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from runtime.registry import file_digest

LM_EVAL_VERSION = version("lm_eval")
# Files of an HF folder that decide its scores; a GGUF is one file.
HF_MODEL_FILES = ("*.safetensors", "*.bin", "config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "tokenizer.model")

SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    model TEXT, lm_eval TEXT, task TEXT, doc TEXT, request TEXT, loglikelihood REAL, greedy INTEGER,
    PRIMARY KEY (model, lm_eval, task, doc, request)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT);
"""


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:32]


def model_files(source: Path) -> list[Path]:
    """The files whose bytes decide a model's scores: the file itself, or an HF folder's weights/config/tokenizer."""
    if source.is_file():
        return [source]
    files = sorted({f for pattern in HF_MODEL_FILES for f in source.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"eval: no model files (safetensors, config.json, ...) in {source}")
    return files


class ScoreCache:
    """The SQLite file; one connection, used from one thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def file_sha256(self, path: Path) -> str:
        """SHA-256 of a file, remembered by (path, size, mtime) so a large model is read once."""
        stat = path.stat()
        key = str(path.resolve())
        row = self.db.execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
                              (key, stat.st_size, stat.st_mtime_ns)).fetchone()
        if row:
            return row[0]
        sha256 = file_digest(path)
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)",
                            (key, stat.st_size, stat.st_mtime_ns, sha256))
        return sha256

    def fingerprint(self, backend: str, source: Path) -> str:
        """backend:hash over the names and contents of the model's files."""
        return f"{backend}:" + digest([(f.name, self.file_sha256(f)) for f in model_files(source)])

    def lookup(self, model: str, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple[float, Any]]:
        found = {}
        for task, doc, request in keys:
            row = self.db.execute("SELECT loglikelihood, greedy FROM scores WHERE model=? AND lm_eval=? AND task=? "
                                  "AND doc=? AND request=?", (model, LM_EVAL_VERSION, task, doc, request)).fetchone()
            if row:
                found[(task, doc, request)] = row
        return found

    def store(self, model: str, rows: Iterable[tuple[tuple[str, str, str], float, bool | None]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [(model, LM_EVAL_VERSION, *key, ll, greedy) for key, ll, greedy in rows])


def request_key(request: Instance) -> tuple[str, str, str]:
    """(task, document, request) of an lm-eval request; the last two are hashes of their content."""
    return (request.task_name or "", digest(request.doc), digest([request.request_type, *request.args]))


class CachedLM(LM):
    """An lm-eval LM answering from the cache, loading the real model (`load`) only for what is missing."""

    def __init__(self, load: Callable[[], LM], cache: ScoreCache, model: str) -> None:
        super().__init__()
        self.load, self.cache, self.model = load, cache, model
        self._lm: LM | None = None
        self.computed = 0
        self.cached = 0

    @property
    def lm(self) -> LM:
        if self._lm is None:
            self._lm = self.load()
        return self._lm

    def answer(self, requests: list[Instance], compute: Callable[[list[Instance]], list[Any]]) -> list[Any]:
        keys = [request_key(r) for r in requests]
        found = self.cache.lookup(self.model, keys)
        missing = [i for i, key in enumerate(keys) if key not in found]
        self.cached += len(requests) - len(missing)
        self.computed += len(missing)
        if missing:
            values = compute([requests[i] for i in missing])
            rows = [(keys[i], *(v if isinstance(v, tuple) else (v, None))) for i, v in zip(missing, values, strict=True)]
            self.cache.store(self.model, rows)
            found.update({key: (ll, greedy) for key, ll, greedy in rows})
        return [found[key] for key in keys]

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return [(float(ll), bool(greedy)) for ll, greedy in
                self.answer(requests, lambda todo: self.lm.loglikelihood(todo, disable_tqdm=disable_tqdm))]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return [float(ll) for ll, _ in
                self.answer(requests, lambda todo: self.lm.loglikelihood_rolling(todo, disable_tqdm=disable_tqdm))]

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return self.lm.generate_until(requests, disable_tqdm=disable_tqdm)

    def tok_encode(self, text: str) -> list[int]:
        return self.lm.tok_encode(text)
