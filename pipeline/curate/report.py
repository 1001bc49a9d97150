"""curate/report.{json,md} and curate/lengths.png: what was removed, by rule and by source; the lines of
curate/removed.jsonl."""

from __future__ import annotations

import json
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts import atomic_path, write_json
from pipeline.plots import figure
from pipeline.records import Record

EXAMPLES_PER_RULE = 3
VIEWS = ("prompt", "response")


@dataclass
class Removal:
    """A removed record (or an unreadable line) with the rule that removed it."""

    rule: str
    detail: str
    record: Record | None = None
    duplicate_of: str | None = None
    similarity: float | None = None
    line: int | None = None
    raw: str | None = None

    def to_json(self) -> dict[str, Any]:
        removed = {"rule": self.rule, "detail": self.detail, "duplicate_of": self.duplicate_of,
                   "similarity": self.similarity}
        if self.record is None:
            return {"removed": {**removed, "line": self.line}, "raw": self.raw}
        return {**self.record.model_dump(mode="json"), "removed": removed}

    @property
    def source(self) -> str:
        return self.record.source if self.record else "(unreadable)"


def clip(text: str, size: int = 200) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


class ReportBuilder:
    """Counts per rule and per source, the first few examples of each rule and the lengths of kept and
    removed records, gathered as records stream by (no record is held); `review` holds each dedupe rule's
    sampled removals beside their kept records (pipeline.curate.review)."""

    def __init__(self) -> None:
        self.kept = 0
        self.review: dict[str, list[dict[str, Any]]] = {}
        self.by_rule: dict[str, int] = Counter()
        self.examples: dict[str, list[Removal]] = defaultdict(list)
        self.sources: dict[str, Counter[str]] = defaultdict(Counter)
        self.lengths = {outcome: {view: array("i") for view in VIEWS} for outcome in ("kept", "removed")}

    def add_kept(self, record: Record) -> None:
        self.kept += 1
        self.sources[record.source]["kept"] += 1
        self._lengths("kept", record)

    def add_removed(self, item: Removal) -> None:
        self.by_rule[item.rule] += 1
        self.sources[item.source][item.rule] += 1
        if len(self.examples[item.rule]) < EXAMPLES_PER_RULE:
            self.examples[item.rule].append(item)
        if item.record is not None:
            self._lengths("removed", item.record)

    def _lengths(self, outcome: str, record: Record) -> None:
        for view, lengths in self.lengths[outcome].items():
            lengths.append(len(getattr(record, view)))

    @property
    def removed(self) -> int:
        return sum(self.by_rule.values())

    def report(self) -> dict[str, Any]:
        total = self.kept + self.removed
        return {
            "input": total,
            "kept": self.kept,
            "removed": self.removed,
            "kept_share": round(self.kept / total, 4) if total else 0.0,
            "by_rule": {
                rule: {
                    "count": count,
                    "share": round(count / total, 4),
                    "examples": [{"id": i.record.id if i.record else None, "detail": i.detail,
                                  "prompt": clip(i.record.prompt) if i.record else clip(i.raw or ""),
                                  "response": clip(i.record.response) if i.record else "",
                                  "duplicate_of": i.duplicate_of} for i in self.examples[rule]],
                }
                for rule, count in sorted(self.by_rule.items(), key=lambda kv: -kv[1])
            },
            "by_source": {
                source: {"input": sum(counts.values()), "kept": counts["kept"],
                         "removed": {rule: n for rule, n in counts.items() if rule != "kept"}}
                for source, counts in sorted(self.sources.items())
            },
            "review": self.review,
        }

    def write(self, out: Path) -> dict[str, Any]:
        """report.json, report.md and lengths.png in `out`; returns the report."""
        report = self.report()
        write_json(out / "report.json", report)
        with atomic_path(out / "report.md") as tmp:
            tmp.write_text(markdown(report))
        length_histograms(self.lengths, out / "lengths.png")
        return report


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
        if rule in report["review"]:
            lines += review_table(rule, r["count"], report["review"][rule])
            continue
        lines += ["", f"## {rule}: examples", ""]
        for ex in r["examples"]:
            lines.append(f"- {ex['detail']}: {cell(ex['prompt'])}")
    lines += ["", "Length histograms: lengths.png"]
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def review_table(rule: str, count: int, pairs: list[dict[str, Any]]) -> list[str]:
    """A rule's sampled removals, each beside the kept record it duplicates."""
    lines = ["", f"## {rule}: {len(pairs)} of {count} removals (seeded sample), beside the record each duplicates", "",
             "| removed id | duplicate_of | similarity | removed (beginning) | kept (beginning) |", "|---|---|---|---|---|"]
    lines += [f"| {cell(p['id'])} | {cell(p['duplicate_of'])} | {p['similarity']:.3f} | {cell(p['removed'])} | "
              f"{cell(p['kept'])} |" for p in pairs]
    return lines


def length_histograms(lengths: dict[str, dict[str, array]], path: Path) -> None:
    """Prompt and response lengths (characters), kept vs removed, on a log scale."""
    import numpy as np

    with figure(path, ncols=2, figsize=(11, 4)) as (_, axes):
        for ax, view in zip(axes, VIEWS, strict=True):
            kept_len, gone_len = (np.maximum(np.frombuffer(lengths[o][view], dtype=np.int32), 1)
                                  for o in ("kept", "removed"))
            top = max(int(kept_len.max(initial=10)), int(gone_len.max(initial=10)))
            bins = np.logspace(0, np.log10(top) + 0.1, 40)
            ax.hist([kept_len, gone_len], bins=bins, stacked=True, label=["kept", "removed"],
                    color=["#3b7dd8", "#d8593b"])
            ax.set_xscale("log")
            ax.set_xlabel(f"{view} length (characters)")
            ax.set_ylabel("records")
            ax.legend()


def removed_line(item: Removal) -> str:
    return json.dumps(item.to_json(), ensure_ascii=False) + "\n"
