"""Rebuild RESULTS.md from every results/*.json (one section per benchmark)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write one benchmark's results and refresh RESULTS.md."""
    RESULTS.mkdir(exist_ok=True)
    payload = {**payload, "machine": f"{platform.machine()}, {platform.python_version()}"}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    write_markdown()
    return path


def table(rows: list[dict[str, Any]]) -> str:
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown() -> None:
    parts = ["# Benchmark results", "",
             "Made by `make bench` (each `benchmarks/<stage>.py` writes `results/<stage>.json`, then this file).",
             "Every figure stands beside its baseline measured in the same run, on the same machine.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        parts += [f"## {data['title']}", "", data.get("setup", ""), "", table(data["rows"]), ""]
        parts += [f"- {note}" for note in data.get("notes", [])]
        parts += ["", f"_{data['machine']}; {data['when']}_", ""]
    (HERE / "RESULTS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    write_markdown()
