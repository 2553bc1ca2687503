"""LoRA adapters (issue 16, point 3): the header checks, the library record, the settings and
records fields, and real llama.cpp applying tiny random adapters to the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_adapter import write_tiny_lora
from tiny_model import write_tiny_llama

from app.core.adapters import AdapterError, AdapterInfo, check_adapter, describe, enabled_for
from app.core.gguf import GGUFError
from app.core.library import ModelLibrary, read_model
from app.core.records import RecordError, check_settings, check_stats
from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.client import EngineClient, EngineError

GREEDY = SamplingSettings(temperature=0.0, seed=1, max_tokens=16).to_dict()
MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def lora(tmp_path_factory) -> Path:
    return write_tiny_lora(tmp_path_factory.mktemp("lora") / "tiny-style.gguf")


# -- header checks -------------------------------------------------------------------------


def test_an_adapter_for_the_model_is_read(tiny_model: Path, lora: Path) -> None:
    info = check_adapter(lora, tiny_model)
    assert (info.name, info.architecture, info.rank, info.alpha, info.tensors) == ("tiny-style", "llama", 4, 4.0, 8)
    assert info.path == str(lora.resolve())


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"architecture": "qwen2"}, "is an adapter for qwen2 models, but tiny-llama is a llama model"),
        ({"n_embd": 128}, "was made for a model of other sizes: it expects blk.0.attn_q.weight to be 128×128"),
        ({"n_layer": 3}, "it changes layer 3, but tiny-llama has 2"),
        (
            {"n_ff": 256, "targets": ("ffn_up",)},
            "expects blk.0.ffn_up.weight to be 64×256, but in tiny-llama it is 64×128",
        ),
    ],
)
def test_a_mismatch_is_explained(tiny_model: Path, tmp_path: Path, kw: dict, words: str) -> None:
    bad = write_tiny_lora(tmp_path / "other.gguf", **kw)
    with pytest.raises(AdapterError) as caught:
        check_adapter(bad, tiny_model)
    assert str(caught.value).startswith("other.gguf ")
    assert words in str(caught.value)


def test_a_model_is_not_an_adapter_and_an_adapter_is_not_a_model(tiny_model: Path, lora: Path) -> None:
    with pytest.raises(AdapterError, match="is a model, not an adapter"):
        check_adapter(tiny_model, tiny_model)
    with pytest.raises(GGUFError, match="LoRA adapter, not a model"):
        read_model(lora)


# -- stored data ---------------------------------------------------------------------------


def test_the_library_keeps_adapters_per_model_and_reads_old_or_damaged_records(tiny: Path, lora: Path) -> None:
    library = ModelLibrary()
    model = library.add_file(tiny)
    library.add_adapter(model.path, check_adapter(lora, tiny))
    library.add_adapter(model.path, check_adapter(lora, tiny))  # once
    again = ModelLibrary().get(model.path)
    assert again is not None and [a.name for a in again.adapters] == ["tiny-style"]
    raw = json.loads(library.path.read_text())
    raw["models"][0]["adapters"] = [{"path": 3}, {"path": "/x/y.gguf", "rank": "four"}, "junk"]
    library.path.write_text(json.dumps(raw))
    damaged = ModelLibrary().get(model.path)
    assert damaged is not None and damaged.adapters == [AdapterInfo(path="/x/y.gguf", name="y")]
    del raw["models"][0]["adapters"]  # a record from before adapters
    library.path.write_text(json.dumps(raw))
    old = ModelLibrary().get(model.path)
    assert old is not None and old.adapters == []
    ModelLibrary().remove_adapter(model.path, "/x/y.gguf")


def test_settings_and_records_check_the_adapters_field() -> None:
    ok = {"adapters": [{"path": "/a.gguf", "scale": 0.5}]}
    assert check_settings(ok)[0] == ok
    assert SamplingSettings(adapters=[{"path": "/a.gguf", "scale": 11}]).validate()[0].field == "adapters"
    with pytest.raises(RecordError, match="adapters"):
        check_settings({"adapters": [{"path": "/a.gguf", "scale": "big"}]})
    clean, notes = check_settings({"adapters": "yes", "temperature": 0.3}, strict=False)
    assert clean == {"temperature": 0.3} and notes
    stats = {"adapters": [{"name": "style", "path": "/a.gguf", "scale": 1.0}]}
    assert check_stats(stats)[0] == stats
    assert describe(stats["adapters"]) == "style ×1"
    model = [AdapterInfo("/a.gguf", "a"), AdapterInfo("/b.gguf", "b")]
    assert enabled_for([{"path": "/b.gguf", "scale": 2}, {"path": "/other.gguf", "scale": 1}], model) == (
        ("/b.gguf", 2.0),
    )


# -- real llama.cpp ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    c = EngineClient()
    c.start()
    yield c
    c.stop()


def _reply(client: EngineClient, model: Path, loras: tuple = ()) -> str:
    loaded = client.load(p.Load(str(model), n_ctx=256, n_threads=1, loras=loras))
    assert loaded.loras == loras
    return "".join(e.text for e in client.chat(p.Chat(MESSAGES, GREEDY)) if isinstance(e, p.Delta))


@pytest.mark.model
def test_the_adapter_changes_the_output_with_its_scale(client: EngineClient, tiny_model: Path, lora: Path) -> None:
    plain = _reply(client, tiny_model)
    assert plain  # a random model still writes something in 16 tokens
    assert _reply(client, tiny_model, ((str(lora), 0.0),)) == plain
    half = _reply(client, tiny_model, ((str(lora), 0.5),))
    full = _reply(client, tiny_model, ((str(lora), 1.0),))
    assert half != plain and full != plain and full != half
    # two adapters at once (llama-cpp-python's Llama takes only one)
    other = write_tiny_lora(lora.with_name("second.gguf"), seed=7)
    both = _reply(client, tiny_model, ((str(lora), 1.0), (str(other), 1.0)))
    assert both not in (plain, full)
    assert _reply(client, tiny_model) == plain  # unloading the adapter gives the model back


@pytest.mark.model
def test_an_adapter_llama_cpp_refuses_is_a_load_error(client: EngineClient, tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "m.gguf")
    bad = write_tiny_lora(tmp_path / "wide.gguf", n_embd=128)
    with pytest.raises(EngineError, match="wide.gguf: llama.cpp could not load this LoRA adapter for m.gguf"):
        client.load(p.Load(str(model), n_ctx=256, n_threads=1, loras=((str(bad), 1.0),)))
    assert _reply(client, model)  # the engine is still usable


def test_a_preset_keeps_its_adapters_and_refuses_bad_ones() -> None:
    from app.core.presets import Preset, PresetError, apply_preset

    on = [{"path": "/a.gguf", "scale": 0.75}]
    preset = Preset.from_dict({"name": "Pirate", "settings": {"adapters": on}})
    assert apply_preset(preset, SamplingSettings()).adapters == on
    with pytest.raises(PresetError, match="adapters must be a list of"):
        Preset.from_dict({"name": "Bad", "settings": {"adapters": [{"path": "/a.gguf"}]}})
    with pytest.raises(PresetError, match="scale must be a number between -10 and 10"):
        Preset.from_dict({"name": "Loud", "settings": {"adapters": [{"path": "/a.gguf", "scale": 50}]}})
