"""Decontamination: n-gram overlap with the evaluation sets (GPT-3's rule: any shared 13-gram).

The texts of every evaluation row (questions, passages, each choice after its question, instructions)
are indexed; n-grams run over lowercased alphanumeric words.
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

WORD = re.compile(r"[a-z0-9]+")
SKIP_KEYS = {"id", "qID", "idx", "label", "answerKey", "answer", "ind"}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> Iterator[str]:
    for i in range(len(tokens) - n + 1):
        yield " ".join(tokens[i : i + n])


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


class NgramIndex:
    """The n-grams of some evaluation files as a sorted array of (in-process) string hashes.

    About 1.6M 13-grams for the seven tasks plus self-instruct: ~26 MB instead of ~250 MB as strings.
    """

    def __init__(self, n: int, hashes: np.ndarray, origins: np.ndarray, names: list[str]) -> None:
        order = np.argsort(hashes, kind="stable")
        self.n, self.hashes, self.origins, self.names = n, hashes[order], origins[order], names

    @classmethod
    def from_files(cls, patterns: list[str], data_dir: Path, n: int) -> NgramIndex:
        files = sorted({f for p in patterns for f in glob.glob(p.replace("{data_dir}", str(data_dir)))})
        if not files:
            raise FileNotFoundError(f"curate.filters.decontaminate.files: no evaluation files match {patterns} "
                                    f"(data_dir={data_dir})")
        hashes: list[int] = []
        origins: list[int] = []
        for number, file in enumerate(files):
            found = [hash(gram) for text in file_texts(Path(file)) for gram in ngrams(words(text), n)]
            hashes += found
            origins += [number] * len(found)
        return cls(n, np.array(hashes, dtype=np.int64), np.array(origins, dtype=np.int32),
                   [Path(f).name for f in files])

    def first_overlap(self, text: str) -> tuple[str, str] | None:
        """(evaluation file, n-gram) of the first shared n-gram, or None."""
        grams = list(ngrams(words(text), self.n))
        if not grams or not len(self.hashes):
            return None
        wanted = np.array([hash(g) for g in grams], dtype=np.int64)
        at = np.searchsorted(self.hashes, wanted).clip(max=len(self.hashes) - 1)
        hits = np.flatnonzero(self.hashes[at] == wanted)
        if not len(hits):
            return None
        first = hits[0]
        return self.names[self.origins[at[first]]], grams[first]

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
