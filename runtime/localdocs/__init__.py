"""LocalDocs: chat with your own files. Collections of folders indexed in SQLite (files, chunks, FTS5 for
BM25, embeddings from all-MiniLM-L6-v2), hybrid retrieval, and excerpts put into the prompt within the
context budget, their sources cited.

    python -m runtime docs add notes ~/notes            # index (resumable; `docs update` re-indexes changes)
    python -m runtime docs search notes "when was the bridge built" --json
    python -m runtime chat --docs notes
    python -m runtime serve --docs notes                # requests may name only published collections

Nothing here is imported by `from runtime import GPT4All`; torch loads when LocalDocs first embeds.
"""

from runtime.localdocs.context import TOP_K, fit_excerpts, with_excerpts
from runtime.localdocs.indexer import SyncReport, sync
from runtime.localdocs.search import FUSION, Fusion, Library, TextEmbedder, search
from runtime.localdocs.store import Collection, Hit, LocalDocsError, collection_names

__all__ = ["FUSION", "TOP_K", "Collection", "Fusion", "Hit", "Library", "LocalDocsError", "SyncReport",
           "TextEmbedder", "collection_names", "fit_excerpts", "search", "sync", "with_excerpts"]
