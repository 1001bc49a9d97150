"""Hybrid retrieval: BM25 (SQLite FTS5) finds names and rare words, the embedding finds meaning; their
rankings are fused with weighted reciprocal-rank fusion (Cormack et al., 2009, with a weight per ranking).

Equal weights lose to vector search alone on paraphrased questions (BM25 then ranks chunks that share
only common words), so the weight and k are tuned on the development questions of benchmarks/localdocs.py
and checked on its held-out questions (benchmarks/RESULTS.md, "LocalDocs retrieval").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from runtime.localdocs.context import TOP_K, fit_excerpts, with_excerpts
from runtime.localdocs.store import Collection, Hit

Mode = Literal["hybrid", "vector", "bm25"]
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Fusion:
    """score(chunk) = vector_weight / (k + vector rank) + bm25_weight / (k + BM25 rank), ranks from 1."""

    k: float = 5.0
    bm25_weight: float = 0.2
    candidates: int = 50  # taken from each ranking before fusing

    @property
    def vector_weight(self) -> float:
        return 1.0 - self.bm25_weight


# The best MRR on benchmarks/localdocs.py's development questions over k in {1, 2, 5, 10, 20, 60} and BM25
# weight in {0.1, ..., 0.6}; equal weights (k=60, 0.5) lost to vector search alone there.
FUSION = Fusion()


class TextEmbedder:
    """Embed4All (all-MiniLM-L6-v2), loaded on first use: torch loads only when LocalDocs embeds."""

    def __init__(self, n_threads: int | None = None) -> None:
        self.n_threads = n_threads
        self._model = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            from runtime.embed import Embed4All

            self._model = Embed4All(n_threads=self.n_threads)
        return self._model.embed_array(texts).numpy()


def query_words(query: str) -> list[str]:
    """The query's distinct words, lower-cased, in order (FTS5 ORs them; BM25 weighs rare ones up)."""
    return list(dict.fromkeys(w.lower() for w in WORD.findall(query)))


def fuse(rankings: Sequence[tuple[list[int], float]], k: float) -> list[tuple[int, float]]:
    """(id, fused score), best first, from rankings given as (ids best first, weight)."""
    scores: dict[int, float] = {}
    for ids, weight in rankings:
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def search(collection: Collection, query: str, query_vector: np.ndarray | None, top_k: int = 5,
           mode: Mode = "hybrid", fusion: Fusion = FUSION) -> list[Hit]:
    """The `top_k` chunks for `query`, best first. query_vector (the query's embedding) is needed unless
    mode is "bm25"."""
    if mode == "bm25":
        ids = collection.bm25(query_words(query), top_k)
        return collection.hits([(i, 1.0 / rank) for rank, i in enumerate(ids, start=1)])
    assert query_vector is not None
    nearest = collection.nearest(query_vector, fusion.candidates if mode == "hybrid" else top_k)
    if mode == "vector":
        ids, matrix = collection.vectors()
        row = {int(i): n for n, i in enumerate(ids)}
        return collection.hits([(i, float(matrix[row[i]] @ query_vector)) for i in nearest])
    lexical = collection.bm25(query_words(query), fusion.candidates)
    fused = fuse([(nearest, fusion.vector_weight), (lexical, fusion.bm25_weight)], fusion.k)
    return collection.hits(fused[:top_k])


class Library:
    """Named collections searched together with one embedder (what a chat or a server answers from)."""

    def __init__(self, names: Sequence[str], embed: TextEmbedder | None = None) -> None:
        self.collections = {name: Collection.open(name) for name in dict.fromkeys(names)}
        self.embed = embed or TextEmbedder()

    @property
    def names(self) -> list[str]:
        return list(self.collections)

    def search(self, query: str, top_k: int, names: Sequence[str] | None = None) -> list[Hit]:
        """The best `top_k` chunks across the collections named (all by default), by fused score."""
        chosen = [self.collections[n] for n in (names if names is not None else self.collections)]
        vector = self.embed([query])[0]
        hits = [hit for collection in chosen for hit in search(collection, query, vector, top_k)]
        return sorted(hits, key=lambda hit: -hit.score)[:top_k]

    def excerpted(self, question: str, prompt_tokens: Callable[[str], int], budget: int,
                  names: Sequence[str] | None = None) -> tuple[str, list[Hit]]:
        """The question headed by the best TOP_K excerpts that fit (`fit_excerpts`: the whole prompt within
        `budget` tokens), and those excerpts."""
        chosen = fit_excerpts(question, self.search(question, TOP_K, names), prompt_tokens, budget)
        return with_excerpts(question, chosen), chosen

    def close(self) -> None:
        for collection in self.collections.values():
            collection.close()
