"""Text from a folder of documents, shared by LocalDocs (runtime) and the documents collect source (pipeline).

Importing this package is cheap: pypdf, selectolax and charset-normalizer load only when a file needs them.
"""

from runtime.documents.chunks import Chunk, chunk_document, estimate_tokens
from runtime.documents.extract import REASONS, Document, ExtractionError, Page, extract
from runtime.documents.files import DEFAULT_PATTERNS, find_files

__all__ = [
    "DEFAULT_PATTERNS",
    "REASONS",
    "Chunk",
    "Document",
    "ExtractionError",
    "Page",
    "chunk_document",
    "estimate_tokens",
    "extract",
    "find_files",
]
