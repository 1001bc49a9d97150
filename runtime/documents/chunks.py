"""A document's text cut into chunks of a token budget, at headings and paragraphs where possible.

Text is split at the coarsest boundary that gives pieces within the budget (headings, then blank-line
paragraphs, then sentences, then words), the pieces are packed greedily into chunks, a heading starts a new
chunk, and each chunk after a break inside a section begins with the last `overlap` tokens of the one before.
Every chunk's text is exactly `document.text[start:end]`.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from runtime.documents.extract import Document

TokenCounter = Callable[[str], int]
WORD = re.compile(r"\w+|[^\w\s]")
# Split points, coarsest first: a Markdown heading or a reStructuredText title (a line over an underline),
# a blank line, the end of a sentence, a space.
BOUNDARIES = (
    re.compile(r"^(?=#{1,6}\s)|^(?=[^\n]+\n[=\-~^*+#\"'`]{3,}[ \t]*$)", re.MULTILINE),
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"(?<=[.!?;:])\s+"),
    re.compile(r"\s+"),
)
HEADING = re.compile(r"#{1,6}\s|[^\n]+\n[=\-~^*+#\"'`]{3,}[ \t]*(\n|$)")


@dataclass(frozen=True)
class Chunk:
    """A span of a document's text: its position in the document, the text, and its PDF page (else None)."""

    index: int
    start: int
    end: int
    text: str
    page: int | None


def estimate_tokens(text: str) -> int:
    """A fast token estimate for BPE vocabularies: one per word or symbol, one more per 8 letters of a long word."""
    return sum(1 + (len(word) - 1) // 8 for word in WORD.findall(text))


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(text: str, start: int, end: int, level: int, size: int, count: TokenCounter) -> list[tuple[int, int]]:
    """Spans covering text[start:end], each within `size` tokens, cut at the coarsest boundary that allows it."""
    start, end = _trimmed(text, start, end)
    if start == end:
        return []
    if count(text[start:end]) <= size:
        return [(start, end)]
    if level == len(BOUNDARIES):  # one "word" over the budget: cut it by characters
        step = max(1, (end - start) * size // count(text[start:end]))
        return [(i, min(i + step, end)) for i in range(start, end, step)]
    cuts = [m.start() for m in BOUNDARIES[level].finditer(text, start, end) if start < m.start() < end]
    spans, left = [], start
    for cut in [*cuts, end]:
        spans.extend(_pieces(text, left, cut, level + 1, size, count))
        left = cut
    return spans if level < len(BOUNDARIES) - 1 else _packed_words(text, spans, size, count)


def _packed_words(text: str, words: list[tuple[int, int]], size: int, count: TokenCounter) -> list[tuple[int, int]]:
    """Consecutive words joined into spans of at most `size` tokens (word-level splits would be too fine)."""
    spans: list[tuple[int, int]] = []
    for start, end in words:
        if spans and count(text[spans[-1][0]:end]) <= size:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _overlap_start(text: str, start: int, end: int, overlap: int, count: TokenCounter) -> int:
    """The earliest word start in text[start:end] from which at most `overlap` tokens reach `end`."""
    best = end
    for match in reversed(list(re.finditer(r"(?<!\S)\S", text[start:end]))):
        position = start + match.start()
        if count(text[position:end]) > overlap:
            break
        best = position
    return best


def chunk_document(
    document: Document, size: int = 256, overlap: int = 32, count_tokens: TokenCounter | None = None
) -> list[Chunk]:
    """Chunks of at most `size` tokens (plus `overlap` carried from the previous chunk of the same section)."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"chunk size must be >= 1 and overlap in [0, size): got size={size}, overlap={overlap}")
    count = count_tokens or estimate_tokens
    text = document.text
    spans: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    current_tokens = 0
    for start, end in _pieces(text, 0, len(text), 0, size - overlap, count):
        tokens = count(text[start:end])
        heading = HEADING.match(text, start) is not None
        if current is not None and (current_tokens + tokens > size or (heading and current_tokens >= size // 4)):
            spans.append(current)
            carried = current[1] if heading else _overlap_start(text, current[0], current[1], overlap, count)
            current = (carried, end) if carried < current[1] else (start, end)
            current_tokens = count(text[current[0]:end])
            continue
        current = (current[0] if current else start, end)
        current_tokens += tokens
    if current is not None:
        spans.append(current)
    return [Chunk(i, s, e, text[s:e], document.page_at(s)) for i, (s, e) in enumerate(spans)]
