"""collect: ask a teacher for responses to every prompt -> collect/pairs.jsonl (+ failed.jsonl).

Resumable: every answer lands in collect/cache.sqlite as it arrives; a rerun sends only what is not
answered yet. Multi-turn: after each answer the teacher writes the user's next turn, then answers it.
Documents sources (pipeline.collect.documents) ask for questions about each chunk, then their answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from pipeline.artifacts import RunDir, atomic_path
from pipeline.collect.cache import AnswerCache
from pipeline.collect.conversations import Conversations, Failure, Tally, in_order
from pipeline.collect.documents import DocumentTally, Passage, answer_passages, bad_file_lines, document_sources, \
    gather_passages, plan_lines, source_files
from pipeline.collect.local_teacher import local_teacher
from pipeline.collect.imports import ImportTally, describe, import_records, local_inputs
from pipeline.collect.sources import GatherStats, Prompt, SourceError, expand, gather_prompts, prompt_sources
from pipeline.collect.teacher import Teacher, api_key
from pipeline.config import CollectConfig, ImportSource, PipelineConfig
from pipeline.records import Record, record_line


async def collect_all(prompts: list[Prompt], passages: list[Passage], conversations: Conversations,
                      documents: DocumentTally) -> tuple[list[Record], list[Failure]]:
    """Every prompt and every passage ends as records or failures; results keep the inputs' order."""
    await conversations.teacher.check()
    try:
        records: list[Record] = []
        failures: list[Failure] = []
        if prompts:
            bar = tqdm(total=len(prompts), desc="collect", unit="prompt", dynamic_ncols=True)
            # Twice the request slots: while some workers wait on the teacher, others read the cache.
            results = await in_order(prompts, conversations.record_or_failure,
                                     conversations.cfg.teacher.max_concurrency * 2, bar)
            bar.close()
            records = [r for r in results if isinstance(r, Record)]
            failures = [r for r in results if isinstance(r, Failure)]
        more_records, more_failures = await answer_passages(passages, conversations, documents)
        return records + more_records, failures + more_failures
    finally:
        await conversations.teacher.close()


@contextmanager
def teacher_endpoint(cfg: PipelineConfig, out_dir: Path) -> Iterator[str]:
    """The configured endpoint, or the bundled runtime server started for this run."""
    teacher = cfg.collect.teacher
    if teacher.base_url:
        yield teacher.base_url
    else:
        with local_teacher(teacher.model, out_dir / "teacher.log") as url:
            yield url


def cost(cfg: CollectConfig, prompt_tokens: float, completion_tokens: float) -> float:
    price = cfg.prices.get(cfg.teacher.model)
    if price is None:
        return 0.0
    return prompt_tokens / 1000 * price.input_per_1k + completion_tokens / 1000 * price.output_per_1k


def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
    """Local files the prompts and imports come from (hub datasets are named in the config, hashed with it)."""
    paths: list[Path] = []
    for src in cfg.collect.sources:
        if src.type in ("jsonl", "json"):
            paths.append(Path(expand(src.path, cfg.data_dir)))
        elif src.type == "hf" and src.data_files:
            paths += [Path(expand(f, cfg.data_dir)) for f in src.data_files]
        elif src.type == "import":
            paths += local_inputs(src, cfg.data_dir)
        elif src.type == "documents":
            paths += source_files(src, cfg.data_dir)[1]
    return paths


def import_sources(cfg: CollectConfig) -> list[ImportSource]:
    return [src for src in cfg.sources if isinstance(src, ImportSource)]


def ask_teacher(cfg: PipelineConfig, prompts: list[Prompt], passages: list[Passage], documents: DocumentTally,
                out: Path) -> tuple[list[Record], list[Failure], Tally]:
    """Every prompt and passage through the cache and the teacher (configured, or the bundled server)."""
    collect = cfg.collect
    cache = AnswerCache(out / "cache.sqlite")
    try:
        with teacher_endpoint(cfg, out) as url:
            conversations = Conversations(collect, Teacher(collect.teacher, url), cache)
            records, failures = asyncio.run(collect_all(prompts, passages, conversations, documents))
    finally:
        cache.close()
    return records, failures, conversations.tally


def run(cfg: PipelineConfig, run_dir: RunDir) -> dict[str, int | float]:
    """Imports are written first (a bad row stops before any teacher call), then the teacher's answers."""
    collect = cfg.collect
    if not collect.sources:
        raise ValueError("collect: no sources (collect.sources is empty)")
    if prompt_sources(collect) or document_sources(collect):
        api_key(collect.teacher)  # a missing key variable stops here, before any work
    prompts: list[Prompt] = []
    gathered = GatherStats()
    if prompt_sources(collect):
        prompts, gathered = gather_prompts(collect, cfg.data_dir, cfg.run.seed)
        if not prompts:
            raise ValueError("collect: the prompt sources gave no prompts (check collect.sources)")
    passages, documents = gather_passages(collect, cfg.data_dir)
    out = run_dir.stage_dir("collect")
    tally, imports = Tally(), ImportTally()
    records: list[Record] = []
    failures: list[Failure] = []
    with atomic_path(out / "pairs.jsonl") as tmp, tmp.open("w", encoding="utf-8") as pairs, \
            atomic_path(out / "bad_rows.jsonl") as bad_tmp, bad_tmp.open("w", encoding="utf-8") as bad:
        for src in import_sources(collect):
            for record in tqdm(import_records(src, cfg.data_dir, bad, imports), desc=f"import {src.name}",
                               unit="row", dynamic_ncols=True):
                pairs.write(record_line(record))
        if prompts or passages:
            records, failures, tally = ask_teacher(cfg, prompts, passages, documents, out)
            pairs.writelines(record_line(record) for record in records)
    with atomic_path(out / "failed.jsonl") as tmp:
        tmp.write_text("".join(json.dumps({"source": f.prompt.source, "prompt": f.prompt.text, "reason": f.reason})
                               + "\n" for f in failures))
    if document_sources(collect):
        with atomic_path(out / "bad_files.jsonl") as tmp:
            tmp.write_text(bad_file_lines(documents))
    imported = sum(imports.imported.values())
    return {
        "imported": imported,
        "bad_rows_skipped": sum(imports.bad.values()),
        "prompts_read": gathered.read,
        "duplicate_prompts": gathered.duplicates,
        "empty_prompts": gathered.empty,
        "prompts": len(prompts),
        "records": imported + len(records),
        "failed": len(failures),
        "requests_sent": tally.sent,
        "requests_cached": tally.cached,
        "prompt_tokens": sum(r.meta["prompt_tokens"] for r in records),
        "completion_tokens": sum(r.meta["completion_tokens"] for r in records),
        "sent_prompt_tokens": tally.sent_prompt_tokens,
        "sent_completion_tokens": tally.sent_completion_tokens,
        "cost_usd": round(cost(collect, tally.sent_prompt_tokens, tally.sent_completion_tokens), 6),
        **(documents.counts() if document_sources(collect) else {}),
    }


def plan(cfg: PipelineConfig) -> str:
    """What a run would import and send, and its cost at most (every answer at max_tokens), offline.

    A source that cannot be read here (e.g. a hub dataset while offline) is named, not counted.
    """
    collect = cfg.collect
    lines = [describe(src, cfg.data_dir) for src in import_sources(collect)]
    document_lines, documents = plan_lines(collect, cfg.data_dir)
    lines += document_lines
    sources = prompt_sources(collect)
    if not sources and not document_sources(collect):
        return "\n".join(lines + ["collect: imports only, no teacher requests"])
    readable, unreadable = [], []
    for src in sources:
        try:
            gather_prompts(collect.model_copy(update={"sources": [src], "max_prompts": 1}), cfg.data_dir, cfg.run.seed)
            readable.append(src)
        except (SourceError, OSError) as exc:
            unreadable.append(f"{src.name} ({exc})")
    prompts, gathered = gather_prompts(collect.model_copy(update={"sources": readable}), cfg.data_dir, cfg.run.seed)
    per_prompt = 1 + 2 * collect.followup_turns
    requests = len(prompts) * per_prompt + documents.requests
    prompt_tokens = sum(len(p.text) // 4 + 1 for p in prompts) * per_prompt + documents.prompt_tokens
    completion_tokens = len(prompts) * per_prompt * collect.teacher.max_tokens + documents.completion_tokens
    dollars = cost(collect, prompt_tokens, completion_tokens)
    chunks = f" and {documents.chunks} document chunks" if document_sources(collect) else ""
    text = (f"collect: {len(prompts)} prompts ({gathered.duplicates} duplicates dropped){chunks} -> {requests} requests "
            f"to {collect.teacher.model} at {collect.teacher.base_url or 'the bundled runtime server'}; "
            f"about {prompt_tokens:,} prompt tokens, at most {completion_tokens:,} completion tokens; "
            f"estimated cost at most ${dollars:,.2f}")
    if unreadable:
        text += "\n  not counted, cannot be read here: " + "; ".join(unreadable)
    return "\n".join([*lines, text])
