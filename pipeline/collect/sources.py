"""Prompt sources: local JSONL/JSON, HF datasets, and GPT4All-J's creative schema.

Each source yields `Prompt(source, text)`; `gather_prompts` chains them, drops empty and duplicate
prompts (normalized text, first one kept) and applies the global cap. Import sources (existing pairs,
pipeline.collect.imports) send nothing to the teacher and are not prompt sources.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import CollectConfig, CreativeSource, FileSource, HFSource
from pipeline.records import normalize_text
from pipeline.rowfiles import iter_rows
from pipeline.shapes import field


class SourceError(ValueError):
    """A prompt source that cannot be read; names the file (and line) or the field."""


@dataclass(frozen=True)
class Prompt:
    source: str
    text: str


def expand(path: str, data_dir: Path) -> str:
    return path.replace("{data_dir}", str(data_dir))


def prompt_text(row: Any, src: FileSource | HFSource, where: str) -> str:
    """The prompt of one row: its prompt field (or the pattern's first group in it), plus the input
    field after a blank line (Alpaca). A row the pattern does not match gives an empty prompt."""
    text = field(row, src.prompt_field)
    if not isinstance(text, str):
        raise SourceError(f"{where}: field {src.prompt_field!r} is missing or not text")
    if src.prompt_pattern:
        match = re.search(src.prompt_pattern, text, re.DOTALL)
        text = match.group(1) if match else ""
    extra = field(row, src.input_field) if src.input_field else None
    if isinstance(extra, str) and extra.strip():
        text = f"{text}\n\n{extra}"
    return text


def file_prompts(src: FileSource, data_dir: Path, seed: int) -> Iterator[str]:
    path = Path(expand(src.path, data_dir))
    if not path.is_file():
        raise SourceError(f"source {src.name!r}: file not found: {path}")
    try:
        for row in iter_rows(path):
            if row.error:
                raise SourceError(f"{row.where}: {row.error}")
            yield prompt_text(row.data, src, row.where)
    except ValueError as exc:
        raise SourceError(str(exc)) from None


def hf_prompts(src: HFSource, data_dir: Path, seed: int) -> Iterator[str]:
    import datasets

    files = [expand(f, data_dir) for f in src.data_files] if src.data_files else None
    try:
        rows = datasets.load_dataset(src.dataset, src.subset, split=src.split, data_files=files)
    except Exception as exc:  # datasets raises many types; all mean "cannot load this source"
        raise SourceError(f"source {src.name!r}: cannot load dataset {src.dataset!r}: {exc}") from None
    for index, row in enumerate(rows):
        yield prompt_text(row, src, f"{src.dataset}[{src.split}] row {index}")


def creative_prompts(src: CreativeSource, data_dir: Path, seed: int) -> Iterator[str]:
    """Distinct combinations of the three lists, drawn without replacement (seeded)."""
    combos = [(t, n, p) for t in src.types for n in src.nouns for p in src.persons]
    random.Random(seed).shuffle(combos)
    for kind, noun, person in combos[: src.n]:
        yield src.template.format(type=kind, noun=noun, person=person)


SOURCES: dict[str, Callable[[Any, Path, int], Iterable[str]]] = {
    "jsonl": file_prompts,
    "json": file_prompts,
    "hf": hf_prompts,
    "creative": creative_prompts,
}


@dataclass
class GatherStats:
    read: int = 0
    empty: int = 0
    duplicates: int = 0


def prompt_sources(cfg: CollectConfig) -> list[FileSource | HFSource | CreativeSource]:
    """The sources whose prompts go to the teacher (every source but imports)."""
    return [src for src in cfg.sources if src.type in SOURCES]


def gather_prompts(cfg: CollectConfig, data_dir: Path, seed: int) -> tuple[list[Prompt], GatherStats]:
    """Every prompt source's prompts in order, without empty or repeated prompts, capped at max_prompts."""
    prompts: list[Prompt] = []
    seen: set[str] = set()
    stats = GatherStats()
    for src in prompt_sources(cfg):
        taken = 0
        for text in SOURCES[src.type](src, data_dir, seed):
            if cfg.max_prompts is not None and len(prompts) >= cfg.max_prompts:
                return prompts, stats
            if getattr(src, "limit", None) is not None and taken >= src.limit:
                break
            stats.read += 1
            key = normalize_text(text)
            if not key:
                stats.empty += 1
                continue
            if key in seen:
                stats.duplicates += 1
                continue
            seen.add(key)
            prompts.append(Prompt(src.name, text.strip()))
            taken += 1
    return prompts, stats
