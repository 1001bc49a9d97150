"""Paired comparisons: intervals that cover a known difference, and a model compared with itself."""

from __future__ import annotations

import numpy as np

from pipeline.eval.paired import compare


def as_docs(values: np.ndarray) -> dict[str, float]:
    return {str(i): float(v) for i, v in enumerate(values)}


def test_interval_contains_a_planted_difference_and_mcnemar_sees_it() -> None:
    rng = np.random.default_rng(1)
    baseline = (rng.random(1000) < 0.5).astype(float)
    model = baseline.copy()
    model[np.flatnonzero(baseline == 0)[:100]] = 1  # 100 documents fixed, none broken: +10 points exactly
    row = compare("m", "b", {"piqa": as_docs(model)}, {"piqa": as_docs(baseline)}, seed=0)[0]
    assert row["delta"] == 0.1 and row["n"] == 1000
    assert 0 < row["ci95"][0] < 0.1 < row["ci95"][1] < 0.2
    assert row["p_mcnemar"] < 1e-20  # 100 discordant documents, all one way


def test_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    """Correlated synthetic models (true accuracies 0.60 vs 0.55 on a shared difficulty): coverage over
    200 independent samples of 400 documents."""
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        difficulty = rng.random(400)
        noise = rng.random(400)
        model = (difficulty + 0.1 * noise < 0.6 + 0.1 * 0.5).astype(float)  # P(correct) = 0.60
        baseline = (difficulty + 0.1 * rng.random(400) < 0.55 + 0.1 * 0.5).astype(float)  # 0.55
        row = compare("m", "b", {"t": as_docs(model)}, {"t": as_docs(baseline)}, seed=trial)[0]
        covered += row["ci95"][0] <= 0.05 <= row["ci95"][1]
    assert 0.90 <= covered / 200 <= 0.99


def test_a_model_compared_with_itself_gives_zero() -> None:
    rng = np.random.default_rng(3)
    scores = {t: as_docs((rng.random(50) < 0.6).astype(float)) for t in ("piqa", "boolq", "hellaswag")}
    rows = compare("m", "m", scores, scores, seed=0)
    assert [r["task"] for r in rows] == ["piqa", "boolq", "hellaswag", "average"]
    for row in rows:
        assert row["delta"] == 0 and row["ci95"][0] <= 0 <= row["ci95"][1] and row["ci95"][1] - row["ci95"][0] < 1e-12
    assert all(r["p_mcnemar"] == 1.0 for r in rows[:3]) and rows[3]["n"] == 150


def test_average_interval_is_narrower_than_its_tasks() -> None:
    rng = np.random.default_rng(5)
    base = {t: (rng.random(300) < 0.5).astype(float) for t in ("a", "b", "c", "d")}
    model = {t: np.where(rng.random(300) < 0.2, 1 - v, v) for t, v in base.items()}
    rows = compare("m", "b", {t: as_docs(v) for t, v in model.items()}, {t: as_docs(v) for t, v in base.items()}, 0)
    widths = [r["ci95"][1] - r["ci95"][0] for r in rows]
    assert widths[-1] < min(widths[:-1])
    assert abs(rows[-1]["delta"] - np.mean([r["delta"] for r in rows[:-1]])) < 1e-12
