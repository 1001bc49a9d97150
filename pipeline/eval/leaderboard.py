"""The leaderboard: every run's eval/results.json beside the GPT4All report's published rows."""

from __future__ import annotations

import json
from pathlib import Path
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
    """One row per evaluated model of every run; tasks that were not run stay empty."""
    rows = []
    for path in sorted(runs_dir.glob("*/eval/results.json")):
        data = json.loads(path.read_text())
        for label, model in data["models"].items():
            scores = {t: round(100 * model["tasks"][t]["value"], 1) for t in TASKS if t in model["tasks"]}
            rows.append({"model": f"{data['run']} / {label}", "kind": f"this project (limit {data.get('limit')})",
                         "scores": scores, "average": average(scores)})
    return rows


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
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    ranked = [r for r in rows if r["average"] is not None][::-1]
    with figure(path, figsize=(9, 0.45 * len(ranked) + 1.2)) as (_, ax):
        colors = ["#9aa5b1" if r["kind"] == "published" else "#3b7dd8" for r in ranked]
        ax.barh([r["model"] for r in ranked], [r["average"] for r in ranked], color=colors)
        ax.set_xlabel("average over the seven tasks (%); grey = published")


def build(runs_dir: Path, out_dir: Path) -> Path:
    """leaderboard.md and leaderboard.png from every results file, sorted by average."""
    rows = sorted(rows_from_runs(runs_dir) + published_rows(), key=lambda r: -(r["average"] or 0))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "leaderboard.md") as tmp:
        tmp.write_text(markdown(rows))
    chart(rows, out_dir / "leaderboard.png")
    return out_dir / "leaderboard.md"
