"""Chat with your documents: extraction, chunking, the SQLite index and retrieval (no Qt).

The pipeline, each step its own module so each can be tested and replaced alone::

    extract.extract(path)            file -> ExtractedDocument (sections with page/heading)
    chunking.chunk_sections(...)     sections -> Passage (~200 words, 40 overlap, never across pages)
    index.DocumentIndex              collections, documents, passages, FTS5 (BM25), vectors
    retrieval.retrieve(...)          question -> ranked Hits within a token budget
    retrieval.build_context(hits)    -> prompt block with numbered sources + Citation list
    retrieval.with_context(msgs, block) -> the chat turns sent to the model

Everything here blocks; the UI runs indexing on a worker thread and passes ``progress``
and ``cancel`` callables.
"""

from __future__ import annotations

from app.core.documents.chunking import Passage, chunk_sections, chunk_text
from app.core.documents.extract import (
    ExtractedDocument,
    ExtractionCancelled,
    Section,
    UnreadableDocument,
    extract,
    is_supported,
)
from app.core.documents.index import (
    Collection,
    CollectionNotFound,
    DocumentIndex,
    DocumentIndexError,
    DocumentRecord,
    DocumentStatus,
    IndexReport,
    Skipped,
    StoredPassage,
)
from app.core.documents.retrieval import (
    Citation,
    Hit,
    approx_tokens,
    build_context,
    cited_numbers,
    fts_query,
    fuse,
    retrieve,
    with_context,
)

__all__ = [
    "Citation",
    "Collection",
    "CollectionNotFound",
    "DocumentIndex",
    "DocumentIndexError",
    "DocumentRecord",
    "DocumentStatus",
    "ExtractedDocument",
    "ExtractionCancelled",
    "Hit",
    "IndexReport",
    "Passage",
    "Section",
    "Skipped",
    "StoredPassage",
    "UnreadableDocument",
    "approx_tokens",
    "build_context",
    "chunk_sections",
    "chunk_text",
    "cited_numbers",
    "extract",
    "fts_query",
    "fuse",
    "is_supported",
    "retrieve",
    "with_context",
]
