"""OpenAI `stop` sequences over a stream of text pieces."""

from __future__ import annotations

from collections.abc import Iterator


class StopScanner:
    """Pass pieces through, holding back only text that might still become a stop sequence."""

    def __init__(self, pieces: Iterator[str], stops: list[str]) -> None:
        self.pieces = pieces
        self.stops = stops
        self.stopped = False

    def __iter__(self) -> Iterator[str]:
        if not self.stops:
            yield from self.pieces
            return
        pending = ""
        for piece in self.pieces:
            pending += piece
            hits = [i for i in (pending.find(s) for s in self.stops) if i >= 0]
            if hits:
                self.stopped = True
                if head := pending[: min(hits)]:
                    yield head
                return
            keep = self._held_back(pending)
            if len(pending) > keep:
                yield pending[: len(pending) - keep]
                pending = pending[len(pending) - keep :]
        if pending:
            yield pending

    def _held_back(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of some stop sequence."""
        best = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
