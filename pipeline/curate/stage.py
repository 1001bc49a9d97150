"""curate: filters, then exact, MinHash and semantic dedupe -> curate/pairs.jsonl, removed.jsonl,
report.{json,md}, lengths.png, map.html/png.

Every input line ends in exactly one of pairs.jsonl or removed.jsonl (kept + removed = input).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.artifacts import RunDir
from pipeline.config import CurateConfig, PipelineConfig, SemanticConfig
from pipeline.curate.dedupe import Removals, exact_duplicates, near_duplicates, semantic_duplicates
from pipeline.curate.filters import Filter, build_filters
from pipeline.curate.embedding import embed_texts
from pipeline.curate.maps import MapPoint, build_map, stratified_sample, stratum
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

    records = list(tqdm(read_pairs(path, on_bad=keep_bad if skip_bad else None), desc="read", unit="rec", delay=2))
    return records, bad


def compared_text(record: Record, compare: str) -> str:
    if compare == "prompt":
        return record.prompt
    if compare == "response":
        return record.response
    return "\n".join(m.content for m in record.messages if m.role != "system")


def embed(texts: list[str], semantic: SemanticConfig) -> np.ndarray:
    """Unit vectors: the static model (default), or all-MiniLM-L6-v2 itself (slow; small datasets)."""
    if semantic.embedder == "static":
        return embed_texts(texts)
    from runtime.embed import Embed4All

    embedder = Embed4All(batch_size=semantic.batch_size)
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
        self.duplicate_of: dict[int, int] = {}  # removed record index -> the record it duplicates
        self.duplicates: list[tuple[Removal, int]] = []

    def apply_filters(self, filters: list[Filter], chunk: int = 2000) -> None:
        """Each filter, in order, over chunks of survivors; a record leaves at the first filter it fails."""
        kept: list[int] = []
        with tqdm(total=len(self.survivors), desc="filters", unit="rec", disable=len(self.survivors) < 10000) as bar:
            for start in range(0, len(self.survivors), chunk):
                batch = self.survivors[start : start + chunk]
                for f in filters:
                    verdicts = f.reasons([self.records[i] for i in batch])
                    for index, why in zip(batch, verdicts, strict=True):
                        if why is not None:
                            self.removed.append(Removal(f.rule, why, self.records[index]))
                    batch = [index for index, why in zip(batch, verdicts, strict=True) if why is None]
                kept += batch
                bar.update(min(chunk, len(self.survivors) - start))
        self.survivors = kept

    def apply_dedupe(self, rule: str, find: Callable[[list[int]], Removals]) -> None:
        """`find` gets the survivors (record indices) and returns removals by survivor position."""
        removals = find(self.survivors)
        for position, (kept_position, detail) in sorted(removals.items()):
            index = self.survivors[position]
            self.duplicate_of[index] = self.survivors[kept_position]
            removal = Removal(rule, detail, self.records[index])
            self.removed.append(removal)
            self.duplicates.append((removal, index))
        self.survivors = [index for position, index in enumerate(self.survivors) if position not in removals]

    def outcomes(self) -> list[str]:
        """For each record: "kept" or the rule that removed it."""
        index_of = {id(record): index for index, record in enumerate(self.records)}
        outcome = ["kept"] * len(self.records)
        for item in self.removed:
            if item.record is not None:
                outcome[index_of[id(item.record)]] = item.rule
        return outcome

    def name_kept_originals(self) -> None:
        """Point every duplicate at a kept record: an original removed by a later step hands its
        duplicates on to the record it duplicates, and so on to one that survived."""
        for removal, index in self.duplicates:
            original = self.duplicate_of[index]
            while original in self.duplicate_of:
                original = self.duplicate_of[original]
            removal.duplicate_of = self.records[original].id

    @property
    def kept(self) -> list[Record]:
        return [self.records[i] for i in self.survivors]


def draw_map(records: list[Record], curation: Curation, texts: list[str], c: CurateConfig, out: Path, seed: int,
             name: str) -> None:
    """Every record for Atlas (NOMIC_API_KEY set), else a stratified sample for the local page."""
    outcome = curation.outcomes()
    chosen = list(range(len(records)))
    if not os.environ.get("NOMIC_API_KEY"):
        strata = [stratum(r.source, o) for r, o in zip(records, outcome, strict=True)]
        chosen = stratified_sample(strata, c.map.max_points, seed)
    points = [MapPoint(records[i].id, records[i].source, outcome[i], records[i].prompt, records[i].response)
              for i in chosen]
    build_map(points, embed_texts([texts[i] for i in chosen]).astype(np.float32), out, c.map, seed, name)


def run(cfg: PipelineConfig, run_dir: RunDir) -> dict[str, int | float]:
    c: CurateConfig = cfg.curate
    path = input_path(cfg, run_dir)
    records, bad = read_input(path, c.skip_bad)
    filters = build_filters(c.filters, cfg.data_dir)
    out = run_dir.stage_dir("curate")
    curation = Curation(records, bad)
    curation.apply_filters(filters)
    texts = [compared_text(r, c.compare) for r in tqdm(records, desc="texts", unit="rec", disable=len(records) < 10000)]
    if c.exact.enabled:
        curation.apply_dedupe("exact_duplicate", lambda idx: exact_duplicates([texts[i] for i in idx]))
    if c.minhash.enabled:
        curation.apply_dedupe("near_duplicate",
                              lambda idx: near_duplicates([texts[i] for i in idx], c.minhash, cfg.run.seed))
    if c.semantic.enabled:
        curation.apply_dedupe("semantic_duplicate", lambda idx: semantic_duplicates(
            embed([texts[i] for i in idx], c.semantic), c.semantic, cfg.run.seed))
    curation.name_kept_originals()
    kept = curation.kept
    total = len(records) + len(bad)
    if len(kept) + len(curation.removed) != total:  # the accounting identity; never expected to fail
        raise RuntimeError(f"curate lost records: {len(kept)} kept + {len(curation.removed)} removed != {total}")
    write_records(out / "pairs.jsonl", kept)
    write_removed(curation.removed, out / "removed.jsonl")
    report = write_report(kept, curation.removed, out)
    if c.map.enabled:
        draw_map(records, curation, texts, c, out, cfg.run.seed, cfg.run.name)
    return {"input": total, "kept": len(kept), "removed": len(curation.removed),
            **{f"removed_{rule}": r["count"] for rule, r in report["by_rule"].items()}}
