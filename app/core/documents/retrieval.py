"""Retrieval: the passages that answer a question, fitted to a token budget, and the prompt
block that quotes them with numbers the model can cite.

Lexical by default — BM25 over SQLite FTS5, no model needed.  The user's question is
turned into a safe FTS5 query (:func:`fts_query`): every term is quoted, so nothing the
user types (quotes, ``*``, ``-``, ``NEAR``, ``AND``, column filters, unicode) is FTS5
syntax, stop words are dropped, and the terms are OR-ed so BM25 can rank passages that
contain only some of them.

Hybrid retrieval
    When an embedding model is chosen, the engine embeds the question and ``retrieve`` is
    given ``query_vector``: the lexical ranking and the vector ranking
    (:meth:`DocumentIndex.vector_search`, cosine similarity in numpy) are combined with
    reciprocal rank fusion (:func:`fuse`, k = 60), which needs no score calibration
    between BM25 and cosine.  That is the only place vectors enter; without one, the
    vector branch is skipped and nothing else changes.  Passages get their vectors through
    ``DocumentIndex.passages_missing_vectors`` → engine embedding → ``store_vectors``.

The budget
    ``token_budget`` bounds the whole block :func:`build_context` makes (instructions,
    labels and passages), measured with ``count_tokens`` — :func:`approx_tokens` by
    default, or the model's tokenizer.  Passages are taken best first; one that does not
    fit is passed over for a smaller one further down, so the budget is used, not just
    respected.

Prompt assembly is one function, :func:`with_context`, which the tests call directly.

API::

    approx_tokens(text) -> int
    fts_query(text) -> str | None
    fuse(rank_lists, k=60) -> list[tuple[item, float]]
    retrieve(index, query, collection_ids, k=6, token_budget=1500, count_tokens=approx_tokens,
             query_vector=None, vector_model="default") -> list[Hit]
    build_context(hits) -> tuple[str, list[Citation]]
    with_context(messages, context) -> list[dict[str, str]]
    cited_numbers(text, count=None) -> list[int]
    Hit(passage, score, rank, source_label, passage_id, path, title)
    Citation(number, file_name, location, text, path, page, heading, passage_id)
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app.core.documents.chunking import Passage

if TYPE_CHECKING:
    from app.core.documents.index import DocumentIndex

K = TypeVar("K", bound=Hashable)

DEFAULT_K = 6
DEFAULT_TOKEN_BUDGET = 1500
RRF_K = 60
#: Most query terms kept: a pasted page as a "question" would make a huge OR query.
MAX_QUERY_TERMS = 32

INSTRUCTIONS = (
    "Answer using the numbered sources below when they are relevant. "
    "Cite each source you use by its number in square brackets, like [1] or [2][3], "
    "right after the statement it supports. "
    "If the sources do not contain the answer, say so."
)

# fmt: off
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't down during each either else ever few for from further get gets got had hadn't has hasn't
have haven't having he her here hers herself him himself his how i if in into is isn't it it's its
itself just let me more most much must my myself no nor not now of off on once only or other ought
our ours ourselves out over own please same shall she should shouldn't so some such tell than that
the their theirs them themselves then there these they this those through to too under until up
upon us very was wasn't we were weren't what when where whether which while who whom whose why will
with within without won't would wouldn't yes yet you your yours yourself yourselves
""".split())
# fmt: on


# -- tokens ----------------------------------------------------------------------------------


def approx_tokens(text: str) -> int:
    """A cautious token estimate without a tokenizer: ~4 ASCII characters a token, and one
    token per other character (CJK is about that; accented Latin is overcounted, which
    only leaves the budget a little unused)."""
    if not text:
        return 0
    ascii_count = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_count / 4) + (len(text) - ascii_count)


# -- the query -------------------------------------------------------------------------------


def _is_token_char(ch: str) -> bool:
    # unicode61's token characters are letters, numbers and private use; marks are kept
    # so a word in a script with combining marks stays whole.
    cat = unicodedata.category(ch)
    return cat[0] in "LNM" or cat == "Co"


def query_terms(text: str) -> list[str]:
    """The distinct search terms of a question, stop words dropped (unless that is all)."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates
    words: list[str] = []
    current: list[str] = []
    for ch in text + " ":
        if _is_token_char(ch):
            current.append(ch)
        elif ch in "'’" and current:
            current.append("'")  # keep "don't" whole for the stop-word check
        elif current:
            words.append("".join(current).strip("'").lower())
            current = []
    words = list(dict.fromkeys(w for w in words if w))
    # Single ASCII letters and stop words match nearly every passage; they are used only
    # when the question has nothing else ("what is it", "a b c").
    terms = [w for w in words if w not in STOP_WORDS and (len(w) > 1 or not w.isascii() or w.isdigit())]
    if not terms:
        terms = [w for w in words if w not in STOP_WORDS] or words
    # the apostrophe is a separator to FTS5: "o'neill" becomes the phrase "o neill"
    return terms[:MAX_QUERY_TERMS]


def fts_query(text: str) -> str | None:
    """A safe FTS5 ``MATCH`` expression for a user's question, or None if nothing is searchable."""
    terms = query_terms(text)
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


# -- fusion ----------------------------------------------------------------------------------


def fuse(rank_lists: Iterable[Sequence[K]], k: int = RRF_K) -> list[tuple[K, float]]:
    """Reciprocal rank fusion: ``score(d) = Σ 1 / (k + rank)`` over the lists (rank from 1).

    Returns ``(item, score)`` best first; ties go to the item first seen at the better
    rank, then to the earlier list, so the result is deterministic.  An item repeated
    within one list counts once, at its best rank.
    """
    scores: dict[K, float] = {}
    first_seen: dict[K, tuple[int, int]] = {}
    for li, items in enumerate(rank_lists):
        seen: set[K] = set()
        for rank, item in enumerate(items, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            pos = (rank, li)
            if item not in first_seen or pos < first_seen[item]:
                first_seen[item] = pos
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


# -- hits and citations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """A retrieved passage.  ``score``: higher is better (−bm25 for lexical, the fused
    score for hybrid); ``rank`` from 1, which is also its source number in the prompt."""

    passage: Passage
    score: float
    rank: int
    source_label: str  # "manual.pdf, p. 3" / "notes.md, “Setup”" / "main.py"
    passage_id: int = 0
    path: Path | None = None
    title: str = ""


@dataclass(frozen=True)
class Citation:
    """One numbered source under an answer: what the UI lists and expands."""

    number: int
    file_name: str
    location: str | None  # "p. 3" or the section heading; None for a whole-file source
    text: str
    path: Path | None = None
    page: int | None = None
    heading: str | None = None
    passage_id: int = 0

    @property
    def label(self) -> str:
        return f"{self.file_name}, {self.location}" if self.location else self.file_name


def _location(page: int | None, heading: str | None) -> str | None:
    if page is not None:
        return f"p. {page}"
    if heading:
        return f"“{heading}”"
    return None


def source_label(file_name: str, page: int | None, heading: str | None) -> str:
    loc = _location(page, heading)
    return f"{file_name}, {loc}" if loc else file_name


def _source_block(number: int, label: str, text: str) -> str:
    return f"[{number}] {label}:\n{text.strip()}"


def build_context(hits: Sequence[Hit]) -> tuple[str, list[Citation]]:
    """The prompt block quoting ``hits`` as numbered sources, and the citation list.

    Sources are numbered 1… in the order given (retrieve's rank), so the UI's list and the
    model's ``[n]`` markers agree.  No hits: ``("", [])``.
    """
    if not hits:
        return "", []
    blocks = [INSTRUCTIONS]
    citations: list[Citation] = []
    for number, hit in enumerate(hits, start=1):
        p = hit.passage
        file_name = hit.path.name if hit.path is not None else hit.source_label
        blocks.append(_source_block(number, hit.source_label, p.text))
        citations.append(
            Citation(
                number=number,
                file_name=file_name,
                location=_location(p.page, p.heading),
                text=p.text,
                path=hit.path,
                page=p.page,
                heading=p.heading,
                passage_id=hit.passage_id,
            )
        )
    return "\n\n".join(blocks), citations


def with_context(messages: Sequence[dict[str, str]], context: str) -> list[dict[str, str]]:
    """The chat turns with the sources put in front of the last user question.

    In the user turn rather than the system prompt: small local models follow material
    next to the question far better, and the system prompt stays the user's own.  The
    stored conversation is not changed (a copy is returned), so the sources are sent for
    this answer only.
    """
    out = [dict(m) for m in messages]
    if not context:
        return out
    for m in reversed(out):
        if m.get("role") == "user":
            content = m.get("content", "")
            if isinstance(content, list):  # a question with images (content parts): text goes in front
                m["content"] = [{"type": "text", "text": f"{context}\n\nQuestion: "}, *content]
            else:
                m["content"] = f"{context}\n\nQuestion: {content}"
            return out
    out.append({"role": "user", "content": context})
    return out


#: A citation: ``[1]``, ``[1, 4]``, ``[2; 3]``.  Every repeat is bounded, so the work per
#: ``[`` is bounded: model output is untrusted, and ``int()`` of an unbounded digit run
#: raises ValueError past 4,300 digits (that once left a reply stuck "generating") and
#: the old pattern rescanned the rest of the reply at every ``[``.
_CITE = re.compile(r"\[([ \t]{0,3}\d{1,4}[ \t]{0,3}(?:[,;][ \t]{0,3}\d{1,4}[ \t]{0,3}){0,31})\]")


def cited_numbers(text: str, count: int | None = None) -> list[int]:
    """Source numbers the answer cites (``[1]``, ``[2][3]``, ``[1, 4]``), in order, once
    each; with ``count``, numbers outside 1..count (the model made them up) are left out.
    Linear in the text, whatever it holds."""
    out: dict[int, None] = {}
    for m in _CITE.finditer(text or ""):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if n >= 1 and (count is None or n <= count):
                out[n] = None
    return list(out)


# -- retrieval -------------------------------------------------------------------------------


def retrieve(
    index: DocumentIndex,
    query: str,
    collection_ids: Sequence[int],
    k: int = DEFAULT_K,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    count_tokens: Callable[[str], int] = approx_tokens,
    query_vector: Any | None = None,
    vector_model: str = "default",
) -> list[Hit]:
    """The best passages for ``query`` in the collections, at most ``k``, whose context
    block (:func:`build_context`) fits ``token_budget`` tokens.

    ``query_vector`` (the question embedded by the same model as the passages) turns on
    hybrid ranking; see the module docstring.
    """
    ids = [int(i) for i in collection_ids]
    if not ids or k <= 0 or token_budget <= 0:
        return []
    pool = max(4 * k, 24)  # candidates beyond k: some will not fit or are duplicates
    match = fts_query(query or "")
    lexical = index.search_passages(match, ids, pool) if match else []

    if query_vector is not None:
        vector = index.vector_search(query_vector, pool, ids, model=vector_model)
        ranked = fuse([[pid for pid, _ in lexical], [pid for pid, _ in vector]])
    else:
        ranked = [(pid, -score) for pid, score in lexical]
    if not ranked:
        return []

    stored = index.get_passages(pid for pid, _ in ranked)
    header_cost = count_tokens(INSTRUCTIONS)
    if header_cost >= token_budget:
        return []
    used = header_cost
    chosen: list[Hit] = []
    seen_text: set[str] = set()
    for pid, score in ranked:
        if len(chosen) >= k:
            break
        sp = stored.get(pid)
        if sp is None:
            continue  # removed since the search
        key = " ".join(sp.passage.text.split())
        if key in seen_text:  # the same file in two collections, or a copy of it
            continue
        label = source_label(sp.path.name, sp.passage.page, sp.passage.heading)
        cost = count_tokens("\n\n" + _source_block(len(chosen) + 1, label, sp.passage.text))
        if used + cost > token_budget:
            continue  # a smaller passage further down may still fit
        used += cost
        seen_text.add(key)
        chosen.append(Hit(sp.passage, float(score), len(chosen) + 1, label, sp.id, sp.path, sp.title))

    # A real tokenizer need not be additive over the pieces: check the whole, trim if over.
    while chosen and count_tokens(build_context(chosen)[0]) > token_budget:
        chosen.pop()
    return chosen


__all__ = [
    "Citation",
    "Hit",
    "INSTRUCTIONS",
    "approx_tokens",
    "build_context",
    "cited_numbers",
    "fts_query",
    "fuse",
    "query_terms",
    "retrieve",
    "source_label",
    "with_context",
]
