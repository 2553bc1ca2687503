"""Structured output (issue 16, point 1): the response format setting, its checks in core, the
grammar the engine child builds from it, the reply's check, the panel and the chat view."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt

from app.core import response_format as rf
from app.core.records import RecordError, check_settings, check_stats
from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.client import EngineClient, EngineError

SCHEMA = '{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}'


# --- core: the schema and grammar checks ---------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_schema_text_gives_a_schema_or_a_plain_problem(text: str) -> None:
    problem = rf.schema_problem(text)
    if problem is None:
        assert isinstance(rf.load_schema(text), dict)
    else:
        assert isinstance(problem, str) and problem.endswith(".")
        with pytest.raises(ValueError, match="."):
            rf.load_schema(text)
    problems = SamplingSettings(response_format="json_schema", json_schema=text).validate()
    assert [pr.field for pr in problems] == ([] if problem is None else ["json_schema"])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["object", "string", "#/x"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "properties", "required", "items", "$ref", "$schema", "minimum", "enum", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json, _json)
def test_schema_shaped_values_are_judged_and_replies_checked_without_raising(schema, reply) -> None:
    text = json.dumps(schema)
    problem = rf.schema_problem(text)
    assert problem is None or isinstance(problem, str)
    result = rf.check_reply("json_schema", text, json.dumps(reply))
    assert result is not None and isinstance(result["ok"], bool)
    if problem is not None:
        assert not result["ok"] and "could not be checked" in result["problem"]
    check_stats({"format_check": result})  # what is recorded always passes the record checks


def test_schema_problems_say_what_is_wrong() -> None:
    assert rf.schema_problem(SCHEMA) is None
    assert "not valid JSON" in (rf.schema_problem('{"type": "object",}') or "")
    assert "must be an object" in (rf.schema_problem("[1, 2]") or "")
    assert "not a valid JSON Schema" in (rf.schema_problem('{"type": "objekt"}') or "")
    assert "never fetches" in (rf.schema_problem('{"$ref": "https://example.com/s.json"}') or "")
    assert "does not know" in (rf.schema_problem('{"$schema": "https://example.com/mine"}') or "")
    assert rf.schema_problem('{"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"}') is None
    assert "root" in (rf.grammar_problem('answer ::= "yes"') or "")
    assert rf.grammar_problem("") and rf.grammar_problem('root ::= "yes" | "no"') is None


def test_only_the_format_in_use_is_checked() -> None:
    broken = SamplingSettings(json_schema="{", grammar="nonsense")
    assert broken.validate() == []  # free text: a half-written schema must not block replies
    assert [pr.field for pr in SamplingSettings(response_format="grammar", grammar="x").validate()] == ["grammar"]
    assert [pr.field for pr in SamplingSettings(response_format="xml").validate()] == ["response_format"]


def test_records_check_the_new_fields_on_import_and_repair_them_in_the_store() -> None:
    good = {"response_format": "json_schema", "json_schema": SCHEMA}
    assert check_settings(good)[0] == good
    with pytest.raises(RecordError, match="schema is not valid JSON"):
        check_settings({"response_format": "json_schema", "json_schema": "{"})
    with pytest.raises(RecordError, match="response_format"):
        check_settings({"response_format": 3})
    with pytest.raises(RecordError, match="Response format"):
        check_settings({"response_format": "yaml"})
    # the store keeps the conversation but falls back to free text
    clean, notes = check_settings({"response_format": "grammar", "temperature": 0.5}, strict=False)
    assert clean == {"temperature": 0.5} and notes
    with pytest.raises(RecordError, match="format_check"):
        check_stats({"format_check": {"ok": "yes"}})
    assert check_stats({"format_check": {"format": "json", "ok": True}})[0] == {
        "format_check": {"format": "json", "ok": True}
    }


def test_a_reply_is_checked_against_its_format() -> None:
    assert rf.check_reply("text", "", "anything") is None
    assert rf.check_reply("json", "", '[1, {"b": null}]') == {"format": "json", "ok": True}
    bad = rf.check_reply("json", "", '{"a": 1')
    assert bad is not None and not bad["ok"] and "not valid JSON" in bad["problem"]
    assert rf.check_reply("json_schema", SCHEMA, '{"a": 7}') == {"format": "json_schema", "ok": True}
    wrong = rf.check_reply("json_schema", SCHEMA, '{"a": "seven"}')
    assert wrong is not None and not wrong["ok"] and "at a" in wrong["problem"]
    assert rf.pretty_reply('{"a":7}', {"format_check": {"ok": True}}) == '```json\n{\n  "a": 7\n}\n```'
    assert rf.pretty_reply('{"a":7}', {"format_check": {"ok": False}}) is None


# --- the engine child ----------------------------------------------------------------------


def _run(client: EngineClient, request: p.Chat | p.Complete) -> tuple[list[object], str | None]:
    """The events a request gets, and the engine's error (None if it answered)."""
    events: list[object] = []
    try:
        events += [e for e in client.chat(request) if e is not None]
    except EngineError as exc:
        return events, str(exc)
    return events, None


@pytest.fixture
def client():
    c = EngineClient()
    c.start()
    yield c
    c.stop()


def test_a_custom_grammar_holds_the_reply_and_a_broken_one_generates_nothing(
    client: EngineClient, tiny_model: Path
) -> None:
    client.load(p.Load(str(tiny_model), n_ctx=256, n_threads=1))
    messages = [{"role": "user", "content": "yes or no?"}]
    held = SamplingSettings(seed=5, max_tokens=20, response_format="grammar", grammar='root ::= "yes" | "no"')
    events, error = _run(client, p.Chat(messages, held.to_dict()))
    text = "".join(e.text for e in events if isinstance(e, p.Delta))
    assert error is None and text in ("yes", "no"), f"a random model held to the grammar wrote {text!r}"
    free, _ = _run(client, p.Chat(messages, replace(held, response_format="text").to_dict()))
    assert "".join(e.text for e in free if isinstance(e, p.Delta)) not in ("yes", "no")  # it was the grammar

    # passes the shallow check in core; llama.cpp's parser refuses it
    broken = SamplingSettings(max_tokens=20, response_format="grammar", grammar="root ::= answer")
    events, error = _run(client, p.Chat(messages, broken.to_dict()))
    assert events == [] and error is not None  # not even a PromptInfo: nothing was run
    assert "cannot use this grammar" in error and "answer" in error

    # a valid schema the converter cannot turn into a grammar (a reference to nothing)
    dangling = '{"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}}'
    unusable = SamplingSettings(max_tokens=20, response_format="json_schema", json_schema=dangling)
    events, error = _run(client, p.Chat(messages, unusable.to_dict()))
    assert events == [] and error is not None and "JSON Schema cannot be used" in error

    # the engine is fine afterwards, and the same holds for plain completion
    events, error = _run(client, p.Complete("Once", held.to_dict()))
    assert error is None and "".join(e.text for e in events if isinstance(e, p.Delta)) in ("yes", "no")


# --- the settings panel --------------------------------------------------------------------


@pytest.fixture
def panel(qtbot, tmp_path: Path):
    from app.core.presets import PresetStore
    from app.ui.settings_panel import SettingsPanel

    widget = SettingsPanel(PresetStore(tmp_path / "presets.json"))
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_the_panel_shows_the_editor_the_format_needs_and_marks_problems(qtbot, panel) -> None:
    combo = panel.findChild(object, "setting_response_format")
    schema = panel.findChild(object, "setting_json_schema")
    grammar = panel.findChild(object, "setting_grammar")
    problem = panel.findChild(object, "problem_json_schema")
    assert combo.accessibleName() and schema.accessibleName() and grammar.accessibleName()
    assert not schema.isVisibleTo(panel) and not grammar.isVisibleTo(panel)
    sent: list[SamplingSettings] = []
    panel.settingsChanged.connect(sent.append)

    combo.setFocus()
    combo.setCurrentIndex(combo.findData("json_schema"))
    assert schema.isVisibleTo(panel) and not grammar.isVisibleTo(panel)
    assert problem.isVisibleTo(panel) and "JSON Schema" in problem.text()  # empty: asks for one
    assert schema.property("invalid") is True and not sent  # never handed out while unusable

    qtbot.keyClick(combo, Qt.Key.Key_Tab)  # the editor is reachable from the keyboard
    qtbot.keyClick(schema, Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    schema.setPlainText('{"type": "object", "required": "a"}')
    assert "not a valid JSON Schema" in problem.text() and not sent
    schema.setPlainText(SCHEMA)
    assert not problem.isVisibleTo(panel) and schema.property("invalid") is not True
    assert sent[-1].response_format == "json_schema" and sent[-1].json_schema == SCHEMA

    combo.setCurrentIndex(combo.findData("grammar"))
    assert grammar.isVisibleTo(panel) and not schema.isVisibleTo(panel)
    assert panel.findChild(object, "problem_grammar").isVisibleTo(panel)
    grammar.setPlainText('root ::= "yes" | "no"')
    assert sent[-1].response_format == "grammar" and sent[-1].json_schema == SCHEMA  # the schema is kept

    panel.reset_field("response_format")
    assert not grammar.isVisibleTo(panel) and sent[-1].response_format == "text"
    panel.set_settings(SamplingSettings(response_format="json_schema", json_schema=SCHEMA), panel.load_settings(), None)
    assert schema.isVisibleTo(panel) and schema.toPlainText() == SCHEMA


# --- end to end, on the demo model -------------------------------------------------------


@pytest.mark.model
def test_a_schema_held_reply_parses_validates_and_is_shown_pretty(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=30, response_format="json_schema", json_schema=SCHEMA)
    session = window.session
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        session.send("Reply with a JSON object whose field a is the number 42.")
    reply = finished.args[0]
    value = json.loads(reply.text)
    assert isinstance(value, dict) and isinstance(value["a"], int)
    assert reply.stats["format_check"] == {"format": "json_schema", "ok": True}
    assert reply.settings["json_schema"] == SCHEMA  # the snapshot says what it was held to
    shown = window.chat_view.toPlainText()
    assert json.dumps(value, indent=2) in shown.replace("\u2028", "\n")  # pretty, in a code block
    assert "valid JSON, matches the schema" in shown
    view = window.chat_view
    assert view._fence_code(view._by_id[reply.id], 0) == json.dumps(value, indent=2)  # what Copy copies
    stored = session.store.load(session.conversation.id).messages[-1]
    assert stored.text == reply.text and stored.stats["format_check"]["ok"] is True


@pytest.mark.model
def test_a_grammar_llama_cpp_refuses_is_said_and_nothing_is_generated(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=30, response_format="grammar", grammar="root ::= answer")
    session = window.session
    errors: list[str] = []
    pieces: list[str] = []
    session.errorMessage.connect(errors.append)
    session.replyText.connect(pieces.append)
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        session.send("Anything.")
    assert finished.args[0].text == "" and not pieces
    assert errors and "cannot use this grammar" in errors[-1] and "answer" in errors[-1]
