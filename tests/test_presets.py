"""Settings validation, the settings → llama.cpp mapping, presets and chain-of-thought parsing."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.core import presets as presets_module
from app.core.presets import (
    BUILTIN_PRESETS,
    COT_INSTRUCTION,
    Preset,
    PresetError,
    PresetStore,
    apply_preset,
    effective_system_prompt,
    few_shot_turns,
    split_reasoning,
)
from app.core.settings import LoadSettings, SamplingSettings, escape_visible, unescape_visible
from app.engine.params import (
    apply_sampler_attributes,
    completion_kwargs,
    grammar_spec,
    llama_kwargs,
    sampler_attributes,
)
from app.engine.protocol import Load

# --- validation ----------------------------------------------------------------------------

anything_numeric = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**40), max_value=2**40),
)
whole = st.integers(min_value=-(2**40), max_value=2**40)

sampling_any = st.builds(
    SamplingSettings,
    temperature=anything_numeric,
    top_p=anything_numeric,
    top_k=whole,
    min_p=anything_numeric,
    repeat_penalty=anything_numeric,
    presence_penalty=anything_numeric,
    frequency_penalty=anything_numeric,
    max_tokens=whole,
    stop=st.lists(st.text(max_size=5), max_size=3),
    seed=st.one_of(st.none(), whole),
    system_prompt=st.text(max_size=20),
    last_n_tokens=whole,
    chain_of_thought=st.booleans(),
)


@hsettings(max_examples=300, deadline=None)
@given(s=sampling_any, n_ctx=st.one_of(st.none(), st.integers(min_value=1, max_value=2**20)))
def test_settings_that_validate_are_within_the_documented_ranges(s: SamplingSettings, n_ctx: int | None) -> None:
    if s.validate(n_ctx):
        return
    assert 0 <= s.temperature <= 5
    assert 0 < s.top_p <= 1
    assert s.top_k >= 0
    assert 0 <= s.min_p <= 1
    assert 0 < s.repeat_penalty <= 5
    assert -2 <= s.presence_penalty <= 2 and -2 <= s.frequency_penalty <= 2
    assert s.max_tokens >= 1 and s.last_n_tokens >= 0
    if n_ctx is not None:
        assert s.max_tokens <= n_ctx and s.last_n_tokens <= n_ctx
    assert all(stop != "" for stop in s.stop)
    assert s.seed is None or 0 <= s.seed < 2**32
    for name in ("temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty"):
        assert math.isfinite(getattr(s, name))


@hsettings(max_examples=200, deadline=None)
@given(s=sampling_any)
def test_settings_round_trip_through_dicts(s: SamplingSettings) -> None:
    back = SamplingSettings.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=True)))
    # NaN != NaN, so compare the JSON text instead of the objects
    assert json.dumps(back.to_dict(), allow_nan=True) == json.dumps(s.to_dict(), allow_nan=True)


def test_each_bad_value_names_its_field() -> None:
    cases = {
        "temperature": [-0.1, 5.1, math.nan, math.inf, "hot", True],
        "top_p": [0, 1.01, -1],
        "top_k": [-1, 1.5],
        "min_p": [-0.01, 1.5],
        "repeat_penalty": [0, 5.5],
        "last_n_tokens": [-1, 5000],
        "presence_penalty": [-2.5, 2.5],
        "frequency_penalty": [3],
        "max_tokens": [0, 5000],
        "stop": [["ok", ""], "not a list"],
        "seed": [-1, 2**32, 1.5],
        "chain_of_thought": ["yes"],
    }
    for name, values in cases.items():
        for value in values:
            problems = replace(SamplingSettings(), **{name: value}).validate(n_ctx=4096)
            assert [p.field for p in problems] == [name], (name, value, problems)
            assert problems[0].message.endswith(".")
    edge = SamplingSettings(
        temperature=0,
        top_p=1,
        top_k=0,
        min_p=0,
        repeat_penalty=5,
        last_n_tokens=4096,
        presence_penalty=-2,
        frequency_penalty=2,
        max_tokens=4096,
        seed=2**32 - 1,
    )
    assert edge.validate(4096) == []


def test_load_settings_validation(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert LoadSettings().validate(8192) == []
    assert LoadSettings(n_ctx=256, n_batch=256, n_threads=8).validate(None) == []

    def fields_of(load: LoadSettings, native: int | None = 8192) -> set[str]:
        return {p.field for p in load.validate(native)}

    assert fields_of(LoadSettings(n_ctx=255, n_batch=128)) == {"n_ctx"}
    assert fields_of(LoadSettings(n_ctx=16384)) == {"n_ctx"}
    assert fields_of(LoadSettings(n_ctx=16384), native=None) == set()
    assert fields_of(LoadSettings(n_threads=0)) == {"n_threads"}
    assert fields_of(LoadSettings(n_threads=9)) == {"n_threads"}
    assert fields_of(LoadSettings(n_batch=0)) == {"n_batch"}
    assert fields_of(LoadSettings(n_ctx=1024, n_batch=2048)) == {"n_batch"}
    assert fields_of(LoadSettings(n_gpu_layers=-2)) == {"n_gpu_layers"}
    assert fields_of(LoadSettings(n_gpu_layers=-1)) == set()  # llama.cpp's "every layer"
    message = LoadSettings(n_threads=9).validate(None)[0].message
    assert "8" in message and "4 cores" in message
    assert "8,192" in LoadSettings(n_ctx=9000).validate(8192)[0].message
    load = LoadSettings(n_ctx=2048, n_threads=3, n_gpu_layers=7, n_batch=64)
    assert LoadSettings.from_dict({**load.to_dict(), "future": 1}) == load


@given(st.text())
def test_stop_sequence_escapes_round_trip(text: str) -> None:
    shown = escape_visible(text)
    assert "\n" not in shown and "\t" not in shown and "\r" not in shown
    assert unescape_visible(shown) == text


def test_typed_escapes_become_characters() -> None:
    assert unescape_visible(r"\n\nUser:") == "\n\nUser:"
    assert unescape_visible(r"a\tb\\n") == "a\tb\\n"
    assert unescape_visible("C:\\dir\\") == "C:\\dir\\"  # unknown escape and trailing backslash kept
    assert escape_visible("\n") == r"\n"


# --- settings → llama.cpp ------------------------------------------------------------------


def test_every_sampling_field_reaches_llama_cpp_or_the_messages() -> None:
    s = SamplingSettings(last_n_tokens=128, seed=7)
    mapped = set(completion_kwargs(s))
    by_attribute = sampler_attributes(s)
    assert by_attribute == {"last_n_tokens_size": 128}
    to_messages = {"system_prompt", "chain_of_thought"}  # via effective_system_prompt
    names = {f.name for f in fields(SamplingSettings)}
    # structured output: the child builds the grammar= argument from grammar_spec
    assert grammar_spec(s) is None
    assert grammar_spec(SamplingSettings(response_format="json")) == ("json", "")
    assert grammar_spec(SamplingSettings(response_format="grammar", grammar="root ::= x")) == ("gbnf", "root ::= x")
    as_grammar = {"response_format", "json_schema", "grammar"}
    at_load = {"adapters"}  # LoRA adapters: the session puts them in protocol.Load.loras (test_adapters)
    covered = (names & mapped) | {"last_n_tokens"} | to_messages | as_grammar | at_load
    assert names == covered, f"not mapped to llama.cpp: {names - covered}"

    class FakeLlama:
        last_n_tokens_size = 64

    llm = FakeLlama()
    apply_sampler_attributes(llm, s)
    assert llm.last_n_tokens_size == 128
    assert llama_kwargs(Load("/m.gguf"))["last_n_tokens_size"] == SamplingSettings().last_n_tokens


def test_llama_cpp_really_has_the_attribute_we_set() -> None:
    """The per-request window relies on Llama reading this attribute when it builds each sampler."""
    import inspect

    llama_cpp = pytest.importorskip("llama_cpp")
    source = inspect.getsource(llama_cpp.Llama._init_sampler)
    assert "self.last_n_tokens_size" in source
    assert "last_n_tokens_size" in inspect.signature(llama_cpp.Llama.__init__).parameters


# --- presets -------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> PresetStore:
    return PresetStore(tmp_path / "presets.json")


def test_builtins_cover_the_common_jobs_and_are_valid() -> None:
    names = [p.name for p in BUILTIN_PRESETS]
    assert names == [
        "General assistant",
        "Summarize",
        "Translate",
        "Write code",
        "Explain code",
        "Creative writing",
        "Precise answers",
    ]
    by_name = {p.name: p for p in BUILTIN_PRESETS}
    for preset in BUILTIN_PRESETS:
        assert preset.builtin and preset.system_prompt and preset.description
        assert apply_preset(preset, SamplingSettings()).validate(4096) == []
        assert Preset.from_dict(preset.to_dict()).settings == preset.settings
    creative = apply_preset(by_name["Creative writing"], SamplingSettings())
    precise = apply_preset(by_name["Precise answers"], SamplingSettings())
    assert creative.temperature > SamplingSettings().temperature > precise.temperature
    assert by_name["Translate"].few_shot and all(len(pair) == 2 for pair in by_name["Translate"].few_shot)


def test_apply_preset_lays_its_values_over_the_base() -> None:
    base = SamplingSettings(temperature=0.9, top_k=5, stop=["END"], system_prompt="old")
    preset = Preset("P", settings={"temperature": 0.1, "stop": ["\n"]}, system_prompt="new")
    result = apply_preset(preset, base)
    assert (result.temperature, result.top_k, result.stop, result.system_prompt) == (0.1, 5, ["\n"], "new")
    assert base.temperature == 0.9 and base.stop == ["END"]  # base untouched
    result.stop.append("x")
    assert preset.settings["stop"] == ["\n"]  # no shared list
    assert apply_preset(Preset("Q"), base).stop == ["END"]


def test_few_shot_pairs_become_prior_turns() -> None:
    assert few_shot_turns([("hi", "bonjour"), ("cat", "chat")]) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "bonjour"},
        {"role": "user", "content": "cat"},
        {"role": "assistant", "content": "chat"},
    ]
    assert few_shot_turns([]) == []


def test_save_list_update_and_reload(store: PresetStore, tmp_path: Path) -> None:
    mine = Preset("Mine", "desc", "Be brief.", {"temperature": 0.4}, [("q", "a")])
    saved = store.save(mine)
    assert saved.builtin is False
    listed = store.list()
    assert [p.name for p in listed[: len(BUILTIN_PRESETS)]] == [p.name for p in BUILTIN_PRESETS]
    assert listed[-1].name == "Mine"
    store.save(Preset("mine", settings={"temperature": 0.5}))  # same name, another case: an update
    assert [p.name for p in store.list()].count("Mine") + [p.name for p in store.list()].count("mine") == 1
    again = PresetStore(tmp_path / "presets.json")
    assert again.get("MINE").settings == {"temperature": 0.5}
    assert len(again.list()) == len(BUILTIN_PRESETS) + 1


def test_saving_an_invalid_preset_is_refused(store: PresetStore) -> None:
    with pytest.raises(PresetError, match="Top-p"):
        store.save(Preset("Bad", settings={"top_p": 0}))
    with pytest.raises(PresetError, match="no name"):
        store.save(Preset("   "))
    assert store.list() == list(BUILTIN_PRESETS)


def test_builtins_cannot_be_overwritten_or_deleted(store: PresetStore) -> None:
    with pytest.raises(PresetError, match="built-in"):
        store.save(Preset("translate", settings={"temperature": 2.0}))
    with pytest.raises(PresetError, match="built-in"):
        store.delete("Translate")
    assert store.get("Translate") is BUILTIN_PRESETS[2]
    assert BUILTIN_PRESETS[2].settings["temperature"] == 0.2
    assert not store.path.exists()


def test_duplicate_and_delete(store: PresetStore) -> None:
    copy = store.duplicate("Translate")
    assert copy.name == "Translate (copy)" and not copy.builtin
    assert copy.few_shot == BUILTIN_PRESETS[2].few_shot and copy.settings == BUILTIN_PRESETS[2].settings
    assert store.duplicate("Translate").name == "Translate (copy) 2"
    named = store.duplicate("Translate", "French")
    with pytest.raises(PresetError, match="already exists"):
        store.duplicate("Summarize", "french")
    store.delete(named.name)
    assert store.get("French") is None
    with pytest.raises(PresetError, match="no preset"):
        store.delete("French")
    with pytest.raises(PresetError, match="no preset"):
        store.duplicate("Nope")


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = PresetStore(blocker / "presets.json")
    with pytest.raises(PresetError, match="Could not save"):
        store.save(Preset("Mine"))
    assert store.get("Mine") is None


def test_damaged_entries_in_the_store_file_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "presets.json"
    path.write_text(
        json.dumps(
            {
                "presets": [
                    {"name": "Good", "settings": {"temperature": 0.3}},
                    {"name": "Bad", "settings": {"temperature": "hot"}},
                    "nonsense",
                    {"name": "Translate"},
                ]
            }
        )
    )
    assert [p.name for p in PresetStore(path).list()[len(BUILTIN_PRESETS) :]] == ["Good"]
    path.write_text("{ not json")
    assert PresetStore(path).list() == list(BUILTIN_PRESETS)


def test_export_import_round_trip(store: PresetStore, tmp_path: Path) -> None:
    store.save(
        Preset(
            "Pirate",
            "Arr",
            "Talk like a pirate.",
            {"temperature": 1.2, "stop": ["\n\n"], "seed": 3},
            [("hello", "ahoy")],
        )
    )
    store.save(Preset("Terse", settings={"max_tokens": 64, "chain_of_thought": True}))
    text = store.export_json()
    assert json.loads(text)["format"] == "hearth-presets"

    other = PresetStore(tmp_path / "other.json")
    imported = other.import_json(text)
    assert [p.to_dict() for p in imported] == [p.to_dict() for p in store.list()[len(BUILTIN_PRESETS) :]]
    assert other.get("Pirate").few_shot == [("hello", "ahoy")]
    assert PresetStore(tmp_path / "other.json").get("Terse").settings == {"max_tokens": 64, "chain_of_thought": True}
    # the same file again adds nothing; a different preset under a taken name is renamed
    assert other.import_json(text) == []
    changed = text.replace("Talk like a pirate.", "Talk like a parrot.")
    renamed = other.import_json(changed)
    assert [p.name for p in renamed] == ["Pirate (imported)"]
    assert other.get("Pirate").system_prompt == "Talk like a pirate."


def test_importing_exported_builtins_adds_nothing(store: PresetStore) -> None:
    assert store.import_json(store.export_json(BUILTIN_PRESETS)) == []
    assert store.list() == list(BUILTIN_PRESETS)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{ nope", "not valid JSON"),
        ('{"format": "something-else", "presets": []}', "not a Hearth presets file"),
        ('{"format": "hearth-presets", "version": 99, "presets": []}', "newer version"),
        ('{"presets": {"name": "x"}}', "not a list"),
        ('"just text"', "no list of presets"),
        ('{"presets": [{"name": "Ok"}, {"settings": {}}]}', "Preset 2 in the file: A preset has no name"),
        (
            '{"presets": [{"name": "Ok"}, {"name": "Hot", "settings": {"temperature": "very"}}]}',
            "temperature must be a number",
        ),
        ('{"presets": [{"name": "Ok"}, {"name": "Far", "settings": {"top_p": 7}}]}', "Top-p"),
        ('{"presets": [{"name": "Ok"}, {"name": "Ex", "few_shot": [["only one"]]}]}', "pair of texts"),
        ('{"presets": [{"name": "Ok"}, {"name": "Sys", "system_prompt": 5}]}', "system prompt must be text"),
    ],
)
def test_malformed_imports_name_the_problem_and_import_nothing(store: PresetStore, text: str, reason: str) -> None:
    store.save(Preset("Existing"))
    before = store.path.read_text()
    with pytest.raises(PresetError) as caught:
        store.import_json(text)
    assert reason in str(caught.value)
    assert [p.name for p in store.list()[len(BUILTIN_PRESETS) :]] == ["Existing"]
    assert store.path.read_text() == before


def test_unknown_setting_keys_from_other_versions_are_ignored(store: PresetStore) -> None:
    imported = store.import_json('[{"name": "Future", "settings": {"temperature": 0.5, "mirostat": 2}}]')
    assert imported[0].settings == {"temperature": 0.5}


def test_builtin_flag_cannot_come_from_a_file(store: PresetStore) -> None:
    imported = store.import_json('[{"name": "Sneaky", "builtin": true}]')
    assert imported[0].builtin is False
    store.delete("Sneaky")


# --- chain of thought ----------------------------------------------------------------------


def test_cot_instruction_is_added_only_when_on() -> None:
    assert effective_system_prompt(SamplingSettings(system_prompt="Be kind.")) == "Be kind."
    on = effective_system_prompt(SamplingSettings(system_prompt="Be kind.", chain_of_thought=True))
    assert on.startswith("Be kind.") and on.endswith(COT_INSTRUCTION)
    assert effective_system_prompt(SamplingSettings(chain_of_thought=True)) == COT_INSTRUCTION
    assert "<think>" in COT_INSTRUCTION and "</think>" in COT_INSTRUCTION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>2+2 is 4</think>\n\nThe answer is 4.", ("2+2 is 4", "The answer is 4.")),
        ("  <think>\nstep one\nstep two\n</think>Done", ("step one\nstep two", "Done")),
        ("<think>still thinking", ("still thinking", "")),
        ("<think>", ("", "")),
        ("plain answer", (None, "plain answer")),
        ("", (None, "")),
        ("Use the <think> tag like <think>x</think>.", (None, "Use the <think> tag like <think>x</think>.")),
        ("reasoning only closed</think>answer", ("reasoning only closed", "answer")),
    ],
)
def test_split_reasoning(text: str, expected: tuple[str | None, str]) -> None:
    assert split_reasoning(text) == expected


def test_split_reasoning_while_streaming() -> None:
    reply = "<think>Let me count: 1, 2, 3.</think>Three."
    seen = [split_reasoning(reply[:i]) for i in range(len("<think>"), len(reply) + 1)]
    assert all(answer == "" for _, answer in seen[: reply.index("</think>") - len("<think>") + 1])
    assert seen[-1] == ("Let me count: 1, 2, 3.", "Three.")
    assert all(reasoning is not None and "<" not in reasoning for reasoning, _ in seen)


def test_module_has_no_qt() -> None:
    assert "PySide6" not in Path(presets_module.__file__).read_text()
