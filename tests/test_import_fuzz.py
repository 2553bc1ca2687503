"""Every importer, fed anything: a result or its typed error, within stated time and memory.

Hearth JSON, ChatGPT JSON and zip, and presets files. Stated bounds: for an input of at most
~200 KB, one import takes under 5 s and its Python allocations peak under 64 MB (the bounds
are loose on purpose: they catch a blow-up of orders of magnitude, not a slow machine).
Whatever the Hearth importer accepts, the store saves and reads back unchanged and the
window can show: nested settings, stats and sources are checked field by field.
"""

from __future__ import annotations

import copy
import io
import json
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import export
from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.export import ImportFormatError, from_chatgpt_json, from_json, import_any, read_import_file, to_json
from app.core.presets import PresetError, PresetStore
from app.core.records import check_settings, check_stats
from app.core.store import ConversationStore

TIME_LIMIT_S = 5.0
MEMORY_LIMIT = 64 << 20
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@contextmanager
def bounded() -> Iterator[None]:
    """The stated bounds around one import."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert peak < MEMORY_LIMIT, f"peak {peak / 2**20:.1f} MB"


# -- values hostile to a typed reader ---------------------------------------------------------

HOSTILE = [
    10**30,
    -(10**30),
    2**63,
    1e308,
    -0.0,
    True,
    None,
    "",
    "x" * 50,
    "\ud800",
    [],
    [1, [2]],
    {},
    {"a": {"b": []}},
    [["a"]],
    0.5,
    7,
]
hostile = st.sampled_from(HOSTILE) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def base_export() -> dict[str, Any]:
    conv = Conversation(
        title="t",
        settings={"temperature": 0.5, "few_shot": [["q", "a"]]},
        messages=[
            Message(Role.USER, "hi", created=1e9),
            Message(
                Role.ASSISTANT,
                "yo",
                MessageState.COMPLETE,
                model="m",
                created=1e9 + 1,
                settings={"top_k": 40},
                stats={
                    "tokens": 2,
                    "ttft": 0.1,
                    "finish_reason": "stop",
                    "sources": [{"number": 1, "label": "a.txt", "text": "x", "cited": True}],
                },
            ),
        ],
        created=1e9,
        updated=1e9,
    )
    return json.loads(to_json([conv]))


# paths inside one export where a hostile value is put
PLACES: list[tuple[Any, ...]] = [
    ("conversations", 0, "title"),
    ("conversations", 0, "created"),
    ("conversations", 0, "id"),
    ("conversations", 0, "settings"),
    ("conversations", 0, "settings", "temperature"),
    ("conversations", 0, "settings", "few_shot"),
    ("conversations", 0, "settings", "stop"),
    ("conversations", 0, "settings", "later_key"),
    ("conversations", 0, "pinned"),
    ("conversations", 0, "messages", 1, "text"),
    ("conversations", 0, "messages", 1, "role"),
    ("conversations", 0, "messages", 1, "model"),
    ("conversations", 0, "messages", 1, "created"),
    ("conversations", 0, "messages", 1, "settings", "top_k"),
    ("conversations", 0, "messages", 1, "stats"),
    ("conversations", 0, "messages", 1, "stats", "tokens"),
    ("conversations", 0, "messages", 1, "stats", "ttft"),
    ("conversations", 0, "messages", 1, "stats", "sources"),
    ("conversations", 0, "messages", 1, "stats", "sources", 0, "number"),
    ("conversations", 0, "messages", 1, "stats", "sources", 0, "label"),
    ("conversations", 0, "messages", 1, "stats", "later_key"),
    ("version",),
]


def put(data: Any, path: tuple[Any, ...], value: Any) -> None:
    """Place a copy: HOSTILE's values are shared between examples, and a later place inside
    one (a key under a dict put earlier) must not change it, or it would come to hold itself."""
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = copy.deepcopy(value)


def assert_showable(conv: Conversation) -> None:
    """What the window relies on when it shows a conversation (settings panel, chat view)."""
    assert check_settings(conv.settings, conversation=True)[0] == conv.settings
    for m in conv.all_messages():
        assert isinstance(m.text, str) and isinstance(m.created, float)
        assert check_settings(m.settings)[0] == m.settings
        assert check_stats(m.stats)[0] == m.stats


@FUZZ
@given(
    places=st.lists(st.sampled_from(PLACES), min_size=1, max_size=3), values=st.lists(hostile, min_size=3, max_size=3)
)
def test_hearth_json_gives_conversations_that_save_and_show_or_the_typed_error(
    tmp_path_factory, places, values
) -> None:
    data = base_export()
    for place, value in zip(places, values):
        try:
            put(data, place, value)
        except (TypeError, KeyError, IndexError):
            pass  # an earlier value replaced the container
    text = json.dumps(data, allow_nan=False)
    with bounded():
        try:
            convs = from_json(text)
        except ImportFormatError:
            return
    for conv in convs:
        assert_showable(conv)
    with ConversationStore(tmp_path_factory.mktemp("db") / "c.sqlite3") as store:
        store.import_conversations(convs)
        assert store.flush() and not store.errors, list(store.errors)
        for conv in convs:
            problems: list[str] = []
            store.load(conv.id, problems)
            assert problems == []


@pytest.mark.parametrize(
    "place,value,expected",
    [
        (("conversations", 0, "settings", "temperature"), "hot", "settings: temperature must be a number"),
        (("conversations", 0, "settings", "few_shot"), 5, "few_shot"),
        (("conversations", 0, "settings", "top_k"), 10**30, "top_k"),
        (("conversations", 0, "messages", 1, "stats", "tokens"), "many", "stats: tokens"),
        (("conversations", 0, "messages", 1, "stats", "sources"), [{"number": "one"}], "source 1: number"),
        (("conversations", 0, "messages", 1, "stats", "sources"), 5, "sources must be a list"),
        (("conversations", 0, "messages", 1, "settings", "stop"), "###", "stop must be a list of text"),
        (("conversations", 0, "created"), 10**30, "created must be a time"),
        (("conversations", 0, "messages", 0, "created"), -(10**400), "created must be a time"),
    ],
)
def test_wrong_typed_nested_fields_refuse_the_whole_file_with_a_plain_message(place, value, expected) -> None:
    data = base_export()
    put(data, place, value)
    text = (
        json.dumps(data)
        if not (isinstance(value, int) and abs(value) > 10**300)
        else json.dumps(data).replace(json.dumps(value), str(value))
    )
    with pytest.raises(ImportFormatError) as info:
        from_json(text)
    assert expected in str(info.value) and "conversation 1" in str(info.value)


# -- ChatGPT -----------------------------------------------------------------------------------


def chatgpt_base() -> list[dict[str, Any]]:
    def node(nid: str, parent: str | None, children: list[str], role: str | None, text: str) -> dict[str, Any]:
        msg = (
            None
            if role is None
            else {
                "author": {"role": role},
                "create_time": 1.7e9,
                "recipient": "all",
                "content": {"content_type": "text", "parts": [text]},
                "metadata": {"model_slug": "gpt-4"},
            }
        )
        return {"id": nid, "parent": parent, "children": children, "message": msg}

    return [
        {
            "title": "c",
            "create_time": 1.7e9,
            "current_node": "b",
            "mapping": {
                "r": node("r", None, ["a"], None, ""),
                "a": node("a", "r", ["b", "c"], "user", "q"),
                "b": node("b", "a", [], "assistant", "one"),
                "c": node("c", "a", [], "assistant", "two"),
            },
        }
    ]


CHATGPT_PLACES: list[tuple[Any, ...]] = [
    (0, "title"),
    (0, "create_time"),
    (0, "update_time"),
    (0, "current_node"),
    (0, "mapping"),
    (0, "mapping", "a", "parent"),
    (0, "mapping", "b", "parent"),
    (0, "mapping", "a", "children"),
    (0, "mapping", "a", "message"),
    (0, "mapping", "b", "message", "author"),
    (0, "mapping", "b", "message", "author", "role"),
    (0, "mapping", "b", "message", "create_time"),
    (0, "mapping", "b", "message", "content"),
    (0, "mapping", "b", "message", "content", "content_type"),
    (0, "mapping", "b", "message", "content", "parts"),
    (0, "mapping", "b", "message", "metadata"),
    (0, "mapping", "b", "message", "metadata", "model_slug"),
    (0, "mapping", "b", "message", "recipient"),
    (0, "mapping", "b", "message", "metadata", "finish_details"),
    (0,),
]


@FUZZ
@given(
    places=st.lists(st.sampled_from(CHATGPT_PLACES), min_size=1, max_size=3),
    values=st.lists(hostile, min_size=3, max_size=3),
)
def test_chatgpt_json_gives_conversations_or_the_typed_error(places, values) -> None:
    data = chatgpt_base()
    for place, value in zip(places, values):
        try:
            put(data, place, value)
        except (TypeError, KeyError, IndexError):
            pass  # an earlier value replaced the container
    text = json.dumps(data, allow_nan=False)
    with bounded():
        try:
            convs = from_chatgpt_json(text)
        except ImportFormatError:
            return
    for conv in convs:
        assert_showable(conv)
        assert all(isinstance(m.model, (str, type(None))) for m in conv.all_messages())


@pytest.mark.parametrize(
    "place,value",
    [
        ((0, "mapping", "b", "message", "author", "role"), ["assistant"]),  # unhashable where text belongs
        ((0, "mapping", "b", "parent"), ["a"]),
        ((0, "mapping", "a", "children"), 5),
        ((0, "mapping", "b", "message", "content", "parts"), 5),
        ((0, "mapping", "b", "message", "content", "content_type"), {"t": 1}),
        ((0, "create_time"), 10**30),
    ],
)
def test_chatgpt_values_of_the_wrong_type_never_escape_the_importer(place, value) -> None:
    data = chatgpt_base()
    put(data, place, value)
    try:
        from_chatgpt_json(json.dumps(data))
    except ImportFormatError:
        pass


# -- zips ------------------------------------------------------------------------------------


def zip_bytes(payload: bytes, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr("export/conversations.json", payload)
    return buf.getvalue()


GOOD_ZIP = zip_bytes(json.dumps(chatgpt_base()).encode())


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, len(GOOD_ZIP) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.none() | st.integers(0, len(GOOD_ZIP)),
)
def test_damaged_zip_gives_conversations_or_the_typed_error(tmp_path_factory, edits, cut) -> None:
    data = bytearray(GOOD_ZIP)
    for at, byte in edits:
        data[at] = byte
    path = tmp_path_factory.mktemp("zip") / "export.zip"
    path.write_bytes(bytes(data[:cut] if cut is not None else data))
    with bounded():
        try:
            read_import_file(path)
        except ImportFormatError:
            pass


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_and_lzma_members_are_refused_before_decompressing(tmp_path: Path, method: int) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bytes(b" " * (50 << 20), method))  # a few hundred bytes on disk
    assert path.stat().st_size < 100_000
    with bounded(), pytest.raises(ImportFormatError, match="compressed with a method"):
        read_import_file(path)


def test_zip_is_bounded_by_the_bytes_decompressed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(export, "MAX_IMPORT_BYTES", 1 << 20)
    payload = json.dumps(chatgpt_base()).encode() + b" " * (4 << 20)
    path = tmp_path / "big.zip"
    path.write_bytes(zip_bytes(payload))
    with bounded(), pytest.raises(ImportFormatError, match="too large"):
        read_import_file(path)
    plain = tmp_path / "big.json"
    plain.write_bytes(payload)
    with pytest.raises(ImportFormatError, match="too large"):
        read_import_file(plain)


@pytest.mark.parametrize("damage", ["truncate", "bad-deflate", "unknown-method"])
def test_corrupt_zips_give_the_plain_message(tmp_path: Path, damage: str) -> None:
    data = bytearray(zip_bytes(json.dumps(chatgpt_base()).encode() * 50))
    header = data.find(b"PK\x03\x04")
    start = header + 30 + len("export/conversations.json")
    if damage == "truncate":
        data = data[: len(data) // 2] + data[-22:]  # the end record stays: a short member
    elif damage == "bad-deflate":
        data[start : start + 16] = b"\xff" * 16
    else:  # compression method 99 (AES) in both headers: zipfile raises NotImplementedError
        data[header + 8 : header + 10] = (99).to_bytes(2, "little")
        central = data.find(b"PK\x01\x02")
        data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ImportFormatError, match="Could not read damaged.zip"):
        read_import_file(path)


def test_deep_nesting_anywhere_is_the_typed_error() -> None:
    for text in (
        "[" * 200_000,
        '{"a":' * 200_000,
        json.dumps(base_export())[:-1] + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
    ):
        try:
            import_any(text)
        except ImportFormatError:
            pass


# -- presets -----------------------------------------------------------------------------------

PRESET_PLACES = [
    ("presets", 0, "name"),
    ("presets", 0, "settings"),
    ("presets", 0, "settings", "top_k"),
    ("presets", 0, "settings", "temperature"),
    ("presets", 0, "settings", "stop"),
    ("presets", 0, "few_shot"),
    ("presets", 0, "system_prompt"),
    ("presets",),
    ("version",),
]


@FUZZ
@given(
    places=st.lists(st.sampled_from(PRESET_PLACES), min_size=1, max_size=3),
    values=st.lists(hostile, min_size=3, max_size=3),
)
def test_presets_import_gives_presets_that_save_or_the_typed_error(tmp_path_factory, places, values) -> None:
    data: Any = {
        "format": "hearth-presets",
        "version": 1,
        "presets": [
            {
                "name": "Mine",
                "description": "d",
                "system_prompt": "s",
                "settings": {"top_k": 5, "temperature": 0.2},
                "few_shot": [["q", "a"]],
            }
        ],
    }
    for place, value in zip(places, values):
        try:
            put(data, place, value)
        except (TypeError, KeyError, IndexError):
            pass
    store = PresetStore(tmp_path_factory.mktemp("presets") / "presets.json")
    with bounded():
        try:
            added = store.import_json(json.dumps(data, allow_nan=False))
        except PresetError:
            return
    again = PresetStore(store.path)  # what was saved reads back
    for preset in added:
        assert again.get(preset.name) is not None
        for value in preset.settings.values():
            assert not isinstance(value, int) or abs(value) < 2**31


@pytest.mark.parametrize(
    "text",
    [
        '{"presets": [{"name": "x", "settings": {"top_k": 1000000000000}}]}',
        '{"presets": [{"name": "x", "settings": {"temperature": 1' + "0" * 400 + "}}]}",
        "[" * 100_000,
        '{"presets": [{"name": "\\ud800"}]}',
    ],
)
def test_presets_import_refuses_or_saves_hostile_values(tmp_path: Path, text: str) -> None:
    store = PresetStore(tmp_path / "presets.json")
    try:
        store.import_json(text)
    except PresetError:
        return
    saved = PresetStore(store.path).list()
    assert saved and all(not isinstance(v, int) or abs(v) < 2**31 for p in saved for v in p.settings.values())
