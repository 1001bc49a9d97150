"""curate/report.{json,md} and curate/lengths.png: what was removed, by rule and by source."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts import atomic_path, write_json
from pipeline.plots import figure
from pipeline.records import Record

EXAMPLES_PER_RULE = 3


@dataclass
class Removal:
    """A removed record (or an unreadable line) with the rule that removed it."""

    rule: str
    detail: str
    record: Record | None = None
    duplicate_of: str | None = None
    line: int | None = None
    raw: str | None = None

    def to_json(self) -> dict[str, Any]:
        removed = {"rule": self.rule, "detail": self.detail, "duplicate_of": self.duplicate_of}
        if self.record is None:
            return {"removed": {**removed, "line": self.line}, "raw": self.raw}
        return {**self.record.model_dump(mode="json"), "removed": removed}

    @property
    def source(self) -> str:
        return self.record.source if self.record else "(unreadable)"


def clip(text: str, size: int = 200) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def build_report(kept: list[Record], removed: list[Removal]) -> dict[str, Any]:
    """Counts and shares per rule and per source, with a few examples of each rule."""
    total = len(kept) + len(removed)
    by_rule: dict[str, list[Removal]] = defaultdict(list)
    for item in removed:
        by_rule[item.rule].append(item)
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    for record in kept:
        sources[record.source]["kept"] += 1
    for item in removed:
        sources[item.source][item.rule] += 1
    return {
        "input": total,
        "kept": len(kept),
        "removed": len(removed),
        "kept_share": round(len(kept) / total, 4) if total else 0.0,
        "by_rule": {
            rule: {
                "count": len(items),
                "share": round(len(items) / total, 4),
                "examples": [{"id": i.record.id if i.record else None, "detail": i.detail,
                              "prompt": clip(i.record.prompt) if i.record else clip(i.raw or ""),
                              "response": clip(i.record.response) if i.record else "",
                              "duplicate_of": i.duplicate_of} for i in items[:EXAMPLES_PER_RULE]],
            }
            for rule, items in sorted(by_rule.items(), key=lambda kv: -len(kv[1]))
        },
        "by_source": {
            source: {"input": sum(counts.values()), "kept": counts["kept"],
                     "removed": {rule: n for rule, n in counts.items() if rule != "kept"}}
            for source, counts in sorted(sources.items())
        },
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Curation report", "",
             f"{report['input']} records in, {report['kept']} kept ({report['kept_share']:.1%}), "
             f"{report['removed']} removed.", "", "| rule | removed | share of input |", "|---|---|---|"]
    lines += [f"| {rule} | {r['count']} | {r['share']:.1%} |" for rule, r in report["by_rule"].items()]
    lines += ["", "| source | in | kept | removed by rule |", "|---|---|---|---|"]
    for source, r in report["by_source"].items():
        rules = ", ".join(f"{k} {v}" for k, v in r["removed"].items()) or "-"
        lines.append(f"| {source} | {r['input']} | {r['kept']} | {rules} |")
    for rule, r in report["by_rule"].items():
        lines += ["", f"## {rule}: examples", ""]
        for ex in r["examples"]:
            dup = f" (duplicate of {ex['duplicate_of']})" if ex["duplicate_of"] else ""
            prompt = ex["prompt"].replace("\n", " ").replace("|", "\\|")
            lines.append(f"- {ex['detail']}{dup}: {prompt}")
    lines += ["", "Length histograms: lengths.png"]
    return "\n".join(lines) + "\n"


def length_histograms(kept: list[Record], removed: list[Removal], path: Path) -> None:
    """Prompt and response lengths (characters), kept vs removed, on a log scale."""
    import numpy as np

    gone = [r.record for r in removed if r.record is not None]
    with figure(path, ncols=2, figsize=(11, 4)) as (_, axes):
        for ax, view in zip(axes, ("prompt", "response"), strict=True):
            kept_len = [max(len(getattr(r, view)), 1) for r in kept]
            gone_len = [max(len(getattr(r, view)), 1) for r in gone]
            top = max(kept_len + gone_len + [10])
            bins = np.logspace(0, np.log10(top) + 0.1, 40)
            ax.hist([kept_len, gone_len], bins=bins, stacked=True, label=["kept", "removed"],
                    color=["#3b7dd8", "#d8593b"])
            ax.set_xscale("log")
            ax.set_xlabel(f"{view} length (characters)")
            ax.set_ylabel("records")
            ax.legend()


def write_report(kept: list[Record], removed: list[Removal], out: Path) -> dict[str, Any]:
    report = build_report(kept, removed)
    write_json(out / "report.json", report)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown(report))
    length_histograms(kept, removed, out / "lengths.png")
    return report


def write_removed(removed: list[Removal], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for item in removed:
            handle.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
