"""Labelled pairs for the semantic dedupe threshold, and how each similarity separates them.

Positives: the shipped paraphrases (data/curate/paraphrases.jsonl: an Alpaca prompt with its response, and
the same prompt with the response in other words). Negatives, per corpus shape (benchmarks/curate_corpus.py,
base pairs only): each record's nearest neighbour under the static vectors (raw and centred; the hardest
unrelated pairs a corpus offers), random pairs, and the same prompt answered twice differently. For every
pair: the raw static cosine, the centred static cosine (corpus mean subtracted), the all-MiniLM-L6-v2 cosine
of the candidate pair and the word-set overlap. Prints quantiles per label; `--json` writes them.

    python -m benchmarks.curate_calibrate [--records 20000]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from benchmarks.curate_corpus import PARAPHRASES, SHAPES, base_pair, sources
import re

from pipeline.curate.dedupe import neighbour_index
from pipeline.curate.embedding import embed_texts, unit_rows

SEED = 7
MINILM_PAIRS = 50  # per label: the transformer embeds ~9 long texts per second per core
WORD = re.compile(r"\w+")


def word_overlap(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' lowercased word sets."""
    x, y = set(WORD.findall(a.lower())), set(WORD.findall(b.lower()))
    return len(x & y) / max(len(x | y), 1)


def centred(vectors: np.ndarray) -> np.ndarray:
    return unit_rows(vectors - vectors.astype(np.float32).mean(axis=0))


def nearest_pairs(vectors: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Each of the first `limit` rows with its nearest other row."""
    sims, neighbours = neighbour_index(vectors, SEED).search(np.ascontiguousarray(vectors[:limit], dtype=np.float32), 2)
    return [(i, int(row[1] if row[0] == i else row[0])) for i, row in enumerate(neighbours)]


Pair = tuple[tuple[str, str], tuple[str, str]]  # two (prompt, response)


def labelled(records: int) -> tuple[dict[str, list[Pair]], dict[str, dict[str, np.ndarray]]]:
    """Labelled pairs per shape, and per shape the corpus means of whole texts, prompts and responses."""
    rng = random.Random(SEED)
    src = sources()
    groups: dict[str, list[Pair]] = {}
    means = {}
    paraphrases = [json.loads(line) for line in PARAPHRASES.open()]
    for shape in SHAPES:
        corpus = [base_pair(shape, rng, src) for _ in range(records)]
        raw = embed_texts([joined(p) for p in corpus], workers=2).astype(np.float32)
        means[shape] = {"whole": raw.mean(axis=0),
                        "prompt": embed_texts([p for p, _ in corpus], workers=2).astype(np.float32).mean(axis=0),
                        "response": embed_texts([r for _, r in corpus], workers=2).astype(np.float32).mean(axis=0)}
        groups[f"{shape}: paraphrase"] = [((p["prompt"], p["response"]), (p["prompt"], p["response_paraphrase"]))
                                          for p in paraphrases]
        groups[f"{shape}: same prompt, other answer"] = [(corpus[i], (corpus[i][0], base_pair(shape, rng, src)[1]))
                                                         for i in range(300)]
        groups[f"{shape}: nearest (raw)"] = [(corpus[a], corpus[b]) for a, b in nearest_pairs(raw, 2000)]
        cen = unit_rows(raw - means[shape]["whole"])
        groups[f"{shape}: nearest (centred)"] = [(corpus[a], corpus[b]) for a, b in nearest_pairs(cen, 2000)]
        groups[f"{shape}: random"] = [tuple(rng.sample(corpus, 2)) for _ in range(500)]
    return groups, means


def joined(pair: tuple[str, str]) -> str:
    return f"{pair[0]}\n{pair[1]}"


def static_cosines(texts_a: list[str], texts_b: list[str], mean: np.ndarray | None) -> np.ndarray:
    a, b = (embed_texts(t, workers=1).astype(np.float32) for t in (texts_a, texts_b))
    if mean is not None:
        a, b = unit_rows(a - mean), unit_rows(b - mean)
    return (a * b).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    groups, means = labelled(args.records)  # static vectors first: their workers fork before torch starts
    from runtime.embed import Embed4All

    minilm = Embed4All()

    def minilm_cosines(texts_a: list[str], texts_b: list[str]) -> np.ndarray:
        return (minilm.embed_array(texts_a).numpy() * minilm.embed_array(texts_b).numpy()).sum(axis=1)

    out = {}
    for label, pairs in groups.items():
        mean = means[label.split(":")[0]]
        whole_a, whole_b = [joined(a) for a, _ in pairs], [joined(b) for _, b in pairs]
        parts = {part: ([a[k] for a, _ in pairs], [b[k] for _, b in pairs]) for k, part in enumerate(("prompt", "response"))}
        some = slice(0, MINILM_PAIRS)
        scores = {"raw": static_cosines(whole_a, whole_b, None),
                  "centred": static_cosines(whole_a, whole_b, mean["whole"]),
                  "parts centred": np.minimum(*(static_cosines(*parts[k], mean[k]) for k in parts)),
                  "parts minilm": np.minimum(*(minilm_cosines(parts[k][0][some], parts[k][1][some]) for k in parts)),
                  "words": np.array([word_overlap(a, b) for a, b in zip(whole_a, whole_b, strict=True)])}
        out[label] = {k: {q: round(float(np.quantile(v, q)), 3) for q in (0.0, 0.01, 0.5, 0.99, 1.0)}
                      for k, v in scores.items()}
        print(label, len(pairs), json.dumps(out[label]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
