"""Record filters: each looks at one record and returns None (keep) or why it goes.

A filter is a small class with a `rule` name; `build_filters` makes the enabled ones from config,
in the order they run (cheapest first).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipeline.config import ChunkQuestionsFilter, FiltersConfig, GroundingFilter, LengthFilter, RefusalFilter
from pipeline.curate.decontaminate import NgramIndex
from pipeline.records import Record

TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a tokenizer-free length that needs no model."""
    return len(TOKEN.findall(text))


class Filter:
    rule = "filter"

    def reason(self, record: Record) -> str | None:
        raise NotImplementedError

    def reasons(self, records: list[Record]) -> list[str | None]:
        """A batch at once; filters that vectorize override this."""
        return [self.reason(record) for record in records]


class Malformed(Filter):
    rule = "malformed"

    def reason(self, record: Record) -> str | None:
        turns = [m for m in record.messages if m.role != "system"]
        if not any(m.role == "user" for m in turns):
            return "no user turn"
        if turns[-1].role != "assistant":
            return "the last turn is not the assistant's"
        if empty := [i for i, m in enumerate(record.messages) if not m.content.strip()]:
            return f"empty turn at message {empty[0]}"
        return None


class Length(Filter):
    rule = "length"

    def __init__(self, cfg: LengthFilter) -> None:
        self.cfg = cfg

    def reason(self, record: Record) -> str | None:
        c = self.cfg
        checks = [
            ("prompt chars", len(record.prompt), c.min_prompt_chars, c.max_prompt_chars),
            ("response chars", len(record.response.strip()), c.min_response_chars, c.max_response_chars),
        ]
        if c.max_prompt_tokens is not None:
            checks.append(("prompt tokens", count_tokens(record.prompt), None, c.max_prompt_tokens))
        if c.min_response_tokens is not None or c.max_response_tokens is not None:
            checks.append(("response tokens", count_tokens(record.response), c.min_response_tokens,
                           c.max_response_tokens))
        for what, value, low, high in checks:
            if low is not None and value < low:
                return f"{what} {value} < {low}"
            if high is not None and value > high:
                return f"{what} {value} > {high}"
        return None


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_phrases(cfg: RefusalFilter) -> list[str]:
    """The selected phrase sets plus the extra phrases, lowercased."""
    path = Path(cfg.phrase_file)
    if not path.is_absolute() and not path.exists():
        path = PROJECT_ROOT / path  # the shipped sets, wherever the pipeline runs from
    if cfg.phrase_sets and not path.is_file():
        raise FileNotFoundError(f"curate.filters.refusal.phrase_file: {cfg.phrase_file} not found")
    sets = yaml.safe_load(path.read_text()) if cfg.phrase_sets else {}
    unknown = [name for name in cfg.phrase_sets if name not in sets]
    if unknown:
        raise ValueError(f"curate.filters.refusal.phrase_sets: {unknown} not in {path} (it has {sorted(sets)})")
    phrases = [p for name in cfg.phrase_sets for p in sets[name]] + cfg.phrases
    return sorted({p.lower() for p in phrases if p.strip()})


class Refusal(Filter):
    rule = "refusal"

    def __init__(self, phrases: list[str]) -> None:
        self.pattern = re.compile("|".join(re.escape(p) for p in phrases)) if phrases else None

    def reason(self, record: Record) -> str | None:
        if self.pattern is None:
            return None
        for message in record.messages:
            if message.role == "assistant" and (hit := self.pattern.search(message.content.lower())):
                return f"phrase {hit.group(0)!r}"
        return None


class Truncated(Filter):
    rule = "truncated"

    def reason(self, record: Record) -> str | None:
        return "finish_reason=length" if record.meta.get("finish_reason") == "length" else None


class Contaminated(Filter):
    rule = "contaminated"

    def __init__(self, index: NgramIndex) -> None:
        self.index = index

    def reasons(self, records: list[Record]) -> list[str | None]:
        hits = self.index.first_overlaps(["\n".join(m.content for m in r.messages) for r in records])
        return [f"shares a {self.index.n}-gram with {hit[0]}: {hit[1]!r}" if hit else None for hit in hits]


CONTENT_WORD = re.compile(r"[^\W\d_]{4,}|\d+")


def content_words(text: str) -> set[str]:
    """Lowercased words of four or more letters, and numbers: what grounding and question overlap compare."""
    return {w.lower() for w in CONTENT_WORD.findall(text)}


def chunk_of(record: Record) -> dict | None:
    """The document chunk a documents-source record was written from (meta.chunk with its text), else None."""
    chunk = record.meta.get("chunk")
    return chunk if isinstance(chunk, dict) and isinstance(chunk.get("text"), str) else None


class Grounding(Filter):
    rule = "ungrounded"

    def __init__(self, cfg: GroundingFilter) -> None:
        self.min_overlap = cfg.min_overlap

    def reason(self, record: Record) -> str | None:
        chunk = chunk_of(record)
        answer = content_words(record.response)
        if chunk is None or not answer:
            return None
        found = len(answer & content_words(chunk["text"]))
        if found / len(answer) >= self.min_overlap:
            return None
        return (f"{found} of the answer's {len(answer)} content words are in its chunk "
                f"({found / len(answer):.2f} < {self.min_overlap})")


class ChunkQuestions(Filter):
    """Remembers the questions it kept per chunk (document sha256, chunk index), across batches."""

    rule = "chunk_near_duplicate"

    def __init__(self, cfg: ChunkQuestionsFilter) -> None:
        self.threshold = cfg.threshold
        self.kept: dict[tuple[str, int], list[tuple[str, set[str]]]] = {}

    def reason(self, record: Record) -> str | None:
        chunk = chunk_of(record)
        if chunk is None:
            return None
        words = content_words(record.prompt)
        earlier = self.kept.setdefault((str(record.meta.get("sha256")), chunk.get("index", -1)), [])
        for other_id, other in earlier:
            similarity = len(words & other) / len(words | other) if words | other else 1.0
            if similarity >= self.threshold:
                return f"question {similarity:.2f} similar to {other_id}'s, from the same chunk"
        earlier.append((record.id, words))
        return None


def build_filters(cfg: FiltersConfig, data_dir: Path) -> list[Filter]:
    filters: list[Filter] = []
    if cfg.malformed.enabled:
        filters.append(Malformed())
    if cfg.length.enabled:
        filters.append(Length(cfg.length))
    if cfg.truncated.enabled:
        filters.append(Truncated())
    if cfg.refusal.enabled:
        filters.append(Refusal(load_phrases(cfg.refusal)))
    if cfg.decontaminate.enabled:
        filters.append(Contaminated(NgramIndex.from_files(cfg.decontaminate.files, data_dir, cfg.decontaminate.ngram)))
    if cfg.grounding.enabled:
        filters.append(Grounding(cfg.grounding))
    if cfg.chunk_questions.enabled:  # last: a question removed for another reason does not hide a later one
        filters.append(ChunkQuestions(cfg.chunk_questions))
    return filters
