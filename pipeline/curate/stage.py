"""curate: filters, then exact, MinHash and semantic dedupe -> curate/pairs.jsonl, removed.jsonl,
report.{json,md}, lengths.png, map.html/png.

Every input line ends in exactly one of pairs.jsonl or removed.jsonl (kept + removed = input).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.artifacts import RunDir
from pipeline.config import CurateConfig, PipelineConfig
from pipeline.curate.dedupe import Removals, exact_duplicates, near_duplicates, semantic_duplicates
from pipeline.curate.filters import build_filters
from pipeline.curate.maps import MapPoint, build_map
from pipeline.curate.report import Removal, write_removed, write_report
from pipeline.pairs import read_pairs
from pipeline.records import Record, write_records
from pipeline.rowfiles import Row


def input_path(cfg: PipelineConfig, run: RunDir) -> Path:
    return cfg.curate.input or run.root / "collect" / "pairs.jsonl"


def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
    return [input_path(cfg, run)]


def read_input(path: Path, skip_bad: bool) -> tuple[list[Record], list[Removal]]:
    """Records in any known shape (ids derived when absent), plus unreadable rows as `malformed` removals
    when skip_bad (else BadRowError naming file, line and column)."""
    bad: list[Removal] = []

    def keep_bad(row: Row, reason: str) -> None:
        bad.append(Removal("malformed", reason, line=row.number, raw=row.raw or json.dumps(row.data, default=str)))

    records = list(read_pairs(path, on_bad=keep_bad if skip_bad else None))
    return records, bad


def compared_text(record: Record, compare: str) -> str:
    if compare == "prompt":
        return record.prompt
    if compare == "response":
        return record.response
    return "\n".join(m.content for m in record.messages if m.role != "system")


def embed(records: list[Record], compare: str, batch_size: int) -> np.ndarray:
    from runtime.embed import Embed4All

    embedder = Embed4All(batch_size=batch_size)
    texts = [compared_text(r, compare) for r in records]
    step = 1024
    parts = [embedder.embed_array(texts[i : i + step]).numpy()
             for i in tqdm(range(0, len(texts), step), desc="embed", unit="batch", disable=len(texts) <= step)]
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), dtype=np.float32)


class Curation:
    """Survivors shrink step by step; every removal is recorded with its rule."""

    def __init__(self, records: list[Record], removed: list[Removal]) -> None:
        self.survivors = list(range(len(records)))  # indices into records, in input order
        self.records = records
        self.removed = list(removed)

    def apply_filters(self, filters: list) -> None:
        kept = []
        for index in tqdm(self.survivors, desc="filters", unit="rec", disable=len(self.survivors) < 10000):
            record = self.records[index]
            for f in filters:
                if (why := f.reason(record)) is not None:
                    self.removed.append(Removal(f.rule, why, record))
                    break
            else:
                kept.append(index)
        self.survivors = kept

    def apply_dedupe(self, rule: str, find: Callable[[list[int]], Removals]) -> None:
        """`find` gets the survivors (record indices) and returns removals by survivor position."""
        removals = find(self.survivors)
        for position, (kept_position, detail) in sorted(removals.items()):
            record = self.records[self.survivors[position]]
            original = self.records[self.survivors[kept_position]]
            self.removed.append(Removal(rule, detail, record, duplicate_of=original.id))
        self.survivors = [index for position, index in enumerate(self.survivors) if position not in removals]

    @property
    def kept(self) -> list[Record]:
        return [self.records[i] for i in self.survivors]


def run(cfg: PipelineConfig, run_dir: RunDir) -> dict[str, int | float]:
    c: CurateConfig = cfg.curate
    path = input_path(cfg, run_dir)
    records, bad = read_input(path, c.skip_bad)
    filters = build_filters(c.filters, cfg.data_dir)
    out = run_dir.stage_dir("curate")
    curation = Curation(records, bad)
    curation.apply_filters(filters)
    texts = [compared_text(r, c.compare) for r in records]
    if c.exact.enabled:
        curation.apply_dedupe("exact_duplicate", lambda idx: exact_duplicates([texts[i] for i in idx]))
    if c.minhash.enabled:
        curation.apply_dedupe("near_duplicate",
                              lambda idx: near_duplicates([texts[i] for i in idx], c.minhash, cfg.run.seed))
    vectors = embed(records, c.compare, c.semantic.batch_size) if (c.semantic.enabled or c.map.enabled) else None
    if c.semantic.enabled:
        assert vectors is not None
        curation.apply_dedupe("semantic_duplicate", lambda idx: semantic_duplicates(vectors[idx], c.semantic))
    kept = curation.kept
    total = len(records) + len(bad)
    if len(kept) + len(curation.removed) != total:  # the accounting identity; never expected to fail
        raise RuntimeError(f"curate lost records: {len(kept)} kept + {len(curation.removed)} removed != {total}")
    write_records(out / "pairs.jsonl", kept)
    write_removed(curation.removed, out / "removed.jsonl")
    report = write_report(kept, curation.removed, out)
    if c.map.enabled and vectors is not None:
        by_id = {id(r): "kept" for r in kept}
        rules = {id(item.record): item.rule for item in curation.removed if item.record is not None}
        chosen = records[: c.map.max_points]
        points = [MapPoint(r.id, r.source, by_id.get(id(r)) or rules[id(r)], r.prompt, r.response) for r in chosen]
        build_map(points, vectors[: len(chosen)], out, c.map.clusters, cfg.run.seed, cfg.run.name)
    return {"input": total, "kept": len(kept), "removed": len(curation.removed),
            **{f"removed_{rule}": r["count"] for rule, r in report["by_rule"].items()}}
