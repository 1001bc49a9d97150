"""Dedupe steps: exact, MinHash LSH near-duplicates, semantic (embedding) duplicates.

Each step gets the surviving texts in input order and returns {position: Duplicate(kept position,
similarity, detail)} for the ones it removes. The earliest record of a group is always the one kept, so
results are deterministic.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
from datasketch import MinHashLSH
from tqdm import tqdm

from pipeline.config import MinHashConfig, SemanticConfig
from pipeline.curate.embedding import unit_rows
from pipeline.curate.hashing import MIX, window_hashes
from pipeline.curate.pool import ordered_results
from pipeline.records import normalize_text



class Duplicate(NamedTuple):
    """Why a record goes: the position of the record it duplicates, how similar they are (1.0 for the same
    normalized text, the Jaccard for near duplicates, the cosine for semantic ones) and a readable detail."""

    kept: int
    similarity: float
    detail: str


Removals = dict[int, Duplicate]

WORD = re.compile(r"\w+")
MASK32 = np.uint64(0xFFFFFFFF)
CHUNK_DOCS = 2000  # documents per signature job: ~2000 * 60 shingles * 8 B = ~1 MB of shingles


def exact_duplicates(texts: Sequence[str]) -> Removals:
    """Same text after lowercasing and collapsing whitespace."""
    first: dict[bytes, int] = {}
    removed: Removals = {}
    for position, text in enumerate(texts):
        key = hashlib.blake2b(normalize_text(text).lower().encode(), digest_size=16).digest()
        if key in first:
            removed[position] = Duplicate(first[key], 1.0, "same normalized text")
        else:
            first[key] = position
    return removed


def prompt_key(prompt: str) -> int:
    """A 64-bit key of a prompt normalized as exact duplicates normalize their text."""
    return int.from_bytes(hashlib.blake2b(normalize_text(prompt).lower().encode(), digest_size=8).digest(),
                          "little", signed=True)


def prompt_duplicates(keys: np.ndarray, response_chars: np.ndarray, keep: str) -> Removals:
    """Records whose prompts share a key: one per prompt stays, the earliest (keep="first") or the one with
    the longest response (keep="longest", ties to the earliest); the others go as its duplicates."""
    groups: dict[int, list[int]] = {}
    for position, key in enumerate(keys.tolist()):
        groups.setdefault(key, []).append(position)
    removed: Removals = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        kept = members[0] if keep == "first" else max(members, key=lambda m: (response_chars[m], -m))
        for member in members:
            if member != kept:
                removed[member] = Duplicate(kept, 1.0, "same normalized prompt")
    return dict(sorted(removed.items()))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of num_perm multiply-shift hash functions: ((a*x + b) mod 2^64) >> 32, a odd.

    Universal like datasketch's (a*x + b) mod (2^61 - 1), without the slow 64-bit modulo."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """32-bit hashes of a text's word n-grams (a text shorter than n words is one shingle)."""
    words = np.fromiter((zlib.crc32(w.encode()) for w in WORD.findall(text.lower())), dtype=np.uint64)
    if len(words) < ngram:
        words = np.concatenate([words, np.zeros(ngram - len(words), dtype=np.uint64)])
    acc = window_hashes(words, ngram)
    return (acc >> np.uint64(32)) ^ (acc & MASK32)


def signatures(texts: Sequence[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures.

    All shingles of the chunk sit in one array (~1 MB, cache-resident); each hash function is one
    vectorized pass over it, and `minimum.reduceat` takes every document's minimum at once.
    """
    a, b = permutations(num_perm, seed)
    shingles = [shingle_hashes(text, ngram) for text in texts]
    starts = np.cumsum([0] + [len(s) for s in shingles[:-1]])
    flat = np.concatenate(shingles)
    out = np.empty((num_perm, len(texts)), dtype=np.uint32)
    hashed = np.empty_like(flat)
    shift = np.uint64(32)
    for i in range(num_perm):
        np.multiply(flat, a[i], out=hashed)
        hashed += b[i]
        hashed >>= shift
        out[i] = np.minimum.reduceat(hashed, starts)
    return out.T.copy()


def _signature_job(args: tuple[Sequence[str], int, int, int]) -> np.ndarray:
    return signatures(*args)


def signature_chunks(texts: Sequence[str], cfg: MinHashConfig, seed: int) -> Iterator[np.ndarray]:
    """Signatures chunk by chunk, in order, computed by `cfg.workers` processes ahead of the consumer."""
    jobs = [(texts[i : i + CHUNK_DOCS], cfg.ngram, cfg.num_perm, seed) for i in range(0, len(texts), CHUNK_DOCS)]
    return ordered_results(_signature_job, jobs, cfg.workers)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) 64-bit keys: each band's `rows` signature values hashed together."""
    grouped = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    keys = np.zeros(grouped.shape[:2], dtype=np.uint64)
    for row in range(rows):
        keys = keys * MIX + grouped[:, :, row]
    return keys


# Candidates come from bands tuned for a threshold CANDIDATE_SLACK lower than the real one, so pairs just
# above it are nearly always candidates (at the real threshold a banding misses about half of those);
# a candidate whose estimated Jaccard is within the estimate's noise of the threshold (the sd is ~0.04 at
# 128 permutations) is decided by its exact Jaccard.
CANDIDATE_SLACK = 0.2
SURE_MARGIN = 0.12


def jaccard(a: str, b: str, ngram: int) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (the shingles MinHash estimates it over)."""
    x, y = np.unique(shingle_hashes(a, ngram)), np.unique(shingle_hashes(b, ngram))
    common = len(np.intersect1d(x, y, assume_unique=True))
    return common / (len(x) + len(y) - common)


class Groups:
    """Union-find over positions; a group's root is its earliest member (the one kept)."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        self.parent[max(a, b)] = min(a, b)


BUCKET_REACH = 16  # in a band bucket, each record is paired with up to this many earlier members


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """(m, 2) distinct (earlier, later) position pairs that share a band key in some band.

    Per band, a stable sort brings equal keys together in position order; each member is paired with the
    BUCKET_REACH members before it in its bucket (all of them in all but huge buckets, where the verified
    pairs still join the group through its nearer members)."""
    found = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        ordered = keys[order, band]
        bucket = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])])
        for reach in range(1, BUCKET_REACH + 1):
            same = np.flatnonzero(bucket[:-reach] == bucket[reach:])
            if not len(same):
                break
            found.append(np.stack([order[same], order[same + reach]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    return np.unique(pairs, axis=0)


ANSWER_OVERLAP = 0.4  # word-set Jaccard two answers need for a near-duplicate pair (a 2-word edit of a 5-word
#                      answer keeps 0.43; two different short answers to one long prompt share ~0.1-0.3)


def answer_words(text: str, split: int) -> set[str]:
    return set(WORD.findall(text[split + 1 :].lower()))


def answers_agree(a: str, b: str, split_a: int, split_b: int) -> bool:
    """Whether two compared texts' answers (after their prompts' splits) share enough words; texts compared
    whole always agree."""
    if not (split_a and split_b):
        return True
    x, y = answer_words(a, split_a), answer_words(b, split_b)
    return len(x & y) >= ANSWER_OVERLAP * max(len(x | y), 1)


SHORT_ANSWER_WORDS = 8  # distinct words; under this a static vector says little of the meaning


def short_answers_agree(a: str, b: str, split_a: int, split_b: int) -> bool:
    """Whether two answers may be semantic duplicates as far as their words go: answers of fewer than
    SHORT_ANSWER_WORDS distinct words must share as many as near duplicates do; longer ones always may."""
    if not (split_a and split_b):
        return True
    x, y = answer_words(a, split_a), answer_words(b, split_b)
    return min(len(x), len(y)) >= SHORT_ANSWER_WORDS or len(x & y) >= ANSWER_OVERLAP * max(len(x | y), 1)


def near_duplicates(texts: Sequence[str], cfg: MinHashConfig, seed: int, splits: np.ndarray | None = None) -> Removals:
    """MinHash LSH over every record: records sharing a band are candidates, joined into one group when
    their Jaccard reaches the threshold and (with `splits`, where each text's prompt ends) their answers
    share enough words: a long prompt answered twice in a few different words is not a near duplicate.
    Each group keeps its earliest record.

    Every record is in the bands, so a copy closer to another copy than to the kept original still finds
    its group (A ~ B ~ C, C far from A: C goes with A). The band layout (b bands of r rows) is
    datasketch's MinHashLSH choice for the lowered threshold; band keys, candidate pairs and their
    estimated Jaccard are whole-array numpy passes.
    """
    layout = MinHashLSH(threshold=max(0.2, cfg.threshold - CANDIDATE_SLACK), num_perm=cfg.num_perm)
    sigs = np.empty((len(texts), cfg.num_perm), dtype=np.uint32)
    keys = np.empty((len(texts), layout.b), dtype=np.uint64)
    position = 0
    with tqdm(total=len(texts), desc="minhash", unit="rec", disable=len(texts) < 10000) as bar:
        for chunk in signature_chunks(texts, cfg, seed):
            sigs[position : position + len(chunk)] = chunk
            keys[position : position + len(chunk)] = band_keys(chunk, layout.b, layout.r)
            position += len(chunk)
            bar.update(len(chunk))
    pairs = candidate_pairs(keys)
    del keys
    estimates = np.concatenate([(sigs[pairs[i : i + 100_000, 0]] == sigs[pairs[i : i + 100_000, 1]]).mean(axis=1)
                                for i in range(0, len(pairs), 100_000)]) if len(pairs) else np.zeros(0)
    groups = Groups(len(texts))
    closest: dict[int, float] = {}  # position -> highest Jaccard with a member of its group
    for (a, b), similarity in zip(pairs.tolist(), estimates.tolist(), strict=True):
        if similarity < cfg.threshold - CANDIDATE_SLACK:
            continue
        if similarity < cfg.threshold + SURE_MARGIN:
            similarity = jaccard(texts[a], texts[b], cfg.ngram)  # too close to call on the estimate
        if similarity >= cfg.threshold and (splits is None or answers_agree(texts[a], texts[b], splits[a], splits[b])):
            groups.join(a, b)
            for member in (a, b):
                closest[member] = max(closest.get(member, 0.0), similarity)
    removed: Removals = {}
    for member in closest:
        if (root := groups.find(member)) != member:
            removed[member] = Duplicate(root, closest[member], f"Jaccard {closest[member]:.2f} with a record of its group")
    return dict(sorted(removed.items()))


EXACT_SEARCH_UP_TO = 50_000  # records; above, an inverted-file index (~sqrt(n) cells, a few probed per query)
CHUNK_VECTORS = 20_000


def neighbour_index(vectors: np.ndarray, seed: int):  # noqa: ANN201 - a faiss index holding the vectors
    """Exact inner product for small sets. Above, IVF (trained on a sample) over 8-bit scalar-quantized
    vectors (a quarter of float32's memory): it finds close pairs such as near-duplicates almost always
    while scanning ~1/1000 of a million vectors per query."""
    import faiss

    n, dim = vectors.shape
    if n <= EXACT_SEARCH_UP_TO:
        index = faiss.IndexFlatIP(dim)
    else:
        cells = int(4 * np.sqrt(n))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, cells, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        sample = np.sort(np.random.default_rng(seed).choice(n, min(n, 20 * cells), replace=False))
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        index.nprobe = 4
    for start in range(0, n, CHUNK_VECTORS):
        index.add(np.ascontiguousarray(vectors[start : start + CHUNK_VECTORS], dtype=np.float32))
    return index


CANDIDATE_MARGIN = 0.1  # the ANN's combined cosine may sit this far under the parts' lowest cosine
NEIGHBOURS = 16


def combined(parts: np.ndarray) -> np.ndarray:
    """(n, dim) float16 unit rows of the parts' sum: its cosine is about the mean of the parts' cosines."""
    out = np.empty((len(parts), parts.shape[-1]), dtype=np.float16)
    for start in range(0, len(parts), CHUNK_VECTORS):
        out[start : start + CHUNK_VECTORS] = unit_rows(parts[start : start + CHUNK_VECTORS].astype(np.float32).sum(axis=1))
    return out


def semantic_duplicates(parts: np.ndarray, cfg: SemanticConfig, seed: int = 0,
                        agree: Callable[[int, int], bool] | None = None) -> Removals:
    """Semantic duplicates: the same prompt and the same answer, possibly in other words.

    `parts` is (n, p, dim): p centred unit vectors per record (prompt and answer, or one text). The nearest
    neighbours of each record's combined vector are candidates; a candidate is a duplicate when every part
    reaches `cfg.threshold` (the same answer to another prompt, or another answer to the same prompt, is
    not); `agree(a, b)`, when given, must also hold (short answers sharing their words). Each record goes with
    the earliest such record that is itself kept."""
    n = len(parts)
    if n < 2:
        return {}
    index = neighbour_index(combined(parts), seed)
    floor = cfg.threshold - CANDIDATE_MARGIN
    removed: Removals = {}
    for start in tqdm(range(0, n, CHUNK_VECTORS), desc="semantic", unit="chunk", disable=n <= CHUNK_VECTORS):
        queries = combined(parts[start : start + CHUNK_VECTORS]).astype(np.float32)
        similarity, neighbours = index.search(queries, min(NEIGHBOURS, n))
        rows, cols = np.nonzero((similarity >= floor) & (neighbours >= 0)
                                & (neighbours < np.arange(start, start + len(queries))[:, None]))
        if not len(rows):
            continue
        others = neighbours[rows, cols]
        cosines = np.einsum("kpd,kpd->kp", parts[start + rows].astype(np.float32), parts[others].astype(np.float32))
        lowest = cosines.min(axis=1)
        for position, other, low, each in sorted(zip((start + rows).tolist(), others.tolist(), lowest.tolist(),
                                                     cosines.tolist(), strict=True)):
            if (low >= cfg.threshold and position not in removed and other not in removed
                    and (agree is None or agree(position, other))):
                removed[position] = Duplicate(other, low, "cosine " + ", ".join(
                    f"{name} {c:.3f}" for name, c in zip(PART_NAMES[len(each)], each, strict=True)))
    return removed


PART_NAMES = {1: ("text",), 2: ("prompt", "answer")}
