"""curate: filters, then exact, MinHash and semantic dedupe (and, when switched on, one answer per prompt)
-> curate/pairs.jsonl, removed.jsonl, report.{json,md} (with each dedupe rule's sampled removals beside the
records they duplicate), lengths.png, map.html/png.

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
from pipeline.curate.dedupe import (Removals, exact_duplicates, near_duplicates, prompt_duplicates, semantic_duplicates,
                                    short_answers_agree)
from pipeline.curate.embedding import centre, embed_parts, embed_texts, reference_mean
from pipeline.curate.filters import Filter, build_filters
from pipeline.curate.ledger import KEPT, Ledger
from pipeline.curate.maps import MapPoint, build_map, stratified_sample
from pipeline.curate.report import Removal, ReportBuilder, removed_line
from pipeline.curate.review import Review
from pipeline.curate.spool import SpooledTexts, TextSpool
from pipeline.pairs import read_pairs
from pipeline.records import Record, record_line
from pipeline.rowfiles import Row

CHUNK = 2000  # records per filter batch
REFERENCE_WEIGHT = 5000  # the bundled Alpaca pairs' mean counts as this many records in the centring mean


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


def prompt_split(record: Record, text: str, compare: str) -> int:
    """Where a compared text's prompt ends (its length; the answer starts after the newline that follows),
    or 0 for a text the semantic step compares whole."""
    prompt = record.prompt
    return len(prompt) if compare == "both" and prompt and text.startswith(prompt + "\n") else 0


def semantic_vectors(texts: Sequence[str], splits: np.ndarray, semantic: SemanticConfig, data_dir: Path) -> np.ndarray:
    """(n, parts, dim) centred unit vectors: a prompt and an answer per record when the texts have both
    (a text without a split counts as its own prompt and answer), else one. The static model (default) is
    centred on the corpus mean shrunk towards the bundled Alpaca pairs' mean; all-MiniLM-L6-v2 itself
    (slow; small datasets) on the corpus mean."""
    two = bool(splits.any())
    if semantic.embedder == "static":
        vectors = (embed_parts(texts, splits, workers=semantic.workers) if two
                   else embed_texts(texts, workers=semantic.workers)[:, None, :])
        reference = reference_mean(data_dir)
        if reference is not None and not two:
            reference = reference.mean(axis=0, keepdims=True)
        centre(vectors, reference, REFERENCE_WEIGHT)
        return vectors
    from runtime.embed import Embed4All

    embedder = Embed4All(batch_size=semantic.batch_size)
    step = 1024
    pieces = []
    for i in tqdm(range(0, len(texts), step), desc="embed", unit="batch", disable=len(texts) <= step):
        chunk = list(texts[i : i + step])
        cuts = [(t[:k], t[k + 1 :]) if k else (t, t) for t, k in zip(chunk, splits[i : i + step].tolist(), strict=True)]
        halves = [[c[0] for c in cuts], [c[1] for c in cuts]] if two else [chunk]
        pieces.append(np.stack([embedder.embed_array(h).numpy() for h in halves], axis=1))
    vectors = np.concatenate(pieces) if pieces else np.zeros((0, 1, embedder.dimension), dtype=np.float32)
    centre(vectors)
    return vectors


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
                text = compared_text(batch[i], c.compare)
                ledger.spool(indices[i], batch[i], spool, text, prompt_split(batch[i], text, c.compare))
            bar.update(len(batch))
    return ledger, unreadable


def dedupe(ledger: Ledger, texts: SpooledTexts, c: CurateConfig, seed: int, data_dir: Path) -> None:
    """The dedupe steps in order, each over the records the ones before it kept: exact, near and semantic
    duplicates (the same pair, possibly in other words), then, when switched on, prompt duplicates (the same
    prompt answered differently)."""
    if c.exact.enabled:
        ledger.apply_dedupe("exact_duplicate", lambda alive: exact_duplicates(texts.subset(alive)))
    splits = np.frombuffer(ledger.splits, dtype=np.int32)
    if c.minhash.enabled:
        ledger.apply_dedupe("near_duplicate", lambda alive: near_duplicates(texts.subset(alive), c.minhash, seed,
                                                                             splits[alive]))
    if c.semantic.enabled:
        def semantic(alive: np.ndarray) -> Removals:
            kept, cuts = texts.subset(alive), splits[alive]
            return semantic_duplicates(semantic_vectors(kept, cuts, c.semantic, data_dir), c.semantic, seed,
                                       lambda a, b: short_answers_agree(kept[a], kept[b], cuts[a], cuts[b]))

        ledger.apply_dedupe("semantic_duplicate", semantic)
    if c.prompt_duplicate.enabled:
        keys = np.frombuffer(ledger.prompt_keys, dtype=np.int64)
        chars = np.frombuffer(ledger.response_chars, dtype=np.int32)
        ledger.apply_dedupe("prompt_duplicate", lambda alive: prompt_duplicates(keys[alive], chars[alive],
                                                                                 c.prompt_duplicate.keep))


def map_sample(ledger: Ledger, c: CurateConfig, seed: int) -> set[int]:
    """Every record for Atlas (NOMIC_API_KEY set), else a stratified sample for the local page."""
    if not c.map.enabled:
        return set()
    if os.environ.get("NOMIC_API_KEY"):
        return set(range(len(ledger)))
    return set(stratified_sample(ledger.strata(), c.map.max_points, seed))


class MapDraft:
    """The map's points and their compared texts, gathered in the second pass; a removed duplicate's point
    names the kept record it duplicates, the similarity, and (after the pass) that record's beginning."""

    def __init__(self, chosen: set[int], ledger: Ledger, compare: str) -> None:
        self.chosen, self.compare = chosen, compare
        originals = ledger.kept_originals()
        self.original = {i: originals[i] for i in chosen if i in originals}
        self.points: list[MapPoint] = []
        self.texts: list[str] = []
        self._kept_of: list[tuple[MapPoint, int]] = []

    def offer(self, index: int, record: Record, ledger: Ledger) -> None:
        if index not in self.chosen:
            return
        point = MapPoint(record.id, record.source, ledger.rule(index), record.prompt, record.response)
        if (original := self.original.get(index)) is not None:
            point.duplicate_of, point.similarity = ledger.ids[original], ledger.similarity[index]
            self._kept_of.append((point, original))
        self.points.append(point)
        self.texts.append(compared_text(record, self.compare))

    def link(self, review: Review) -> None:
        """Each duplicate's point gets the beginning of the kept record it duplicates."""
        for point, original in self._kept_of:
            point.kept_text = review.beginnings[original]


def changed_while_read(path: Path, ledger: Ledger) -> RuntimeError:
    return RuntimeError(f"{path} changed while curate read it: the second pass did not meet the same "
                        f"{len(ledger)} records")


def write_outputs(path: Path, ledger: Ledger, c: CurateConfig, out: Path, draft: MapDraft,
                  review: Review) -> ReportBuilder:
    """Second pass: pairs.jsonl and removed.jsonl in input order (unreadable rows where they stood), each
    duplicate naming the kept record it duplicates and how similar they are; the report, the review
    sample and the map's points gathered on the way."""
    report = ReportBuilder()
    originals = ledger.kept_originals()
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
            if rule == KEPT:
                kept_file.write(record_line(record))
                report.add_kept(record)
            else:
                original = originals.get(index)
                write_removed(Removal(rule, ledger.detail[index], record,
                                      duplicate_of=ledger.ids[original] if original is not None else None,
                                      similarity=ledger.similarity.get(index)))
            draft.offer(index, record, ledger)
            review.offer(index, record)
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
        dedupe(ledger, spool.texts(), c, cfg.run.seed, cfg.data_dir)
    draft = MapDraft(map_sample(ledger, c, cfg.run.seed), ledger, c.compare)
    review = Review(ledger, cfg.run.seed, extra_originals=set(draft.original.values()))
    report = write_outputs(path, ledger, c, out, draft, review)
    report.review = review.tables()
    draft.link(review)
    total = len(ledger) + unreadable
    if report.kept + report.removed != total:  # the accounting identity; never expected to fail
        raise RuntimeError(f"curate lost records: {report.kept} kept + {report.removed} removed != {total}")
    summary = report.write(out)
    if c.map.enabled:
        vectors = embed_texts(draft.texts).astype(np.float32)
        build_map(draft.points, vectors, out, c.map, cfg.run.seed, cfg.run.name)
    return {"input": total, "kept": report.kept, "removed": report.removed,
            **{f"removed_{rule}": r["count"] for rule, r in summary["by_rule"].items()}}
