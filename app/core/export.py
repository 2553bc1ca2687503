"""Export conversations (Markdown, plain text, HTML, JSON) and import them (Hearth JSON, ChatGPT).

API:
    to_markdown(conv) -> str          to_text(conv) -> str          to_html(conv | convs) -> str
    to_json(convs) -> str             from_json(text) -> list[Conversation]
    from_chatgpt_json(text) -> list[Conversation]
    detect_format(text) -> "hearth" | "chatgpt"
    import_any(text) -> tuple[str, list[Conversation]]        detect + parse, one JSON parse
    read_import_file(path) -> tuple[str, list[Conversation]]  also opens ChatGPT's export .zip
    fresh_ids(conv) -> Conversation                             a copy with new ids
    export_text(fmt, convs) -> str    save_export(path, fmt, convs)    EXPORT_FORMATS
    ImportFormatError, ExportError

Importing only parses and validates: it returns records and never writes, and it either
returns every conversation in the file or raises ``ImportFormatError`` with a message that
names what is wrong and where ("conversation 3, message 7: role must be one of user,
assistant, system (found "bot")"), so a bad file never leaves half an import behind.

Hearth's JSON format, version 1
-------------------------------
A UTF-8 JSON object. Keys not listed here are ignored on import, so a later version may add
keys without breaking older readers; a change that older readers would misread raises
``version``, and a reader refuses a version newer than it knows.

=============  ==============  ===========================================================
key            type            meaning
=============  ==============  ===========================================================
format         string          always ``"hearth.conversations"`` (required)
version        integer         ``1`` (required)
exported       string          when the file was written, ISO-8601 with UTC offset
                               (informational; optional on import)
conversations  list            conversation objects, below (required; may be empty)
=============  ==============  ===========================================================

A conversation:

=========  ==============  ==============================================================
id         string          non-empty, unique in the file (required)
title      string          (required)
created    number          Unix time in seconds (required)
updated    number          Unix time of the last change (optional; default ``created``)
pinned     boolean         shown at the top of the list (optional; default ``false``)
settings   object or null  the conversation's own sampling settings, the keys of
                           ``SamplingSettings.to_dict()`` (optional; default ``null``)
messages   list            message objects, below, oldest first: the version of the
                           conversation that is shown (required; may be empty)
branches   list            the other versions: replies that were regenerated, questions
                           that were edited, and what followed them; message objects with
                           ``parent`` and ``active``, below (optional; default empty)
=========  ==============  ==============================================================

A message:

=========  ==============  ==============================================================
id         string          non-empty, unique in the file (required)
role       string          ``"user"``, ``"assistant"`` or ``"system"`` (required)
text       string          exactly what was typed or generated (required)
state      string          ``"complete"``, ``"streaming"``, ``"stopped"``, ``"interrupted"``
                           or ``"failed"`` (optional; default ``"complete"``)
model      string or null  display name of the model that wrote it (optional)
settings   object or null  sampling settings and system prompt used for it (optional)
stats      object or null  generation figures: ``tokens``, ``tokens_per_s``, ``ttft``,
                           ``seconds``, ``seed``, ``finish_reason``, ``adapters`` (the LoRA
                           adapters that were on: ``[{name, path, scale}]``) (optional)
created    number          Unix time in seconds (required)
rating     int or null     ``1`` (rated good), ``-1`` (rated bad) or ``null`` (not rated)
                           (optional; default ``null``)
preferred  boolean         the person marked this version of a reply as the better one
                           among its versions (optional; default ``false``; at most one
                           per set of versions)
images     array           images attached to the message, in order (optional; default
                           none): ``{"mime": "image/png", "name": "cat.png", "data": base64}``;
                           PNG, JPEG, GIF, BMP or WebP, each at most 20 MB
=========  ==============  ==============================================================

A message in ``branches`` has two more keys: ``parent`` (string or null), the id of the
message it follows (in ``messages`` or ``branches``; null for another version of the first
message), and ``active`` (boolean, default ``false``), whether it is the version that
shows when the branch it is on is shown.  Each message in ``messages`` follows the one
before it.  A reader that ignores ``branches`` gets the conversation as it was shown.

Times are written as numbers; an ISO-8601 string is also accepted on import (without an
offset it means local time). NaN and Infinity are not JSON and are refused.
"""

from __future__ import annotations

import copy
import datetime as _dt
import html
import json
import logging
import math
import os
import re
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from app.core.adapters import describe as describe_adapters
from app.core.conversation import Conversation, Message, MessageState, Role, new_id
from app.core.markdown_html import render_markdown
from app.core.records import (
    RecordError,
    check_images,
    check_preferred,
    check_rating,
    check_settings,
    check_stats,
    describe,
    image_to_dict,
    is_number,
)
from app.core.vision import Attachment

log = logging.getLogger(__name__)

FORMAT = "hearth.conversations"
VERSION = 1

# fmt -> (file dialog label, file suffix). The order is the order a dialog should offer them.
EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    "md": ("Markdown", ".md"),
    "html": ("Web page (HTML)", ".html"),
    "txt": ("Plain text", ".txt"),
    "json": ("Hearth JSON (can be imported again)", ".json"),
}

ImportKind = Literal["hearth", "chatgpt"]

_ROLE_LABELS = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.SYSTEM: "System"}
# How a message that did not finish normally is marked in the human-readable formats.
_STATE_NOTES = {
    MessageState.STREAMING: "unfinished",
    MessageState.STOPPED: "stopped",
    MessageState.INTERRUPTED: "interrupted",
    MessageState.FAILED: "failed",
}
_MAX_TIME = 253402300799.0  # 9999-12-31: beyond it time.localtime() overflows when shown


class ImportFormatError(ValueError):
    """The file cannot be imported; ``str(error)`` is a plain-words message for the user."""


class ExportError(OSError):
    """The export could not be written; ``str(error)`` is a plain-words message for the user."""


# ---------------------------------------------------------------------------------------------
# Human-readable exports


def to_markdown(conv: Conversation) -> str:
    """Markdown a person can read as is or paste anywhere; each message's text is verbatim."""
    lines = [f"# {_one_line(conv.title) or 'Untitled chat'}", "", f"_{_conv_subtitle(conv)}_", ""]
    for msg in conv.messages:
        heading = _ROLE_LABELS[msg.role]
        if msg.model:
            heading += f" ({_one_line(msg.model)})"
        lines += [f"## {heading}", ""]
        body = msg.text.rstrip("\n")
        if body:
            lines.append(body)
            closing = _unclosed_fence(body)
            if closing:
                # A reply stopped inside a code block: close it so it does not swallow the
                # rest of the file. The message text itself is untouched.
                lines.append(closing)
            lines.append("")
        note = _STATE_NOTES.get(msg.state)
        if note:
            lines += [f"_({note})_", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def to_text(conv: Conversation) -> str:
    """Plain text for mail or a notes app: a header per message, the text verbatim."""
    title = _one_line(conv.title) or "Untitled chat"
    lines = [title, "=" * min(max(len(title), 3), 78), _conv_subtitle(conv), ""]
    for msg in conv.messages:
        extras = [x for x in (msg.model and _one_line(msg.model), _STATE_NOTES.get(msg.state)) if x]
        header = _ROLE_LABELS[msg.role] + (f" ({', '.join(extras)})" if extras else "")
        lines += [f"[{header}]", msg.text.rstrip("\n"), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def to_html(conv: Conversation | Sequence[Conversation], *, code_style: str = "default") -> str:
    """A complete, self-contained web page: inline CSS, no scripts, nothing fetched.

    Assistant replies are rendered as markdown (escaped: see ``markdown_html``); what the user
    and the system prompt said is shown as typed, since people rarely write markdown on
    purpose and a single newline should stay a newline. A Content-Security-Policy forbids
    scripts and every outside resource as a second line of defence.
    """
    convs = [conv] if isinstance(conv, Conversation) else list(conv)
    if len(convs) == 1:
        page_title = _one_line(convs[0].title) or "Untitled chat"
    else:
        page_title = f"{len(convs)} conversations"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="generator" content="Hearth">',
        f"<title>{_esc(page_title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
    ]
    if len(convs) > 1:
        parts.append('<nav class="toc"><h1>Conversations</h1><ol>')
        for i, c in enumerate(convs):
            parts.append(f'<li><a href="#c{i + 1}">{_esc(_one_line(c.title) or "Untitled chat")}</a></li>')
        parts.append("</ol></nav>")
    for i, c in enumerate(convs):
        parts.append(_html_conversation(c, f"c{i + 1}", code_style))
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _html_conversation(conv: Conversation, anchor: str, code_style: str) -> str:
    out = [
        f'<article class="conversation" id="{anchor}">',
        f"<header><h1>{_esc(_one_line(conv.title) or 'Untitled chat')}</h1>",
        f'<p class="sub">{_esc(_conv_subtitle(conv))}</p></header>',
    ]
    for msg in conv.messages:
        role = msg.role.value
        who = _ROLE_LABELS[msg.role]
        model = f' <span class="model">{_esc(msg.model)}</span>' if msg.model else ""
        if msg.role is Role.ASSISTANT:
            body = f'<div class="text md">{render_markdown(msg.text, code_style=code_style)}</div>'
        else:
            body = f'<div class="text plain">{_esc(msg.text)}</div>'
        if msg.images:  # inline, so the page stays one self-contained file
            body = (
                '<div class="images">'
                + "".join(
                    f'<img src="{a.data_url()}" alt="{_esc(a.name or "image")}" style="max-width: 320px; max-height: 320px">'
                    for a in msg.images
                )
                + "</div>"
                + body
            )
        meta = _html_meta(msg)
        out.append(
            f'<section class="message {role} state-{msg.state.value}">'
            f'<div class="who">{who}{model}</div>{body}{meta}</section>'
        )
    out.append("</article>")
    return "\n".join(out)


def _html_meta(msg: Message) -> str:
    bits = [_fmt_time(msg.created)]
    note = _STATE_NOTES.get(msg.state)
    stats = msg.stats or {}
    tokens, rate, ttft = stats.get("tokens"), stats.get("tokens_per_s"), stats.get("ttft")
    if _is_number(tokens) and tokens:
        bits.append(f"{int(tokens)} tokens")
    if _is_number(rate) and rate:
        bits.append(f"{rate:.1f} tokens/s")
    if _is_number(ttft) and ttft:
        bits.append(f"first token after {ttft:.2f} s")
    adapters = describe_adapters(stats.get("adapters"))
    if adapters:
        bits.append(f"adapters: {adapters}")
    text = " · ".join(_esc(b) for b in bits)
    if note:
        text += f' · <span class="note">{_esc(note)}</span>'
    return f'<div class="meta">{text}</div>'


_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f4f4f2; color: #1f2328;
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
main { max-width: 52rem; margin: 0 auto; padding: 1.5rem 1rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; }
.sub, .meta { color: #6e7781; font-size: .8rem; }
.toc { margin-bottom: 2rem; }
.conversation { margin-bottom: 3rem; }
.conversation + .conversation { border-top: 2px solid #d0d7de; padding-top: 2rem; }
.message { background: #fff; border: 1px solid #e1e4e8; border-radius: 10px;
  padding: .75rem 1rem; margin: 1rem 0; overflow-wrap: anywhere; }
.message.user { background: #eef4ff; border-color: #c8daf8; }
.message.system { background: #fbf7e9; border-color: #eadfb8; }
.who { font-weight: 600; font-size: .85rem; margin-bottom: .35rem; }
.who .model { font-weight: 400; color: #6e7781; margin-left: .4rem; }
.text.plain { white-space: pre-wrap; }
.text.md > :first-child { margin-top: 0; }
.text.md > :last-child { margin-bottom: 0; }
.meta { margin-top: .4rem; }
.meta .note { color: #9a6700; font-style: italic; }
pre.code { padding: .6rem .8rem; border-radius: 6px; overflow-x: auto; border: 1px solid #e1e4e8;
  font-size: .85rem; line-height: 1.45; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
:not(pre) > code { background: #eff1f3; padding: .1em .3em; border-radius: 4px; font-size: .9em; }
table { border-collapse: collapse; margin: .6rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; }
th { background: #f6f8fa; }
blockquote { margin: .6rem 0; padding: 0 .9rem; color: #57606a; border-left: 3px solid #d0d7de; }
ul.contains-task-list { list-style: none; padding-left: 1.2rem; }
a { color: #0969da; }
.image-alt { color: #6e7781; }
""".strip()


def _conv_subtitle(conv: Conversation) -> str:
    n = len(conv.messages)
    return f"Hearth conversation · started {_fmt_time(conv.created)} · {n} message{'s' if n != 1 else ''}"


def _fmt_time(ts: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
    except (OverflowError, OSError, ValueError):
        return "unknown time"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _is_number(value: Any) -> bool:
    return is_number(value)  # bounded: math.isfinite overflows on a huge int


_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def _unclosed_fence(text: str) -> str | None:
    """The line that closes a code fence left open at the end of ``text``, if any."""
    open_fence: str | None = None
    for line in text.split("\n"):
        m = _FENCE_RE.match(line)
        if not m:
            continue
        marker, rest = m.group(1), m.group(2)
        if open_fence is None:
            if marker[0] == "`" and "`" in rest:
                continue  # not a fence: a backtick fence's info string cannot contain backticks
            open_fence = marker
        elif marker[0] == open_fence[0] and len(marker) >= len(open_fence) and not rest.strip():
            open_fence = None
    return open_fence


# ---------------------------------------------------------------------------------------------
# Hearth JSON


def to_json(convs: Iterable[Conversation]) -> str:
    """The documented format above; ``from_json`` reads it back into equal records."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "exported": _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds"),
        "conversations": [_conv_to_dict(c) for c in convs],
    }
    text = json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False)
    # A lone surrogate (broken UTF-16 from somewhere) cannot be written as UTF-8: escape it, so
    # the file saves and reads back to the same string.
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


def _conv_to_dict(conv: Conversation) -> dict[str, Any]:
    data = {
        "id": conv.id,
        "title": conv.title,
        "created": conv.created,
        "updated": conv.updated,
        "pinned": conv.pinned,
        "settings": _jsonable(conv.settings),
        "messages": [_message_to_dict(m) for m in conv.messages],
    }
    if conv.branches:
        data["branches"] = [{**_message_to_dict(m), "parent": m.parent_id, "active": m.active} for m in conv.branches]
    return data


def _message_to_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "role": m.role.value,
        "text": m.text,
        "state": m.state.value,
        "model": m.model,
        "settings": _jsonable(m.settings),
        "stats": _jsonable(m.stats),
        "created": m.created,
        "rating": m.rating,
        "preferred": m.preferred,
        **({"images": [image_to_dict(a) for a in m.images]} if m.images else {}),
    }


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: a NaN or odd object in a stats dict must not make the export fail."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def from_json(text: str) -> list[Conversation]:
    """Every conversation in a Hearth export, validated; raises ``ImportFormatError``."""
    return _hearth_from_data(_parse(text))


def _parse(text: str | bytes) -> Any:
    def no_constant(name: str) -> Any:
        raise ImportFormatError(f"The file contains {name}, which is not a valid JSON value.")

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"The file is not UTF-8 text (byte {exc.start} cannot be read).") from None
    try:
        return json.loads(text.removeprefix("\ufeff"), parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(
            f"The file is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except RecursionError:
        raise ImportFormatError("The file is not valid JSON: it is nested too deeply.") from None
    except MemoryError:
        raise ImportFormatError("The file is too large to import: there is not enough memory to read it.") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ImportFormatError(f"The file is not valid JSON: {exc}.") from None


class _Checker:
    """Reads one object, naming its place in every error."""

    def __init__(self, obj: Any, where: str, what: str) -> None:
        if not isinstance(obj, dict):
            raise ImportFormatError(f"{where}: must be an object {{…}} describing a {what} (found {_kind(obj)})")
        self.obj = obj
        self.where = where

    def fail(self, message: str) -> ImportFormatError:
        return ImportFormatError(f"{self.where}: {message}")

    def get(self, key: str, required: bool) -> Any:
        if key not in self.obj:
            if required:
                raise self.fail(f'the required field "{key}" is missing')
            return None
        return self.obj[key]

    def string(self, key: str, *, required: bool = True, nullable: bool = False, nonempty: bool = False) -> Any:
        value = self.get(key, required)
        if value is None and (nullable or (not required and key not in self.obj)):
            return None
        if not isinstance(value, str):
            kind = "text or null" if nullable else "text"
            raise self.fail(f"{key} must be {kind} (found {_kind(value)})")
        if nonempty and not value:
            raise self.fail(f"{key} must not be empty")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.obj:
            return default
        value = self.obj[key]
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false (found {_kind(value)})")
        return value

    def nested(self, key: str, *, conversation: bool = False) -> dict[str, Any] | None:
        """``settings`` or ``stats``: every field inside is checked too (``records``), since
        the window trusts their types when it shows the conversation."""
        try:
            if key == "stats":
                return check_stats(self.obj.get(key))[0]
            return check_settings(self.obj.get(key), conversation=conversation)[0]
        except RecordError as exc:
            raise self.fail(str(exc)) from None

    def rating(self) -> tuple[int | None, bool]:
        """``rating`` and ``preferred`` (both optional)."""
        try:
            return check_rating(self.obj.get("rating")), check_preferred(self.obj.get("preferred", False))
        except RecordError as exc:
            raise self.fail(str(exc)) from None

    def images(self) -> list[Attachment]:
        """``images`` (optional): each a real image, checked by its first bytes."""
        try:
            return check_images(self.obj.get("images"))
        except RecordError as exc:
            raise self.fail(str(exc)) from None

    def listing(self, key: str) -> list[Any]:
        value = self.get(key, True)
        if not isinstance(value, list):
            raise self.fail(f"{key} must be a list […] (found {_kind(value)})")
        return value

    def choice(self, key: str, enum: type[Role] | type[MessageState], default: Any = None) -> Any:
        value = self.get(key, default is None)
        if value is None and key not in self.obj:
            return default
        allowed = [e.value for e in enum]
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(f"{key} must be one of {', '.join(allowed)} (found {_kind(value)})")
        return enum(value)

    def timestamp(self, key: str, default: float | None = None) -> float:
        value = self.get(key, default is None)
        if value is None and key not in self.obj and default is not None:
            return default
        if isinstance(value, str):
            try:
                parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                seconds = parsed.timestamp()
            except (ValueError, OverflowError, OSError):
                raise self.fail(
                    f"{key} must be a time: seconds since 1970 or an ISO-8601 date (found {_kind(value)})"
                ) from None
        elif _is_number(value):
            seconds = float(value)
        else:
            raise self.fail(f"{key} must be a time: seconds since 1970 or an ISO-8601 date (found {_kind(value)})")
        if not 0 <= seconds <= _MAX_TIME:
            raise self.fail(f"{key} must be a time between 1970 and 9999 (found {_kind(value)})")
        return seconds


def _kind(value: Any) -> str:
    """How a wrong value is described in an error: its JSON type, and short values in full."""
    return describe(value)


def _hearth_from_data(data: Any) -> list[Conversation]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if isinstance(data, list) and (not data or (isinstance(data[0], dict) and "mapping" in data[0])):
            raise ImportFormatError("This is a ChatGPT export, not a Hearth export: import it as ChatGPT.")
        raise ImportFormatError(f'This is not a Hearth export: the "format" field is not "{FORMAT}".')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ImportFormatError(
            f"The file's format version must be a whole number of at least 1 (found {_kind(version)})."
        )
    if version > VERSION:
        raise ImportFormatError(
            f"This file was made by a newer version of Hearth (format version {version}); this "
            f"version can read format version {VERSION}. Update Hearth to import it."
        )
    if "exported" in data and not isinstance(data["exported"], str):
        raise ImportFormatError(f'The "exported" field must be text (found {_kind(data["exported"])}).')
    if "conversations" not in data:
        raise ImportFormatError('The file has no "conversations" list.')
    items = data["conversations"]
    if not isinstance(items, list):
        raise ImportFormatError(f'"conversations" must be a list […] (found {_kind(items)}).')

    conv_ids: dict[str, int] = {}
    msg_ids: dict[str, str] = {}
    result: list[Conversation] = []
    for ci, item in enumerate(items, 1):
        where = f"conversation {ci}"
        c = _Checker(item, where, "conversation")
        cid = c.string("id", nonempty=True)
        if cid in conv_ids:
            raise c.fail(f"id {_kind(cid)} is also used by conversation {conv_ids[cid]}")
        conv_ids[cid] = ci
        title = c.string("title")
        created = c.timestamp("created")
        updated = c.timestamp("updated", default=created)
        pinned = c.boolean("pinned", False)
        settings = c.nested("settings", conversation=True)

        def message(raw: Any, label: str, where: str = where) -> tuple[Message, _Checker]:
            m = _Checker(raw, f"{where}, {label}", "message")
            mid = m.string("id", nonempty=True)
            if mid in msg_ids:
                raise m.fail(f"id {_kind(mid)} is also used by {msg_ids[mid]}")
            msg_ids[mid] = f"{where}, {label}"
            rating, preferred = m.rating()
            return Message(
                role=m.choice("role", Role),
                text=m.string("text"),
                state=m.choice("state", MessageState, MessageState.COMPLETE),
                model=m.string("model", required=False, nullable=True),
                settings=m.nested("settings"),
                stats=m.nested("stats"),
                created=m.timestamp("created"),
                id=mid,
                rating=rating,
                preferred=preferred,
                images=m.images(),
            ), m

        messages = [message(raw, f"message {mi}")[0] for mi, raw in enumerate(c.listing("messages"), 1)]
        branches: list[Message] = []
        checkers: list[_Checker] = []
        for bi, raw in enumerate(c.listing("branches") if "branches" in item else [], 1):
            branch, m = message(raw, f"branch message {bi}")
            branch.parent_id = m.string("parent", nullable=True)
            branch.active = m.boolean("active", False)
            branches.append(branch)
            checkers.append(m)
        conv = Conversation(
            title=title,
            messages=messages,
            id=cid,
            created=created,
            updated=updated,
            pinned=pinned,
            settings=settings,
            branches=branches,
        )
        conv.link()
        known = {m.id for m in conv.all_messages()}
        shown_parents = {m.parent_id for m in messages}
        for branch, m in zip(branches, checkers):
            if branch.parent_id is not None and branch.parent_id not in known:
                raise m.fail(f"parent {_kind(branch.parent_id)} is not a message of this conversation")
            if branch.parent_id in shown_parents:  # the shown version is the active one there
                branch.active = False
        preferred_under: set[str | None] = set()
        for msg in conv.all_messages():
            if msg.preferred:
                if msg.parent_id in preferred_under:
                    raise c.fail("more than one version of the same reply is marked preferred")
                preferred_under.add(msg.parent_id)
        result.append(conv)
    return result


def fresh_ids(conv: Conversation) -> Conversation:
    """A deep copy with new conversation and message ids, so an import never clashes.

    Ids only mean something inside one store; the store should call this for every imported
    conversation (importing the same file twice then simply gives two copies).
    """
    ids = {m.id: new_id() for m in conv.all_messages()}

    def fresh(m: Message) -> Message:
        return replace(
            m,
            id=ids[m.id],
            parent_id=ids.get(m.parent_id) if m.parent_id else None,
            settings=copy.deepcopy(m.settings),
            stats=copy.deepcopy(m.stats),
        )

    return replace(
        conv,
        id=new_id(),
        settings=copy.deepcopy(conv.settings),
        messages=[fresh(m) for m in conv.messages],
        branches=[fresh(m) for m in conv.branches],
    )


# ---------------------------------------------------------------------------------------------
# ChatGPT's conversations.json

# Content types that hold what a person reads; others are tool calls, browsing results,
# hidden reasoning and custom-instruction blobs.
_CHATGPT_TEXT_TYPES = {"text", "multimodal_text"}


def from_chatgpt_json(text: str) -> list[Conversation]:
    """Each conversation in ChatGPT's ``conversations.json``, with all its versions.

    ChatGPT keeps every edit and regeneration as a tree; what the user last saw is the path
    from ``current_node`` back to the root, so that is what shows, and the other versions
    become branches (‹ 1/2 ›). Tool calls, tool output, hidden system messages and empty
    nodes are left out; images become "[image]".
    """
    return _chatgpt_from_data(_parse(text))


def _chatgpt_from_data(data: Any) -> list[Conversation]:
    if isinstance(data, dict) and "mapping" in data:
        data = [data]  # a single conversation
    if not isinstance(data, list):
        raise ImportFormatError("This is not ChatGPT's conversations.json: it should be a list of conversations.")
    result: list[Conversation] = []
    for ci, item in enumerate(data, 1):
        if not isinstance(item, dict) or not isinstance(item.get("mapping"), dict):
            raise ImportFormatError(
                f'conversation {ci}: has no message tree ("mapping"); is this ChatGPT\'s conversations.json?'
            )
        conv = _chatgpt_conversation(item)
        if conv.messages:
            result.append(conv)
    return result


def _chatgpt_conversation(item: dict[str, Any]) -> Conversation:
    """The whole tree: the path the user last saw is shown, every other version (regenerated
    answers, edited questions and what followed them) comes along as a branch."""
    mapping: dict[str, Any] = item["mapping"]
    created = _chatgpt_time(item.get("create_time"))
    path = _chatgpt_branch(mapping, item.get("current_node"))
    shown = {id(node) for node in path}
    # nodes reach their children through "children"; hidden nodes (tool calls, system
    # blobs, empty drafts) are skipped and their children follow the nearest shown ancestor
    roots = _chatgpt_roots(mapping)
    if not roots and path:  # a damaged tree that loops back on itself: start where the path does
        roots = [k for k, n in mapping.items() if n is path[0]]
    messages: list[Message] = []
    branches: list[Message] = []
    seen: set[str] = set()
    stack: list[tuple[str, Message | None]] = [(k, None) for k in reversed(roots)]
    while stack:
        node_id, parent = stack.pop()
        node = mapping.get(node_id)
        if node_id in seen or not isinstance(node, dict):
            continue
        seen.add(node_id)
        raw = node.get("message")
        msg = _chatgpt_message(raw)
        if msg is not None:
            assert isinstance(raw, dict)  # _chatgpt_message returns None for anything else
            when = _chatgpt_time(raw.get("create_time"))
            if when is None:  # older exports lack some times: keep the order readable
                when = parent.created if parent is not None else (created or time.time())
            msg.created = when
            msg.parent_id = parent.id if parent is not None else None
            msg.active = id(node) in shown
            (messages if msg.active else branches).append(msg)
        children = _chatgpt_children(node)
        stack.extend((c, msg if msg is not None else parent) for c in reversed(children))
    if created is None:
        created = messages[0].created if messages else time.time()
    updated = _chatgpt_time(item.get("update_time")) or (messages[-1].created if messages else created)
    title = item.get("title")
    conv = Conversation(
        title=_one_line(title) if isinstance(title, str) and title.strip() else "Imported chat",
        messages=messages,
        created=created,
        updated=max(updated, created),
        branches=branches,
    )
    conv.link()
    return conv


def _chatgpt_roots(mapping: dict[str, Any]) -> list[str]:
    """Nodes whose parent is not in the tree (a parent of any other JSON type included)."""
    return [
        k
        for k, n in mapping.items()
        if isinstance(n, dict) and not (isinstance(n.get("parent"), str) and n["parent"] in mapping)
    ]


def _chatgpt_children(node: dict[str, Any]) -> list[str]:
    """A node's child ids; anything but a list of strings is no children (never an error)."""
    children = node.get("children")
    return [c for c in children if isinstance(c, str)] if isinstance(children, list) else []


def _chatgpt_branch(mapping: dict[str, Any], current: Any) -> list[dict[str, Any]]:
    """Nodes from the root to ``current`` (or, without one, to the newest leaf)."""
    if not isinstance(current, str) or not isinstance(mapping.get(current), dict):
        current = _chatgpt_last_leaf(mapping)
    path: list[dict[str, Any]] = []
    seen: set[str] = set()
    node_id = current
    while isinstance(node_id, str) and node_id not in seen:
        node = mapping.get(node_id)
        if not isinstance(node, dict):
            break
        seen.add(node_id)
        path.append(node)
        node_id = node.get("parent")
    path.reverse()
    return path


def _chatgpt_last_leaf(mapping: dict[str, Any]) -> str | None:
    roots = _chatgpt_roots(mapping)
    node_id = roots[0] if roots else None
    seen: set[str] = set()
    while node_id is not None and node_id not in seen:
        seen.add(node_id)
        children = [c for c in _chatgpt_children(mapping[node_id]) if isinstance(mapping.get(c), dict)]
        if not children:
            return node_id
        node_id = children[-1]  # the newest regeneration or edit
    return node_id


def _dict_at(raw: dict[str, Any], key: str) -> dict[str, Any]:
    """``raw[key]`` when it is an object, else an empty one (exports vary; a damaged one too)."""
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _chatgpt_message(raw: Any) -> Message | None:
    if not isinstance(raw, dict):
        return None
    author = _dict_at(raw, "author")
    role_name = author.get("role")
    role = {"user": Role.USER, "assistant": Role.ASSISTANT, "system": Role.SYSTEM}.get(
        role_name if isinstance(role_name, str) else ""
    )
    metadata = _dict_at(raw, "metadata")
    if role is None or metadata.get("is_visually_hidden_from_conversation"):
        return None
    if raw.get("recipient", "all") != "all":
        return None  # the assistant calling a tool (browser, python…)
    content = _dict_at(raw, "content")
    content_type = content.get("content_type")
    if not isinstance(content_type, str) or content_type not in _CHATGPT_TEXT_TYPES:
        return None
    parts = content.get("parts")
    pieces: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, str):
            if part.strip():
                pieces.append(part)
        elif isinstance(part, dict) and "image" in str(part.get("content_type", "")):
            pieces.append("[image]")
    text = "\n\n".join(pieces)
    if not text.strip():
        return None
    finish = _dict_at(metadata, "finish_details")
    model = metadata.get("model_slug") if role is Role.ASSISTANT else None
    return Message(
        role=role,
        text=text,
        state=MessageState.STOPPED if finish.get("type") == "interrupted" else MessageState.COMPLETE,
        model=model if isinstance(model, str) and model else None,
    )


def _chatgpt_time(value: Any) -> float | None:
    return float(value) if _is_number(value) and 0 < value <= _MAX_TIME else None


# ---------------------------------------------------------------------------------------------
# Detecting, reading and saving files


def _detect(data: Any) -> ImportKind:
    if isinstance(data, dict):
        if data.get("format") == FORMAT:
            return "hearth"
        if "mapping" in data:
            return "chatgpt"
    if isinstance(data, list) and (not data or (isinstance(data[0], dict) and "mapping" in data[0])):
        return "chatgpt"
    raise ImportFormatError(
        "Hearth cannot import this file: it is neither a Hearth export nor ChatGPT's conversations.json."
    )


def detect_format(text: str) -> ImportKind:
    """Which importer reads ``text``; raises ``ImportFormatError`` when neither does."""
    return _detect(_parse(text))


def import_any(text: str | bytes) -> tuple[ImportKind, list[Conversation]]:
    """Detect and import in one JSON parse (a ChatGPT export can be hundreds of megabytes)."""
    data = _parse(text)
    kind = _detect(data)
    return kind, (_hearth_from_data(data) if kind == "hearth" else _chatgpt_from_data(data))


#: The most bytes an import reads (after decompression). The JSON parser needs several times
#: this in memory; a ChatGPT export of many years of daily use is a few hundred megabytes.
MAX_IMPORT_BYTES = 1 << 30
_CHUNK = 1 << 20
#: What ChatGPT's export uses. bzip2 and LZMA members are refused: zipfile decompresses
#: each of their blocks whole, so a 600-byte member can take hundreds of megabytes at once.
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
#: Everything zipfile, zlib and the file system raise on a damaged or odd archive.
_READ_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    ValueError,
    struct.error,
    UnicodeError,
)


def read_import_file(
    path: str | os.PathLike[str], max_bytes: int | None = None
) -> tuple[ImportKind, list[Conversation]]:
    """Import a file as the user picked it: a JSON file, or ChatGPT's export .zip as downloaded.

    Meant to run off the GUI thread. Every failure, unreadable file included, is an
    ``ImportFormatError`` with a plain-words message. At most ``max_bytes`` (default
    :data:`MAX_IMPORT_BYTES`) are read, counted as they are decompressed: a zip's declared
    sizes are not trusted.
    """
    path = Path(path)
    limit = MAX_IMPORT_BYTES if max_bytes is None else max_bytes
    try:
        raw = _read_bounded(path, limit)
    except ImportFormatError:
        raise
    except _READ_ERRORS as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
        if isinstance(exc, (EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, struct.error)):
            reason = f"the zip file is damaged or uses a format Hearth cannot read ({reason})"
        raise ImportFormatError(f"Could not read {path.name}: {reason}.") from None
    return import_any(raw)


def _read_bounded(path: Path, limit: int) -> bytes:
    too_big = ImportFormatError(
        f"{path.name} is too large to import: more than {limit // (1 << 20):,} MB of conversations."
    )
    with path.open("rb") as fh:
        if not zipfile.is_zipfile(fh):
            fh.seek(0)
            if os.fstat(fh.fileno()).st_size > limit:
                raise too_big
            return _read_chunks(fh, limit, too_big)  # read(limit + 1) would allocate it all up front
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            names = [i for i in zf.infolist() if Path(i.filename).name == "conversations.json"]
            if not names:
                raise ImportFormatError(f"{path.name} is a zip file without a conversations.json inside.")
            info = min(names, key=lambda i: len(i.filename))
            if info.compress_type not in _ZIP_METHODS:
                raise ImportFormatError(
                    f"Could not read {path.name}: its conversations.json is compressed with a method "
                    f"Hearth does not read (only {' and '.join(_ZIP_METHODS.values())})."
                )
            if info.file_size > limit:
                raise too_big
            with zf.open(info) as member:
                return _read_chunks(member, limit, too_big)


def _read_chunks(fh: Any, limit: int, too_big: ImportFormatError) -> bytes:
    """Everything ``fh`` yields, counted as it comes (a deflate member yields about a chunk
    per read), refused as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    total = 0
    while chunk := fh.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def export_text(fmt: str, convs: Sequence[Conversation]) -> str:
    """The whole export as one string; several conversations are joined for that format."""
    if fmt == "json":
        return to_json(convs)
    if fmt == "html":
        return to_html(convs)
    if fmt == "md":
        return "\n---\n\n".join(to_markdown(c) for c in convs)
    if fmt == "txt":
        return ("\n" + "-" * 72 + "\n\n").join(to_text(c) for c in convs)
    raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")


def _set_mode(tmp: str, path: Path) -> None:
    """mkstemp makes owner-only files; an export should get the usual permissions (or keep the
    ones of the file it replaces), since people share exports."""
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
    except OSError:
        pass  # a file system without Unix permissions: nothing to fix


def save_export(path: str | os.PathLike[str], fmt: str, convs: Sequence[Conversation]) -> None:
    """Write the export atomically: a crash or full disk leaves the old file, never half a new one.

    Raises ``ExportError`` (plain-words message) when the file cannot be written.
    """
    path = Path(path)
    data = export_text(fmt, convs).encode("utf-8", errors="replace")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        _set_mode(tmp, path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ExportError(f"Could not save {path.name}: {exc.strerror or exc}.") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
