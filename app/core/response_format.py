"""Structured output: what shape a reply must take, checked before a request and after a reply.

A conversation or preset says (in :class:`~app.core.settings.SamplingSettings`) which
``response_format`` its replies take:

* ``"text"`` — free text (the default);
* ``"json"`` — any JSON value (llama.cpp's JSON grammar);
* ``"json_schema"`` — JSON matching the schema in ``json_schema`` (the text as the person
  pasted it), compiled to a llama.cpp grammar in the engine child;
* ``"grammar"`` — the custom GBNF grammar in ``grammar``.

These values are stored (conversations, presets, reply snapshots): never reuse one.

Plain Python, no Qt, no llama_cpp. A schema is checked here (it parses, and it passes the JSON
Schema meta-schema of the draft it names, 2020-12 by default) so a bad one is explained in the
settings panel and never sent; a grammar only gets a shallow check here (not empty, has a
``root`` rule) because only llama.cpp's parser can say more, which the engine child asks before
generating (a failure there comes back as a plain error, and nothing is generated).

When a reply ends, :func:`check_reply` says whether it parses as JSON and matches the schema;
the result is recorded in the reply's stats under ``format_check`` and shown under it, and
:func:`pretty_reply` gives the pretty-printed form the chat view shows (the stored text stays
as the model wrote it).

API: ``FORMATS`` (value → label); ``schema_problem(text)``, ``grammar_problem(text)`` → plain
words or None; ``load_schema(text)`` → the parsed schema; ``check_reply(fmt, schema_text, text)``
→ ``{"format", "ok", "problem"?}`` or None; ``pretty_reply(text, stats)`` → markdown or None;
``MAX_SPEC_CHARS``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

#: Stored values → what the settings panel calls them. Never reuse a value.
FORMATS: dict[str, str] = {
    "text": "Free text",
    "json": "Any JSON",
    "json_schema": "JSON matching a schema",
    "grammar": "Custom grammar (GBNF)",
}
TEXT = "text"
JSON = "json"
JSON_SCHEMA = "json_schema"
GRAMMAR = "grammar"

#: A schema or grammar longer than this is refused: nothing a person pastes comes near it, and
#: compiling one takes time and memory in the engine child for every request.
MAX_SPEC_CHARS = 100_000

_ROOT_RULE = re.compile(r"(?m)^\s*root\s*::=")


@functools.lru_cache(maxsize=64)
def _schema_result(text: str) -> tuple[Any, str | None]:
    """(schema, None) or (None, why). Cached: the panel re-checks on every keystroke and the
    session before every request, with the same text."""
    if not text.strip():
        return None, 'Paste or write a JSON Schema, for example {"type": "object"}.'
    if len(text) > MAX_SPEC_CHARS:
        return None, f"The schema is longer than {MAX_SPEC_CHARS:,} characters."
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"The schema is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    except RecursionError:
        return None, "The schema is nested too deeply."
    if not isinstance(schema, dict):
        return None, "A JSON Schema must be an object {…}."
    try:
        remote = _remote_ref(schema)
    except RecursionError:
        return None, "The schema is nested too deeply."
    if remote is not None:
        return None, (
            f"The schema refers to another document ({_short(remote, 80)}). Only references inside it "
            "(starting with #) can be used: Hearth never fetches a schema from elsewhere."
        )
    import jsonschema  # noqa: PLC0415 - only needed once a schema is in use

    try:
        cls = _validator_class(schema)
        if cls is None:
            return None, "The schema names a JSON Schema version ($schema) that Hearth does not know."
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        at = f" (at {where})" if where else ""
        return None, f"This is not a valid JSON Schema: {_short(exc.message)}{at}."
    except RecursionError:
        return None, "The schema is nested too deeply."
    except Exception as exc:  # e.g. a "$schema" naming a draft that cannot be fetched offline
        return None, f"This JSON Schema cannot be checked: {_short(str(exc))}."
    return schema, None


def schema_problem(text: Any) -> str | None:
    """Why this JSON Schema text cannot be used, in plain words, or None when it can."""
    if not isinstance(text, str):
        return "The JSON Schema must be text."
    return _schema_result(text)[1]


def load_schema(text: str) -> Any:
    """The parsed schema; raises ValueError (with :func:`schema_problem`'s words) when unusable."""
    schema, problem = _schema_result(text)
    if problem is not None:
        raise ValueError(problem)
    return schema


def grammar_problem(text: Any) -> str | None:
    """A shallow check of a GBNF grammar (the engine asks llama.cpp's parser before using it)."""
    if not isinstance(text, str):
        return "The grammar must be text."
    if not text.strip():
        return 'Write a GBNF grammar, for example: root ::= "yes" | "no"'
    if len(text) > MAX_SPEC_CHARS:
        return f"The grammar is longer than {MAX_SPEC_CHARS:,} characters."
    if not _ROOT_RULE.search(text):
        return "A grammar needs a rule named root, where the reply starts: root ::= …"
    return None


def check_reply(fmt: Any, schema_text: Any, text: str) -> dict[str, Any] | None:
    """Whether a finished reply has the shape asked for: ``{"format": fmt, "ok": bool}`` plus
    ``"problem"`` (plain words) when not; None for free text and custom grammars (only llama.cpp
    can read a grammar, and it has held the reply to it)."""
    if fmt not in (JSON, JSON_SCHEMA):
        return None
    result: dict[str, Any] = {"format": fmt, "ok": False}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        result["problem"] = f"The reply is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        return result
    except RecursionError:
        result["problem"] = "The reply is nested too deeply to read."
        return result
    if fmt == JSON_SCHEMA:
        schema, problem = _schema_result(schema_text) if isinstance(schema_text, str) else (None, "no schema")
        if problem is not None:
            result["problem"] = f"The reply could not be checked: {problem}"
            return result
        import jsonschema  # noqa: PLC0415
        from jsonschema_specifications import REGISTRY  # noqa: PLC0415

        cls = _validator_class(schema) or jsonschema.Draft202012Validator
        try:
            # Only the drafts' own meta-schemas can be looked up: nothing is fetched.
            error = jsonschema.exceptions.best_match(cls(schema, registry=REGISTRY).iter_errors(value))
        except RecursionError:
            result["problem"] = "The reply is nested too deeply to check."
            return result
        except Exception as exc:  # an unresolvable reference, a pattern Python cannot compile…
            result["problem"] = f"The reply could not be checked against the schema: {_short(str(exc))}."
            return result
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            at = f" at {where}" if where else ""
            result["problem"] = f"The reply does not match the schema{at}: {_short(error.message)}."
            return result
    result["ok"] = True
    return result


def pretty_reply(text: str, stats: Any) -> str | None:
    """A reply that was checked and is valid JSON, as a pretty-printed ```json block (markdown);
    None when it should be shown as written."""
    check = stats.get("format_check") if isinstance(stats, dict) else None
    if not isinstance(check, dict) or check.get("ok") is not True:
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    return f"```json\n{pretty}\n```"


def check_note(stats: Any) -> str | None:
    """The line shown under a reply about its format check, or None."""
    check = stats.get("format_check") if isinstance(stats, dict) else None
    if not isinstance(check, dict):
        return None
    if check.get("ok") is True:
        return "valid JSON, matches the schema" if check.get("format") == JSON_SCHEMA else "valid JSON"
    problem = check.get("problem")
    return problem if isinstance(problem, str) and problem else "the reply does not have the format asked for"


def _validator_class(schema: Any) -> Any:
    """The validator for the draft the schema names (2020-12 when it names none); None for a
    ``$schema`` this jsonschema does not know."""
    import jsonschema  # noqa: PLC0415

    uri = schema.get("$schema")
    if uri is None:
        return jsonschema.Draft202012Validator
    if not isinstance(uri, str):
        return None
    known = jsonschema.validators._META_SCHEMAS  # noqa: SLF001 - the registry validator_for reads
    try:
        return known.get(uri)
    except ValueError:  # not even a URI
        return None


def _remote_ref(value: Any) -> str | None:
    """The first ``$ref`` (or ``$dynamicRef``) that points outside the schema, or None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("$ref", "$dynamicRef") and isinstance(item, str) and not item.startswith("#"):
                return item
            found = _remote_ref(item)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _remote_ref(item)
            if found is not None:
                return found
    return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"
