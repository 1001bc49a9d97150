"""The leaderboard: every run's eval/results.json beside the GPT4All report's published rows, with each
model's paired difference from its base model (Δ vs base, 95% intervals) under its row."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median
from typing import Any

from pipeline.artifacts import atomic_path
from pipeline.plots import figure

TASKS = ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]

# GPT4All technical report, Table 1 (zero-shot; acc, acc_norm for HellaSwag, ARC and OBQA), in percent.
PUBLISHED = {
    "GPT4All-J 6B v1.3-groovy": [73.6, 74.3, 63.8, 63.5, 57.7, 35.0, 38.8],
    "GPT4All LLaMA LoRA 7B": [73.1, 77.6, 72.1, 67.8, 51.1, 40.4, 40.2],
    "GPT4All-13B-Snoozy": [83.3, 79.2, 75.0, 71.3, 60.9, 44.2, 43.4],
    "text-davinci-003": [88.1, 83.8, 83.4, 75.8, 83.9, 63.9, 51.0],
}


def rows_from_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """One row per evaluated model of every run, with its paired differences from the base model (if
    compared); tasks that were not run stay empty."""
    rows = []
    for path in sorted(runs_dir.glob("*/eval/results.json")):
        data = json.loads(path.read_text())
        for label, model in data["models"].items():
            scores = {t: round(100 * model["tasks"][t]["value"], 1) for t in TASKS if t in model["tasks"]}
            deltas = {c["task"]: c for c in data.get("comparisons", []) if c["model"] == label}
            rows.append({"model": f"{data['run']} / {label}", "kind": f"this project (limit {data.get('limit')})",
                         "scores": scores, "average": average(scores), "deltas": deltas})
    return rows


def delta_cell(comparison: dict[str, Any] | None) -> str:
    if comparison is None:
        return "-"
    low, high = (100 * v for v in comparison["ci95"])
    return f"{100 * comparison['delta']:+.1f} [{low:+.1f}, {high:+.1f}]"


def interval_note(rows: list[dict[str, Any]]) -> list[str]:
    """What the runs' limits buy: the median 95% interval half-width of a task's and of the average's delta."""
    tasks = [c for r in rows for t, c in r.get("deltas", {}).items() if t != "average"]
    if not tasks:
        return []
    overall = [c for r in rows for t, c in r.get("deltas", {}).items() if t == "average"]

    def half(items: list[dict[str, Any]]) -> float:
        return median(100 * (c["ci95"][1] - c["ci95"][0]) / 2 for c in items)

    documents = median(c["n"] for c in tasks)
    text = (f"Δ vs base: the model minus the run's base model on the same documents, in points, with the 95% "
            f"interval of a paired bootstrap over documents. With ~{documents:.0f} documents per task an interval "
            f"is ±{half(tasks):.1f} points per task (median half-width)")
    if overall:
        text += f" and ±{half(overall):.1f} on the average"
    return ["", text + "; `eval.limit: null` scores every document."]


def published_rows() -> list[dict[str, Any]]:
    return [{"model": name, "kind": "published", "scores": dict(zip(TASKS, values, strict=True)),
             "average": average(dict(zip(TASKS, values, strict=True)))} for name, values in PUBLISHED.items()]


def average(scores: dict[str, float]) -> float | None:
    return round(sum(scores.values()) / len(scores), 1) if scores else None


def markdown(rows: list[dict[str, Any]]) -> str:
    header = "| model | source | " + " | ".join(TASKS) + " | average |"
    lines = ["# Leaderboard", "", "Zero-shot accuracy in percent (acc; acc_norm for HellaSwag, ARC and OBQA). "
             "Rows marked *published* are the GPT4All technical report's figures, not measured here.", "",
             header, "|" + "---|" * (len(TASKS) + 3)]
    for row in rows:
        cells = [str(row["scores"].get(t, "-")) for t in TASKS]
        lines.append(f"| {row['model']} | {row['kind']} | " + " | ".join(cells) + f" | {row['average']} |")
        deltas = row.get("deltas")
        if deltas:
            baseline = next(iter(deltas.values()))["baseline"]
            cells = [delta_cell(deltas.get(t)) for t in TASKS]
            lines.append(f"| Δ vs base | {baseline}, paired 95% CI | " + " | ".join(cells)
                         + f" | {delta_cell(deltas.get('average'))} |")
    return "\n".join(lines + interval_note(rows)) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Averages as bars; below them each compared model's Δ vs base per task, its 95% interval drawn."""
    ranked = [r for r in rows if r["average"] is not None][::-1]
    compared = [r for r in rows if r.get("deltas")]
    height = 0.45 * len(ranked) + 1.2
    extra = 0.3 * len(compared) * (len(TASKS) + 1) + 1.2 if compared else 0
    with figure(path, nrows=2 if compared else 1, figsize=(9, height + extra), squeeze=False,
                gridspec_kw={"height_ratios": [height, extra] if compared else [1]}) as (_, axes):
        ax = axes[0][0]
        colors = ["#9aa5b1" if r["kind"] == "published" else "#3b7dd8" for r in ranked]
        ax.barh([r["model"] for r in ranked], [r["average"] for r in ranked], color=colors)
        ax.set_xlabel("average over the seven tasks (%); grey = published")
        if compared:
            delta_chart(axes[1][0], compared)


def delta_chart(ax: Any, compared: list[dict[str, Any]]) -> None:
    labels, centers, errors = [], [], []
    for row in compared:
        for task in [*TASKS, "average"]:
            c = row["deltas"].get(task)
            if c is not None:
                labels.append(f"{row['model']} · {task}")
                centers.append(100 * c["delta"])
                errors.append([100 * (c["delta"] - c["ci95"][0]), 100 * (c["ci95"][1] - c["delta"])])
    y = list(range(len(labels)))[::-1]
    ax.errorbar(centers, y, xerr=list(zip(*errors, strict=True)), fmt="o", color="#3b7dd8", capsize=3)
    ax.axvline(0, color="#9aa5b1", linewidth=1)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("Δ vs base (points), 95% paired-bootstrap interval")


def build(runs_dir: Path, out_dir: Path) -> Path:
    """leaderboard.md and leaderboard.png from every results file, sorted by average."""
    rows = sorted(rows_from_runs(runs_dir) + published_rows(), key=lambda r: -(r["average"] or 0))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "leaderboard.md") as tmp:
        tmp.write_text(markdown(rows))
    chart(rows, out_dir / "leaderboard.png")
    return out_dir / "leaderboard.md"
