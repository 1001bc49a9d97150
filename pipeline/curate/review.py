"""What a person checks before trusting a dedupe: a seeded sample of each dedupe rule's removals, each beside
the kept record it duplicates (report.md's review tables), and the kept records' beginnings for the map."""

from __future__ import annotations

import random
from typing import Any

from pipeline.curate.ledger import Ledger
from pipeline.curate.report import clip
from pipeline.records import Record

PER_RULE = 10
SHOWN_CHARS = 240


def beginning(record: Record, size: int = SHOWN_CHARS) -> str:
    """The start of a record's prompt and response, on one line."""
    return clip(f"{record.prompt} ⏎ {record.response}".replace("\n", " "), size)


class Review:
    """Chooses up to PER_RULE removals of each dedupe rule (seeded) before the second pass, collects their
    texts and their kept originals' on the way, and lays them out side by side."""

    def __init__(self, ledger: Ledger, seed: int, extra_originals: set[int]) -> None:
        """`extra_originals`: more kept records whose beginnings to collect (those the map's points duplicate)."""
        self.ledger = ledger
        originals = ledger.kept_originals()
        rng = random.Random(seed)
        self.sampled: dict[str, list[int]] = {}
        for rule in ledger.rules:
            removed = [i for i in ledger.removed_by(rule) if i in originals]
            if removed:
                self.sampled[rule] = sorted(rng.sample(removed, min(PER_RULE, len(removed))))
        self.original = {i: originals[i] for chosen in self.sampled.values() for i in chosen}
        self.wanted = set(self.original) | set(self.original.values()) | extra_originals
        self.beginnings: dict[int, str] = {}

    def offer(self, index: int, record: Record) -> None:
        if index in self.wanted:
            self.beginnings[index] = beginning(record)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Per dedupe rule, the sampled removals: id, duplicate_of, similarity and both beginnings."""
        ids, similarity = self.ledger.ids, self.ledger.similarity
        return {rule: [{"id": ids[i], "duplicate_of": ids[self.original[i]], "similarity": similarity[i],
                        "removed": self.beginnings[i], "kept": self.beginnings[self.original[i]]} for i in chosen]
                for rule, chosen in self.sampled.items()}
