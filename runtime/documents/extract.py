"""Plain text out of Markdown, text, reStructuredText, HTML and PDF files, with the reason when a file has none.

One extractor per format, registered by file suffix. Each returns the text and, for PDFs, where each page sits
in it; anything wrong with a file becomes an `ExtractionError` whose `reason` is one of `REASONS`.
"""

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REASONS = ("empty", "binary", "undecodable", "encrypted", "corrupt", "unsupported", "unreadable")


class ExtractionError(Exception):
    """A file that yields no text; `reason` is one of REASONS, `detail` says more."""

    def __init__(self, path: Path, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{path}: {reason} ({detail})")
        self.path, self.reason, self.detail = Path(path), reason, detail


@dataclass(frozen=True)
class Page:
    """A PDF page's 1-based number and its character span in the document's text."""

    number: int
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """A file's extracted text, the sha256 of its bytes, and its pages (PDFs only)."""

    path: Path
    text: str
    sha256: str
    pages: tuple[Page, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The number of the page holding character `offset`, or None for documents without pages."""
        for page in self.pages:
            if offset < page.end:
                return page.number
        return self.pages[-1].number if self.pages else None


Extractor = Callable[[Path, bytes], tuple[str, tuple[Page, ...]]]
EXTRACTORS: dict[str, Extractor] = {}


def register(*suffixes: str) -> Callable[[Extractor], Extractor]:
    """Register an extractor for file suffixes (lower case, with the dot)."""

    def add(extractor: Extractor) -> Extractor:
        for suffix in suffixes:
            EXTRACTORS[suffix] = extractor
        return extractor

    return add


def decode(path: Path, data: bytes) -> str:
    """Bytes to text: a BOM or UTF-8 first, else the encoding charset-normalizer finds; NUL bytes mean binary."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    if b"\x00" in data[:8192]:
        raise ExtractionError(path, "binary", "NUL bytes in the first 8 KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ExtractionError(path, "undecodable", "not UTF-8 and no other encoding fits")
    # Short Western text fits several code pages equally well: windows-1252, the web's default, wins ties.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return str(next((m for m in tied if m.encoding == "cp1252"), best))


def tidy(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@register(".md", ".markdown", ".txt", ".text", ".rst")
def plain_text(path: Path, data: bytes) -> tuple[str, tuple[Page, ...]]:
    """Markdown, text and reStructuredText are kept as they are."""
    return tidy(decode(path, data)), ()


DROPPED_TAGS = ("script", "style", "noscript", "template", "svg", "iframe", "nav", "header", "footer", "aside",
                "form", "button", "head")
BLOCK_TAGS = frozenset("address article blockquote dd div dl dt figcaption figure h1 h2 h3 h4 h5 h6 hr li main ol "
                       "p pre section table tbody td th thead tr ul".split())


@register(".html", ".htm")
def html_text(path: Path, data: bytes) -> tuple[str, tuple[Page, ...]]:
    """The page's main text: <main> or <article> when present, without scripts, styles or navigation.

    Block elements become paragraphs, headings become Markdown headings (so chunking splits at them) and list
    items start with "- ".
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode(path, data))
    for node in tree.css(",".join(DROPPED_TAGS)):
        node.decompose()
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    if root is None:
        return "", ()
    parts: list[str] = []
    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            parts.append(node)
            continue
        tag = node.tag
        if tag == "-text":
            parts.append(re.sub(r"\s+", " ", node.text_content or ""))
            continue
        if tag == "br":
            parts.append("\n")
            continue
        if tag in BLOCK_TAGS:
            level = int(tag[1]) if re.fullmatch(r"h[1-6]", tag) else 0
            parts.append("\n\n" + "#" * level + " " * bool(level) + ("- " if tag == "li" else ""))
            stack.append("\n\n")
        stack.extend(reversed(list(node.iter(include_text=True))))
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(parts))
    return tidy(re.sub(r"[ \t]{2,}", " ", text)), ()


@register(".pdf")
def pdf_text(path: Path, data: bytes) -> tuple[str, tuple[Page, ...]]:
    """Each page's text layer (pypdf), pages joined by a blank line; a PDF locked by a password is refused."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError(path, "encrypted", "the PDF needs a password")
        texts = [tidy(page.extract_text() or "") for page in reader.pages]
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as error:
        raise ExtractionError(path, "corrupt", f"{type(error).__name__}: {error}") from error
    pieces, pages, offset = [], [], 0
    for number, text in enumerate(texts, start=1):
        if not text:
            continue
        if pieces:
            offset += 2
        pages.append(Page(number, offset, offset + len(text)))
        pieces.append(text)
        offset += len(text)
    return "\n\n".join(pieces), tuple(pages)


def extract(path: Path) -> Document:
    """The text of one file; raises ExtractionError with the reason when it has none."""
    path = Path(path)
    extractor = EXTRACTORS.get(path.suffix.lower())
    if extractor is None:
        raise ExtractionError(path, "unsupported", f"no extractor for '{path.suffix}' files")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ExtractionError(path, "unreadable", error.strerror or type(error).__name__) from error
    if not data.strip():
        raise ExtractionError(path, "empty", "the file has no content")
    text, pages = extractor(path, data)
    if not text.strip():
        detail = "no text layer (a scanned PDF?)" if path.suffix.lower() == ".pdf" else "no text after extraction"
        raise ExtractionError(path, "empty", detail)
    return Document(path, text, hashlib.sha256(data).hexdigest(), pages)
