"""Export (Markdown, text, HTML, JSON) and import (Hearth JSON, ChatGPT) of conversations."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from app.core import export
from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.export import (
    ExportError,
    ImportFormatError,
    detect_format,
    export_text,
    fresh_ids,
    from_chatgpt_json,
    from_json,
    import_any,
    read_import_file,
    save_export,
    to_html,
    to_json,
    to_markdown,
    to_text,
)
from app.core.markdown_html import render_markdown, render_plain

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(document.cookie)>"


def sample_conversations() -> list[Conversation]:
    """Every field set to something other than its default, every role and state used."""
    t0 = 1714557600.123456
    first = Conversation(
        title="Trip to Lisbon — ideas",
        id="conv-one",
        created=t0,
        updated=t0 + 500.5,
        pinned=True,
        settings={"temperature": 0.3, "stop": ["###"], "seed": None, "system_prompt": "Be brief."},
        messages=[
            Message(Role.SYSTEM, "You are a travel guide.", id="m1", created=t0 + 1),
            Message(Role.USER, "Plan *3 days*.\nKeep it cheap.", id="m2", created=t0 + 2),
            Message(
                Role.ASSISTANT,
                "## Day 1\n\n| Time | Place |\n|---|---|\n| 9:00 | Belém |\n\n```python\nprint('hi')\n```\n",
                state=MessageState.COMPLETE,
                model="SmolLM2 135M Instruct",
                settings={"temperature": 0.3, "top_k": 40},
                stats={"tokens": 120, "tokens_per_s": 31.25, "ttft": 0.12, "seed": 42, "finish_reason": "stop"},
                id="m3",
                created=t0 + 3,
            ),
            Message(Role.USER, "More?", id="m4", created=t0 + 4),
            Message(
                Role.ASSISTANT,
                "Sure, here is a start:\n```js\nconsole.log(1",
                state=MessageState.STOPPED,
                model="SmolLM2 135M Instruct",
                stats={"tokens": 9, "tokens_per_s": None, "finish_reason": "cancelled"},
                id="m5",
                created=t0 + 5,
            ),
        ],
    )
    second = Conversation(
        title="Untouched",
        id="conv-two",
        created=t0 + 10,
        updated=t0 + 20,
        messages=[
            Message(Role.USER, "ping", id="m6", created=t0 + 11),
            Message(Role.ASSISTANT, "", state=MessageState.FAILED, model="x", id="m7", created=t0 + 12),
            Message(Role.ASSISTANT, "half", state=MessageState.INTERRUPTED, id="m8", created=t0 + 13),
            Message(Role.ASSISTANT, "live", state=MessageState.STREAMING, id="m9", created=t0 + 14),
        ],
    )
    # an earlier version of the first answer, regenerated later, and what followed it
    first.branches = [
        Message(
            Role.ASSISTANT,
            "An older plan.",
            model="SmolLM2 135M Instruct",
            id="m3-old",
            created=t0 + 2.5,
            parent_id="m2",
            active=False,
        ),
        Message(Role.USER, "Cheaper?", id="m4-old", created=t0 + 2.7, parent_id="m3-old", active=True),
    ]
    for conv in (first, second):
        conv.link()
    return [first, second]


# ---------------------------------------------------------------------------------------------
# JSON round trip


def test_json_round_trip_gives_equal_records() -> None:
    convs = sample_conversations()
    text = to_json(convs)
    back = from_json(text)
    assert back == convs  # dataclass equality: every field of every record, ids and times too
    assert [type(m.role) for m in back[0].messages] == [Role] * 5
    assert back[0].messages[4].state is MessageState.STOPPED


def test_json_header_fields() -> None:
    data = json.loads(to_json(sample_conversations()))
    assert data["format"] == "hearth.conversations"
    assert data["version"] == 1
    exported = dt.datetime.fromisoformat(data["exported"])
    assert exported.tzinfo is not None
    assert abs(exported.timestamp() - dt.datetime.now(dt.UTC).timestamp()) < 60
    msg = data["conversations"][0]["messages"][2]
    assert set(msg) == {"id", "role", "text", "state", "model", "settings", "stats", "created", "rating", "preferred"}
    assert msg["role"] == "assistant" and msg["state"] == "complete"


def test_json_keeps_unicode_readable_and_escapes_lone_surrogates(tmp_path: Path) -> None:
    conv = Conversation(title="Ünïcode 🚀", messages=[Message(Role.USER, "bad \udc80 half, 日本語")])
    text = to_json([conv])
    assert "Ünïcode 🚀" in text and "日本語" in text
    text.encode("utf-8")  # would raise on a raw lone surrogate
    assert from_json(text) == [conv]
    path = tmp_path / "out.json"
    save_export(path, "json", [conv])
    assert read_import_file(path) == ("hearth", [conv])


def test_json_export_survives_odd_stats() -> None:
    conv = Conversation(messages=[Message(Role.ASSISTANT, "x", stats={"tokens_per_s": float("nan"), "t": (1, 2)})])
    [back] = from_json(to_json([conv]))
    assert back.messages[0].stats == {"tokens_per_s": None, "t": [1, 2]}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
json_objects = st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@st.composite
def conversations(draw: Any) -> Conversation:
    messages = [
        Message(
            role=draw(st.sampled_from(list(Role))),
            text=draw(st.text()),
            state=draw(st.sampled_from(list(MessageState))),
            model=draw(st.none() | st.text()),
            settings=draw(json_objects),
            stats=draw(json_objects),
            created=draw(times),
        )
        for _ in range(draw(st.integers(0, 4)))
    ]
    return Conversation(
        title=draw(st.text()),
        messages=messages,
        created=draw(times),
        updated=draw(times),
        pinned=draw(st.booleans()),
        settings=draw(json_objects),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conversations(), max_size=3))
def test_json_round_trip_arbitrary(convs: list[Conversation]) -> None:
    for conv in convs:
        conv.link()  # as every conversation Hearth holds: each message follows the one before
    assert from_json(to_json(convs)) == convs


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_json_round_trip_any_code_point_text(text: str) -> None:
    conv = Conversation(title=text, messages=[Message(Role.ASSISTANT, text, model=text)])
    assert from_json(to_json([conv])) == [conv]


# ---------------------------------------------------------------------------------------------
# JSON import: validation


def _base() -> dict[str, Any]:
    return json.loads(to_json(sample_conversations()))


def _msg(data: dict[str, Any], c: int, m: int) -> dict[str, Any]:
    return data["conversations"][c]["messages"][m]


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: path(d).__setitem__(key, value)


def _del(path: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: path(d).__delitem__(key)


TOP = lambda d: d  # noqa: E731
C1 = lambda d: d["conversations"][0]  # noqa: E731
C2 = lambda d: d["conversations"][1]  # noqa: E731
M2_3 = lambda d: _msg(d, 1, 2)  # noqa: E731  conversation 2, message 3
M1_2 = lambda d: _msg(d, 0, 1)  # noqa: E731  conversation 1, message 2
B1_1 = lambda d: d["conversations"][0]["branches"][0]  # noqa: E731  conversation 1, branch message 1

MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("wrong format tag", _set(TOP, "format", "other.app"), ["not a Hearth export", '"format"']),
    ("missing format", _del(TOP, "format"), ["not a Hearth export"]),
    (
        "newer version",
        _set(TOP, "version", 2),
        ["newer version of Hearth", "format version 2", "can read format version 1"],
    ),
    ("version as text", _set(TOP, "version", "1"), ["version", 'found "1"']),
    ("version as bool", _set(TOP, "version", True), ["version", "found true"]),
    ("version zero", _set(TOP, "version", 0), ["version", "at least 1"]),
    ("exported not text", _set(TOP, "exported", 5), ['"exported"', "text"]),
    ("no conversations", _del(TOP, "conversations"), ['no "conversations" list']),
    ("conversations not a list", _set(TOP, "conversations", {}), ['"conversations" must be a list', "an object"]),
    (
        "conversation not an object",
        lambda d: d["conversations"].insert(1, "hello"),
        ["conversation 2: must be an object", 'found "hello"'],
    ),
    ("conversation id missing", _del(C2, "id"), ['conversation 2: the required field "id" is missing']),
    ("conversation id empty", _set(C2, "id", ""), ["conversation 2: id must not be empty"]),
    ("conversation id number", _set(C1, "id", 7), ["conversation 1: id must be text", "the number 7"]),
    ("duplicate conversation id", _set(C2, "id", "conv-one"), ["conversation 2: id", "also used by conversation 1"]),
    ("title missing", _del(C1, "title"), ['conversation 1: the required field "title" is missing']),
    ("title null", _set(C1, "title", None), ["conversation 1: title must be text (found null)"]),
    ("created missing", _del(C2, "created"), ['conversation 2: the required field "created" is missing']),
    (
        "created garbage text",
        _set(C1, "created", "yesterday"),
        ["conversation 1: created must be a time", '"yesterday"'],
    ),
    ("created negative", _set(C1, "created", -5), ["conversation 1: created must be a time between 1970 and 9999"]),
    ("created huge", _set(C1, "created", 1e300), ["conversation 1: created must be a time between 1970 and 9999"]),
    ("updated bool", _set(C1, "updated", False), ["conversation 1: updated must be a time", "found false"]),
    ("pinned text", _set(C1, "pinned", "yes"), ["conversation 1: pinned must be true or false", '"yes"']),
    ("settings list", _set(C1, "settings", [1]), ["conversation 1: settings must be an object", "a list"]),
    ("messages missing", _del(C2, "messages"), ['conversation 2: the required field "messages" is missing']),
    ("messages object", _set(C2, "messages", {}), ["conversation 2: messages must be a list"]),
    (
        "message not an object",
        lambda d: d["conversations"][1]["messages"].__setitem__(1, ["x"]),
        ["conversation 2, message 2: must be an object", "a list"],
    ),
    (
        "bad role",
        _set(M2_3, "role", "bot"),
        ["conversation 2, message 3: role must be one of system, user, assistant", '"bot"'],
    ),
    ("role missing", _del(M2_3, "role"), ['conversation 2, message 3: the required field "role" is missing']),
    ("role wrong case", _set(M1_2, "role", "User"), ["conversation 1, message 2: role must be one of"]),
    (
        "bad state",
        _set(M2_3, "state", "done"),
        ["conversation 2, message 3: state must be one of complete, streaming, stopped, interrupted, failed"],
    ),
    ("state null", _set(M2_3, "state", None), ["conversation 2, message 3: state must be one of", "found null"]),
    ("text missing", _del(M1_2, "text"), ['conversation 1, message 2: the required field "text" is missing']),
    ("text list", _set(M1_2, "text", ["a"]), ["conversation 1, message 2: text must be text", "a list"]),
    ("model number", _set(M1_2, "model", 3.5), ["conversation 1, message 2: model must be text or null", "3.5"]),
    ("stats list", _set(M1_2, "stats", []), ["conversation 1, message 2: stats must be an object"]),
    ("message settings text", _set(M1_2, "settings", "hot"), ["conversation 1, message 2: settings must be an object"]),
    ("message created missing", _del(M1_2, "created"), ['conversation 1, message 2: the required field "created"']),
    ("message id missing", _del(M1_2, "id"), ['conversation 1, message 2: the required field "id" is missing']),
    (
        "duplicate message id",
        _set(M2_3, "id", "m2"),
        ["conversation 2, message 3: id", "also used by conversation 1, message 2"],
    ),
    ("branches not a list", _set(C1, "branches", {}), ["conversation 1: branches must be a list"]),
    ("branch parent missing", _del(B1_1, "parent"), ['conversation 1, branch message 1: the required field "parent"']),
    (
        "branch parent unknown",
        _set(B1_1, "parent", "nowhere"),
        ['conversation 1, branch message 1: parent "nowhere" is not a message of this conversation'],
    ),
    (
        "branch active text",
        _set(B1_1, "active", "yes"),
        ["conversation 1, branch message 1: active must be true or false"],
    ),
    (
        "branch id clashes",
        _set(B1_1, "id", "m1"),
        ["conversation 1, branch message 1: id", "also used by conversation 1, message 1"],
    ),
]


@pytest.mark.parametrize("mutate,expected", [(m, e) for _, m, e in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_hearth_json_is_refused_with_a_useful_message(
    mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    data = _base()
    mutate(data)
    text = json.dumps(data)
    result = None
    with pytest.raises(ImportFormatError) as info:
        result = from_json(text)
    assert result is None  # nothing partial comes back
    message = str(info.value)
    for piece in expected:
        assert piece in message, message
    assert "Traceback" not in message and "KeyError" not in message


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", "not valid JSON"),
        ('{"format": "hearth.conversations", ', "not valid JSON"),
        ("hello", "not valid JSON"),
        ('{"format": "hearth.conversations", "version": 1, "conversations": [], "x": NaN}', "NaN"),
        ("[1, 2]", "not a Hearth export"),
        ("null", "not a Hearth export"),
        ("[" * 100000, "not valid JSON"),
        ('[{"title": "x", "mapping": {}}]', "ChatGPT export"),
    ],
)
def test_not_a_hearth_file_is_refused(text: str, expected: str) -> None:
    with pytest.raises(ImportFormatError, match=re.escape(expected)):
        from_json(text)


def test_valid_conversation_before_a_bad_one_is_not_returned() -> None:
    data = _base()
    data["conversations"][1]["messages"][0]["role"] = "robot"
    with pytest.raises(ImportFormatError, match="conversation 2, message 1"):
        from_json(json.dumps(data))


def test_unknown_keys_ignored_and_optional_fields_default() -> None:
    data = _base()
    data["comment"] = "added by a later version"
    conv = data["conversations"][1]
    conv["color"] = "blue"
    for key in ("updated", "pinned", "settings"):
        del conv[key]
    msg = conv["messages"][0]
    msg["reactions"] = ["👍"]
    for key in ("state", "model", "settings", "stats"):
        del msg[key]
    conv["messages"][1]["created"] = "2024-05-01T10:00:00+00:00"
    del data["exported"]
    [_, back] = from_json(json.dumps(data))
    assert back.updated == back.created == sample_conversations()[1].created
    assert back.pinned is False and back.settings is None
    first = back.messages[0]
    assert (first.state, first.model, first.settings, first.stats) == (MessageState.COMPLETE, None, None, None)
    assert first.text == "ping"
    assert back.messages[1].created == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC).timestamp()


def test_empty_export_imports_nothing() -> None:
    assert from_json(to_json([])) == []


def test_fresh_ids_allow_importing_twice() -> None:
    text = to_json(sample_conversations())
    first = [fresh_ids(c) for c in from_json(text)]
    second = [fresh_ids(c) for c in from_json(text)]
    ids = [c.id for c in first + second] + [m.id for c in first + second for m in c.all_messages()]
    assert len(ids) == len(set(ids))
    # the tree comes along: every parent is the new id of the same message
    for c in first[:1]:  # the one with branches
        by_id = {m.id: m for m in c.all_messages()}
        assert all(m.parent_id is None or m.parent_id in by_id for m in c.all_messages())
        c.select(c.branches[0].id)
        assert [m.text for m in c.messages][-2:] == ["An older plan.", "Cheaper?"]
    originals = sample_conversations()
    assert not set(ids) & ({c.id for c in originals} | {m.id for c in originals for m in c.messages})
    # Same content otherwise, and no shared mutable state with the source.
    orig = originals[0]
    copy_ = fresh_ids(orig)
    assert copy_.title == orig.title and copy_.created == orig.created and copy_.pinned is True
    assert [(m.role, m.text, m.state, m.model, m.stats, m.created) for m in copy_.messages] == [
        (m.role, m.text, m.state, m.model, m.stats, m.created) for m in orig.messages
    ]
    before = copy.deepcopy(orig)
    copy_.settings["temperature"] = 1.9
    copy_.messages[2].stats["tokens"] = 0
    copy_.messages.pop()
    assert orig == before


# ---------------------------------------------------------------------------------------------
# HTML


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse_html(doc: str) -> _TagCollector:
    parser = _TagCollector()
    parser.feed(doc)
    parser.close()
    return parser


def _hostile_conversation() -> Conversation:
    hostile = (
        f"{XSS_SCRIPT}\n\n{XSS_IMG}\n\n![pixel](https://tracker.example/p.gif)\n\n"
        "[click](javascript:alert(1)) <iframe src=https://evil.example></iframe> "
        '<a href="https://evil.example" onclick="x()">a</a>\n\n<style>body{display:none}</style>'
    )
    return Conversation(
        title=f"Title {XSS_SCRIPT}",
        messages=[
            Message(Role.SYSTEM, XSS_IMG),
            Message(Role.USER, hostile),
            Message(Role.ASSISTANT, hostile, model=f"model {XSS_IMG}"),
        ],
    )


def test_html_export_has_no_active_content() -> None:
    doc = to_html(_hostile_conversation())
    assert "<script" not in doc.lower()
    assert not re.search(r"<[^>]*\ssrc\s*=", doc, re.IGNORECASE)  # in text it is harmless
    parsed = _parse_html(doc)
    names = {t for t, _ in parsed.tags}
    assert not names & {"script", "img", "iframe", "object", "embed", "link", "base", "form", "input", "svg"}
    for tag, attrs in parsed.tags:
        assert "src" not in attrs, tag
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(("https://", "http://", "mailto:", "#")), href
    csp = [a for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    # The hostile markup is shown to the reader as text, in every role and in the title.
    text = "".join(parsed.text)
    assert text.count(XSS_SCRIPT) >= 4  # <title>, <h1>, user, assistant
    assert text.count(XSS_IMG) >= 4  # system, user, assistant, model name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "&lt;img src=x onerror=alert(document.cookie)&gt;" in doc


def test_html_images_become_links_and_links_show_their_target() -> None:
    doc = to_html(_hostile_conversation())
    parsed = _parse_html(doc)
    image_links = [a for t, a in parsed.tags if t == "a" and a.get("class") == "image-link"]
    assert image_links == [
        {
            "class": "image-link",
            "href": "https://tracker.example/p.gif",
            "title": "https://tracker.example/p.gif",
            "rel": "noopener noreferrer",
        }
    ]
    assert "[image: pixel]" in "".join(parsed.text)
    assert "[click](javascript:alert(1))" in "".join(parsed.text)  # refused as a link, kept as text


def test_html_code_tables_and_stats() -> None:
    doc = to_html(sample_conversations()[0])
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")
    code = re.search(r'<code class="language-python">(.*?)</code>', doc, re.S)
    assert code is not None
    assert re.search(r'<span style="color: #[0-9A-Fa-f]+[^"]*">print</span>', code.group(1))
    assert "<table>" in doc and "<th>Time</th>" in doc and "<td>Belém</td>" in doc
    assert "SmolLM2 135M Instruct" in doc
    assert "31.2 tokens/s" in doc and "120 tokens" in doc
    assert re.search(r'class="note">stopped<', doc)
    # The user's own text is kept as typed (newline and asterisks intact), not rendered.
    assert "Plan *3 days*.\nKeep it cheap." in doc
    # The stopped reply's open fence ends with its message; the next heading is not swallowed.
    assert doc.count('<article class="conversation"') == 1


def test_html_several_conversations_have_a_contents_list() -> None:
    doc = to_html(sample_conversations())
    assert '<a href="#c1">Trip to Lisbon — ideas</a>' in doc and '<a href="#c2">Untouched</a>' in doc
    assert 'id="c1"' in doc and 'id="c2"' in doc
    assert "<title>2 conversations</title>" in doc


# ---------------------------------------------------------------------------------------------
# markdown_html directly


def test_render_markdown_basics() -> None:
    out = render_markdown(
        '~~old~~ **new** [docs](https://docs.example "Docs") www.example.org\n\n- [x] done\n- [ ] todo'
    )
    assert "<s>old</s>" in out and "<strong>new</strong>" in out
    assert (
        '<a href="https://docs.example" title="Docs — https://docs.example" rel="noopener noreferrer">docs</a>' in out
    )
    assert 'href="http://www.example.org"' in out
    assert "☑ done" in out and "☐ todo" in out and "<input" not in out


def test_render_markdown_unknown_language_is_escaped_plain() -> None:
    for fence in ("```nosuchlanguage\n<b>x</b>\n```", "```\n<b>x</b>\n```", "    <b>x</b>"):
        out = render_markdown(fence)
        assert "&lt;b&gt;x&lt;/b&gt;" in out and "<b>" not in out and "<span" not in out, out


def test_render_markdown_code_style_and_data_images() -> None:
    dark = render_markdown("```python\nx = 1\n```", code_style="monokai")
    light = render_markdown("```python\nx = 1\n```", code_style="no-such-style")
    assert dark != light and "#272822" in dark  # monokai's background
    out = render_markdown("![dot](data:image/png;base64,AAAA)")
    assert "data:" not in out and "[image: dot]" in out


def test_render_plain() -> None:
    text = "# Title\n\nSome **bold** and [a link](https://x.example).\n\n- one\n- two\n\n```py\ncode <here>\n```"
    assert render_plain(text) == ("Title\n\nSome bold and a link (https://x.example).\n\n• one\n• two\n\ncode <here>")


# ---------------------------------------------------------------------------------------------
# Markdown and text


def test_markdown_export_keeps_every_message_verbatim() -> None:
    conv = sample_conversations()[0]
    out = to_markdown(conv)
    assert out.startswith("# Trip to Lisbon — ideas\n")
    for msg in conv.messages:
        assert msg.text.rstrip("\n") in out
    assert "## Assistant (SmolLM2 135M Instruct)" in out and "## User" in out and "## System" in out
    assert out.count("_(stopped)_") == 1
    failed = to_markdown(sample_conversations()[1])
    assert "_(failed)_" in failed and "_(interrupted)_" in failed and "_(unfinished)_" in failed


def test_markdown_export_closes_a_fence_left_open_by_a_stopped_reply() -> None:
    conv = sample_conversations()[0]
    conv.messages.append(Message(Role.USER, "after the stop"))
    tokens = MarkdownIt("commonmark").parse(to_markdown(conv))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    assert headings[-1] == "User"
    assert headings.count("User") == 3
    assert [t.content for t in tokens if t.type == "fence" and t.info == "js"] == ["console.log(1\n"]


def test_text_export_keeps_every_message_verbatim() -> None:
    convs = sample_conversations()
    out = to_text(convs[0])
    assert out.splitlines()[0] == "Trip to Lisbon — ideas"
    for msg in convs[0].messages:
        assert msg.text.rstrip("\n") in out
    assert "[Assistant (SmolLM2 135M Instruct, stopped)]" in out and "[User]" in out
    both = export_text("txt", convs)
    assert to_text(convs[0]) in both and to_text(convs[1]) in both


# ---------------------------------------------------------------------------------------------
# ChatGPT


def _node(nid: str, parent: str | None, children: list[str], message: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": nid, "message": message, "parent": parent, "children": children}


def _cg_msg(role: str, parts: list[Any], t: float | None, **extra: Any) -> dict[str, Any]:
    content_type = extra.pop("content_type", "text")
    msg = {
        "id": f"msg-{t}",
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": t,
        "update_time": None,
        "content": {"content_type": content_type, "parts": parts},
        "status": "finished_successfully",
        "end_turn": True,
        "weight": 1.0,
        "metadata": extra.pop("metadata", {}),
        "recipient": extra.pop("recipient", "all"),
    }
    msg.update(extra)
    return msg


def chatgpt_sample() -> str:
    t = 1700000000.5
    mapping = {
        "root": _node("root", None, ["sys"], None),
        "sys": _node(
            "sys",
            "root",
            ["u1"],
            _cg_msg("system", [""], None, metadata={"is_visually_hidden_from_conversation": True}),
        ),
        "u1": _node("u1", "sys", ["a_old", "a_new"], _cg_msg("user", ["How do I reverse a list in Python?"], t)),
        "a_old": _node(
            "a_old",
            "u1",
            [],
            _cg_msg("assistant", ["Old answer that was regenerated."], t + 1, metadata={"model_slug": "gpt-3.5"}),
        ),
        "a_new": _node(
            "a_new",
            "u1",
            ["u2_old", "u2"],
            _cg_msg(
                "assistant",
                ["Use `xs[::-1]` or `xs.reverse()`."],
                t + 2,
                metadata={"model_slug": "gpt-4o", "finish_details": {"type": "stop"}},
            ),
        ),
        "u2_old": _node("u2_old", "a_new", [], _cg_msg("user", ["an edit the user abandoned"], t + 3)),
        "u2": _node(
            "u2",
            "a_new",
            ["call"],
            _cg_msg(
                "user",
                [{"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"}, "What about this one?"],
                t + 4,
                content_type="multimodal_text",
            ),
        ),
        "call": _node(
            "call", "u2", ["tool"], _cg_msg("assistant", ["print(1)"], t + 5, content_type="code", recipient="python")
        ),
        "tool": _node("tool", "call", ["a2"], _cg_msg("tool", ["1"], t + 6, content_type="execution_output")),
        "a2": _node(
            "a2",
            "tool",
            ["empty"],
            _cg_msg(
                "assistant",
                ["It prints 1."],
                None,
                metadata={"model_slug": "gpt-4o", "finish_details": {"type": "interrupted"}},
            ),
        ),
        "empty": _node("empty", "a2", [], _cg_msg("assistant", [""], t + 8)),
    }
    # Dict order must not matter: put the abandoned branches first.
    shuffled = {
        k: mapping[k] for k in ["u2_old", "a_old", "tool", "a2", "root", "empty", "u1", "call", "a_new", "sys", "u2"]
    }
    no_current = {
        "r": _node("r", None, ["q"], None),
        "q": _node("q", "r", ["x1", "x2"], _cg_msg("user", ["Hi"], t + 100)),
        "x1": _node("x1", "q", [], _cg_msg("assistant", ["first try"], t + 101)),
        "x2": _node("x2", "q", [], _cg_msg("assistant", ["second try"], t + 102)),
    }
    return json.dumps(
        [
            {
                "title": "Reverse a list",
                "create_time": t,
                "update_time": t + 9,
                "mapping": shuffled,
                "current_node": "empty",
                "conversation_id": "abc",
                "id": "abc",
            },
            {"title": None, "create_time": None, "update_time": None, "mapping": no_current, "current_node": None},
            {
                "title": "Empty",
                "create_time": t,
                "update_time": t,
                "mapping": {"r": _node("r", None, [], None)},
                "current_node": "r",
            },
        ]
    )


def test_chatgpt_import_follows_the_current_branch() -> None:
    convs = from_chatgpt_json(chatgpt_sample())
    assert len(convs) == 2  # the empty conversation is skipped
    conv = convs[0]
    assert conv.title == "Reverse a list"
    assert conv.created == 1700000000.5 and conv.updated == 1700000009.5
    assert [(m.role, m.text) for m in conv.messages] == [
        (Role.USER, "How do I reverse a list in Python?"),
        (Role.ASSISTANT, "Use `xs[::-1]` or `xs.reverse()`."),
        (Role.USER, "[image]\n\nWhat about this one?"),
        (Role.ASSISTANT, "It prints 1."),
    ]
    assert [m.model for m in conv.messages] == [None, "gpt-4o", None, "gpt-4o"]
    assert conv.messages[-1].state is MessageState.STOPPED
    assert conv.messages[-1].created == conv.messages[-2].created  # a missing time borrows the last one
    assert len({m.id for m in conv.messages}) == 4

    # the other versions come along, each after the message it answered or edited
    assert sorted(m.text for m in conv.branches) == ["Old answer that was regenerated.", "an edit the user abandoned"]
    assert conv.variant_position(conv.messages[1].id) == (2, 2)  # a_old came first
    assert conv.variant_position(conv.messages[2].id) == (2, 2)  # u2_old came first
    conv.select(next(m.id for m in conv.branches if m.text.startswith("Old answer")))
    assert [m.text for m in conv.messages] == ["How do I reverse a list in Python?", "Old answer that was regenerated."]

    other = convs[1]
    assert other.title == "Imported chat"
    assert [m.text for m in other.messages] == ["Hi", "second try"]  # newest leaf without current_node
    assert [m.text for m in other.branches] == ["first try"]
    assert other.created == 1700000100.5


def test_chatgpt_import_round_trips_through_hearth_json() -> None:
    convs = from_chatgpt_json(chatgpt_sample())
    assert from_json(to_json(convs)) == convs


@pytest.mark.parametrize(
    "text,expected",
    [
        ("{}", "should be a list of conversations"),
        ('[{"title": "x"}]', 'conversation 1: has no message tree ("mapping")'),
        ('[{"title": "x", "mapping": {}}, 5]', "conversation 2: has no message tree"),
        ("not json", "not valid JSON"),
    ],
)
def test_chatgpt_import_refuses_other_files(text: str, expected: str) -> None:
    with pytest.raises(ImportFormatError, match=re.escape(expected)):
        from_chatgpt_json(text)


def test_chatgpt_import_survives_a_cycle() -> None:
    mapping = {
        "a": _node("a", "b", ["b"], _cg_msg("user", ["one"], 1.0)),
        "b": _node("b", "a", ["a"], _cg_msg("assistant", ["two"], 2.0)),
    }
    [conv] = from_chatgpt_json(json.dumps([{"title": "loop", "mapping": mapping, "current_node": "b"}]))
    assert [m.text for m in conv.messages] == ["one", "two"]


def test_detect_format_and_import_any() -> None:
    hearth = to_json(sample_conversations())
    assert detect_format(hearth) == "hearth"
    assert detect_format(chatgpt_sample()) == "chatgpt"
    assert detect_format("[]") == "chatgpt"
    kind, convs = import_any(hearth.encode("utf-8"))
    assert kind == "hearth" and convs == sample_conversations()
    kind, convs = import_any(chatgpt_sample())
    assert kind == "chatgpt" and len(convs) == 2
    for bad in ('{"hello": 1}', "[1]", "3", "not json"):
        with pytest.raises(ImportFormatError):
            detect_format(bad)
    with pytest.raises(ImportFormatError, match="neither a Hearth export nor ChatGPT"):
        import_any('{"hello": 1}')


# ---------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("fmt", ["md", "json", "html", "txt"])
def test_save_export_writes_each_format(tmp_path: Path, fmt: str) -> None:
    convs = sample_conversations()
    path = tmp_path / f"chats.{fmt}"
    path.write_text("old contents")
    save_export(path, fmt, convs)
    written = path.read_text(encoding="utf-8")
    if fmt == "json":
        assert from_json(written) == convs
    else:
        assert written == export_text(fmt, convs)
        for conv in convs:
            assert conv.title in written
    if fmt == "md":
        assert to_markdown(convs[0]) in written and to_markdown(convs[1]) in written
        assert "\n---\n" in written
    assert os.listdir(tmp_path) == [path.name]  # no temp file left behind


def test_save_export_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "chats.md"
    path.write_text("old contents")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.os, "replace", broken_replace)
    with pytest.raises(ExportError, match="Could not save chats.md: No space left on device"):
        save_export(path, "md", sample_conversations())
    assert path.read_text() == "old contents"
    assert os.listdir(tmp_path) == ["chats.md"]


@pytest.mark.skipif(os.name != "posix", reason="Unix permissions")
def test_save_export_file_mode(tmp_path: Path) -> None:
    new = tmp_path / "new.md"
    save_export(new, "md", sample_conversations())
    assert new.stat().st_mode & 0o777 == 0o644  # not mkstemp's owner-only 0600
    private = tmp_path / "private.md"
    private.write_text("old")
    private.chmod(0o600)
    save_export(private, "md", sample_conversations())
    assert private.stat().st_mode & 0o777 == 0o600


def test_save_export_errors(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="Could not save x.md"):
        save_export(tmp_path / "missing-dir" / "x.md", "md", sample_conversations())
    with pytest.raises(ValueError, match="unknown export format"):
        save_export(tmp_path / "x.pdf", "pdf", sample_conversations())


def test_read_import_file_plain_and_zip(tmp_path: Path) -> None:
    zpath = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("chat.html", "<html></html>")
        zf.writestr("conversations.json", chatgpt_sample())
    kind, convs = read_import_file(zpath)
    assert kind == "chatgpt" and [c.title for c in convs] == ["Reverse a list", "Imported chat"]

    empty_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(empty_zip, "w") as zf:
        zf.writestr("notes.txt", "hi")
    with pytest.raises(ImportFormatError, match="without a conversations.json"):
        read_import_file(empty_zip)
    with pytest.raises(ImportFormatError, match="Could not read nope.json"):
        read_import_file(tmp_path / "nope.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"t": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(ImportFormatError, match="not UTF-8"):
        read_import_file(latin)
