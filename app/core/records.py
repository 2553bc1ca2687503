"""What the nested fields of a conversation record may hold, checked in one place.

A conversation's ``settings`` and a message's ``settings`` and ``stats`` are free-form dicts
on disk (JSON in the store, objects in an export). Everything that shows them trusts their
types: the settings panel puts numbers in spin boxes, the chat view formats ``tokens`` with
``:,`` and turns each source's ``number`` into an int. One wrong type in an imported file or a
damaged row therefore used to kill the window at every start. So both ways in go through
these checks:

* import (``strict``): a wrong value raises :class:`RecordError`, whose message names the
  field ("stats: tokens must be a whole number (found "many")"); the importer adds where
  it is and refuses the whole file;
* the store (``repair``): a wrong value is dropped, and a plain note says what was left out,
  so a damaged conversation still opens.

Known keys must have their type (and, for sampling settings, pass
``SamplingSettings.validate``). A key this version does not know is kept when its value is a
plain JSON data (text, bounded numbers, true/false, null, lists and objects of them) at most
:data:`MAX_DEPTH` levels deep — a later version may have added it, and nothing here reads
it — and dropped otherwise, so no depth of nesting can come through a field nobody checks.

API: ``RecordError``; ``check_settings(value, strict=True, conversation=False)``,
``check_stats(value, strict=True)`` → ``(clean dict or None, notes)``; ``check_rating(value)``,
``check_preferred(value)`` (a message's rating fields); ``clean_text(s)``;
``is_int``, ``is_number``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import re
from dataclasses import fields, replace
from typing import Any

from app.core.settings import SamplingSettings
from app.core.vision import MAX_IMAGE_BYTES, Attachment

#: Larger whole numbers are refused: a spin box (C int), SQLite (int64) or
#: ``int(float)`` would overflow, and nothing Hearth writes comes near it.
INT_LIMIT = 2**53
#: A spin box in the settings panel is a C int; counts and sampling values stay below it.
SPIN_LIMIT = 2**31 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")


class RecordError(ValueError):
    """A field of a conversation record has the wrong type or value; the message is plain
    words naming the field (the caller adds which conversation and message)."""


def check_rating(value: Any) -> int | None:
    """A message's ``rating``: 1 (good), -1 (bad) or None (not rated)."""
    if value is None or (is_int(value) and value in (1, -1)):
        return value  # type: ignore[no-any-return]
    raise RecordError(f"rating must be 1, -1 or null (found {describe(value)})")


def check_images(value: Any) -> list[Attachment]:
    """A message's ``images``: absent/null, or a list of ``{mime, name, data}`` whose data is
    base64 of a PNG, JPEG, GIF, BMP or WebP image of at most MAX_IMAGE_BYTES."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"images must be a list (found {describe(value)})")
    out = []
    for n, item in enumerate(value, 1):
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise RecordError(f"image {n} must be an object with base64 data (found {describe(item)})")
        if len(item["data"]) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            raise RecordError(f"image {n} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
        try:
            data = base64.b64decode(item["data"], validate=True)
        except (binascii.Error, ValueError):
            raise RecordError(f"image {n}: data is not valid base64") from None
        name = item.get("name", "")
        try:
            out.append(Attachment.from_bytes(data, clean_text(name) if isinstance(name, str) else ""))
        except ValueError:
            raise RecordError(f"image {n} is not a PNG, JPEG, GIF, BMP or WebP image") from None
    return out


def image_to_dict(image: Attachment) -> dict[str, str]:
    return {"mime": image.mime, "name": image.name, "data": base64.b64encode(image.data).decode("ascii")}


def check_preferred(value: Any) -> bool:
    """A message's ``preferred``: true or false."""
    if isinstance(value, bool):
        return value
    raise RecordError(f"preferred must be true or false (found {describe(value)})")


def is_int(value: Any) -> bool:
    """A whole number that fits everywhere Hearth puts one (bool is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and -INT_LIMIT <= value <= INT_LIMIT


def is_number(value: Any) -> bool:
    """A finite, bounded number; huge ints are refused before ``math.isfinite`` overflows."""
    if is_int(value):
        return True
    return isinstance(value, float) and math.isfinite(value)


def clean_text(text: str) -> str:
    """``text`` without lone surrogates (broken UTF-16): SQLite and UTF-8 files cannot hold
    them, so a saved import would fail later, after the user was told it worked."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


#: How deep a value under a key this version does not know may nest (lists and objects).
MAX_DEPTH = 8


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or is_number(value)


def is_plain(value: Any, depth: int = MAX_DEPTH) -> bool:
    """Plain JSON data at most ``depth`` levels deep: scalars, lists, objects with text keys."""
    if is_scalar(value):
        return True
    if depth <= 0:
        return False
    if isinstance(value, list):
        return all(is_plain(v, depth - 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v, depth - 1) for k, v in value.items())
    return False


def describe(value: Any) -> str:
    """A wrong value in an error message: its JSON type, short values in full."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return f"the number {value!r}"
    if isinstance(value, (int, float)):
        return "a number too large" if isinstance(value, int) or math.isinf(value) else "not a number"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "…"
        return json.dumps(clean_text(shown), ensure_ascii=False) if value else "empty text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- sampling settings -------------------------------------------------------------------------

_SETTING_KINDS: dict[str, str] = {
    "temperature": "number",
    "top_p": "number",
    "top_k": "count",
    "min_p": "number",
    "repeat_penalty": "number",
    "presence_penalty": "number",
    "frequency_penalty": "number",
    "max_tokens": "count",
    "stop": "texts",
    "seed": "seed",
    "system_prompt": "text",
    "last_n_tokens": "count",
    "chain_of_thought": "bool",
    # structured output (core.response_format); validate() checks the value and the spec in use
    "response_format": "text",
    "json_schema": "text",
    "grammar": "text",
    "adapters": "adapters",  # LoRA adapters that are on (core.adapters)
}
assert set(_SETTING_KINDS) == {f.name for f in fields(SamplingSettings)}

_KIND_WORDS = {
    "number": "a number",
    "count": f"a whole number below {SPIN_LIMIT + 1}",
    "int": "a whole number",
    "int?": "a whole number or null",
    "number?": "a number or null",
    "text": "text",
    "text?": "text or null",
    "texts": "a list of text",
    "seed": "a whole number or null",
    "bool": "true or false",
    "adapters": "a list of {path, scale} objects",
}


def _fits(kind: str, value: Any) -> bool:
    if kind == "number":
        return is_number(value)
    if kind == "number?":
        return value is None or is_number(value)
    if kind == "count":
        return is_int(value) and -SPIN_LIMIT <= value <= SPIN_LIMIT
    if kind == "int":
        return is_int(value)
    if kind in ("int?", "seed"):
        return value is None or is_int(value)
    if kind == "text":
        return isinstance(value, str)
    if kind == "text?":
        return value is None or isinstance(value, str)
    if kind == "texts":
        return isinstance(value, list) and all(isinstance(s, str) for s in value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "adapters":
        return isinstance(value, list) and all(_is_adapter_entry(a) for a in value)
    raise AssertionError(kind)


def _is_adapter_entry(value: Any) -> bool:
    """``{"path": text, "scale": number}`` (a reply's stats also name it: ``"name": text``)."""
    return (
        isinstance(value, dict)
        and set(value) <= {"path", "scale", "name"}
        and isinstance(value.get("path"), str)
        and is_number(value.get("scale"))
        and isinstance(value.get("name", ""), str)
    )


class _Fields:
    """Checks a dict key by key; strict raises at the first problem, repair drops it."""

    def __init__(self, label: str, value: dict[str, Any], strict: bool) -> None:
        self.label = label
        self.source = value
        self.strict = strict
        self.out: dict[str, Any] = {}
        self.notes: list[str] = []

    def problem(self, message: str) -> None:
        if self.strict:
            raise RecordError(f"{self.label}: {message}")
        self.notes.append(f"{self.label}: {message}")

    def known(self, key: str, kind: str) -> bool:
        """Keep ``key`` if present and of its kind; False if it was present and wrong."""
        if key not in self.source:
            return True
        value = self.source[key]
        if not _fits(kind, value):
            self.problem(f"{key} must be {_KIND_WORDS[kind]} (found {describe(value)})")
            return False
        self.out[key] = list(value) if isinstance(value, list) else value
        return True

    def rest(self, known: set[str] | dict[str, Any]) -> None:
        """Unknown keys (a later version's) are kept when they hold plain, shallow data;
        anything deeper or odder is dropped."""
        for key, value in self.source.items():
            if key in known or not isinstance(key, str):
                continue
            if is_plain(value):
                self.out[key] = copy.deepcopy(value)


def _as_dict(label: str, value: Any, strict: bool) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        message = f"{label} must be an object {{…}} or null (found {describe(value)})"
        if strict:
            raise RecordError(message)
        return None
    return value


def check_settings(
    value: Any, *, strict: bool = True, conversation: bool = False, label: str = "settings"
) -> tuple[dict[str, Any] | None, list[str]]:
    """A settings dict (a conversation's own, or the snapshot a reply was written with).

    ``conversation``: it may also hold ``few_shot``, a list of ``[user, assistant]`` texts.
    Returns the clean dict (None for None) and, when repairing, notes on what was dropped.
    """
    raw = _as_dict(label, value, strict)
    if raw is None:
        return None, ([] if value is None else [f"{label} could not be read"])
    f = _Fields(label, raw, strict)
    for key, kind in _SETTING_KINDS.items():
        f.known(key, kind)
    if f.out:
        sampling = {k: v for k, v in f.out.items() if k in _SETTING_KINDS}
        for problem in replace(SamplingSettings(), **sampling).validate():
            # a format may name a schema or grammar that is absent (so the default, empty)
            f.problem(problem.message.rstrip(".") + f" (found {describe(sampling.get(problem.field, ''))})")
            f.out.pop(problem.field, None)
            if problem.field in ("json_schema", "grammar"):
                f.out.pop("response_format", None)  # repaired: free text rather than an unusable format
    known: dict[str, Any] = dict(_SETTING_KINDS)
    if conversation:
        known["few_shot"] = "pairs"
        if "few_shot" in raw:
            pairs = raw["few_shot"]
            if isinstance(pairs, list) and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in pairs
            ):
                f.out["few_shot"] = [[u, a] for u, a in pairs]
            else:
                f.problem("few_shot must be a list of [user, assistant] text pairs")
    f.rest(known)
    return f.out, f.notes


# -- generation figures ------------------------------------------------------------------------

_STAT_KINDS: dict[str, str] = {
    "tokens": "int?",
    "prompt_tokens": "int?",
    "dropped_turns": "int?",
    "tokens_per_s": "number?",
    "ttft": "number?",
    "seconds": "number?",
    "seed": "int?",
    "finish_reason": "text?",
    "adapters": "adapters",  # the LoRA adapters that were on: [{name, path, scale}]
}

_SOURCE_KINDS: dict[str, str] = {"number": "int", "label": "text", "text": "text", "cited": "bool"}


def check_stats(value: Any, *, strict: bool = True, label: str = "stats") -> tuple[dict[str, Any] | None, list[str]]:
    """A reply's figures and the sources it was given; see :func:`check_settings`."""
    raw = _as_dict(label, value, strict)
    if raw is None:
        return None, ([] if value is None else [f"{label} could not be read"])
    f = _Fields(label, raw, strict)
    for key, kind in _STAT_KINDS.items():
        f.known(key, kind)
    if "sources" in raw:
        sources = _check_sources(raw["sources"], f)
        if sources is not None:
            f.out["sources"] = sources
    if "format_check" in raw:
        check = _check_format_check(raw["format_check"], f)
        if check is not None:
            f.out["format_check"] = check
    f.rest({**_STAT_KINDS, "sources": None, "format_check": None})
    return f.out, f.notes


_FORMAT_CHECK_KINDS: dict[str, str] = {"format": "text", "ok": "bool", "problem": "text"}


def _check_format_check(value: Any, f: _Fields) -> dict[str, Any] | None:
    """Whether a structured reply had its format (core.response_format.check_reply)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        f.problem(f"format_check must be an object {{…}} (found {describe(value)})")
        return None
    c = _Fields(f"{f.label}: format_check", value, f.strict)
    ok = all([c.known(key, kind) for key, kind in _FORMAT_CHECK_KINDS.items()])
    if not ok or "ok" not in c.out:
        if ok:
            c.problem('the required field "ok" is missing')
        f.notes += c.notes
        return None
    c.rest(_FORMAT_CHECK_KINDS)
    return c.out


def _check_sources(value: Any, f: _Fields) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        f.problem(f"sources must be a list (found {describe(value)})")
        return None
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value, 1):
        if not isinstance(item, dict):
            f.problem(f"source {i} must be an object {{…}} (found {describe(item)})")
            return None
        s = _Fields(f"{f.label}: source {i}", item, f.strict)
        ok = all([s.known(key, kind) for key, kind in _SOURCE_KINDS.items()])
        if not ok or "number" not in s.out:
            if ok:
                s.problem('the required field "number" is missing')
            f.notes += s.notes
            return None
        s.rest(_SOURCE_KINDS)
        out.append(s.out)
    return out
