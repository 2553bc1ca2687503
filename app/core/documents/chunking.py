"""Passages: the pieces of a document that retrieval ranks and the prompt quotes.

Why these choices:

* Size is counted in words (whitespace-separated runs), not model tokens: indexing must
  not need a model, and English runs ~1.3 tokens a word, so the default 200 words is
  ~260 tokens — six of them fit a 2k-token budget with room for the question.  A passage
  is also capped in characters (``max_chars``), so code or text without spaces (a minified
  file, CJK prose) cannot make one passage swallow the whole budget.
* Passages overlap (default 40 words) so a fact that straddles a boundary is whole in at
  least one of them.
* A passage never crosses a section, so its page (PDF) or heading is exact for the
  citation; the end is pulled back to a sentence or paragraph end when one is near, so a
  quoted passage reads as prose.
* The text is a verbatim slice of the section (``start_char`` is its offset there), so
  code keeps its indentation and the UI can find the passage again in the source.
* Word boundaries are found for the whole section at once with numpy (a lookup table over
  code points): a match object or string per word made chunking most of the indexing time.

API::

    Passage(doc_id, ordinal, text, page, heading, start_char)
    chunk_sections(doc_id, sections, words=200, overlap=40, max_chars=None, cancel=None) -> list[Passage]
    chunk_text(text, words=200, overlap=40, max_chars=None, cancel=None) -> list[tuple[int, str]]
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from app.core.documents.extract import ExtractionCancelled, Section

if TYPE_CHECKING:
    import numpy as np

DEFAULT_WORDS = 200
DEFAULT_OVERLAP = 40
#: Characters allowed per word of the size when ``max_chars`` is not given (English
#: averages ~6 with the space; the slack keeps normal prose from hitting the cap).
CHARS_PER_WORD = 8


@dataclass(frozen=True)
class Passage:
    """One retrievable piece of a document.

    ``doc_id`` is the index's document id (0 before it is stored); ``ordinal`` counts
    passages within the document from 0; ``page`` is 1-based (PDFs) and ``heading`` the
    section heading, either may be None; ``start_char`` is the offset of ``text`` in its
    section's text.
    """

    doc_id: int
    ordinal: int
    text: str
    page: int | None
    heading: str | None
    start_char: int


#: Greedy: the last word end in the searched range that is followed by a blank line,
_LAST_PARAGRAPH_END = re.compile(r"(?s).*\S(?=[^\S\n]*\n[^\S\n]*\n)")
#: ...or that ends a sentence (closing quotes and brackets may follow the mark).
_LAST_SENTENCE_END = re.compile(r"(?s).*[.!?:;。！？…][\"')\]”’»]*(?=\s)")


@cache
def _space_table() -> np.ndarray:
    """Every character str.isspace() accepts is below U+3001; a lookup table over code points
    finds them for the whole text at once. Made (and numpy imported) at the first chunking,
    not when the app starts: opening the document index does not need numpy."""
    import numpy as np

    table = np.zeros(0x3002, dtype=bool)
    table[[c for c in range(0x3001) if chr(c).isspace()]] = True
    return table


def _word_spans(text: str, max_word: int) -> tuple[list[int], list[int]]:
    """Start and end offsets of the words; a "word" longer than ``max_word`` is cut up.

    Vectorized with numpy: per-word Python (a match object or a string per word) was most
    of the indexing time for plain text.
    """
    if not text:
        return [], []
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    space = _space_table()[np.minimum(codes, 0x3001)]
    word = ~space
    edges = np.diff(word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if len(starts) and int((ends - starts).max()) > max_word:
        cut_starts: list[int] = []
        cut_ends: list[int] = []
        for s, e in zip(starts.tolist(), ends.tolist()):
            while e - s > max_word:
                cut_starts.append(s)
                cut_ends.append(s + max_word)
                s += max_word
            cut_starts.append(s)
            cut_ends.append(e)
        return cut_starts, cut_ends
    return starts.tolist(), ends.tolist()


#: ``cancel`` is checked every this many passages: a 256 MB text file is one section.
CANCEL_EVERY = 1024


def chunk_text(
    text: str,
    words: int = DEFAULT_WORDS,
    overlap: int = DEFAULT_OVERLAP,
    max_chars: int | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[tuple[int, str]]:
    """``(start_char, passage_text)`` pieces of one section (see the module docstring);
    raises :class:`ExtractionCancelled` when ``cancel()`` turns true on the way."""
    if words < 1:
        raise ValueError("words must be at least 1")
    overlap = max(0, min(overlap, words - 1))
    max_chars = max_chars if max_chars is not None else words * CHARS_PER_WORD
    max_chars = max(16, max_chars)
    starts, ends = _word_spans(text, max_chars)
    n = len(starts)
    out: list[tuple[int, str]] = []
    start = 0
    while start < n:
        if cancel is not None and len(out) % CANCEL_EVERY == CANCEL_EVERY - 1 and cancel():
            raise ExtractionCancelled()
        first = starts[start]
        # furthest end allowed by the word count and the character cap
        end = min(n, start + words)
        end = max(start + 1, bisect_right(ends, first + max_chars, start, end))
        if end < n:
            end = _natural_end(text, starts, ends, start, end, words)
        out.append((first, text[first : ends[end - 1]]))
        if end >= n:
            break
        nxt = end - overlap
        start = nxt if nxt > start else end
    return out


def _natural_end(text: str, starts: list[int], ends: list[int], start: int, end: int, words: int) -> int:
    """Pull ``end`` back (at most a quarter of a passage) to a paragraph or sentence end."""
    floor = max(start + 1, end - max(1, words // 4))
    lo = starts[floor]  # the earliest word that may end the passage
    m = _LAST_PARAGRAPH_END.match(text, lo, starts[end]) or _LAST_SENTENCE_END.match(text, lo, ends[end - 1] + 1)
    if m is None:
        return end
    # the word that ends at m.end(): words are sorted, so bisect finds it
    return bisect_left(ends, m.end(), floor, end) + 1


def chunk_sections(
    doc_id: int,
    sections: Iterable[Section],
    words: int = DEFAULT_WORDS,
    overlap: int = DEFAULT_OVERLAP,
    max_chars: int | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[Passage]:
    """Passages of every section in order, numbered from 0 across the document; ``cancel``
    is checked between sections and within a long one."""
    passages: list[Passage] = []
    for section in sections:
        if cancel is not None and cancel():
            raise ExtractionCancelled()
        for start_char, piece in chunk_text(section.text, words, overlap, max_chars, cancel):
            passages.append(Passage(doc_id, len(passages), piece, section.page, section.heading, start_char))
    return passages


__all__ = ["DEFAULT_OVERLAP", "DEFAULT_WORDS", "Passage", "chunk_sections", "chunk_text"]
