"""Rows of local data files, each with its place: JSONL, JSON (an array, or JSON lines), Parquet.

Compression is read from the suffix (`.gz`). A line that is not valid JSON is yielded as a Row with an
`error` instead of stopping the file, so a caller can either fail with `file:line` or skip it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts import open_text

PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True)
class Row:
    """One row: `where` names it (`file:line`, `file[i]` or `file row i`), `data` is the parsed value."""

    where: str
    number: int
    data: Any = None
    raw: str | None = None
    error: str | None = None


def table_kind(path: Path) -> str:
    """jsonl, json or parquet, from the suffix (a trailing .gz ignored); JSONL when unsure."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    return {".parquet": "parquet", ".json": "json"}.get(last, "jsonl")


def iter_rows(path: Path) -> Iterator[Row]:
    """Every row of a local file, streamed (a JSON array is read whole: JSON has no row boundaries)."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    kind = table_kind(path)
    if kind == "parquet":
        yield from parquet_rows(path)
    elif kind == "json" and first_char(path) == "[":
        yield from json_array_rows(path)
    else:
        yield from json_line_rows(path)


def first_char(path: Path) -> str:
    with open_text(path) as handle:
        while chunk := handle.read(4096):
            if stripped := chunk.lstrip():
                return stripped[0]
    return ""


def json_line_rows(path: Path) -> Iterator[Row]:
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield Row(where, number, json.loads(line), raw=line.rstrip("\n"))
            except json.JSONDecodeError as exc:
                yield Row(where, number, raw=line.rstrip("\n"), error=f"not valid JSON ({exc.msg} at column {exc.colno})")


def json_array_rows(path: Path) -> Iterator[Row]:
    try:
        with open_text(path) as handle:
            rows = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON array of objects or JSON lines")
    for index, row in enumerate(rows):
        yield Row(f"{path}[{index}]", index + 1, row)


def parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    source: Any = path
    if path.suffix == ".gz":  # Parquet needs a seekable file
        with gzip.open(path, "rb") as handle:
            source = io.BytesIO(handle.read())
    number = 0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield Row(f"{path} row {number}", number, row)
