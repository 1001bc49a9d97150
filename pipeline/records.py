"""The record: one conversation per JSONL line, in the OpenAI chat convention.

    {"id": "...", "source": "oig/unified_chip2",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "meta": {"teacher": "gpt-3.5-turbo", "finish_reason": "stop", ...}}

`prompt` and `response` are views derived from `messages`, never stored twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.artifacts import atomic_path

Role = Literal["system", "user", "assistant"]


class RecordError(ValueError):
    """A JSONL line that is not a valid record; the message names the file and line."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(cls, source: str, messages: list[dict[str, str]], meta: dict[str, Any] | None = None) -> Record:
        """A record whose id is derived from its source and normalized messages."""
        parsed = [Message.model_validate(m) for m in messages]
        return cls(id=record_id(source, parsed), source=source, messages=parsed, meta=meta or {})

    @property
    def prompt(self) -> str:
        """The first user turn."""
        return next((m.content for m in self.messages if m.role == "user"), "")

    @property
    def response(self) -> str:
        """The last assistant turn."""
        return next((m.content for m in reversed(self.messages) if m.role == "assistant"), "")


_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Whitespace-collapsed, stripped text: what the id and exact dedupe compare."""
    return _SPACE.sub(" ", text).strip()


def record_id(source: str, messages: Iterable[Message]) -> str:
    """A stable id: the same source and normalized conversation always hash the same."""
    digest = hashlib.sha256(source.encode())
    for message in messages:
        digest.update(b"\x00" + message.role.encode() + b"\x01" + normalize_text(message.content).encode())
    return digest.hexdigest()[:20]


def read_records(path: str | Path) -> Iterator[Record]:
    """Stream records from a JSONL file; a bad line raises RecordError with file and line number."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield parse_record_line(line, path, number)


def parse_record_line(line: str, path: Path, number: int) -> Record:
    """One JSONL line -> Record, or RecordError naming where and why."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    try:
        return Record.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in exc.errors()
        )
        raise RecordError(path, number, problems) from None


def record_line(record: Record) -> str:
    """One JSONL line (with its newline)."""
    return record.model_dump_json(exclude_none=True) + "\n"


def write_records(path: str | Path, records: Iterable[Record]) -> int:
    """Write records as JSONL atomically (temp name, then rename); returns how many were written."""
    count = 0
    with atomic_path(Path(path)) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record_line(record))
            count += 1
    return count
