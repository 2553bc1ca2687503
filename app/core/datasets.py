"""Fine-tuning datasets from the conversations: SFT rows and preference pairs, as JSON Lines.

Plain Python (no Qt): the File > Export dataset… dialog runs it on a worker thread and
``hearth dataset`` runs it from a script.

API
---
``DatasetSpec(kind, fmt, rating, models, since, until, pinned_only, include_incomplete)``
``sft_rows(conv, spec) -> list[dict]``, ``preference_rows(conv, spec) -> list[dict]``,
``rows_for(conv, spec)``; ``build(store, spec, progress=None, cancelled=None) -> DatasetResult``
(rows + counts); ``write_jsonl(path, rows)`` (atomic; raises :class:`DatasetError` in plain
words); ``parse_date(text, end=False)``.

Formats (one JSON object a line, UTF-8)
---------------------------------------
SFT, ``openai`` (OpenAI / TRL "conversational language modeling")::

    {"messages": [{"role": "system", "content": …}, {"role": "user", "content": …},
                  …, {"role": "assistant", "content": …}]}

SFT, ``sharegpt``::

    {"conversations": [{"from": "system", "value": …}, {"from": "human", "value": …},
                       …, {"from": "gpt", "value": …}]}

Preferences, ``openai`` (TRL's DPO trainer, "conversational preference" with an explicit
prompt)::

    {"prompt": [{"role": "system", …}, {"role": "user", "content": …}, …],
     "chosen": [{"role": "assistant", "content": …}],
     "rejected": [{"role": "assistant", "content": …}]}

Preferences, ``sharegpt`` (LLaMA-Factory's ShareGPT preference layout)::

    {"conversations": [{"from": "human", "value": …}, …],
     "chosen": {"from": "gpt", "value": …}, "rejected": {"from": "gpt", "value": …}}

What becomes a row
------------------
* SFT: every path through a conversation's tree of versions that ends in an assistant reply
  that passes the filters gives one row: the turns from the start up to that reply, after
  the system prompt and few-shot examples that were sent with it (the reply's own settings
  snapshot, else the conversation's). A row that is the beginning of a longer row is left
  out: the longer one holds the same turns. Earlier replies on the path must be complete
  (unless ``include_incomplete``) and, when a rating filter is set, not rated 👎.
* Preferences: among the versions of one reply (siblings: the same parent message, e.g.
  regenerated replies or compare columns), the preferred one is chosen and every other is
  rejected; with none preferred, each 👍 version is paired with each 👎 one. The prompt is
  the conversation up to the reply (with the chosen reply's system prompt and few-shot).
* Filters: ``rating`` ("any", "not_bad": leave out 👎, "good": only 👍 replies; SFT only),
  ``models`` (the reply's model; for a pair, either reply's), ``since``/``until`` (the
  reply's time; for a pair, the chosen reply's), ``pinned_only``, ``collections`` (conversations that
  use one of these document collections: Hearth's way of grouping chats by subject, besides
  pinning), and replies that were stopped,
  failed or interrupted are left out unless ``include_incomplete``. Empty replies never
  make a row.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.presets import effective_system_prompt, few_shot_turns
from app.core.settings import SamplingSettings

Kind = Literal["sft", "preferences"]
Format = Literal["openai", "sharegpt"]
Rating = Literal["any", "not_bad", "good"]

KINDS: dict[str, str] = {"sft": "Fine-tuning (SFT) conversations", "preferences": "Preference pairs (DPO)"}
FORMATS: dict[str, str] = {"openai": "OpenAI chat messages", "sharegpt": "ShareGPT"}
RATINGS: dict[str, str] = {
    "any": "Any reply",
    "not_bad": "Leave out replies rated Bad",
    "good": "Only replies rated Good",
}

_SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}
_INCOMPLETE = {MessageState.STOPPED, MessageState.FAILED, MessageState.INTERRUPTED, MessageState.STREAMING}


class DatasetError(Exception):
    """The dataset could not be written or the request is wrong; the message is plain words."""


@dataclass
class DatasetSpec:
    kind: Kind = "sft"
    fmt: Format = "openai"
    rating: Rating = "any"
    models: Sequence[str] = ()  # empty: every model
    since: float | None = None  # Unix time, inclusive
    until: float | None = None  # Unix time, inclusive
    pinned_only: bool = False
    include_incomplete: bool = False
    # Only conversations that use one of these document collections (by name; empty: any).
    collections: Sequence[str] = ()

    def check(self) -> None:
        if self.kind not in KINDS:
            raise DatasetError(f"The kind must be one of {', '.join(KINDS)} (found {self.kind!r}).")
        if self.fmt not in FORMATS:
            raise DatasetError(f"The format must be one of {', '.join(FORMATS)} (found {self.fmt!r}).")
        if self.rating not in RATINGS:
            raise DatasetError(f"The rating filter must be one of {', '.join(RATINGS)} (found {self.rating!r}).")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise DatasetError("The start date is after the end date: nothing could match.")


@dataclass
class DatasetResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    conversations: int = 0  # conversations read
    used: int = 0  # conversations that gave at least one row
    unreadable: int = 0  # conversations that could not be read (left out)


# -- one conversation ----------------------------------------------------------------------------


def _complete(m: Message, spec: DatasetSpec) -> bool:
    return bool(m.text.strip()) and (spec.include_incomplete or m.state not in _INCOMPLETE)


def _in_time(m: Message, spec: DatasetSpec) -> bool:
    return (spec.since is None or m.created >= spec.since) and (spec.until is None or m.created <= spec.until)


def _model_ok(m: Message, spec: DatasetSpec) -> bool:
    return not spec.models or m.model in spec.models


def _rating_ok(m: Message, spec: DatasetSpec) -> bool:
    if spec.rating == "good":
        return m.rating == 1
    if spec.rating == "not_bad":
        return m.rating != -1
    return True


def _qualifies(m: Message, spec: DatasetSpec) -> bool:
    return (
        m.role is Role.ASSISTANT
        and _complete(m, spec)
        and _rating_ok(m, spec)
        and _model_ok(m, spec)
        and _in_time(m, spec)
    )


def _children(conv: Conversation) -> dict[str | None, list[Message]]:
    kids: dict[str | None, list[Message]] = {}
    for m in sorted(conv.all_messages(), key=lambda m: m.created):
        kids.setdefault(m.parent_id, []).append(m)
    return kids


def _paths_to(conv: Conversation) -> dict[str, list[Message]]:
    """Message id -> the messages from the start of the conversation to it (itself included)."""
    kids = _children(conv)
    paths: dict[str, list[Message]] = {}
    stack: list[tuple[str | None, list[Message]]] = [(None, [])]
    while stack:
        parent, path = stack.pop()
        for m in kids.get(parent, []):
            if m.id in paths:  # a damaged tree with a cycle
                continue
            paths[m.id] = path + [m]
            stack.append((m.id, paths[m.id]))
    return paths


def _preamble(conv: Conversation, reply: Message) -> list[dict[str, str]]:
    """The system prompt and few-shot turns sent with ``reply``, as in the chat."""
    raw = reply.settings if reply.settings and "system_prompt" in reply.settings else conv.settings
    turns: list[dict[str, str]] = []
    if raw:
        try:
            system = effective_system_prompt(SamplingSettings.from_dict(raw))
        except (TypeError, ValueError):
            system = str(raw.get("system_prompt") or "")
        if system:
            turns.append({"role": "system", "content": system})
    pairs = (conv.settings or {}).get("few_shot") or []
    turns += few_shot_turns((str(u), str(a)) for u, a in pairs)
    return turns


def _turns(path: Iterable[Message]) -> list[dict[str, str]]:
    return [{"role": m.role.value, "content": m.text} for m in path if m.text or m.role is not Role.ASSISTANT]


def _sharegpt(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"from": _SHAREGPT_FROM[t["role"]], "value": t["content"]} for t in turns]


def _path_ok(path: list[Message], spec: DatasetSpec) -> bool:
    """The earlier replies on a row's path: complete, and not rated 👎 when ratings matter."""
    for m in path[:-1]:
        if m.role is not Role.ASSISTANT:
            continue
        if not spec.include_incomplete and m.state in _INCOMPLETE:
            return False
        if spec.rating != "any" and m.rating == -1:
            return False
    return True


def sft_rows(conv: Conversation, spec: DatasetSpec) -> list[dict[str, Any]]:
    """One row per path that ends in a qualifying reply (see the module docstring)."""
    paths = _paths_to(conv)
    chosen: list[list[Message]] = [
        path for path in paths.values() if _qualifies(path[-1], spec) and _path_ok(path, spec)
    ]
    ids = [tuple(m.id for m in path) for path in chosen]
    rows: list[dict[str, Any]] = []
    for path, key in zip(chosen, ids):
        if any(len(other) > len(key) and other[: len(key)] == key for other in ids):
            continue  # the beginning of a longer row
        turns = _preamble(conv, path[-1]) + _turns(path)
        rows.append({"conversations": _sharegpt(turns)} if spec.fmt == "sharegpt" else {"messages": turns})
    return rows


def preference_rows(conv: Conversation, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Pairs of versions of one reply (see the module docstring)."""
    paths = _paths_to(conv)
    rows: list[dict[str, Any]] = []
    for kids in _children(conv).values():
        versions = [m for m in kids if m.role is Role.ASSISTANT and _complete(m, spec) and m.id in paths]
        if len(versions) < 2:
            continue
        preferred = [m for m in versions if m.preferred]
        if preferred:
            pairs = [(preferred[0], m) for m in versions if m is not preferred[0]]
        else:
            pairs = [(g, b) for g in versions if g.rating == 1 for b in versions if b.rating == -1]
        for good, bad in pairs:
            if not (_model_ok(good, spec) or _model_ok(bad, spec)) or not _in_time(good, spec):
                continue
            if not _path_ok(paths[good.id], spec):
                continue
            prompt = _preamble(conv, good) + _turns(paths[good.id][:-1])
            if spec.fmt == "sharegpt":
                rows.append(
                    {
                        "conversations": _sharegpt(prompt),
                        "chosen": {"from": "gpt", "value": good.text},
                        "rejected": {"from": "gpt", "value": bad.text},
                    }
                )
            else:
                rows.append(
                    {
                        "prompt": prompt,
                        "chosen": [{"role": "assistant", "content": good.text}],
                        "rejected": [{"role": "assistant", "content": bad.text}],
                    }
                )
    return rows


def rows_for(conv: Conversation, spec: DatasetSpec) -> list[dict[str, Any]]:
    if spec.pinned_only and not conv.pinned:
        return []
    return preference_rows(conv, spec) if spec.kind == "preferences" else sft_rows(conv, spec)


# -- every conversation --------------------------------------------------------------------------


def _collection_members(names: Sequence[str], documents: Any) -> set[str] | None:
    """The conversations using any of the named collections (None: no such filter)."""
    if not names:
        return None
    if documents is None:
        raise DatasetError("There are no document collections here to filter by.")
    members: set[str] = set()
    for name in names:
        found = documents.conversations_using(name)
        if found is None:
            raise DatasetError(f"There is no collection named “{name}”.")
        members |= found
    return members


def build(
    store: Any,
    spec: DatasetSpec,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    documents: Any = None,
) -> DatasetResult:
    """Every row from every conversation in ``store`` (a ConversationStore). ``progress(done,
    total)`` after each conversation; ``cancelled()`` true stops early (rows so far kept).
    ``documents`` (a DocumentIndex) says which conversations use ``spec.collections``."""
    spec.check()
    from app.core.store import StoreError

    wanted = _collection_members(spec.collections, documents)
    summaries = store.list_conversations()
    result = DatasetResult()
    total = len(summaries)
    for done, summary in enumerate(summaries, 1):
        if cancelled is not None and cancelled():
            break
        if (spec.pinned_only and not summary.pinned) or (wanted is not None and summary.id not in wanted):
            result.conversations += 1
            continue
        try:
            conv = store.load(summary.id)
        except StoreError:
            result.unreadable += 1
            continue
        rows = rows_for(conv, spec)
        result.conversations += 1
        if rows:
            result.used += 1
            result.rows += rows
        if progress is not None:
            progress(done, total)
    return result


def describe_count(kind: str, rows: int) -> str:
    """ "1 preference pair", "12 rows (SFT conversations)"."""
    if kind == "preferences":
        return f"{rows:,} preference pair{'s' if rows != 1 else ''}"
    return f"{rows:,} row{'s' if rows != 1 else ''} (SFT conversations)"


def to_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl(
    path: str | os.PathLike[str],
    rows: Sequence[dict[str, Any]],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write the rows, one JSON object a line, to a temporary file next to ``path`` and move
    it into place: a failed write never leaves half a file. Raises :class:`DatasetError`."""
    target = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for i, row in enumerate(rows, 1):
                fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
                if progress is not None and (i % 200 == 0 or i == len(rows)):
                    progress(i, len(rows))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise DatasetError(f"Could not write {target}: {_os_reason(exc)}.") from exc
    except UnicodeEncodeError as exc:
        raise DatasetError(f"Could not write {target}: it contains characters that cannot be saved.") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "the folder does not exist"
    if exc.errno == errno.EISDIR:
        return "that is a folder"
    if exc.errno == errno.EROFS:
        return "the disk is read-only"
    return exc.strerror or str(exc)


def parse_date(text: str, end: bool = False) -> float:
    """``2026-01-31`` (local time; with ``end`` the end of that day) or a full ISO-8601 time,
    as Unix time. Raises :class:`DatasetError`."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = _dt.date.fromisoformat(text)
            moment = _dt.datetime.combine(day, _dt.time.max if end else _dt.time.min)
        else:
            moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise DatasetError(f"{text!r} is not a date: write it as YYYY-MM-DD (or a full ISO-8601 time).") from None
