"""Read a file of pairs in any known shape (pipeline.shapes) as records: what curate and train take.

A bad row stops reading with `file:line: column: reason`, unless `on_bad` is given: then it is handed
the row and the reason, and reading goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from pipeline.records import Record
from pipeline.rowfiles import Row, iter_rows
from pipeline.shapes import PairReader, ShapeError


class BadRowError(ValueError):
    """A row that cannot become a record; the message names its place and the column."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def rows_to_records(rows: Iterator[Row], reader: PairReader,
                    on_bad: Callable[[Row, str], None] | None = None) -> Iterator[Record]:
    """Records from rows; bad rows raise BadRowError, or go to `on_bad` when it is given."""
    for row in rows:
        reason = row.error
        if reason is None:
            try:
                yield reader.record(row.data)
                continue
            except ShapeError as exc:
                reason = str(exc)
            except ValueError as exc:  # a value the record schema refuses
                reason = str(exc).splitlines()[0]
        if on_bad is None:
            raise BadRowError(row.where, reason)
        on_bad(row, reason)


def read_pairs(path: Path, fmt: str = "auto", fields: Mapping[str, str] | None = None,
               on_bad: Callable[[Row, str], None] | None = None) -> Iterator[Record]:
    """Records from a JSONL/JSON/Parquet file (.gz too) of pairs in any known shape; ids derived when absent.

    Rows without a `source` column are labelled with the file's name (without suffixes).
    """
    source = path.name.split(".")[0] or "pairs"
    return rows_to_records(iter_rows(path), PairReader(source, fmt, fields), on_bad)
