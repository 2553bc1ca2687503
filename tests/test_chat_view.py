"""The chat view: markdown while streaming, safety, copy, follow-bottom, stats, reasoning.

No model here: messages are made by hand and streamed in batches as the session does.
"""

from __future__ import annotations

import random

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt, QUrl
from PySide6.QtGui import QColor, QFont, QHelpEvent, QImage, QTextCursor, QTextDocument, QTextFormat, QTextTable
from PySide6.QtWidgets import QApplication

from app.core.conversation import Message, MessageState, Role
from app.ui import chat_view, stream_markdown
from app.ui.chat_view import ChatView
from app.ui.stream_markdown import ReplyStream, split_reasoning, split_reply

MARKDOWN = """# Heading one

Some **bold words**, *italic words*, `inline code`, ~~struck~~ and a [link](https://example.com/docs).

- item one
- item two

1. first
2. second

> quoted text

| Name | Value |
|------|------:|
| a    | 1     |

```python
def hello(name):
    return name
```

The end.
"""


@pytest.fixture
def view(qtbot):
    opened: list[QUrl] = []
    v = ChatView(open_url=opened.append)
    v.opened = opened
    qtbot.addWidget(v)
    v.resize(700, 500)
    v.show()
    qtbot.waitExposed(v)
    return v


def _assistant(text: str = "", state: MessageState = MessageState.COMPLETE, **kw) -> Message:
    return Message(Role.ASSISTANT, text, state, model=kw.pop("model", "Tiny-1B"), **kw)


def _stream(view: ChatView, text: str, size: int = 7) -> Message:
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    for i in range(0, len(text), size):
        view.append_text(text[i : i + size])
    reply.text = text
    return reply


def _finish(view: ChatView, reply: Message, state=MessageState.COMPLETE, stats=None) -> None:
    reply.state = state
    reply.stats = stats
    view.finish_message(reply)


def _fragments(doc: QTextDocument):
    """Every text fragment, including those in table cells (document order)."""
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.isValid():
                yield block, fragment
            it += 1
        block = block.next()


def _fragment(doc: QTextDocument, text: str):
    for block, fragment in _fragments(doc):
        if text in fragment.text():
            return block, fragment
    raise AssertionError(f"{text!r} is not in the document: {doc.toPlainText()[:300]!r}…")


def _tables(doc: QTextDocument) -> list[QTextTable]:
    found = []
    frames = [doc.rootFrame()]
    while frames:
        frame = frames.pop()
        if isinstance(frame, QTextTable):
            found.append(frame)
        frames += frame.childFrames()
    return found


def _code_blocks(doc: QTextDocument) -> list[str]:
    lines = []
    block = doc.begin()
    while block.isValid():
        if block.blockFormat().nonBreakableLines():
            lines.append(block.text())
        block = block.next()
    return lines


def _anchor_point(view: ChatView, href_part: str, nth: int = 0) -> QPoint:
    """The viewport point in the middle of the nth anchor whose href contains href_part."""
    matches = [
        (b, f)
        for b, f in _fragments(view.document())
        if f.charFormat().isAnchor() and href_part in f.charFormat().anchorHref()
    ]
    assert len(matches) > nth, f"no anchor {href_part!r}"
    _, fragment = matches[nth]
    cursor = QTextCursor(view.document())
    cursor.setPosition(fragment.position() + fragment.length() // 2)
    view.setTextCursor(cursor)
    view.ensureCursorVisible()
    return view.cursorRect(cursor).center()


def _click(qtbot, view: ChatView, point: QPoint) -> None:
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)


# -- rendering ------------------------------------------------------------------------------


def test_each_markdown_construct_renders(view) -> None:
    view.add_message(_assistant(MARKDOWN))
    doc = view.document()
    text = view.toPlainText()
    for raw in ("**", "# Heading", "~~", "```", "| Name", "[link]"):
        assert raw not in text, f"markup {raw!r} shown as text"

    heading, _ = _fragment(doc, "Heading one")
    assert heading.blockFormat().headingLevel() > 0
    assert _fragment(doc, "bold words")[1].charFormat().fontWeight() >= QFont.Weight.Bold
    assert _fragment(doc, "italic words")[1].charFormat().fontItalic()
    assert _fragment(doc, "struck")[1].charFormat().fontStrikeOut()
    assert _fragment(doc, "inline code")[1].charFormat().fontFixedPitch() or "monospace" in (
        _fragment(doc, "inline code")[1].charFormat().fontFamilies() or []
    )
    link = _fragment(doc, "link")[1].charFormat()
    assert link.isAnchor() and link.anchorHref() == "https://example.com/docs"
    assert _fragment(doc, "item one")[0].textList() is not None
    assert _fragment(doc, "first")[0].textList() is not None
    quote = _fragment(doc, "quoted text")[0].blockFormat()
    assert quote.intProperty(QTextFormat.Property.BlockQuoteLevel) >= 1 or quote.leftMargin() > 0

    tables = _tables(doc)
    assert len(tables) == 1 and (tables[0].rows(), tables[0].columns()) == (2, 2)
    assert tables[0].cellAt(1, 1).firstCursorPosition().block().text() == "1"

    assert _code_blocks(doc) == ["def hello(name):", "    return name"]
    keyword = _fragment(doc, "def")[1].charFormat()
    assert keyword.foreground().color() not in (QColor("black"), QColor("#000000"))
    assert (
        len(
            {
                f.charFormat().foreground().color().name()
                for b, f in _fragments(doc)
                if b.blockFormat().nonBreakableLines()
            }
        )
        >= 2
    )
    assert "The end." in text


def test_user_messages_are_plain_text(view) -> None:
    view.add_message(Message(Role.USER, "**not bold** <i>x</i>\n  keep indent"))
    text = view.toPlainText()
    assert "**not bold** <i>x</i>" in text and "  keep indent" in text
    assert _fragment(view.document(), "not bold")[1].charFormat().fontWeight() < QFont.Weight.Bold


def test_streaming_renders_like_the_finished_message(view, qtbot) -> None:
    reply = _stream(view, MARKDOWN, size=3)
    _finish(view, reply)
    other = ChatView()
    qtbot.addWidget(other)
    other.add_message(_assistant(MARKDOWN))
    assert view.toPlainText() == other.toPlainText()
    assert view.document().blockCount() == other.document().blockCount()
    assert _code_blocks(view.document()) == _code_blocks(other.document())


def test_unclosed_fence_mid_stream_renders_as_code_then_closes(view) -> None:
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    view.append_text("Intro line.\n\n```python\ndef f():\n")
    view.append_text("    return 1\n")
    assert _code_blocks(view.document()) == ["def f():", "    return 1"]
    assert "```" not in view.toPlainText()
    assert _fragment(view.document(), "def")[1].charFormat().foreground().color() != QColor("#000000")
    view.append_text("```\n\nAfter the code")
    assert _code_blocks(view.document()) == ["def f():", "    return 1"]
    block, _ = _fragment(view.document(), "After the code")
    assert not block.blockFormat().nonBreakableLines()
    assert "```" not in view.toPlainText()


# -- safety ---------------------------------------------------------------------------------

HOSTILE = (
    "Look: <script>alert(1)</script> and <b>not bold</b>\n\n"
    '<img src="http://example.invalid/track.png" onerror="alert(2)">\n\n'
    "![pixel](http://example.invalid/pixel.png) ![local](file:///etc/hostname)\n\n"
    "[js](javascript:alert(3))\n"
)


@pytest.mark.parametrize("streamed", [False, True])
def test_raw_html_and_images_stay_inert_text(view, streamed) -> None:
    if streamed:
        _finish(view, _stream(view, HOSTILE, size=5))
    else:
        view.add_message(_assistant(HOSTILE))
    text = view.toPlainText()
    assert "<script>alert(1)</script>" in text
    assert "<b>not bold</b>" in text
    assert '<img src="http://example.invalid/track.png" onerror="alert(2)">' in text
    assert _fragment(view.document(), "not bold")[1].charFormat().fontWeight() < QFont.Weight.Bold
    images = [f for _, f in _fragments(view.document()) if f.charFormat().isImageFormat()]
    assert images == []
    view.grab()  # paint: an image would be asked for now
    assert view.refused_resources == []
    hrefs = {f.charFormat().anchorHref() for _, f in _fragments(view.document()) if f.charFormat().isAnchor()}
    assert not any(h.startswith("javascript:") for h in hrefs)


def test_an_image_that_got_in_would_still_not_be_read(view, tmp_path) -> None:
    """Defence in depth: Qt reads a local <img> itself when the view returns nothing."""
    picture = tmp_path / "secret.png"
    image = QImage(4, 4, QImage.Format.Format_RGB32)
    image.fill(QColor("red"))
    assert image.save(str(picture))
    url = QUrl.fromLocalFile(str(picture))
    view.textCursor().insertHtml(f'<img src="{url.toString()}">')
    view.grab()
    assert url.toString() in view.refused_resources
    loaded = view.document().resource(QTextDocument.ResourceType.ImageResource, url)
    assert isinstance(loaded, QImage) and loaded.size().width() == 1  # the blank, not the file


# -- streaming cost -------------------------------------------------------------------------


def test_streaming_renders_only_the_tail(view) -> None:
    calls: list[str] = []
    render = view.markdown

    def spy(text: str) -> str:
        calls.append(text)
        return render(text)

    view.markdown = spy
    rng = random.Random(5)
    parts = []
    for i in range(60):
        parts.append(f"Paragraph {i} " + " ".join(rng.choice(["alpha", "beta", "**gamma**"]) for _ in range(25)))
        if i % 15 == 7:
            parts.append("```python\n" + "\n".join(f"x{j} = {j}" for j in range(8)) + "\n```")
    text = "\n\n".join(parts) + "\n"
    size = -(-len(text) // 2000)
    batches = [text[i : i + size] for i in range(0, len(text), size)]
    assert len(batches) >= 1900
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    for batch in batches:
        view.append_text(batch)
    reply.text = text
    _finish(view, reply)

    blocks = split_reply(text)
    longest = max(len(b.text) for b in blocks)
    # never the whole message, never more than one block at a time
    assert max(len(c) for c in calls) <= longest
    # each finished block once, plus one tail per batch at most
    assert len(calls) <= len(batches) + len(blocks)
    for block in blocks:
        assert calls.count(block.text) >= 1
    # and the work per batch did not grow with the message
    assert sum(len(c) for c in calls) < (len(batches) + len(blocks)) * longest
    assert sum(len(c) for c in calls) < 0.05 * len(batches) * len(text)


# Text where appending plain words could go wrong: a line whose kind the next word decides
# ("1" + ". item", "-" + " item", "- -" + " -"), formats the next word must not take on (bold,
# code, links, bare URLs), entities, runs of spaces, trailing spaces, tables, reasoning.
TRICKY = (
    "<think>I should think about this for a while before I answer.\n\nA second thought here.</think>"
    "Plain words in a sentence, then more words after them. And again\n\n"
    "1. first item with words\n2. second item with words\n\n"
    "- bullet with a few words\n- - -\n\n"
    "Some **bold words**and more, a `code span`then text, a [link](https://example.com)and after.\n"
    "Visit www.example.com today or http://example.org/x for more, or mail a@b.co now.\n"
    "Entities &copy; and &amp and &#169; stay text.  Two  spaces   here,   and trailing   \n"
    "under_scored_words and _emphasis_ then words.\n\n"
    "# Heading with words\n\n"
    "| a | b |\n|---|---|\n| one two | three four |\n\n"
    "> a quote with words in it\n\n"
    "- a list item with code\n\n  ```python\n  total = count + 2 if ready else other value\n  ```\n\n"
    "Closing paragraph that goes on for a while with many plain words in it, as replies do."
)


@pytest.mark.parametrize("seed", range(4))
def test_plain_words_appended_leave_the_document_as_a_full_render_would(qtbot, seed) -> None:
    """After every batch, the fast path (words appended as text) gives exactly the document
    that rendering the tail again gives."""
    views = []
    for fast in (True, False):
        v = ChatView()
        qtbot.addWidget(v)
        v.resize(700, 500)
        if not fast:
            v._append_plain = lambda live: False  # type: ignore[method-assign]
        reply = _assistant("", MessageState.STREAMING)
        reply.id = "same-id"
        v.add_message(reply)
        views.append((v, reply))
    rng = random.Random(seed)
    i = 0
    while i < len(TRICKY):
        size = rng.randint(1, 12)
        for v, _ in views:
            v.append_text(TRICKY[i : i + size])
        i += size
        fast_html, full_html = (_normalised_html(v) for v, _ in views)
        assert fast_html == full_html, f"differs after {TRICKY[:i]!r}"
    for v, reply in views:
        reply.text = TRICKY
        _finish(v, reply)
    assert _normalised_html(views[0][0]) == _normalised_html(views[1][0])


def _normalised_html(view: ChatView) -> str:
    return view.document().toHtml().replace(view._scheme, "hearth-scheme")


def test_plain_words_are_appended_without_rendering_the_tail_again(view) -> None:
    """Most batches of a prose reply add a few words to a paragraph: those are appended as text,
    not rendered again (the GUI's CPU per token is what holds llama.cpp up on every core)."""
    calls = _spy_markdown(view)
    rng = random.Random(11)
    words = ["the", "keeper", "climbed", "stairs", "storm", "light,", "waves", "night.", "and"]
    paragraphs = [" ".join(rng.choice(words) for _ in range(80)).capitalize() for _ in range(5)]
    text = "\n\n".join(paragraphs)
    pieces = [p for p in text.replace(" ", "\0 ").split("\0")]  # word-sized tokens, as a model sends
    batches = ["".join(pieces[i : i + 3]) for i in range(0, len(pieces), 3)]
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    for batch in batches:
        view.append_text(batch)
    assert len(calls) < 0.2 * len(batches)
    reply.text = text
    _finish(view, reply)
    assert all(paragraph in view.toPlainText() for paragraph in paragraphs)


def _spy_markdown(view: ChatView) -> list[str]:
    calls: list[str] = []
    render = view.markdown

    def spy(text: str) -> str:
        calls.append(text)
        return render(text)

    view.markdown = spy
    return calls


def _stream_in_pieces(view: ChatView, text: str, size: int = 9) -> Message:
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    for i in range(0, len(text), size):
        view.append_text(text[i : i + size])
    reply.text = text
    _finish(view, reply)
    return reply


def test_a_long_code_block_streams_in_parts_and_stays_one_block(view, qtbot) -> None:
    code = [
        "import os",
        "",
        "def f():",
        '    """A docstring',
        "    that spans",
        "",
        "    several lines,",
        "    across parts",
        '    """',
    ]
    code += [f"    value_{i} = os.getenv('X{i}')  # note {i}" for i in range(150)]
    code += ["def last():", "    return 1"]
    text = "Code:\n\n```python\n" + "\n".join(code) + "\n```\n\nDone.\n"
    calls = _spy_markdown(view)
    _stream_in_pieces(view, text, size=30)

    bound = stream_markdown.CODE_CONTEXT_LINES + stream_markdown.CODE_PART_LINES + 2
    assert max(c.count("\n") + 1 for c in calls) <= bound, "a batch must not re-render the whole block"
    assert _code_blocks(view.document()) == code
    # one code block to the reader: one Copy button, copying all of it
    _click(qtbot, view, _anchor_point(view, ":copy-code/"))
    assert QApplication.clipboard().text() == "\n".join(code)
    assert len([f for _, f in _fragments(view.document()) if ":copy-code/" in f.charFormat().anchorHref()]) == 1
    # highlighting carries over part boundaries: the docstring's later lines are still a string
    string_colour = _fragment(view.document(), '"""A docstring')[1].charFormat().foreground().color()
    assert _fragment(view.document(), "across parts")[1].charFormat().foreground().color() == string_colour
    keyword = {b.text(): b.begin().fragment().charFormat().foreground().color() for b, _ in _fragments(view.document())}
    assert keyword["def last():"] == keyword["def f():"] != keyword["    value_149 = os.getenv('X149')  # note 149"]


def test_a_long_table_streams_in_parts_that_line_up(view) -> None:
    rows = [f"| model-{i} | {i * 3} GB | some **notes** on {i} |" for i in range(40)]
    text = "| Model | Size | Notes |\n|---|---:|---|\n" + "\n".join(rows) + "\n\nAfter.\n"
    calls = _spy_markdown(view)
    _stream_in_pieces(view, text)

    assert max(c.count("\n") + 1 for c in calls) <= stream_markdown.TABLE_PART_ROWS + 2
    tables = _tables(view.document())
    assert len(tables) == 40 // stream_markdown.TABLE_PART_ROWS
    assert sum(t.rows() for t in tables) == 41  # the header once, then every row
    assert view.toPlainText().count("Model") == 1
    constraints = {tuple(c.rawValue() for c in t.format().columnWidthConstraints()) for t in tables}
    assert len(constraints) == 1 and len(next(iter(constraints))) == 3  # the same columns throughout
    assert "model-39" in view.toPlainText() and "After." in view.toPlainText()


# -- copy -----------------------------------------------------------------------------------


def test_copy_button_on_each_code_block_copies_the_raw_code(view, qtbot) -> None:
    text = "Two blocks:\n\n```python\nprint('a')\n\nprint('b')\n```\n\n```bash\nls -la\n```\n"
    view.add_message(_assistant(text))
    clipboard = QApplication.clipboard()
    clipboard.setText("nothing yet")
    with qtbot.waitSignal(view.copied):
        _click(qtbot, view, _anchor_point(view, ":copy-code/", 0))
    assert clipboard.text() == "print('a')\n\nprint('b')"
    _click(qtbot, view, _anchor_point(view, ":copy-code/", 1))
    assert clipboard.text() == "ls -la"


def test_copy_code_while_the_fence_is_still_open(view, qtbot) -> None:
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    view.append_text("```js\nconst a = 1;\nconst b")
    _click(qtbot, view, _anchor_point(view, ":copy-code/"))
    assert QApplication.clipboard().text() == "const a = 1;\nconst b"


def test_copy_message_as_markdown_and_as_plain_text(view, qtbot) -> None:
    text = "<think>private</think>\n\n## Title\n\nSome **bold** and a [link](https://example.com).\n"
    view.add_message(Message(Role.USER, "question"))
    view.add_message(_assistant(text, stats={"tokens": 12}))
    clipboard = QApplication.clipboard()
    _click(qtbot, view, _anchor_point(view, ":copy-md/"))
    assert clipboard.text() == "## Title\n\nSome **bold** and a [link](https://example.com).\n"
    _click(qtbot, view, _anchor_point(view, ":copy-text/"))
    assert "Title" in clipboard.text() and "Some bold and a link" in clipboard.text()
    assert "**" not in clipboard.text() and "private" not in clipboard.text()
    assert view.last_reply_text().startswith("## Title") and view.copy_last_reply()
    assert "private" in view.toPlainText() and not _fragment(view.document(), "private")[0].isVisible()

    # the context menu does the same for the message under the mouse, user messages too
    point = _anchor_point(view, ":copy-md/")
    menu = view.build_context_menu(point)
    names = {a.objectName() for a in menu.actions()}
    assert {"copyMarkdownAction", "copyPlainAction"} <= names
    clipboard.setText("")
    next(a for a in menu.actions() if a.objectName() == "copyMarkdownAction").trigger()
    assert clipboard.text().startswith("## Title")
    cursor = view.document().find("question")
    menu = view.build_context_menu(view.cursorRect(cursor).center())
    next(a for a in menu.actions() if a.objectName() == "copyPlainAction").trigger()
    assert clipboard.text() == "question"


def test_context_menu_copies_the_code_block_under_the_mouse(view) -> None:
    view.add_message(_assistant("Text\n\n```\nline 1\nline 2\n```\n"))
    cursor = view.document().find("line 2")
    menu = view.build_context_menu(view.cursorRect(cursor).center())
    action = next(a for a in menu.actions() if a.objectName() == "copyCodeAction")
    action.trigger()
    assert QApplication.clipboard().text() == "line 1\nline 2"
    cursor = view.document().find("Text")
    menu = view.build_context_menu(view.cursorRect(cursor).center())
    assert "copyCodeAction" not in {a.objectName() for a in menu.actions()}


def test_text_is_selectable_across_a_message(view) -> None:
    view.add_message(_assistant(MARKDOWN))
    assert view.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    view.selectAll()
    view.copy()
    copied = QApplication.clipboard().text()
    assert "Heading one" in copied and "def hello(name):" in copied and "The end." in copied


# -- links ----------------------------------------------------------------------------------


def test_links_open_in_the_browser_only_on_click_and_show_their_target(view, qtbot, monkeypatch) -> None:
    shown: list[str] = []
    # the offscreen platform cannot raise a tooltip window; record what would be shown
    monkeypatch.setattr(chat_view.QToolTip, "showText", lambda _pos, text, *_a: shown.append(text))
    view.add_message(_assistant("Read [the docs](https://example.com/real-target) please.\n"))
    point = _anchor_point(view, "example.com")
    assert view.link_target_at(point) == "https://example.com/real-target"
    QApplication.sendEvent(view.viewport(), QHelpEvent(QEvent.Type.ToolTip, point, view.viewport().mapToGlobal(point)))
    assert shown == ["https://example.com/real-target"]
    qtbot.mouseMove(view.viewport(), point)
    assert view.opened == []
    _click(qtbot, view, point)
    assert [u.toString() for u in view.opened] == ["https://example.com/real-target"]
    assert view.openLinks() is False
    assert view.source().isEmpty()  # the view itself went nowhere


def test_a_model_cannot_trigger_the_views_own_actions(view, qtbot) -> None:
    view.add_message(_assistant("[copy?](hearth-000000000000:copy-md/x) and [rel](page.html)\n"))
    QApplication.clipboard().setText("untouched")
    _click(qtbot, view, _anchor_point(view, "copy-md"))
    _click(qtbot, view, _anchor_point(view, "page.html"))
    assert QApplication.clipboard().text() == "untouched"
    assert view.opened == []


# -- follow the bottom ----------------------------------------------------------------------


def test_follows_the_bottom_until_the_user_scrolls_up(view, qtbot) -> None:
    view.resize(500, 250)
    history = []
    for i in range(6):
        history += [Message(Role.USER, f"question {i}"), _assistant(f"answer {i}\n\n" + "words " * 60)]
    view.show_conversation(history)
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    jump = view.findChild(type(view.jump_button), "jumpToLatest")
    assert jump is view.jump_button and not jump.isVisible()

    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    for i in range(20):
        view.append_text(f"line {i} of the streamed reply\n\n")
        assert bar.value() == bar.maximum()
    assert view.is_following()

    bar.setValue(bar.maximum() // 2)  # the user scrolls up
    assert not view.is_following()
    assert jump.isVisible()
    value = bar.value()
    for i in range(20):
        view.append_text(f"more {i}\n\n")
    assert bar.value() == value, "the view must stay where the user scrolled"
    assert bar.maximum() > value

    qtbot.mouseClick(jump, Qt.MouseButton.LeftButton)
    assert bar.value() == bar.maximum()
    assert view.is_following() and not jump.isVisible()
    view.append_text("after the jump\n\n")
    assert bar.value() == bar.maximum()

    bar.setValue(0)
    bar.setValue(bar.maximum())  # scrolling back down by hand follows again too
    assert view.is_following()


# -- stats, notes, reasoning ----------------------------------------------------------------


def test_stats_line_after_a_finished_reply(view) -> None:
    reply = _stream(view, "Hello there.")
    assert "tokens/s" not in view.toPlainText()
    _finish(view, reply, stats={"tokens": 1234, "tokens_per_s": 45.678, "ttft": 0.1234, "finish_reason": "stop"})
    text = view.toPlainText()
    assert "1,234 tokens · 45.7 tokens/s · first token 0.12 s · Tiny-1B" in text
    _, fragment = _fragment(view.document(), "1,234 tokens")
    fmt = fragment.charFormat()
    assert fmt.foreground().color().lightness() > 100  # grey, not the text colour
    assert fmt.intProperty(QTextFormat.Property.FontSizeAdjustment) < 0 or (
        0 < fmt.fontPointSize() < view.font().pointSizeF()
    )


@pytest.mark.parametrize(
    ("state", "word"),
    [(MessageState.STOPPED, "stopped"), (MessageState.INTERRUPTED, "interrupted"), (MessageState.FAILED, "failed")],
)
def test_state_notes(view, state, word) -> None:
    reply = _stream(view, "Partial answ")
    _finish(view, reply, state=state, stats={"tokens": 3} if state is MessageState.STOPPED else None)
    text = view.toPlainText()
    assert "Partial answ" in text and word in text


def test_finished_reply_without_any_streamed_text(view) -> None:
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    reply.text = "It came **all at once**."
    _finish(view, reply)
    assert "It came all at once." in view.toPlainText()


def test_reasoning_is_shown_apart_and_collapsed_when_done(view, qtbot) -> None:
    reply = _stream(
        view, "<think>\nFirst I consider the question.\n\nThen the answer.\n</think>\n\nThe **answer** is 42.", size=4
    )
    doc = view.document()
    label, _ = _fragment(doc, "Reasoning")
    thought, fragment = _fragment(doc, "First I consider")
    assert thought.isVisible()  # shown while it streams
    assert fragment.charFormat().foreground().color() == QColor("#8a8a8a")
    answer, fragment = _fragment(doc, "is 42")
    assert fragment.charFormat().foreground().color() != QColor("#8a8a8a")
    assert "<think>" not in view.toPlainText()
    _finish(view, reply)
    assert not _fragment(doc, "First I consider")[0].isVisible()
    assert not _fragment(doc, "Then the answer")[0].isVisible()
    assert _fragment(doc, "is 42")[0].isVisible() and label.isValid()
    height = doc.size().height()
    _click(qtbot, view, _anchor_point(view, ":reasoning/"))
    assert _fragment(doc, "First I consider")[0].isVisible()
    assert doc.size().height() > height
    _click(qtbot, view, _anchor_point(view, ":reasoning/"))
    assert not _fragment(doc, "First I consider")[0].isVisible()
    assert view.last_reply_text() == "The **answer** is 42."


def test_reasoning_without_an_opening_tag(view) -> None:
    reply = _stream(view, "Thinking it over.\n</think>\n\nDone: yes.", size=3)
    _finish(view, reply)
    assert not _fragment(view.document(), "Thinking it over")[0].isVisible()
    assert _fragment(view.document(), "Done: yes.")[0].isVisible()
    assert "</think>" not in view.toPlainText()
    assert split_reasoning(reply.text) == ("Thinking it over.\n", "Done: yes.")


def test_unclosed_think_while_streaming_stays_reasoning(view) -> None:
    view.add_message(_assistant("", MessageState.STREAMING))
    for chunk in ["<thi", "nk>Still thin", "king about it"]:
        view.append_text(chunk)
    block, fragment = _fragment(view.document(), "Still thinking about it")
    assert fragment.charFormat().foreground().color() == QColor("#8a8a8a")
    assert "<thi" not in view.toPlainText()


# -- long conversations ---------------------------------------------------------------------


def test_long_conversation_opens_with_the_newest_messages_and_loads_older_on_scroll(view, qtbot) -> None:
    history = []
    for i in range(500):
        history += [Message(Role.USER, f"question number {i}"), _assistant(f"Answer number {i} with **markdown**.")]
    view.show_conversation(history)
    text = view.toPlainText()
    assert "Answer number 499" in text
    assert "question number 0\n" not in text  # not rendered yet: opening stays fast
    assert view.document().blockCount() < 400
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum() and bar.maximum() > 0)

    blocks_before = view.document().blockCount()
    bar.setValue(0)  # the user scrolls to the top: older messages appear above
    qtbot.waitUntil(lambda: view.document().blockCount() > blocks_before)
    assert bar.value() > 0, "the text the user was reading stays in place"
    view.load_all()
    assert "question number 0\n" in view.toPlainText()
    # streaming after everything is loaded still goes to the end
    reply = _stream(view, "A new reply.")
    _finish(view, reply)
    assert view.toPlainText().rstrip().endswith("Copy · Copy as text")
    assert "A new reply." in view.toPlainText()


def test_streaming_goes_on_after_the_conversation_is_shown_again(view) -> None:
    reply = _assistant("", MessageState.STREAMING)
    view.add_message(reply)
    reply.text += "First **half**"  # as the session does: the record first, then the signal
    view.append_text("First **half**")
    view.show_conversation([Message(Role.USER, "q"), reply])
    reply.text += " and the rest."
    view.append_text(" and the rest.")
    reply.state = MessageState.COMPLETE
    view.finish_message(reply)
    text = view.toPlainText()
    assert text.count("First half and the rest.") == 1 and "**" not in text


def test_reply_stream_is_chunking_independent() -> None:
    text = MARKDOWN + "\n<think>not at start</think>\n"
    expected = split_reply(text)
    rng = random.Random(1)
    for _ in range(20):
        stream = ReplyStream()
        i = 0
        while i < len(text):
            n = rng.randint(1, 9)
            stream.feed(text[i : i + n])
            i += n
        stream.close()
        assert stream.blocks == expected
        assert stream.text == text
