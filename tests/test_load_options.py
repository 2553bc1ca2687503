"""Speed and memory options at load time (issue 16, point 2): flash attention, KV cache type,
mmap/mlock and prompt-lookup decoding, per model; they reach llama.cpp, a combination that
cannot load is refused, a load that fails with them falls back to the defaults and says so,
and the RAM estimate follows the context length and KV type."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from tiny_model import write_tiny_llama

from app.core import load_options as lo
from app.core.library import ModelDefaults, ModelInfo, ModelLibrary, ram_estimate, read_model
from app.engine import protocol as p
from app.engine.params import default_load_options, llama_kwargs


class _Pipe:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, event: object) -> None:
        self.sent.append(event)


# -- records and mapping (no llama.cpp) -----------------------------------------------------


def test_defaults_from_before_the_options_and_wrong_values_load_as_unset() -> None:
    old = ModelDefaults.from_dict({"n_ctx": 2048, "system_prompt": "Hi"})
    assert old.flash_attn is None and old.kv_cache_type is None and old.use_mmap is None
    assert old.load_options() == {
        "flash_attn": "auto",
        "kv_cache_type": "f16",
        "use_mmap": True,
        "use_mlock": False,
        "prompt_lookup": False,
    }
    wrong = ModelDefaults.from_dict(
        {"flash_attn": "sometimes", "kv_cache_type": 8, "use_mmap": "no", "use_mlock": 1, "prompt_lookup": None}
    )
    assert wrong == ModelDefaults()
    kept = ModelDefaults.from_dict({"flash_attn": "on", "kv_cache_type": "q4_0", "use_mmap": False})
    assert (kept.flash_attn, kept.kv_cache_type, kept.use_mmap) == ("on", "q4_0", False)
    assert ModelDefaults.from_dict(kept.to_dict()) == kept


def test_a_quantized_cache_without_flash_attention_is_refused_and_never_sent(tmp_path: Path) -> None:
    clash = ModelDefaults(flash_attn="off", kv_cache_type="q8_0")
    assert [pr.field for pr in clash.validate()] == ["kv_cache_type"]
    assert not ModelDefaults(flash_attn="auto", kv_cache_type="q8_0").validate()
    library = ModelLibrary()
    info = library.add_file(write_tiny_llama(tmp_path / "t.gguf"))
    with pytest.raises(Exception, match="needs flash attention"):
        library.set_defaults(info.path, clash)
    # even if such a request were built, the engine gets an f16 cache
    kwargs = llama_kwargs(p.Load("m.gguf", flash_attn="off", kv_cache_type="q8_0"))
    assert kwargs["type_k"] == kwargs["type_v"] == 1 and kwargs["flash_attn_type"] == 0


def test_options_map_to_llama_arguments() -> None:
    kwargs = llama_kwargs(p.Load("m.gguf"))
    assert kwargs["flash_attn_type"] == -1  # LLAMA_FLASH_ATTN_TYPE_AUTO (the bool alone says off)
    assert (kwargs["type_k"], kwargs["use_mmap"], kwargs["use_mlock"]) == (1, True, False)
    kwargs = llama_kwargs(p.Load("m.gguf", flash_attn="on", kv_cache_type="q4_0", use_mmap=False, use_mlock=True))
    assert (kwargs["flash_attn_type"], kwargs["flash_attn"], kwargs["type_k"], kwargs["type_v"]) == (1, True, 2, 2)
    assert (kwargs["use_mmap"], kwargs["use_mlock"]) == (False, True)
    assert default_load_options(p.Load("m.gguf", kv_cache_type="q8_0", prompt_lookup=True)) == p.Load("m.gguf")


def test_ram_estimate_follows_context_and_kv_type(tmp_path: Path) -> None:
    info = read_model(write_tiny_llama(tmp_path / "t.gguf", n_ctx_train=8192))
    per_token = info.kv_bytes_per_token or 0
    assert per_token > 0
    estimates = {}
    for kv in ("f16", "q8_0", "q4_0"):
        info.defaults = ModelDefaults(n_ctx=4096, kv_cache_type=kv)
        estimates[kv] = ram_estimate(info)
    assert estimates["f16"] - estimates["q8_0"] == pytest.approx(per_token * 4096 * (1 - 34 / 64), abs=2)
    assert estimates["f16"] - estimates["q4_0"] == pytest.approx(per_token * 4096 * (1 - 18 / 64), abs=2)
    info.defaults = ModelDefaults(n_ctx=8192, kv_cache_type="q8_0")
    assert ram_estimate(info) - estimates["q8_0"] == pytest.approx(per_token * 4096 * 34 / 64, abs=2)
    # prompt lookup keeps float32 logits for every token of the context
    from tiny_model import N_VOCAB

    assert info.vocab_size == N_VOCAB
    info.defaults = ModelDefaults(n_ctx=4096, prompt_lookup=True)
    assert ram_estimate(info) - estimates["f16"] == 4096 * N_VOCAB * 4
    # a record stored before the vocabulary size was kept still loads (without that term)
    raw = info.to_dict()
    del raw["vocab_size"]
    old = ModelInfo.from_dict(raw)
    assert old is not None and old.vocab_size is None and ram_estimate(old) == estimates["f16"]


def test_mlock_is_refused_with_the_reason_when_the_limit_is_too_low(monkeypatch) -> None:
    import resource

    monkeypatch.setattr(lo, "_has_ipc_lock", lambda: False)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (8 * 1024 * 1024, 8 * 1024 * 1024))
    reason = lo.mlock_problem(100 * 1024 * 1024)
    assert reason is not None and "8 MiB" in reason and "RLIMIT_MEMLOCK" in reason
    assert lo.mlock_problem(1024 * 1024) is None
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert lo.mlock_problem(100 * 1024 * 1024) is None
    monkeypatch.setattr(lo, "_has_ipc_lock", lambda: True)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (0, 0))
    assert lo.mlock_problem(100 * 1024 * 1024) is None


# -- the editor (Manage models > Defaults for this model) -------------------------------------


def test_the_editor_saves_the_options_and_refuses_a_clash(qtbot, tmp_path: Path, monkeypatch) -> None:
    from app.ui.models_dialog import ModelsDialog

    library = ModelLibrary()
    info = library.add_file(write_tiny_llama(tmp_path / "t.gguf"))
    dialog = ModelsDialog(library)
    qtbot.addWidget(dialog)
    assert dialog.select_path(info.path)
    editor = dialog.load_options
    for control in (editor.flash_combo, editor.kv_combo, editor.mmap_check, editor.mlock_check, editor.lookup_check):
        assert control.accessibleName() and control.toolTip() and control.focusPolicy() != 0
    assert editor.flash_combo.currentData() == "auto" and editor.kv_combo.currentData() == "f16"
    assert editor.mmap_check.isChecked() and not editor.mlock_check.isChecked()

    editor.flash_combo.setCurrentIndex(editor.flash_combo.findData("off"))
    kv_items = editor.kv_combo.model()
    assert not kv_items.item(editor.kv_combo.findData("q8_0")).isEnabled()  # greyed out with flash off
    editor.kv_combo.setCurrentIndex(editor.kv_combo.findData("q8_0"))  # still possible from code
    assert "needs flash attention" in editor.note.text()
    dialog.save_defaults()
    assert "needs flash attention" in dialog.message.text()
    assert library.get(info.path).defaults.kv_cache_type is None  # nothing was saved

    editor.flash_combo.setCurrentIndex(editor.flash_combo.findData("auto"))
    assert kv_items.item(editor.kv_combo.findData("q8_0")).isEnabled()
    editor.mmap_check.setChecked(False)
    editor.lookup_check.setChecked(True)
    before = dialog.model.data(dialog.model.index(0, 0))  # the table is redrawn from the library
    dialog.save_defaults()
    saved = library.get(info.path).defaults
    assert (saved.flash_attn, saved.kv_cache_type, saved.use_mmap, saved.prompt_lookup) == (None, "q8_0", False, True)
    assert before is not None

    # mlock that this system would not allow is disabled, with the reason
    monkeypatch.setattr(lo, "mlock_problem", lambda size: "only 8 MiB may be locked")
    dialog._load_defaults_editor()
    assert not editor.mlock_check.isEnabled() and "8 MiB" in editor.mlock_check.toolTip()
    assert editor.kv_combo.currentData() == "q8_0" and not editor.mmap_check.isChecked()  # shown as saved


# -- through the real engine ---------------------------------------------------------------------


@pytest.fixture
def server():
    from app.engine.child import _Server

    pipe = _Pipe()
    srv = _Server(pipe, threading.Event())  # type: ignore[arg-type]
    yield srv, pipe
    srv.shutdown()


def _text(pipe: _Pipe) -> tuple[str, p.Done]:
    deltas = [e.text for e in pipe.sent if isinstance(e, p.Delta)]
    done = pipe.sent[-1]
    assert isinstance(done, p.Done), done
    return "".join(deltas), done


@pytest.mark.model
def test_the_options_reach_llama_cpp(server, demo_model: Path) -> None:
    srv, pipe = server
    srv.handle(p.Load(str(demo_model), n_ctx=512, n_threads=1))
    assert isinstance(pipe.sent[-1], p.Loaded)
    ctx, model = srv.llm.context_params, srv.llm.model_params
    assert (ctx.flash_attn_type, ctx.type_k, ctx.type_v) == (-1, 1, 1)  # auto, f16
    assert (model.load_mode, srv.llm.draft_model) == (1, None)  # LLAMA_LOAD_MODE_MMAP
    srv.handle(p.Load(str(demo_model), n_ctx=512, n_threads=1, use_mlock=True))
    assert srv.llm.model_params.load_mode == 3  # LLAMA_LOAD_MODE_MMAP_MLOCK

    srv.handle(
        p.Load(
            str(demo_model),
            n_ctx=512,
            n_threads=1,
            flash_attn="on",
            kv_cache_type="q8_0",
            use_mmap=False,
            prompt_lookup=True,
        )
    )
    loaded = pipe.sent[-1]
    assert isinstance(loaded, p.Loaded) and not loaded.fallback_notice
    ctx, model = srv.llm.context_params, srv.llm.model_params
    assert (ctx.flash_attn_type, ctx.type_k, ctx.type_v) == (1, 8, 8)
    assert model.load_mode == 0  # LLAMA_LOAD_MODE_NONE: read, not mapped
    assert type(srv.llm.draft_model).__name__ == "LlamaPromptLookupDecoding"

    # With prompt lookup the reply still streams, stops at a stop sequence and keeps to a format.
    pipe.sent.clear()
    ask = [{"role": "user", "content": "List five fruits, one per line."}]
    srv.handle(p.Chat(ask, {"max_tokens": 40, "temperature": 0.0, "seed": 1}))
    full, _ = _text(pipe)
    assert sum(isinstance(e, p.Delta) for e in pipe.sent) > 3
    pipe.sent.clear()
    srv.handle(p.Chat(ask, {"max_tokens": 40, "temperature": 0.0, "seed": 1, "stop": ["\n"]}))
    stopped, done = _text(pipe)
    assert "\n" not in stopped and done.reason == "stop" and full.startswith(stopped)
    pipe.sent.clear()
    schema = {"type": "object", "properties": {"fruit": {"type": "string"}}, "required": ["fruit"]}
    settings = {
        "max_tokens": 60,
        "temperature": 0.0,
        "seed": 1,
        "response_format": "json_schema",
        "json_schema": json.dumps(schema),
    }
    srv.handle(p.Chat([{"role": "user", "content": "Name a fruit as JSON."}], settings))
    text, done = _text(pipe)
    if done.reason == "stop":
        assert isinstance(json.loads(text)["fruit"], str)
    else:  # cut at max_tokens: still on the grammar's path
        assert text.lstrip().startswith('{"fruit"') or text.lstrip().startswith('{ "fruit"')


@pytest.mark.model
def test_a_load_that_fails_with_an_option_falls_back_to_the_defaults(server, tiny_model: Path) -> None:
    """The tiny model's attention heads (16 wide) are narrower than a q8_0 block (32): llama.cpp
    cannot create a quantized cache for it, a real failure of that option alone."""
    srv, pipe = server
    srv.handle(p.Load(str(tiny_model), n_ctx=256, n_threads=1, kv_cache_type="q8_0"))
    loaded = pipe.sent[-1]
    assert isinstance(loaded, p.Loaded)
    assert "KV cache q8_0" in loaded.fallback_notice and "default" in loaded.fallback_notice
    assert srv.llm.context_params.type_v == 1  # the default f16 cache
    pipe.sent.clear()
    srv.handle(p.Chat([{"role": "user", "content": "Hi"}], {"max_tokens": 4, "temperature": 0.0, "seed": 1}))
    assert isinstance(pipe.sent[-1], p.Done)
    # a model that cannot load at all still says so (no fallback to pretend otherwise)
    bad = tiny_model.parent / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    srv.handle(p.Load(str(bad), n_ctx=256, n_threads=1, kv_cache_type="q8_0"))
    assert isinstance(pipe.sent[-1], p.Error)


@pytest.mark.model
def test_the_window_says_when_it_fell_back_and_still_answers(qtbot, open_main_window, tiny: Path) -> None:
    from app.session import EngineState

    window = open_main_window()
    session = window.session
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)
    small = session.add_model(str(tiny))
    assert small is not None
    session.library.set_defaults(small.path, ModelDefaults(kv_cache_type="q8_0"))
    notices: list[str] = []
    session.infoMessage.connect(notices.append)
    session.select_model(small.path)
    qtbot.waitUntil(lambda: session.state is EngineState.READY and bool(notices), timeout=60_000)
    assert any("could not load with KV cache q8_0" in n for n in notices)
    assert window.info_bar.isVisible()
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        window.input.setPlainText("Hello")
        window.send_current()
    assert finished.args[0].model == small.name


@pytest.mark.model
def test_the_ram_estimate_matches_the_engines_measured_memory(demo_model: Path) -> None:
    """bench/memory.py's measurement, at one context and two KV types: the estimate is within
    15 % of the engine child's resident memory, and the q8_0 cache saves what it predicts."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from memory import estimate, measure

    measured = {kv: measure(demo_model, 4096, kv, threads=1) for kv in ("f16", "q8_0")}
    for kv, got in measured.items():
        assert estimate(demo_model, 4096, kv) / got == pytest.approx(1.0, abs=0.15), kv
    saved = measured["f16"] - measured["q8_0"]
    predicted = estimate(demo_model, 4096, "f16") - estimate(demo_model, 4096, "q8_0")
    assert saved == pytest.approx(predicted, rel=0.3)


def test_every_path_loads_a_model_with_its_own_defaults(tmp_path) -> None:
    """The window, an API or compare switch (the catalog's Load), ``hearth serve`` and the
    benchmark build the Load from one function: the model's context, template, projector and
    speed options reach the engine whichever asked."""
    from app.core.library import ModelDefaults, ModelInfo
    from app.core.settings import LoadSettings
    from app.engine.params import load_request
    from app.serve import load_request as serve_load

    model = ModelInfo(path=str(tmp_path / "m.gguf"), name="m", size=1, context_length=2048)
    model.projector = str(tmp_path / "mmproj-m.gguf")
    model.defaults = ModelDefaults(n_ctx=1024, chat_template="chatml", kv_cache_type="q8_0", prompt_lookup=True)
    for load in (load_request(model, LoadSettings(n_ctx=8192, n_threads=3)), serve_load(model)):
        assert (load.n_ctx, load.chat_template, load.kv_cache_type, load.prompt_lookup) == (
            1024,
            "chatml",
            "q8_0",
            True,
        )
        assert load.mmproj_path == model.projector
    model.defaults = ModelDefaults()
    assert load_request(model, LoadSettings(n_ctx=8192)).n_ctx == 2048  # capped at what it was trained for
    assert load_request(model, LoadSettings(n_ctx=8192), loras=(("a.gguf", 0.5),)).loras == (("a.gguf", 0.5),)
