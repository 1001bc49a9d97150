"""The ledger of a curate run: one entry per readable input record, in input order, without the record
itself: its id and source, the rule that removed it (or none), why, and for a duplicate the record it
duplicates and how similar they are.

Records stream past twice (pipeline.curate.stage): the first pass fills the ledger and spools the texts
the dedupe steps compare; the second writes every record where its entry says.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

import numpy as np

from pipeline.curate.dedupe import Removals, prompt_key
from pipeline.curate.maps import stratum
from pipeline.curate.spool import TextSpool
from pipeline.records import Record

KEPT = "kept"


class Ledger:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.sources: list[str] = []
        self._source_code: dict[str, int] = {}
        self._source = array("i")
        self.rules = [KEPT]
        self._outcome = array("b")  # index into rules
        self.detail: dict[int, str] = {}
        self.duplicate_of: dict[int, int] = {}
        self.similarity: dict[int, float] = {}
        self.spooled = array("q")  # the record index of each spooled text, in spool order
        self.prompt_keys = array("q")  # per spooled text: its record's prompt key and response length
        self.response_chars = array("i")
        self.splits = array("i")  # where its prompt ends in the compared text (0: compared whole)
        self.alive: np.ndarray | None = None  # spool positions no dedupe step removed

    def __len__(self) -> int:
        return len(self._outcome)

    def add(self, record: Record) -> int:
        """A new entry (kept until a step removes it); returns its index."""
        self.ids.append(record.id)
        code = self._source_code.setdefault(record.source, len(self._source_code))
        if code == len(self.sources):
            self.sources.append(record.source)
        self._source.append(code)
        self._outcome.append(0)
        return len(self._outcome) - 1

    def remove(self, index: int, rule: str, detail: str, duplicate: tuple[int, float] | None = None) -> None:
        """Mark an entry removed; a duplicate names (the index of the record it duplicates, similarity)."""
        if rule not in self.rules:
            self.rules.append(rule)
        self._outcome[index] = self.rules.index(rule)
        self.detail[index] = detail
        if duplicate is not None:
            self.duplicate_of[index], self.similarity[index] = duplicate

    def rule(self, index: int) -> str:
        return self.rules[self._outcome[index]]

    def source(self, index: int) -> str:
        return self.sources[self._source[index]]

    def spool(self, index: int, record: Record, texts: TextSpool, text: str, split: int) -> None:
        """A record the filters kept: its compared text goes to the spool, its prompt key beside it."""
        texts.append(text)
        self.splits.append(split)
        self.spooled.append(index)
        self.prompt_keys.append(prompt_key(record.prompt))
        self.response_chars.append(len(record.response))

    def apply_dedupe(self, rule: str, find: Callable[[np.ndarray], Removals]) -> None:
        """`find` gets the spool positions of the records still kept, in input order, and returns removals
        by position among them."""
        alive = np.arange(len(self.spooled)) if self.alive is None else self.alive
        removals = find(alive)
        records = np.frombuffer(self.spooled, dtype=np.int64)[alive]
        for position, (kept_position, similarity, detail) in removals.items():
            self.remove(int(records[position]), rule, detail,
                        duplicate=(int(records[kept_position]), round(float(similarity), 4)))
        gone = np.fromiter(removals, dtype=np.int64, count=len(removals))
        self.alive = np.delete(alive, gone)

    def kept_originals(self) -> dict[int, int]:
        """Each duplicate's original, followed on to a kept record: an original removed by a later step
        hands its duplicates on to the record it duplicates, and so on."""
        originals: dict[int, int] = {}
        for index, original in self.duplicate_of.items():
            while original in self.duplicate_of:
                original = self.duplicate_of[original]
            originals[index] = original
        return originals

    def removed_by(self, rule: str) -> list[int]:
        """Indices of the entries `rule` removed, in input order."""
        if rule not in self.rules:
            return []
        code = self.rules.index(rule)
        return np.flatnonzero(np.frombuffer(self._outcome, dtype=np.int8) == code).tolist()

    def strata(self) -> list[tuple[str, str]]:
        """What the map samples by, for every entry."""
        return [stratum(self.source(index), self.rule(index)) for index in range(len(self))]
