"""Texts on disk: what the dedupe steps compare, written once while the input streams by and read back by
position, so a million texts cost the process no memory (the OS page cache holds them).

A `SpooledTexts` is a read-only sequence over the file; its slices and subsets are views of positions and
byte ranges, a few kB to pickle, so worker processes read their chunk themselves.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

ITER_BLOCK = 4096  # texts read per span when iterating
_OPEN: dict[tuple[int, str], int] = {}  # (pid, path) -> a read descriptor of that spool, per process


def _descriptor(path: str) -> int:
    key = (os.getpid(), path)
    if key not in _OPEN:
        _OPEN[key] = os.open(path, os.O_RDONLY)
    return _OPEN[key]


class SpooledTexts(Sequence[str]):
    """Texts of a spool file by position."""

    def __init__(self, path: str, starts: np.ndarray, ends: np.ndarray) -> None:
        self.path, self.starts, self.ends = path, starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    @overload
    def __getitem__(self, item: int) -> str: ...
    @overload
    def __getitem__(self, item: slice) -> SpooledTexts: ...
    def __getitem__(self, item: int | slice) -> str | SpooledTexts:
        if isinstance(item, slice):
            return SpooledTexts(self.path, self.starts[item], self.ends[item])
        start, end = int(self.starts[item]), int(self.ends[item])
        return os.pread(_descriptor(self.path), end - start, start).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), ITER_BLOCK):
            yield from self[start : start + ITER_BLOCK]._block()

    def _block(self) -> Iterator[str]:
        """Reads the block's byte span once when it is mostly this block's texts, else text by text."""
        if not len(self):
            return
        low, high = int(self.starts.min()), int(self.ends.max())
        if high - low > 2 * int((self.ends - self.starts).sum()) + 65536:
            yield from (self[i] for i in range(len(self)))
            return
        span = os.pread(_descriptor(self.path), high - low, low)
        for start, end in zip((self.starts - low).tolist(), (self.ends - low).tolist(), strict=True):
            yield span[start:end].decode("utf-8")

    def subset(self, positions: np.ndarray) -> SpooledTexts:
        return SpooledTexts(self.path, self.starts[positions], self.ends[positions])


class TextSpool:
    """Appends texts to a file; `texts()` reads them back. The file is removed on `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("wb")
        self._ends = array("q")
        self._size = 0

    def append(self, text: str) -> None:
        data = text.encode("utf-8")
        self._handle.write(data)
        self._size += len(data)
        self._ends.append(self._size)

    def texts(self) -> SpooledTexts:
        self._handle.flush()
        ends = np.frombuffer(self._ends, dtype=np.int64).copy()
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        return SpooledTexts(str(self.path), starts, ends)

    def close(self) -> None:
        self._handle.close()
        descriptor = _OPEN.pop((os.getpid(), str(self.path)), None)
        if descriptor is not None:
            os.close(descriptor)
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TextSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
