"""Incremental markdown for a reply that is still being written (no Qt here).

API:
    Block(text, kind, fence, part, last, context, widths)   a finished (or unfinished) piece
        .is_code, .code(), .code_lines()        fenced code block? its raw code
        .highlight_source()                     the markdown to render for it
    BlockSplitter(kind=ANSWER, *, in_parts=False)   growing markdown -> finished blocks + tail
        .feed(text) -> list[Block]              blocks finished by this text
        .close() -> list[Block]                 the stream ended: the rest, finished
        .tail() -> Block | None                 the unfinished block, if any
    ReplyStream(*, in_parts=False)              a whole reply: ``<think>`` reasoning, then answer
        .feed(text), .close(), .blocks, .tail(), .generation, .text, .answer_text, .has_reasoning
    split_reply(text) -> list[Block]            the blocks of a finished reply
    split_reasoning(text) -> (reasoning | None, answer)
    qt_html(html) -> str                        shared markdown HTML adapted to Qt's rich text
    code_part_html(html, block) -> str          a fence part's HTML: context lines dropped, and
                                                no margin where it joins the next/previous part
    table_part_html(html, block) -> str         a table part's HTML: shared widths, no repeated
                                                header, no margin where parts meet
    table_widths(lines) -> tuple[int, ...]      column widths (percent) from a table's rows

Why blocks: re-rendering a whole reply on every streamed batch costs time in proportion to
its length, so a 4,000-token reply would slow down as it grows. Markdown's block structure
lets us do better: a paragraph, list or table ends at a blank line (outside a code fence), and
nothing written after it can change how it renders (reference-style link definitions aside,
which models hardly write). So the text is cut into *finished* blocks, rendered once, and an
unfinished *tail*, the only part rendered again per batch. A fence is finished only when it is
closed; until then the tail renders as an unclosed fence, which markdown-it shows as a code
block running to the end: the same layout the closed block will have, so nothing jumps.

A blank line followed by an indented line does not end a block: that is a list item's next
paragraph or its nested code, which needs the list around it to render right. A fence at
column 0 always starts its own block, so the view can put a Copy button on each code block
with the raw code at hand.

While streaming (``in_parts``), a block that keeps growing, a long fence or table, would make
the tail as long as it: a 300-line code block costs ~150 ms to highlight and lay out, per
batch. So such a block is finished in parts of a few lines or rows as it grows. Code parts
are highlighted with some lines before them as context (Pygments has no resumable state),
and table parts share their column widths, so the parts read as one block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER = "answer"
REASONING = "reasoning"

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
# CommonMark: up to three spaces, then three or more backticks or tildes; a backtick fence's
# info string may not contain a backtick (```x``` on one line is inline code, not a fence).
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}(?=[^`]*$)|~{3,})(?P<info>.*)$")


# A code fence that is still open is finished in parts of this many lines, so a 300-line
# block does not cost a 300-line render per batch; each part is highlighted together with up
# to CODE_CONTEXT_LINES lines before it, so a string or comment that began in an earlier part
# is still coloured as one.
CODE_PART_LINES = 6
CODE_CONTEXT_LINES = 12
# A table that is still growing is finished in parts of this many rows: Qt lays a table out
# whole on every change (a 30-row table costs ~20 ms), so each part is a table of its own;
# parts after the first share the first part's column widths and drop the header row.
TABLE_PART_ROWS = 8
_TABLE_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


@dataclass(frozen=True)
class Block:
    """A piece of a reply that renders on its own: a paragraph, a list, a table, a fence…

    A long fence or table streamed ``in_parts`` comes in parts. For a fence, ``text`` is the
    opening fence line plus the part's own lines (and the closing line in the last part), and
    ``context`` the code lines before it, highlighted along but not shown. For a table,
    ``text`` is the header and delimiter rows plus the part's rows, and ``widths`` the
    columns' shares, the same in every part.
    """

    text: str
    kind: str = ANSWER  # ANSWER or REASONING
    fence: str | None = None  # the fence's language ("" if none) when this is a fenced code block
    part: int = 0  # index of this part of a fence or table (0: the whole block, or its first part)
    last: bool = True  # False for a part that more parts follow
    context: tuple[str, ...] = ()
    widths: tuple[int, ...] = ()  # a table part's column widths, in percent

    @property
    def is_code(self) -> bool:
        return self.fence is not None

    def code(self) -> str:
        """The raw code of a fenced block (or part), as the user wants it copied."""
        return "\n".join(self.code_lines())

    def code_lines(self) -> list[str]:
        if self.fence is None:
            return []
        lines = self.text.split("\n")
        match = _FENCE_OPEN.match(lines[0])
        if match is None:  # pragma: no cover - a fence block always starts with its fence
            return lines
        char, length = match["fence"][0], len(match["fence"])
        body = lines[1:]
        if body and _closes(body[-1], char, length):
            body = body[:-1]
        return body

    def highlight_source(self) -> str:
        """What to render for this block: a part's fence with its context lines before it."""
        if not self.context:
            return self.text
        opener, _, rest = self.text.partition("\n")
        return "\n".join([opener, *self.context, rest])


def _closes(line: str, char: str, length: int) -> bool:
    stripped = line.strip()
    return len(stripped) >= length and stripped == char * len(stripped)


class BlockSplitter:
    """Cuts growing markdown into finished blocks and the unfinished tail, line by line.

    The cost of ``feed`` is proportional to the new text plus the partial last line, never
    to what was finished before. With ``in_parts`` (streaming), an open column-0 fence is
    finished in parts of CODE_PART_LINES lines and a table in parts of TABLE_PART_ROWS rows;
    without, each is one block.
    """

    def __init__(self, kind: str = ANSWER, *, in_parts: bool = False) -> None:
        self.kind = kind
        self.in_parts = in_parts
        self._lines: list[str] = []  # complete lines of the current block
        self._partial = ""  # text after the last newline
        self._blanks = 0  # blank lines seen after the current block (it may be finished)
        self._fence: tuple[str, int] | None = None  # (char, length) of a fence open in the block
        self._fence_lang: str | None = None  # set when the current block is a column-0 fence
        self._part = 0  # parts of the current fence or table finished so far
        self._context: list[str] = []  # the last code lines of those parts
        self._table = False  # the current block is a table (header, delimiter, rows)
        self._widths: tuple[int, ...] = ()  # its column widths, once its first part is done

    def feed(self, text: str) -> list[Block]:
        if not text:
            return []
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        finished: list[Block] = []
        if "\n" in text:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._line(line, finished)
        else:
            self._partial += text
        if self._blanks and self._partial[:1] not in ("", " ", "\t"):
            # the next line has begun, unindented: the block before the blank line is done
            finished.append(self._finish())
        return finished

    def close(self) -> list[Block]:
        finished: list[Block] = []
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(line, finished)
        if self._lines:
            finished.append(self._finish())
        return finished

    @property
    def in_fence(self) -> bool:
        return self._fence is not None

    def tail(self) -> Block | None:
        lines = self._lines
        if self._partial:
            lines = lines + [""] * self._blanks + [self._partial]
        if not lines:
            return None
        return self._block(lines, last=True)

    # -- line machine -------------------------------------------------------------------------

    def _block(self, lines: list[str], *, last: bool) -> Block:
        return Block(
            "\n".join(lines), self.kind, self._fence_lang, self._part, last, tuple(self._context), self._widths
        )

    def _finish(self) -> Block:
        block = self._block(self._lines, last=True)
        self._lines = []
        self._blanks = 0
        self._fence = None
        self._fence_lang = None
        self._part = 0
        self._context = []
        self._table = False
        self._widths = ()
        return block

    def _finish_table_part(self) -> Block:
        """The rows so far of a long table, as a finished part; the table goes on."""
        if not self._widths:
            self._widths = table_widths(self._lines)
        block = self._block(self._lines, last=False)
        self._part += 1
        self._lines = self._lines[:2]
        return block

    def _finish_part(self) -> Block:
        """The lines so far of a long open fence, as a finished part; the fence goes on."""
        opener, *code = self._lines
        block = self._block(self._lines, last=False)
        self._part += 1
        self._context = (self._context + code)[-CODE_CONTEXT_LINES:]
        self._lines = [opener]
        return block

    def _line(self, line: str, finished: list[Block]) -> None:
        if self._fence is not None:  # inside a fence: only its closing line matters
            self._lines.append(line)
            if _closes(line, *self._fence):
                self._fence = None
                if self._fence_lang is not None:
                    finished.append(self._finish())  # a closed column-0 fence is complete
            elif self.in_parts and self._fence_lang is not None and len(self._lines) > CODE_PART_LINES:
                finished.append(self._finish_part())
            return
        if not line.strip():
            if self._lines:
                self._blanks += 1
            return
        indented = line[0] in " \t"
        if self._blanks:
            if indented:  # a list item's next paragraph or nested code: same block
                self._lines.extend([""] * self._blanks)
                self._blanks = 0
            else:
                finished.append(self._finish())
        match = _FENCE_OPEN.match(line)
        if match is not None and not indented:
            if self._lines:
                finished.append(self._finish())
            info = match["info"].strip()
            self._fence_lang = info.split(maxsplit=1)[0] if info else ""
        if match is not None:
            self._fence = (match["fence"][0], len(match["fence"]))
        self._lines.append(line)
        if not self.in_parts:
            return
        if self._table:
            if len(self._lines) - 2 >= TABLE_PART_ROWS:
                finished.append(self._finish_table_part())
        elif len(self._lines) == 2 and "|" in self._lines[0] and _TABLE_DELIMITER.match(line) and "-" in line:
            self._table = True


def _held_back(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ReplyStream:
    """A reply as it streams: an optional ``<think>`` section, then the answer, as blocks.

    ``blocks`` only grows, except when ``generation`` changes: a ``</think>`` with no opening
    tag (templates that put ``<think>`` in the prompt, like DeepSeek-R1's) means that what came
    before was reasoning, and the view renders the reply again, once.
    """

    def __init__(self, *, in_parts: bool = False) -> None:
        self.in_parts = in_parts
        self.blocks: list[Block] = []
        self.generation = 0
        self.has_reasoning = False
        self.reasoning_text = ""
        self.answer_text = ""
        self._parts: list[str] = []
        self._mode = "start"  # "start" (undecided), REASONING or ANSWER
        self._pending = ""  # text held back: it may be the start of a tag
        self._strip_leading = False  # drop whitespace between </think> and the answer
        self._splitter = BlockSplitter(ANSWER, in_parts=self.in_parts)
        self._closed = False

    @property
    def text(self) -> str:
        """Everything fed so far, verbatim."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def feed(self, text: str) -> None:
        if not text or self._closed:
            return
        self._parts.append(text)
        buf = self._pending + text
        self._pending = ""
        if self._mode == "start":
            head = buf.lstrip()
            if not head or (len(head) < len(_THINK_OPEN) and _THINK_OPEN.startswith(head)):
                self._pending = buf
                return
            if head.startswith(_THINK_OPEN):
                self._mode = REASONING
                self.has_reasoning = True
                self._splitter = BlockSplitter(REASONING, in_parts=self.in_parts)
                buf = head[len(_THINK_OPEN) :].lstrip("\n")
            else:
                self._mode = ANSWER
        if self._mode == REASONING:
            end = buf.find(_THINK_CLOSE)
            if end < 0:
                keep = _held_back(buf, _THINK_CLOSE)
                self._pending = buf[len(buf) - keep :] if keep else ""
                self._to_splitter(buf[: len(buf) - keep])
                return
            self._to_splitter(buf[:end])
            self.blocks += self._splitter.close()
            self._mode = ANSWER
            self._splitter = BlockSplitter(ANSWER, in_parts=self.in_parts)
            self._strip_leading = True
            buf = buf[end + len(_THINK_CLOSE) :]
        if not self.has_reasoning:  # watch for an orphan </think>
            end = buf.find(_THINK_CLOSE)
            if end >= 0 and self._orphan_close_at(buf, end):
                self._reinterpret(self.answer_text + buf[:end], buf[end + len(_THINK_CLOSE) :])
                return
            keep = _held_back(buf, _THINK_CLOSE) if end < 0 else 0
            self._pending = buf[len(buf) - keep :] if keep else ""
            buf = buf[: len(buf) - keep]
        self._to_splitter(buf)

    def close(self) -> None:
        """The reply ended: held-back text and the tail become finished blocks."""
        if self._closed:
            return
        pending, self._pending = self._pending, ""
        if self._mode == "start":
            self._mode = ANSWER
        self._to_splitter(pending)
        self.blocks += self._splitter.close()
        self._closed = True

    def tail(self) -> Block | None:
        return None if self._closed else self._splitter.tail()

    # -- internals ----------------------------------------------------------------------------

    def _to_splitter(self, text: str) -> None:
        if self._strip_leading and self._mode == ANSWER:
            text = text.lstrip()
            if not text:
                return
            self._strip_leading = False
        if not text:
            return
        if self._splitter.kind == REASONING:
            self.reasoning_text += text
        else:
            self.answer_text += text
        self.blocks += self._splitter.feed(text)

    def _orphan_close_at(self, buf: str, end: int) -> bool:
        """Only a bare tag ends reasoning: not one quoted in code (`</think>`, or in a fence)."""
        before = buf[end - 1] if end > 0 else (self.answer_text[-1:] or "\n")
        if before == "`" or self._splitter.in_fence:
            return False
        return bool((self.answer_text + buf[:end]).strip())

    def _reinterpret(self, reasoning: str, rest: str) -> None:
        self.generation += 1
        self.blocks = []
        self.answer_text = ""
        self.reasoning_text = ""
        self.has_reasoning = True
        self._mode = REASONING
        self._splitter = BlockSplitter(REASONING, in_parts=self.in_parts)
        self._to_splitter(reasoning.lstrip("\n"))
        self.blocks += self._splitter.close()
        self._mode = ANSWER
        self._splitter = BlockSplitter(ANSWER, in_parts=self.in_parts)
        self._strip_leading = True
        self._to_splitter(rest)


def split_reply(text: str) -> list[Block]:
    """The blocks of a finished reply: what streaming it (without parts) produces, whatever
    the batches."""
    stream = ReplyStream()
    stream.feed(text)
    stream.close()
    return stream.blocks


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a reply; reasoning is None when there is no ``<think>`` part."""
    stream = ReplyStream()
    stream.feed(text)
    stream.close()
    return (stream.reasoning_text if stream.has_reasoning else None), stream.answer_text


# -- HTML for Qt's rich text ----------------------------------------------------------------

_PRE_SPLIT = re.compile(r"(<pre\b.*?</pre>)", re.S)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_BLOCK_TAG = r"</?(?:p|div|ul|ol|li|table|thead|tbody|tr|th|td|blockquote|h[1-6]|hr|pre|br)\b[^>]*>"
# markdown-it ends block tags with a newline; any other newline is a soft line break.
_STRUCTURAL_NEWLINE = re.compile(rf"\n+(?={_BLOCK_TAG}|$)|(?<=<br />)\n|(?<=<br>)\n")
_INLINE_CODE = re.compile(r"<code>")
TABLE_OPEN = (
    '<table border="1" cellspacing="0" cellpadding="4" '
    'style="border-collapse: collapse; border-style: solid; border-color: #b8b8b8; '
    'margin-top: 4px; margin-bottom: 4px">'
)
INLINE_CODE_OPEN = '<code style="background-color: rgba(128, 128, 128, 40)">'
# Qt indents a quote but draws no bar: a mid grey (readable on light and dark) marks it.
BLOCKQUOTE_OPEN = '<blockquote style="color: #777777">'
# Qt's default heading sizes are made for documents (h1 is "xx-large"); in a chat bubble a
# model's "# Title" should stand out, not dominate the screen.
_HEADINGS = {
    "<h1>": '<h3 style="font-size: x-large">',
    "</h1>": "</h3>",
    "<h2>": '<h3 style="font-size: large">',
    "</h2>": "</h3>",
    "<h3>": '<h4 style="font-size: medium">',
    "</h3>": "</h4>",
}
_HEADING_TAG = re.compile(r"</?h[123]>")


def qt_html(html: str) -> str:
    """The shared renderer's HTML, adapted to what ``QTextCursor.insertHtml`` does with it.

    - newlines between block tags would become stray spaces at the start or end of blocks,
      and the newline before ``</code></pre>`` an empty extra line in every code block;
    - the other newlines are soft line breaks, shown as line breaks: in a chat a model's
      single newline is meant (a poem, an address, "Step 1:" lines), as most chat apps
      show it; CommonMark's default would run such lines together;
    - a bare ``<table>`` has no borders or padding in Qt, so it gets the attributes Qt reads;
    - ``<code>`` spans get a background so inline code stands out, as in any markdown viewer,
      and quotes a grey colour (Qt only indents them);
    - no ``<img>`` may reach the document, whatever the renderer does: Qt would ask for the
      resource (the view refuses, but there should be nothing to refuse).
    """
    parts = _PRE_SPLIT.split(html)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:  # a <pre> element: its newlines are the code's lines
            out.append(part.replace("\n</code></pre>", "</code></pre>"))
        else:
            part = _STRUCTURAL_NEWLINE.sub("", part).replace("\n", "<br>").replace("<table>", TABLE_OPEN)
            part = _INLINE_CODE.sub(INLINE_CODE_OPEN, part).replace("<blockquote>", BLOCKQUOTE_OPEN)
            out.append(_HEADING_TAG.sub(lambda m: _HEADINGS[m.group(0)], part))
    return _IMG.sub("[image]", "".join(out))


_CODE_ELEMENT = re.compile(r"(<pre\b)([^>]*)(>\s*<code\b[^>]*>)(.*?)(</code>\s*</pre>)", re.S)
_STYLE_ATTR = re.compile(r'style="([^"]*)"')


def code_part_html(html: str, block: Block) -> str:
    """Adapt a rendered fence to the part it is: drop the context lines (rendered only so the
    highlighter knows what came before), keep a trailing empty line, and drop the margins where
    parts meet, so the parts read as one code block. Pygments closes and reopens its spans at
    each line end, so a line of its output is self-contained and can be dropped on its own."""
    match = _CODE_ELEMENT.search(html)
    if match is None:
        return html
    pre, attrs, code_open, inner, close = match.groups()
    lines = inner.split("\n")[len(block.context) :]
    # markdown-it drops the empty last line of a fence that is not closed yet
    lines += [""] * (len(block.code_lines()) - len(lines))
    inner = "\n".join(lines)
    margins = ("margin-top: 0px; " if block.part else "") + ("" if block.last else "margin-bottom: 0px; ")
    if margins:
        if _STYLE_ATTR.search(attrs):
            attrs = _STYLE_ATTR.sub(lambda m: f'style="{m.group(1)}; {margins}"', attrs, count=1)
        else:
            attrs += f' style="{margins.strip()}"'
    return html[: match.start()] + pre + attrs + code_open + inner + close + html[match.end() :]


def table_widths(lines: list[str]) -> tuple[int, ...]:
    """Column widths in percent, from the cells' lengths (header and rows; not the delimiter)."""
    longest: list[int] = []
    for i, line in enumerate(lines):
        if i == 1:
            continue
        cells = line.strip().strip("|").split("|")
        for c, cell in enumerate(cells):
            size = min(max(len(cell.strip()), 3), 40)
            if c < len(longest):
                longest[c] = max(longest[c], size)
            else:
                longest.append(size)
    total = sum(longest) or 1
    return tuple(max(1, round(100 * n / total)) for n in longest)


_THEAD = re.compile(r"<thead>.*?</thead>", re.S)
_TABLE_TAG = re.compile(r"<table\b([^>]*)>")
_FIRST_ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
_CELL_TAG = re.compile(r"<t([hd])\b")


def table_part_html(html: str, block: Block) -> str:
    """Adapt a rendered table to the part it is, so the parts read as one table."""
    if not block.widths:
        return html
    if block.part:
        html = _THEAD.sub("", html, count=1)
    margins = ("margin-top: 0px; " if block.part else "") + ("" if block.last else "margin-bottom: 0px; ")

    def table_tag(match: re.Match[str]) -> str:
        attrs = match.group(1)
        if margins:
            attrs = _STYLE_ATTR.sub(lambda m: f'style="{m.group(1)}; {margins}"', attrs, count=1)
        return f'<table width="100%"{attrs}>'

    html = _TABLE_TAG.sub(table_tag, html, count=1)
    widths = iter(block.widths)

    def cell(match: re.Match[str]) -> str:
        width = next(widths, None)
        return match.group(0) if width is None else f'{match.group(0)} width="{width}%"'

    return _FIRST_ROW.sub(lambda m: "<tr>" + _CELL_TAG.sub(cell, m.group(1)) + "</tr>", html, count=1)
