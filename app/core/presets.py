"""Presets: named starting points (system prompt, sampling values, worked examples) for the
jobs people most often give a local model, plus the user's own saved presets.

A preset stores only the sampling values it cares about; :func:`apply_preset` lays them over
a base, so a preset written by an older version still works when new settings appear.
Few-shot examples are sent as real earlier user/assistant turns (:func:`few_shot_turns`),
not pasted into the system prompt: small models imitate a demonstrated turn far more
reliably than a described one.

API: ``Preset``; ``PresetError``; ``BUILTIN_PRESETS``; ``PresetStore(path)`` with
``list()``, ``get(name)``, ``save(preset)``, ``duplicate(name, new_name=None)``,
``delete(name)``, ``export_json(presets=None) -> str``, ``import_json(text) -> list[Preset]``;
``apply_preset(preset, base) -> SamplingSettings``; ``few_shot_turns(pairs) -> list[dict]``;
``COT_INSTRUCTION``, ``effective_system_prompt(settings) -> str``,
``split_reasoning(text) -> (reasoning | None, answer)``.
"""

from __future__ import annotations

import builtins  # for annotations inside PresetStore, whose list() method shadows the builtin
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from app.core.jsonfile import read_json, write_json
from app.core.records import SPIN_LIMIT, clean_text, is_int, is_number
from app.core.settings import SamplingSettings

FORMAT = "hearth-presets"
FORMAT_VERSION = 1
MAX_NAME_LENGTH = 80

# Fields a preset may set; the system prompt has its own Preset field.
_SETTING_TYPES: dict[str, str] = {
    "temperature": "number",
    "top_p": "number",
    "top_k": "int",
    "min_p": "number",
    "repeat_penalty": "number",
    "last_n_tokens": "int",
    "presence_penalty": "number",
    "frequency_penalty": "number",
    "max_tokens": "int",
    "stop": "strings",
    "seed": "int-or-null",
    "chain_of_thought": "bool",
    "response_format": "string",
    "json_schema": "string",
    "grammar": "string",
    "adapters": "adapters",  # LoRA adapters that are on: [{"path", "scale"}] (core.adapters)
}
assert set(_SETTING_TYPES) | {"system_prompt"} == {f.name for f in fields(SamplingSettings)}


class PresetError(Exception):
    """A preset operation the user asked for cannot be done; the message says why in plain words."""


@dataclass
class Preset:
    name: str
    description: str = ""
    system_prompt: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # only the SamplingSettings it sets
    few_shot: list[tuple[str, str]] = field(default_factory=list)  # (user, assistant) examples
    builtin: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The stored/exported form; ``builtin`` is left out because only this program's
        own list can make a preset built-in, never a file."""
        return {
            "name": self.name,
            "description": self.description,
            "system_prompt": self.system_prompt,
            "settings": dict(self.settings),
            "few_shot": [[user, assistant] for user, assistant in self.few_shot],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Preset:
        """A user preset from stored or imported data; raises PresetError naming the first problem."""
        if not isinstance(data, dict):
            raise PresetError("A preset must be an object with a name and settings.")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PresetError("A preset has no name.")
        name = name.strip()
        where = f"Preset “{name}”"
        if len(name) > MAX_NAME_LENGTH:
            raise PresetError(f"{where}: the name is longer than {MAX_NAME_LENGTH} characters.")
        description = data.get("description", "")
        system_prompt = data.get("system_prompt", "")
        if not isinstance(description, str):
            raise PresetError(f"{where}: the description must be text.")
        if not isinstance(system_prompt, str):
            raise PresetError(f"{where}: the system prompt must be text.")
        raw_settings = data.get("settings", {})
        if not isinstance(raw_settings, dict):
            raise PresetError(f"{where}: “settings” must be an object of setting names and values.")
        settings: dict[str, Any] = {}
        for key, value in raw_settings.items():
            if key not in _SETTING_TYPES:
                continue  # written by another version; the rest of the preset still applies
            problem = _type_problem(_SETTING_TYPES[key], value)
            if problem:
                raise PresetError(f"{where}: {key} {problem}.")
            settings[key] = list(value) if key == "stop" else value
        problems = replace(SamplingSettings(), **settings).validate()
        if problems:
            raise PresetError(f"{where}: {problems[0].message}")
        raw_shots = data.get("few_shot", [])
        if not isinstance(raw_shots, list):
            raise PresetError(f"{where}: “few_shot” must be a list of [user, assistant] pairs.")
        few_shot: list[tuple[str, str]] = []
        for pair in raw_shots:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(part, str) for part in pair):
                raise PresetError(f"{where}: each example must be a pair of texts [user, assistant].")
            few_shot.append((pair[0], pair[1]))
        return cls(name, description, system_prompt, settings, few_shot, builtin=False)


def _cleaned(preset: Preset) -> Preset:
    """Lone surrogates (broken UTF-16 escapes in a file) become U+FFFD: the presets file is
    UTF-8 and could not be written with them, after the import had been reported done."""
    settings = dict(preset.settings)
    if "stop" in settings:
        settings["stop"] = [clean_text(s) for s in settings["stop"]]
    return replace(
        preset,
        name=clean_text(preset.name),
        description=clean_text(preset.description),
        system_prompt=clean_text(preset.system_prompt),
        settings=settings,
        few_shot=[(clean_text(u), clean_text(a)) for u, a in preset.few_shot],
    )


def _type_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not of the expected ``kind``, or None when it is."""
    # bounded: a huge int overflows math.isfinite, a spin box and int(float)
    if kind == "number" and not is_number(value):
        return "must be a number"
    if kind == "int" and not (is_int(value) and abs(value) <= SPIN_LIMIT):
        if isinstance(value, int) and not isinstance(value, bool):
            return f"must be a whole number between -{SPIN_LIMIT:,} and {SPIN_LIMIT:,}"
        return "must be a whole number"
    if kind == "int-or-null" and value is not None and not is_int(value):
        return "must be a whole number or null"
    if kind == "bool" and not isinstance(value, bool):
        return "must be true or false"
    if kind == "string" and not isinstance(value, str):
        return "must be text"
    if kind == "strings" and not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
        return "must be a list of text"
    if kind == "adapters" and not (
        isinstance(value, list)
        and all(isinstance(a, dict) and isinstance(a.get("path"), str) and is_number(a.get("scale")) for a in value)
    ):
        return "must be a list of {path, scale} objects"
    return None


def _key(name: str) -> str:
    """Names compare without case or surrounding spaces: “translate” must not shadow “Translate”."""
    return name.strip().casefold()


BUILTIN_PRESETS: tuple[Preset, ...] = (
    Preset(
        "General assistant",
        "Balanced everyday settings for questions, advice and conversation.",
        "You are a helpful, honest assistant. Answer clearly and concisely. "
        "If you are not sure of something, say so instead of guessing.",
        {},
        builtin=True,
    ),
    Preset(
        "Summarize",
        "Short, faithful bullet-point summaries of text you paste.",
        "You summarize text. Reply with a short summary of its main points as a few bullet points, "
        "in the same language as the text. Do not add anything that is not in the text.",
        {"temperature": 0.3, "top_p": 0.9, "repeat_penalty": 1.1},
        builtin=True,
    ),
    Preset(
        "Translate",
        "Faithful translation, with worked examples so the model answers with the translation only.",
        "You are a translator. Translate the user's text into the language they ask for "
        "(into English if they name none). Keep the meaning, tone and formatting. "
        "Reply with the translation only, without notes or explanations.",
        {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.0},
        few_shot=[
            ("Translate into French: Where is the train station?", "Où est la gare ?"),
            ("Translate into German: I would like a cup of tea, please.", "Ich hätte gern eine Tasse Tee, bitte."),
        ],
        builtin=True,
    ),
    Preset(
        "Write code",
        "Focused, low-randomness settings for writing code; no repetition penalty, since code repeats itself.",
        "You are an expert programmer. Write correct, idiomatic, well-structured code for what the "
        "user asks. Put code in fenced code blocks with the language name. State any assumptions "
        "briefly and keep explanations short.",
        {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.0, "max_tokens": 1024},
        builtin=True,
    ),
    Preset(
        "Explain code",
        "Step-by-step explanations of code you paste, pointing out bugs and edge cases.",
        "You explain code to a developer. First say in a sentence or two what the code does overall, "
        "then walk through the important parts step by step, quoting the lines you refer to. "
        "Point out bugs, edge cases and risky spots you notice. Use plain words.",
        {"temperature": 0.3, "top_p": 0.9, "repeat_penalty": 1.05, "max_tokens": 1024},
        builtin=True,
    ),
    Preset(
        "Creative writing",
        "Higher temperature for varied, surprising stories, poems and ideas.",
        "You are a creative writer. Write vivid, original prose or poetry in the form and style the "
        "user asks for. Prefer concrete detail to abstraction, show rather than tell, and avoid clichés.",
        {
            "temperature": 1.0,
            "top_p": 0.95,
            "min_p": 0.05,
            "repeat_penalty": 1.15,
            "presence_penalty": 0.3,
            "max_tokens": 1024,
        },
        builtin=True,
    ),
    Preset(
        "Precise answers",
        "Low temperature for factual, repeatable answers.",
        "Answer precisely and factually. Give the direct answer first, then only the essential detail. "
        "If the question is ambiguous or you do not know the answer, say so.",
        {"temperature": 0.1, "top_p": 0.9, "top_k": 20, "min_p": 0.1},
        builtin=True,
    ),
)


def apply_preset(preset: Preset, base: SamplingSettings) -> SamplingSettings:
    """``base`` with the preset's values and system prompt laid over it (``base`` is not changed)."""
    values = {k: v for k, v in preset.settings.items() if k in _SETTING_TYPES}
    values["stop"] = list(values.get("stop", base.stop))  # never share the list with either side
    values["system_prompt"] = preset.system_prompt
    return replace(base, **values)


def few_shot_turns(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Example pairs as earlier chat turns, to go after the system message and before the
    conversation's own messages."""
    turns: list[dict[str, str]] = []
    for user, assistant in pairs:
        turns.append({"role": "user", "content": user})
        turns.append({"role": "assistant", "content": assistant})
    return turns


class PresetStore:
    """The built-in presets plus the user's own, kept in one JSON file.

    Every change is written at once (atomically) so a crash never loses a saved preset; a
    failed write leaves both the file and this object as they were.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._user: list[Preset] = []
        data = read_json(self.path, {})
        entries = data.get("presets", []) if isinstance(data, dict) else []
        seen: set[str] = set()
        for entry in entries if isinstance(entries, list) else []:
            try:
                preset = Preset.from_dict(entry)
            except PresetError:
                continue  # one damaged entry must not cost the user all the others
            if _key(preset.name) in seen or self._builtin(preset.name):
                continue
            seen.add(_key(preset.name))
            self._user.append(preset)

    # -- reading ---------------------------------------------------------------------------

    def list(self) -> list[Preset]:
        """Built-ins first (in their fixed order), then the user's presets in the order saved."""
        return [*BUILTIN_PRESETS, *self._user]

    def get(self, name: str) -> Preset | None:
        key = _key(name)
        return next((p for p in self.list() if _key(p.name) == key), None)

    # -- changing --------------------------------------------------------------------------

    def save(self, preset: Preset) -> Preset:
        """Add a new user preset, or replace the user preset of the same name."""
        if self._builtin(preset.name):
            raise PresetError(
                f"“{preset.name.strip()}” is a built-in preset and cannot be changed. "
                "Save your version under another name."
            )
        stored = Preset.from_dict(preset.to_dict())  # validates, and detaches from the caller's object
        users = list(self._user)
        index = self._user_index(stored.name)
        if index is None:
            users.append(stored)
        else:
            users[index] = stored
        self._write(users)
        return stored

    def duplicate(self, name: str, new_name: str | None = None) -> Preset:
        """A user copy of any preset (built-ins included: this is how one changes a built-in)."""
        original = self.get(name)
        if original is None:
            raise PresetError(f"There is no preset called “{name}”.")
        if new_name is None:
            new_name = self._unique_name(f"{original.name} (copy)")
        elif self.get(new_name) is not None:
            raise PresetError(f"A preset called “{new_name.strip()}” already exists.")
        copy = replace(
            original, name=new_name, builtin=False, settings=dict(original.settings), few_shot=list(original.few_shot)
        )
        return self.save(copy)

    def delete(self, name: str) -> None:
        if self._builtin(name):
            raise PresetError(f"“{name.strip()}” is a built-in preset and cannot be deleted.")
        index = self._user_index(name)
        if index is None:
            raise PresetError(f"There is no preset called “{name}”.")
        users = list(self._user)
        del users[index]
        self._write(users)

    # -- files -----------------------------------------------------------------------------

    def export_json(self, presets: Iterable[Preset] | None = None) -> str:
        """Presets as JSON text for the user to keep or share (default: all user presets)."""
        chosen = list(self._user if presets is None else presets)
        return json.dumps(
            {"format": FORMAT, "version": FORMAT_VERSION, "presets": [p.to_dict() for p in chosen]},
            indent=2,
            ensure_ascii=False,
        )

    def import_json(self, text: str) -> builtins.list[Preset]:
        """Add the presets in ``text``; all or nothing.

        Every preset is checked before any is saved, so a file with one bad entry imports
        nothing and the error names the problem. A preset identical to one already here is
        skipped (importing the same file twice adds nothing); one whose name is taken by a
        different preset is renamed, so an import never overwrites anything.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PresetError(f"This is not a presets file: it is not valid JSON ({exc}).") from None
        except RecursionError:
            raise PresetError("This is not a presets file: it is nested too deeply.") from None
        if isinstance(data, dict) and "presets" in data:
            if data.get("format", FORMAT) != FORMAT:
                raise PresetError("This is not a Hearth presets file.")
            version = data.get("version", FORMAT_VERSION)
            if isinstance(version, int) and version > FORMAT_VERSION:
                raise PresetError("This presets file was written by a newer version of Hearth.")
            entries = data["presets"]
        elif isinstance(data, list):
            entries = data
        else:
            raise PresetError("This is not a presets file: it has no list of presets.")
        if not isinstance(entries, list):
            raise PresetError("This is not a presets file: “presets” is not a list.")
        parsed: list[Preset] = []
        for number, entry in enumerate(entries, 1):
            try:
                parsed.append(_cleaned(Preset.from_dict(entry)))
            except PresetError as exc:
                raise PresetError(f"Nothing was imported. Preset {number} in the file: {exc}") from None

        users = list(self._user)
        imported: list[Preset] = []
        taken = {_key(p.name) for p in BUILTIN_PRESETS} | {_key(p.name) for p in users}
        for preset in parsed:
            if any(
                _same_content(preset, existing)
                for existing in (*BUILTIN_PRESETS, *users)
                if _key(existing.name) == _key(preset.name)
            ):
                continue
            if _key(preset.name) in taken:
                preset = replace(preset, name=_unique(f"{preset.name} (imported)", taken))
            taken.add(_key(preset.name))
            users.append(preset)
            imported.append(preset)
        if imported:
            self._write(users)
        return imported

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _builtin(name: str) -> bool:
        return any(_key(p.name) == _key(name) for p in BUILTIN_PRESETS)

    def _user_index(self, name: str) -> int | None:
        key = _key(name)
        return next((i for i, p in enumerate(self._user) if _key(p.name) == key), None)

    def _unique_name(self, wanted: str) -> str:
        return _unique(wanted, {_key(p.name) for p in self.list()})

    def _write(self, users: builtins.list[Preset]) -> None:
        try:
            write_json(
                self.path, {"format": FORMAT, "version": FORMAT_VERSION, "presets": [p.to_dict() for p in users]}
            )
        except OSError as exc:
            raise PresetError(f"Could not save presets to {self.path}: {exc.strerror or exc}.") from None
        self._user = users


def _same_content(a: Preset, b: Preset) -> bool:
    return a.to_dict() | {"name": ""} == b.to_dict() | {"name": ""} and _key(a.name) == _key(b.name)


def _unique(wanted: str, taken: set[str]) -> str:
    name, n = wanted, 2
    while _key(name) in taken:
        name = f"{wanted} {n}"
        n += 1
    return name


# --- chain of thought ----------------------------------------------------------------------

COT_INSTRUCTION = (
    "Before answering, think the problem through step by step inside <think> and </think> tags. "
    "Then, after the closing </think> tag, give your final answer without repeating the reasoning."
)

_OPEN, _CLOSE = "<think>", "</think>"


def effective_system_prompt(settings: SamplingSettings) -> str:
    """The system prompt to send: the user's, plus :data:`COT_INSTRUCTION` when
    chain-of-thought is on."""
    prompt = settings.system_prompt.strip()
    if not settings.chain_of_thought:
        return settings.system_prompt
    return f"{prompt}\n\n{COT_INSTRUCTION}" if prompt else COT_INSTRUCTION


def split_reasoning(text: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` from a reply that may start with ``<think>…</think>``.

    Works on a reply still streaming: an unclosed ``<think>`` means everything so far is
    reasoning and the answer is still empty. Some reasoning models' templates put the
    opening tag in the prompt, so a reply with only a closing ``</think>`` counts too.
    Reasoning is None when the reply has none; a ``<think>`` later in the text (say, in an
    answer about the tag) is left alone.
    """
    stripped = text.lstrip()
    if stripped.startswith(_OPEN):
        body = stripped[len(_OPEN) :]
        end = body.find(_CLOSE)
        if end < 0:
            # Streaming: hide a closing tag that has only partly arrived ("</thi").
            for cut in range(len(_CLOSE) - 1, 0, -1):
                if body.endswith(_CLOSE[:cut]):
                    body = body[:-cut]
                    break
            return body.strip(), ""
        return body[:end].strip(), body[end + len(_CLOSE) :].lstrip()
    end = text.find(_CLOSE)
    if end >= 0 and _OPEN not in text[:end]:
        return text[:end].strip(), text[end + len(_CLOSE) :].lstrip()
    return None, text


def export_presets_file(store: PresetStore, path: str | os.PathLike[str]) -> int:
    """Write the user's presets to ``path`` (atomically); returns how many."""
    from app.core.export import ExportError  # noqa: PLC0415 - shared plain-words I/O error

    text = store.export_json()
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"Could not save {target.name}: {exc.strerror or exc}.") from exc
    return len(json.loads(text).get("presets", []))


def import_presets_file(store: PresetStore, path: str | os.PathLike[str]) -> list[Preset]:
    """Add the presets from a file; all or nothing (PresetError says what is wrong)."""
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_PRESETS_FILE + 1)
        if len(raw) > MAX_PRESETS_FILE:
            raise PresetError(f"{Path(path).name} is too large to be a presets file.")
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"Could not read {Path(path).name}: {exc}") from exc
    return store.import_json(text)


#: A presets file is a few kilobytes; reading more than this would only waste memory.
MAX_PRESETS_FILE = 16 << 20
