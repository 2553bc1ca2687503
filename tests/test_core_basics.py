"""Paths, settings validation, the settings → llama.cpp mapping, the library and layering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app import paths
from app.core.config import AppConfig
from app.core.library import ModelLibrary
from app.core.settings import LoadSettings, SamplingSettings
from app.engine.params import completion_kwargs, llama_kwargs
from app.engine.protocol import Load


def test_data_dir_option_puts_everything_under_one_folder(tmp_path: Path) -> None:
    paths.set_root(tmp_path / "portable")
    for folder in (paths.data_dir(), paths.config_dir(), paths.cache_dir(), paths.log_dir(), paths.models_dir()):
        assert folder.is_dir()
        assert tmp_path / "portable" in folder.parents


def test_hearth_home_environment_variable(tmp_path: Path, monkeypatch) -> None:
    paths.set_root(None)
    monkeypatch.setenv("HEARTH_HOME", str(tmp_path / "env-home"))
    assert paths.data_dir() == (tmp_path / "env-home" / "data").resolve()


def test_default_settings_are_valid_and_bad_values_are_explained() -> None:
    assert SamplingSettings().validate(4096) == []
    bad = SamplingSettings(temperature=-1, top_p=0, top_k=-3, max_tokens=9000, stop=["", "x"], seed=-5)
    fields = {p.field for p in bad.validate(n_ctx=4096)}
    assert fields == {"temperature", "top_p", "top_k", "max_tokens", "stop", "seed"}
    assert all(p.message.endswith(".") for p in bad.validate(4096))


def test_settings_reach_llama_cpp_arguments() -> None:
    s = SamplingSettings(
        temperature=0.2,
        top_p=0.5,
        top_k=7,
        min_p=0.1,
        repeat_penalty=1.3,
        presence_penalty=0.4,
        frequency_penalty=0.6,
        max_tokens=33,
        stop=["\n\n"],
        seed=42,
    )
    kw = completion_kwargs(s)
    assert kw == {
        "temperature": 0.2,
        "top_p": 0.5,
        "top_k": 7,
        "min_p": 0.1,
        "repeat_penalty": 1.3,
        "presence_penalty": 0.4,
        "frequency_penalty": 0.6,
        "max_tokens": 33,
        "stop": ["\n\n"],
        "seed": 42,
    }
    assert isinstance(completion_kwargs(SamplingSettings(seed=None))["seed"], int)
    lk = llama_kwargs(Load("/m.gguf", n_ctx=256, n_threads=1, n_batch=512))
    assert lk["n_ctx"] == 256 and lk["n_threads"] == 1 and lk["n_batch"] == 256 and lk["verbose"] is False
    assert SamplingSettings.from_dict({**s.to_dict(), "unknown_future_key": 1}) == s
    assert LoadSettings().n_ctx > 0


def test_first_start_registers_the_demo_model(demo_model: Path) -> None:
    library = ModelLibrary()
    info = library.ensure_demo_model()
    assert info is not None and Path(info.path) == demo_model
    assert info.quantization == "Q4_1" and info.architecture == "llama" and info.has_chat_template
    assert "SmolLM2" in info.label() and "Q4_1" in info.label()
    # stored, and not registered twice
    again = ModelLibrary()
    assert [m.path for m in again.models()] == [info.path]
    assert again.ensure_demo_model() is None
    assert len(json.loads((paths.data_dir() / "models.json").read_text())["models"]) == 1


def test_adding_the_same_file_twice_keeps_one_entry(demo_model: Path) -> None:
    library = ModelLibrary()
    library.add_file(demo_model)
    library.add_file(str(demo_model))
    assert len(library.models()) == 1


def test_config_survives_a_restart() -> None:
    AppConfig().set("last_model", "/x.gguf")
    assert AppConfig().get("last_model") == "/x.gguf"


def test_gui_process_modules_do_not_import_llama_cpp() -> None:
    code = (
        "import sys, app.application, app.session, app.ui.main_window, app.engine.worker, app.engine.client;"
        "assert 'llama_cpp' not in sys.modules, 'the GUI process imported llama_cpp'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
