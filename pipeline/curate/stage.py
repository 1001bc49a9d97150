"""curate: filters, then exact, MinHash and semantic dedupe -> curate/pairs.jsonl, removed.jsonl,
report.{json,md}, lengths.png, map.html/png.

Records stream past twice and are never all held: the first pass runs the filters, fills the ledger
(one small entry per record) and spools the texts the dedupe steps compare to a file beside the outputs;
the dedupe steps read that file; the second pass writes every record to pairs.jsonl or removed.jsonl (in
input order) and gathers the report and the map sample. Every input line ends in exactly one of them
(kept + removed = input).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.artifacts import RunDir, atomic_path
from pipeline.config import CurateConfig, PipelineConfig, SemanticConfig
from pipeline.curate.dedupe import exact_duplicates, near_duplicates, semantic_duplicates
from pipeline.curate.embedding import embed_texts
from pipeline.curate.filters import Filter, build_filters
from pipeline.curate.ledger import KEPT, Ledger
from pipeline.curate.maps import MapPoint, build_map, stratified_sample
from pipeline.curate.report import Removal, ReportBuilder, removed_line
from pipeline.curate.spool import SpooledTexts, TextSpool
from pipeline.pairs import read_pairs
from pipeline.records import Record, record_line
from pipeline.rowfiles import Row

CHUNK = 2000  # records per filter batch


def input_path(cfg: PipelineConfig, run: RunDir) -> Path:
    return cfg.curate.input or run.root / "collect" / "pairs.jsonl"


def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
    return [input_path(cfg, run)]


def compared_text(record: Record, compare: str) -> str:
    if compare == "prompt":
        return record.prompt
    if compare == "response":
        return record.response
    return "\n".join(m.content for m in record.messages if m.role != "system")


def embed(texts: Sequence[str], semantic: SemanticConfig) -> np.ndarray:
    """Unit vectors: the static model (default), or all-MiniLM-L6-v2 itself (slow; small datasets)."""
    if semantic.embedder == "static":
        return embed_texts(texts, workers=semantic.workers)
    from runtime.embed import Embed4All

    embedder = Embed4All(batch_size=semantic.batch_size)
    step = 1024
    parts = [embedder.embed_array(list(texts[i : i + step])).numpy()
             for i in tqdm(range(0, len(texts), step), desc="embed", unit="batch", disable=len(texts) <= step)]
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), dtype=np.float32)


def batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while batch := list(islice(records, size)):
        yield batch


def scan(path: Path, c: CurateConfig, filters: list[Filter], spool: TextSpool) -> tuple[Ledger, int]:
    """First pass: the ledger (filter removals in it) and the spooled texts of the records the filters
    keep; returns the ledger and how many unreadable rows were skipped (skip_bad, else BadRowError)."""
    ledger, unreadable = Ledger(), 0

    def skip(row: Row, reason: str) -> None:
        nonlocal unreadable
        unreadable += 1

    records = read_pairs(path, on_bad=skip if c.skip_bad else None)
    with tqdm(desc="read, filter", unit="rec", delay=2) as bar:
        for batch in batches(records, CHUNK):
            indices = [ledger.add(record) for record in batch]
            alive = list(range(len(batch)))
            for f in filters:
                verdicts = f.reasons([batch[i] for i in alive])
                for i, why in zip(alive, verdicts, strict=True):
                    if why is not None:
                        ledger.remove(indices[i], f.rule, why)
                alive = [i for i, why in zip(alive, verdicts, strict=True) if why is None]
            for i in alive:
                spool.append(compared_text(batch[i], c.compare))
                ledger.spooled.append(indices[i])
            bar.update(len(batch))
    return ledger, unreadable


def dedupe(ledger: Ledger, texts: SpooledTexts, c: CurateConfig, seed: int) -> None:
    if c.exact.enabled:
        ledger.apply_dedupe("exact_duplicate", texts, exact_duplicates)
    if c.minhash.enabled:
        ledger.apply_dedupe("near_duplicate", texts, lambda kept: near_duplicates(kept, c.minhash, seed))
    if c.semantic.enabled:
        ledger.apply_dedupe("semantic_duplicate", texts, lambda kept: semantic_duplicates(
            embed(kept, c.semantic), c.semantic, seed))


def map_sample(ledger: Ledger, c: CurateConfig, seed: int) -> set[int]:
    """Every record for Atlas (NOMIC_API_KEY set), else a stratified sample for the local page."""
    if not c.map.enabled:
        return set()
    if os.environ.get("NOMIC_API_KEY"):
        return set(range(len(ledger)))
    return set(stratified_sample(ledger.strata(), c.map.max_points, seed))


class MapDraft:
    """The map's points and their compared texts, gathered in the second pass."""

    def __init__(self, chosen: set[int], compare: str) -> None:
        self.chosen, self.compare = chosen, compare
        self.points: list[MapPoint] = []
        self.texts: list[str] = []

    def offer(self, index: int, record: Record, rule: str) -> None:
        if index in self.chosen:
            self.points.append(MapPoint(record.id, record.source, rule, record.prompt, record.response))
            self.texts.append(compared_text(record, self.compare))


def changed_while_read(path: Path, ledger: Ledger) -> RuntimeError:
    return RuntimeError(f"{path} changed while curate read it: the second pass did not meet the same "
                        f"{len(ledger)} records")


def write_outputs(path: Path, ledger: Ledger, c: CurateConfig, out: Path, draft: MapDraft) -> ReportBuilder:
    """Second pass: pairs.jsonl and removed.jsonl in input order (unreadable rows where they stood), each
    duplicate naming the kept record it duplicates; the report gathered on the way."""
    report = ReportBuilder()
    originals = ledger.kept_originals()
    wanted = set(originals.values())
    ids: dict[int, str] = {}  # kept originals' ids, met before their duplicates
    with (atomic_path(out / "pairs.jsonl") as kept_tmp, atomic_path(out / "removed.jsonl") as removed_tmp,
          kept_tmp.open("w", encoding="utf-8") as kept_file, removed_tmp.open("w", encoding="utf-8") as removed_file):

        def write_removed(item: Removal) -> None:
            removed_file.write(removed_line(item))
            report.add_removed(item)

        def unreadable(row: Row, reason: str) -> None:
            write_removed(Removal("malformed", reason, line=row.number, raw=row.raw or json.dumps(row.data, default=str)))

        records = read_pairs(path, on_bad=unreadable if c.skip_bad else None)
        seen = 0
        for index, record in enumerate(tqdm(records, total=len(ledger), desc="write", unit="rec", delay=2)):
            seen = index + 1
            if index >= len(ledger):
                raise changed_while_read(path, ledger)
            rule = ledger.rule(index)
            if index in wanted:
                ids[index] = record.id
            if rule == KEPT:
                kept_file.write(record_line(record))
                report.add_kept(record)
            else:
                original = originals.get(index)
                write_removed(Removal(rule, ledger.detail[index], record,
                                      duplicate_of=ids[original] if original is not None else None))
            draft.offer(index, record, rule)
        if seen != len(ledger):
            raise changed_while_read(path, ledger)
    return report


def run(cfg: PipelineConfig, run_dir: RunDir) -> dict[str, int | float]:
    c: CurateConfig = cfg.curate
    path = input_path(cfg, run_dir)
    filters = build_filters(c.filters, cfg.data_dir)
    out = run_dir.stage_dir("curate")
    with TextSpool(out / ".compared-texts.spool") as spool:
        ledger, unreadable = scan(path, c, filters, spool)
        dedupe(ledger, spool.texts(), c, cfg.run.seed)
    draft = MapDraft(map_sample(ledger, c, cfg.run.seed), c.compare)
    report = write_outputs(path, ledger, c, out, draft)
    total = len(ledger) + unreadable
    if report.kept + report.removed != total:  # the accounting identity; never expected to fail
        raise RuntimeError(f"curate lost records: {report.kept} kept + {report.removed} removed != {total}")
    summary = report.write(out)
    if c.map.enabled:
        vectors = embed_texts(draft.texts).astype(np.float32)
        build_map(draft.points, vectors, out, c.map, cfg.run.seed, cfg.run.name)
    return {"input": total, "kept": report.kept, "removed": report.removed,
            **{f"removed_{rule}": r["count"] for rule, r in summary["by_rule"].items()}}
