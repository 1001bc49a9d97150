"""Decontamination: n-gram overlap with the evaluation sets (GPT-3's rule: any shared 13-gram).

The texts of every evaluation row (questions, passages, each choice after its question, instructions)
are indexed; n-grams run over lowercased alphanumeric words. N-grams are compared by 64-bit hashes of
their words' hashes (Python's string hash, so index and queries live in one process).
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import open_text
from pipeline.curate.hashing import window_hashes

WORD = re.compile(r"[a-z0-9]+")
SKIP_KEYS = {"id", "qID", "idx", "label", "answerKey", "answer", "ind"}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def strings(value: Any) -> Iterator[str]:
    """Every text leaf of a JSON value, in order, skipping ids and labels."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in SKIP_KEYS:
                yield from strings(item)


PREFILTER_BITS = 25  # a 32 MB presence table in front of the exact lookup: ~5% of misses reach it


def word_hashes(tokens: list[str]) -> np.ndarray:
    return np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)


class NgramIndex:
    """The n-grams of some evaluation files as a hash set: 64-bit n-gram hashes, sorted, behind a presence
    table. A batch of texts is checked in a few vectorized passes, linear in its words.

    About 1.6M 13-grams for the seven tasks plus self-instruct: ~13 MB of hashes (+ 32 MB table)."""

    def __init__(self, n: int, hashes: np.ndarray, origins: np.ndarray, names: list[str]) -> None:
        self.hashes, first = np.unique(hashes, return_index=True)
        self.n, self.origins, self.names = n, origins[first], names
        self.mask = np.uint64(2**PREFILTER_BITS - 1)
        self.present = np.zeros(2**PREFILTER_BITS, dtype=bool)
        self.present[self.hashes & self.mask] = True

    @classmethod
    def from_files(cls, patterns: list[str], data_dir: Path, n: int) -> NgramIndex:
        files = sorted({f for p in patterns for f in glob.glob(p.replace("{data_dir}", str(data_dir)))})
        if not files:
            raise FileNotFoundError(f"curate.filters.decontaminate.files: no evaluation files match {patterns} "
                                    f"(data_dir={data_dir})")
        hashes: list[np.ndarray] = []
        origins: list[np.ndarray] = []
        for number, file in enumerate(files):
            found = [window_hashes(word_hashes(words(text)), n) for text in file_texts(Path(file))]
            hashes += found
            origins += [np.full(len(f), number, dtype=np.int32) for f in found]
        return cls(n, np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
                   np.concatenate(origins) if origins else np.zeros(0, np.int32), [Path(f).name for f in files])

    def first_overlaps(self, texts: list[str]) -> list[tuple[str, str] | None]:
        """For each text, (evaluation file, n-gram) of its first n-gram found in the index, or None."""
        tokens = [words(text) for text in texts]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        results: list[tuple[str, str] | None] = [None] * len(texts)
        if not len(self.hashes) or lengths.sum() < self.n:
            return results
        owner = np.repeat(np.arange(len(texts)), lengths)  # the text each word belongs to
        grams = window_hashes(word_hashes([t for text in tokens for t in text]), self.n)
        inside = owner[: len(grams)] == owner[self.n - 1 :]  # n-grams that do not straddle two texts
        maybe = np.flatnonzero(inside & self.present[grams & self.mask])
        at = np.searchsorted(self.hashes, grams[maybe]).clip(max=len(self.hashes) - 1)
        hit = self.hashes[at] == grams[maybe]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        seen: set[int] = set()
        for position, where in zip(maybe[hit].tolist(), at[hit].tolist(), strict=True):  # in text order
            text = int(owner[position])
            if text not in seen:
                seen.add(text)
                offset = position - int(starts[text])
                results[text] = self.names[self.origins[where]], " ".join(tokens[text][offset : offset + self.n])
        return results

    def __len__(self) -> int:
        return len(self.hashes)


def row_texts(row: Any) -> list[str]:
    """The texts of one evaluation row: each string, all of them joined, and for every list of
    choices the text before it followed by each choice (what a model reads when scored on it)."""
    prefix: list[str] = []
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            prefix.append(value)
            texts.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in SKIP_KEYS:
                    walk(item)
        elif isinstance(value, list):
            context = " ".join(prefix)
            texts.extend(f"{context} {' '.join(strings(item))}" for item in value)

    walk(row)
    texts.append(" ".join(strings(row)))
    return texts


def file_texts(path: Path) -> Iterator[str]:
    """Every text of every row of a JSONL evaluation file (plain or .gz)."""
    with open_text(path) as handle:
        for line in handle:
            if line.strip():
                yield from row_texts(json.loads(line))
