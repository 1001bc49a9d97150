"""Paired comparisons of two models that answered the same documents.

The difference of two accuracies measured on the same documents varies far less than either accuracy
alone (most documents are answered alike by both), so the interval comes from a paired bootstrap over
documents, and for 0/1 scores an exact McNemar test (a binomial test on the discordant documents).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import binomtest

ITERATIONS = 2000
CHUNK = 250  # bootstrap iterations drawn at once (bounds the index matrix at CHUNK x documents)


def bootstrap_means(diffs: np.ndarray, rng: np.random.Generator, iterations: int = ITERATIONS) -> np.ndarray:
    """Means of `iterations` resamples (with replacement) of the per-document differences."""
    n = len(diffs)
    out = np.empty(iterations)
    for start in range(0, iterations, CHUNK):
        size = min(CHUNK, iterations - start)
        out[start : start + size] = diffs[rng.integers(0, n, (size, n))].mean(axis=1)
    return out


def mcnemar_p(model: np.ndarray, baseline: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 scores (1.0 when no document is discordant)."""
    wins = int(((model == 1) & (baseline == 0)).sum())
    losses = int(((model == 0) & (baseline == 1)).sum())
    return 1.0 if wins + losses == 0 else float(binomtest(wins, wins + losses, 0.5).pvalue)


def paired_scores(model: Mapping[str, float], baseline: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The two models' scores on the documents both answered, in the same order."""
    docs = sorted(model.keys() & baseline.keys())
    if not docs:
        raise ValueError("no document was scored by both models")
    return np.array([model[d] for d in docs], float), np.array([baseline[d] for d in docs], float)


def compare(model_label: str, baseline_label: str, model: Mapping[str, Mapping[str, float]],
            baseline: Mapping[str, Mapping[str, float]], seed: int) -> list[dict]:
    """Per task (and the average over tasks) delta = model - baseline with a 95% paired-bootstrap interval.

    `model`/`baseline`: {task: {document key: score}}. The average's interval resamples every task's
    documents in the same iteration and averages the task deltas, as the leaderboard's average does."""
    rng = np.random.default_rng(seed)
    rows, boots = [], []
    for task in [t for t in model if t in baseline]:
        ours, theirs = paired_scores(model[task], baseline[task])
        boot = bootstrap_means(ours - theirs, rng)
        boots.append(boot)
        row = {"model": model_label, "baseline": baseline_label, "task": task, "delta": float((ours - theirs).mean()),
               "ci95": [float(v) for v in np.percentile(boot, [2.5, 97.5])], "n": len(ours)}
        if np.isin(ours, (0, 1)).all() and np.isin(theirs, (0, 1)).all():
            row["p_mcnemar"] = mcnemar_p(ours, theirs)
        rows.append(row)
    if len(rows) > 1:
        mean_boot = np.mean(boots, axis=0)
        rows.append({"model": model_label, "baseline": baseline_label, "task": "average",
                     "delta": float(np.mean([r["delta"] for r in rows])),
                     "ci95": [float(v) for v in np.percentile(mean_boot, [2.5, 97.5])],
                     "n": sum(r["n"] for r in rows)})
    return rows
