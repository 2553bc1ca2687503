"""An incremental parser for server-sent events (the ``text/event-stream`` format).

It follows the WHATWG rules that OpenAI-compatible servers rely on: lines end with CRLF, LF or
a lone CR (a CR at the end of one chunk may be followed by the LF in the next); a line that
starts with ``:`` is a comment (servers send them as keep-alives); ``data`` lines of one event
are joined with newlines; a single space after the colon is dropped; an empty line ends the
event; an event without data is not dispatched; a UTF-8 byte order mark at the very start is
skipped; bytes that are not UTF-8 become U+FFFD instead of stopping the stream. Feed it bytes
in chunks of any size, split anywhere (inside a line, a CRLF or a multi-byte character).

``[DONE]`` is not special here: it is an ordinary event whose data the caller looks at.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""  # decoded text not yet split into lines
        self._started = False  # the BOM check is done
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self.comments = 0  # keep-alive comments seen (for tests and diagnostics)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events that ``chunk`` completes, in order."""
        return self._take(self._decoder.decode(chunk))

    def close(self) -> list[SSEEvent]:
        """End of stream: a last line without its line end still counts, but an event that was
        never ended with an empty line is discarded (as the standard says)."""
        events = self._take(self._decoder.decode(b"", final=True))
        if self._text:
            line, self._text = self._text, ""
            events.extend(self._line(line.rstrip("\r")))
        self._data.clear()
        self._event = ""
        return events

    def _take(self, text: str) -> list[SSEEvent]:
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        text = self._text + text
        events: list[SSEEvent] = []
        start = 0
        n = len(text)
        while start < n:
            lf = text.find("\n", start)
            cr = text.find("\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                if cr == n - 1:
                    break  # a CR at the end: wait for the next chunk to know whether LF follows
                end, after = cr, cr + 2 if text[cr + 1] == "\n" else cr + 1
            elif lf >= 0:
                end, after = lf, lf + 1
            else:
                break
            events.extend(self._line(text[start:end]))
            start = after
        self._text = text[start:]
        return events

    def _line(self, line: str) -> list[SSEEvent]:
        if not line:
            if not self._data:
                self._event = ""
                return []
            event = SSEEvent("\n".join(self._data), self._event or "message", self._last_id)
            self._data.clear()
            self._event = ""
            return [event]
        if line[0] == ":":
            self.comments += 1
            return []
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return []  # "retry" and unknown fields are ignored


def iter_lines(chunks: bytes, pending: bytearray) -> list[bytes]:
    """Whole lines (without their LF) from an NDJSON stream (Ollama's); the rest stays in
    ``pending`` for the next chunk."""
    pending += chunks
    if b"\n" not in pending:
        return []
    *lines, rest = bytes(pending).split(b"\n")
    pending[:] = rest
    return [line.rstrip(b"\r") for line in lines if line.strip()]
