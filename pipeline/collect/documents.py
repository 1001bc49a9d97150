"""The documents source: a folder of files becomes closed-book question-answer records.

Text extraction and chunking are runtime.documents' (shared with LocalDocs). Per chunk the teacher first
writes `questions_per_chunk` questions the chunk answers, then answers each with the chunk in its request;
the saved record holds the question and the answer only, and its meta says where the answer came from:
`document` (relative to the source folder), `sha256` of the file and `chunk` (index, character span in the
extracted text, `page` for PDFs, and its `text` for curate's grounding filter). Every request goes through
the answer cache, so a rerun (after kill -9 too) asks nothing twice: the question request of a chunk is the
same request again, and the questions its cached answer gives make the same answer requests.

A file that yields no text (encrypted or corrupt PDF, binary, empty, undecodable) is skipped, named with
its reason on the terminal and in collect/bad_files.jsonl, and counted per reason in the manifest.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from pipeline.collect.conversations import Conversations, Failure, in_order
from pipeline.collect.sources import Prompt, SourceError, expand
from pipeline.collect.teacher import TeacherFailure
from pipeline.config import CollectConfig, DocumentsSource
from pipeline.records import Record, normalize_text
from runtime.documents import DEFAULT_PATTERNS, Chunk, ExtractionError, chunk_document, estimate_tokens, extract, \
    find_files

# A question in the teacher's reply: text up to a question mark, without the list marker or quote before it.
QUESTION = re.compile(r"[^?\n]*\?")
MARKER = re.compile(r"^\s*(?:[-*•]|\(?\d+[.):]|(?:q(?:uestion)?\s*\d*\s*[:.]))\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Passage:
    """One chunk of one document, as the teacher sees it."""

    source: DocumentsSource
    document: str
    sha256: str
    chunk: Chunk

    def provenance(self) -> dict[str, object]:
        chunk: dict[str, object] = {"index": self.chunk.index, "start": self.chunk.start, "end": self.chunk.end}
        if self.chunk.page is not None:
            chunk["page"] = self.chunk.page
        chunk["text"] = self.chunk.text
        return {"document": self.document, "sha256": self.sha256, "chunk": chunk}


@dataclass(frozen=True)
class BadFile:
    source: str
    document: str
    reason: str
    detail: str


@dataclass
class DocumentTally:
    """Files read, files skipped (with reasons), chunks, and what the teacher made of them."""

    files: int = 0
    chunks: int = 0
    bad: list[BadFile] = field(default_factory=list)
    questions: int = 0
    unquestioned_chunks: int = 0

    def counts(self) -> dict[str, int]:
        """Manifest counts: bad files in all and per reason."""
        reasons = Counter(bad.reason for bad in self.bad)
        return {"document_files": self.files, "document_chunks": self.chunks, "bad_files": len(self.bad),
                **{f"bad_files_{reason}": n for reason, n in sorted(reasons.items())},
                "document_questions": self.questions, "chunks_without_questions": self.unquestioned_chunks}


def document_sources(cfg: CollectConfig) -> list[DocumentsSource]:
    return [src for src in cfg.sources if isinstance(src, DocumentsSource)]


def source_files(src: DocumentsSource, data_dir: Path) -> tuple[Path, list[Path]]:
    """The source's folder and the files in it that match; no match at all is a config error."""
    root = Path(expand(src.path, data_dir))
    include = src.include or DEFAULT_PATTERNS
    try:
        files = find_files(root, include, src.exclude)
    except FileNotFoundError as exc:
        raise SourceError(f"documents {src.name!r}: {exc}") from None
    if not files:
        raise SourceError(f"documents {src.name!r}: no file in {root} matches {list(include)}")
    return root, files


def read_passages(src: DocumentsSource, data_dir: Path, tally: DocumentTally) -> list[Passage]:
    """Every chunk of every readable file (at most max_chunks); bad files go to the tally, named."""
    root, files = source_files(src, data_dir)
    passages: list[Passage] = []
    for path in tqdm(files, desc=f"read {src.name}", unit="file", dynamic_ncols=True):
        document = path.relative_to(root).as_posix()
        try:
            extracted = extract(path)
        except ExtractionError as exc:
            tally.bad.append(BadFile(src.name, document, exc.reason, exc.detail))
            tqdm.write(f"documents {src.name}: skipped {document}: {exc.reason} ({exc.detail})", file=sys.stderr)
            continue
        tally.files += 1
        chunks = chunk_document(extracted, src.chunk_tokens, src.overlap_tokens)
        passages += [Passage(src, document, extracted.sha256, chunk) for chunk in chunks]
        if src.max_chunks is not None and len(passages) >= src.max_chunks:
            passages = passages[: src.max_chunks]
            break
    tally.chunks += len(passages)
    return passages


def gather_passages(cfg: CollectConfig, data_dir: Path) -> tuple[list[Passage], DocumentTally]:
    tally = DocumentTally()
    passages = [p for src in document_sources(cfg) for p in read_passages(src, data_dir, tally)]
    return passages, tally


def parse_questions(reply: str, n: int) -> list[str]:
    """The first `n` distinct questions in the teacher's reply (list markers and quotes removed)."""
    questions: list[str] = []
    seen: set[str] = set()
    for match in QUESTION.finditer(reply):
        text = MARKER.sub("", match.group(0)).strip().strip("\"'“”‘’ ").strip()
        key = normalize_text(text).lower()
        if len(text.split()) >= 2 and key not in seen:
            seen.add(key)
            questions.append(text if text.endswith("?") else f"{text}?")
        if len(questions) == n:
            break
    return questions


class PassageQuestions:
    """A passage's questions, then an answer to each with the passage in the request."""

    def __init__(self, conversations: Conversations, tally: DocumentTally, requests: tqdm) -> None:
        self.conversations, self.tally, self.requests = conversations, tally, requests

    async def ask(self, content: str, max_tokens: int | None = None) -> tuple[str, dict[str, object]]:
        answer = await self.conversations.ask(self.conversations.system() + [{"role": "user", "content": content}],
                                              max_tokens)
        self.requests.update(1)
        return answer.text, {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                             "finish_reason": answer.finish_reason}

    async def records(self, passage: Passage) -> tuple[list[Record], list[Failure]]:
        src, chunk = passage.source, passage.chunk.text
        try:
            reply, _ = await self.ask(src.question_prompt.format(chunk=chunk, n=src.questions_per_chunk),
                                      src.question_max_tokens)
        except TeacherFailure as exc:
            return [], [Failure(Prompt(src.name, f"questions about {passage.document} chunk {passage.chunk.index}"),
                                str(exc))]
        questions = parse_questions(reply, src.questions_per_chunk)
        self.tally.questions += len(questions)
        self.tally.unquestioned_chunks += not questions
        records, failures = [], []
        for question in questions:
            try:
                answer, used = await self.ask(src.answer_prompt.format(chunk=chunk, question=question))
            except TeacherFailure as exc:
                failures.append(Failure(Prompt(src.name, question), str(exc)))
                continue
            meta = {"teacher": self.conversations.cfg.teacher.model, **used, **passage.provenance()}
            records.append(Record.create(src.name, [{"role": "user", "content": question},
                                                    {"role": "assistant", "content": answer}], meta))
        return records, failures


async def answer_passages(passages: list[Passage], conversations: Conversations,
                          tally: DocumentTally) -> tuple[list[Record], list[Failure]]:
    """Every passage's records and failures, in the passages' order."""
    if not passages:
        return [], []
    requests = tqdm(desc="requests", unit="req", position=1, dynamic_ncols=True)
    chunks = tqdm(total=len(passages), desc="chunks", unit="chunk", position=0, dynamic_ncols=True)
    flow = PassageQuestions(conversations, tally, requests)
    # A chunk's answers wait on its questions, so twice the request slots keep the teacher busy.
    results = await in_order(passages, flow.records, conversations.cfg.teacher.max_concurrency * 2, chunks)
    chunks.close()
    requests.close()
    return [r for records, _ in results for r in records], [f for _, failures in results for f in failures]


def bad_file_lines(tally: DocumentTally) -> str:
    """collect/bad_files.jsonl: one line per skipped file with its reason."""
    return "".join(json.dumps(asdict(bad)) + "\n" for bad in tally.bad)


@dataclass
class Estimate:
    """What the documents sources would ask of the teacher (completion tokens at most)."""

    chunks: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def plan_lines(cfg: CollectConfig, data_dir: Path) -> tuple[list[str], Estimate]:
    """One line per documents source (files, unreadable files by reason, chunks, requests) and the totals."""
    lines: list[str] = []
    total = Estimate()
    for src in document_sources(cfg):
        tally = DocumentTally()
        try:
            passages = read_passages(src, data_dir, tally)
        except SourceError as exc:
            lines.append(f"{exc} (not counted)")
            continue
        n = src.questions_per_chunk
        total.chunks += len(passages)
        total.requests += len(passages) * (1 + n)
        # Each answer request holds the chunk, the answer prompt and a question (~20 tokens).
        total.prompt_tokens += sum(
            estimate_tokens(src.question_prompt.format(chunk=p.chunk.text, n=n))
            + n * (estimate_tokens(src.answer_prompt.format(chunk=p.chunk.text, question="")) + 20) for p in passages)
        total.completion_tokens += len(passages) * (src.question_max_tokens + n * cfg.teacher.max_tokens)
        reasons = Counter(bad.reason for bad in tally.bad)
        skipped = f" ({len(tally.bad)} unreadable: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) + ")"
        lines.append(f"documents {src.name}: {tally.files} files{skipped if tally.bad else ''}, {len(passages)} "
                     f"chunks -> {len(passages) * (1 + n)} requests (1 + {n} questions per chunk)")
    return lines, total
