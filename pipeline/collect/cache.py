"""A SQLite cache of teacher answers keyed by the request's hash.

Each answer is committed as soon as it arrives, so a run killed at any moment (kill -9) and started
again resends nothing that was answered. Failed requests are recorded too, with their reason, and
are tried again by the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    answer TEXT,
    reason TEXT,
    created REAL NOT NULL
)
"""


def request_key(request: dict[str, Any]) -> str:
    """sha256 of the canonical request JSON (model, messages, sampling; never credentials)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class AnswerCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)
        self.db.commit()

    def answered(self, key: str) -> dict[str, Any] | None:
        """The cached answer for this request, or None if it was never answered."""
        row = self.db.execute("SELECT answer FROM answers WHERE key = ? AND status = 'ok'", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_answer(self, key: str, request: dict[str, Any], answer: dict[str, Any]) -> None:
        self._put(key, request, "ok", json.dumps(answer, ensure_ascii=False), None)

    def put_failure(self, key: str, request: dict[str, Any], reason: str) -> None:
        self._put(key, request, "failed", None, reason)

    def _put(self, key: str, request: dict[str, Any], status: str, answer: str | None, reason: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
            (key, json.dumps(request, ensure_ascii=False), status, answer, reason, time.time()),
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()
