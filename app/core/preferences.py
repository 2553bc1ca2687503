"""App preferences: how Hearth looks and behaves for this person, whatever the conversation.

Kept apart from :mod:`app.core.config` (which remembers state such as the last model and the
window layout) because these are choices the user makes in the Preferences dialog, checked
like any other input before they are used.

The file is read tolerantly: a missing, damaged or older/newer file never stops the app.
Each value that is missing or of the wrong kind falls back to its default on its own, so one
hand-edited mistake does not throw away the other choices. A models folder that is merely
unavailable right now (an unplugged drive) is *kept* on load, so the choice survives until the
drive is back; :meth:`Preferences.validate` reports it, and :meth:`Preferences.usable_models_dir`
tells the caller whether to use it or fall back to the default folder.

API: ``THEMES``, ``SEND_WITH``, ``MIN_FONT_SIZE``/``MAX_FONT_SIZE``, ``MAX_PARALLEL_DOWNLOADS``;
``Preferences`` (+ ``validate() -> list[Problem]``, ``usable_models_dir() -> Path | None``,
``to_dict()``, ``from_dict(data)``); ``PreferencesError``; ``PreferencesStore(path=None)`` with
``path``, ``load() -> Preferences``, ``save(prefs)``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from app import paths
from app.core.jsonfile import read_json, write_json
from app.core.settings import Problem

# Stored values: never reuse or rename one (files written by older versions hold them).
THEMES = ("system", "light", "dark")
SEND_WITH = ("enter", "ctrl+enter")
MIN_FONT_SIZE = 8
MAX_FONT_SIZE = 32
MAX_PARALLEL_DOWNLOADS = 4
FILE_VERSION = 1


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but JSON ``true`` is not a font size.
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Preferences:
    theme: str = "system"  # one of THEMES
    chat_font_size: int = 11  # points
    send_with: str = "enter"  # one of SEND_WITH; Shift+Enter always adds a line
    default_model: str | None = None  # a model's path; None: the last one used
    default_preset: str | None = None  # a preset's name for new conversations; None: none
    models_dir: str | None = None  # None: the platform default (app.paths.models_dir())
    max_parallel_downloads: int = 1

    def validate(self) -> list[Problem]:
        """Every problem at once, in plain words, so the dialog can mark all bad fields.

        Includes whether the models folder exists and can be written to right now, which
        is why this touches the file system (a couple of stat calls, nothing written).
        """
        problems = self._shape_problems()
        if not any(p.field == "models_dir" for p in problems):
            message = _folder_problem(self.models_dir)
            if message:
                problems.append(Problem("models_dir", message))
        return problems

    def usable_models_dir(self) -> Path | None:
        """The chosen models folder when it is set and usable now; None means "use the
        default folder" (either none was chosen or the chosen one is unavailable)."""
        if self.models_dir is None or any(p.field == "models_dir" for p in self.validate()):
            return None
        return Path(self.models_dir).expanduser()

    def _shape_problems(self) -> list[Problem]:
        """Problems with the values themselves, whatever the state of the disk: these are
        the ones that make a stored value fall back to its default."""
        problems: list[Problem] = []

        def bad(name: str, message: str) -> None:
            problems.append(Problem(name, message))

        if self.theme not in THEMES:
            bad("theme", "Theme must be System, Light or Dark.")
        if not _is_int(self.chat_font_size):
            bad("chat_font_size", "Chat font size must be a whole number of points.")
        elif not MIN_FONT_SIZE <= self.chat_font_size <= MAX_FONT_SIZE:
            bad("chat_font_size", f"Chat font size must be between {MIN_FONT_SIZE} and {MAX_FONT_SIZE} points.")
        if self.send_with not in SEND_WITH:
            bad("send_with", "Send with must be Enter or Ctrl+Enter.")
        if self.default_model is not None and (not isinstance(self.default_model, str) or not self.default_model):
            bad("default_model", "The default model must be a model file, or none.")
        if self.default_preset is not None and (
            not isinstance(self.default_preset, str) or not self.default_preset.strip()
        ):
            bad("default_preset", "The default preset must be a preset's name, or none.")
        if self.models_dir is not None:
            if not isinstance(self.models_dir, str) or not self.models_dir.strip():
                bad("models_dir", "Choose a folder for models, or leave it empty to use the default folder.")
            elif not Path(self.models_dir).expanduser().is_absolute():
                # A relative path would mean a different folder depending on where Hearth starts.
                bad("models_dir", "Give the models folder's full path (for example, choose it with Browse…).")
        if not _is_int(self.max_parallel_downloads):
            bad("max_parallel_downloads", "Downloads at once must be a whole number.")
        elif not 1 <= self.max_parallel_downloads <= MAX_PARALLEL_DOWNLOADS:
            bad("max_parallel_downloads", f"Downloads at once must be between 1 and {MAX_PARALLEL_DOWNLOADS}.")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Preferences:
        """Preferences from stored data: each missing or invalid value gets its default on its
        own, keys a newer or older version wrote are ignored, and anything that is not an
        object gives all defaults. Never raises."""
        prefs = cls()
        if not isinstance(data, dict):
            return prefs
        for f in fields(cls):
            if f.name not in data:
                continue
            candidate = cls(**{f.name: data[f.name]})
            if not any(p.field == f.name for p in candidate._shape_problems()):
                setattr(prefs, f.name, data[f.name])
        return prefs


def _folder_problem(folder: str | None) -> str | None:
    """Why ``folder`` cannot hold models now, or None when it can (or none is chosen)."""
    if folder is None:
        return None
    path = Path(folder).expanduser()
    try:
        if not path.exists():
            return f"The folder “{folder}” does not exist. Create it first, or choose another one."
        if not path.is_dir():
            return f"“{folder}” is a file, not a folder. Choose a folder for models."
    except OSError as exc:  # e.g. a network share that does not answer
        return f"Hearth cannot reach the folder “{folder}” ({exc.strerror or exc})."
    # os.access, not a trial write: this runs as the user types, and must not leave files
    # behind in every folder on the way to the one they mean.
    if not os.access(path, os.W_OK | os.X_OK):
        return f"Hearth is not allowed to save files in “{folder}”. Choose a folder you can write to."
    return None


class PreferencesError(Exception):
    """Preferences could not be saved; the message says why in plain words."""


class PreferencesStore:
    """The preferences file (JSON, written atomically) in the config folder."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else paths.config_dir() / "preferences.json"

    def load(self) -> Preferences:
        """The saved preferences; defaults for anything missing, damaged or unknown."""
        data = read_json(self.path, None)
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "version"}
        return Preferences.from_dict(data)

    def save(self, prefs: Preferences) -> None:
        """Write ``prefs``; raises PreferencesError for values that could not be read back
        (such a file would silently lose them) or when the disk refuses.

        A models folder that is unavailable right now is saved anyway: whether it is usable
        is checked each time it is used, not only when it was chosen.
        """
        problems = prefs._shape_problems()
        if problems:
            raise PreferencesError(problems[0].message)
        try:
            write_json(self.path, {"version": FILE_VERSION, **prefs.to_dict()})
        except OSError as exc:
            raise PreferencesError(
                f"Hearth could not save your preferences in {self.path.parent} ({exc.strerror or exc})."
            ) from exc
