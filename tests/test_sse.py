"""The server-sent events parser: the standard's rules, and any split of any stream."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.sse import SSEEvent, SSEParser, iter_lines


def parse(*chunks: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events = [e for chunk in chunks for e in parser.feed(chunk)]
    return events + parser.close()


def test_openai_stream_with_comments_crlf_and_done() -> None:
    stream = b': ping - 2025-01-01\r\n\r\ndata: {"a": 1}\r\n\r\ndata: [DONE]\r\n\r\n'
    assert [e.data for e in parse(stream)] == ['{"a": 1}', "[DONE]"]


def test_multi_line_data_is_joined_with_newlines_and_one_space_is_dropped() -> None:
    events = parse(b"event: delta\ndata:  two spaces\ndata:none\nid: 7\n\n")
    assert events == [SSEEvent(" two spaces\nnone", "delta", "7")]


def test_lone_cr_line_ends_and_a_cr_split_from_its_lf() -> None:
    assert [e.data for e in parse(b"data: a\r\rdata: b\r", b"\n\r", b"\n")] == ["a", "b"]


def test_bom_events_without_data_and_unfinished_events() -> None:
    assert [e.data for e in parse(b"\xef\xbb\xbfdata: x\n\nevent: empty\n\ndata: never ended")] == ["x"]


def test_bytes_that_are_not_utf8_never_stop_the_stream() -> None:
    assert parse(b"data: \xff\xfe ok\n\n")[0].data == "\ufffd\ufffd ok"


def test_ndjson_lines_across_chunks() -> None:
    pending = bytearray()
    assert iter_lines(b'{"a":', pending) == []
    assert iter_lines(b'1}\r\n{"b":2}\n\n{"c"', pending) == [b'{"a":1}', b'{"b":2}']
    assert bytes(pending) == b'{"c"'


# Field values a server may send: any text without line breaks (a leading space is legal
# content: only the first one after the colon is eaten).
_value = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=30)
_event = st.tuples(st.lists(_value, min_size=1, max_size=3), st.sampled_from(["", "delta", "error"]))


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event, max_size=8),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.lists(_value, max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_stream_split_anywhere_gives_the_same_events(events, newline, comments, cuts) -> None:
    text = ""
    for i, (lines, name) in enumerate(events):
        if i < len(comments):
            text += ":" + comments[i] + newline  # a keep-alive between events
        if name:
            text += f"event: {name}{newline}"
        text += "".join(f"data: {line}{newline}" for line in lines) + newline
    data = text.encode("utf-8")
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    got = parse(*chunks)
    assert [(e.data, e.event) for e in got] == [("\n".join(lines), name or "message") for lines, name in events]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_garbage_never_raises(data: bytes, size: int) -> None:
    parser = SSEParser()
    for at in range(0, len(data), size):
        for event in parser.feed(data[at : at + size]):
            assert isinstance(event.data, str)
    parser.close()
