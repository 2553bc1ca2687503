"""A model that doesn't fit the chat shape is never answered with silence.

Base models (no chat template) are named as such in the library and the picker, a known
template can be chosen for them (saved per model, used by llama.cpp), every empty reply says
why, a message sent while another model loads is answered by and recorded as the model that
really answered, and a "max new tokens" above a small model's context is clamped, not refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from PySide6.QtCore import Qt
from tiny_model import CHATML_TEMPLATE, write_tiny_llama

from app.core.chat_templates import KNOWN_TEMPLATES, known_template, template_problem
from app.core.library import ModelInfo, ModelLibrary
from app.engine.stops import StopMatcher

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi!"},
    {"role": "user", "content": "Name a fruit."},
]


# -- templates and the library ---------------------------------------------------------------


@pytest.mark.parametrize("template", KNOWN_TEMPLATES, ids=lambda t: t.key)
def test_every_known_template_renders_a_chat_ending_where_the_reply_starts(template) -> None:
    assert template_problem(template.template) is None
    env = ImmutableSandboxedEnvironment()
    prompt = env.from_string(template.template).render(
        messages=CHAT, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
    )
    for turn in CHAT:
        assert turn["content"] in prompt
    assert prompt.index("Hello") < prompt.index("Hi!") < prompt.index("Name a fruit.")
    assert template.stop and all(template.stop)
    assert known_template(template.key) is template


def test_missing_and_broken_templates_are_named() -> None:
    assert template_problem(None) == "no chat template"
    assert template_problem("  ") == "an empty chat template"
    assert "does not compile" in (template_problem("{% for m in messages %}") or "")
    assert template_problem(CHATML_TEMPLATE) is None
    assert known_template("no-such-template") is None and known_template(None) is None


def test_a_base_model_is_labelled_until_a_template_is_chosen(tmp_path: Path) -> None:
    library = ModelLibrary()
    base = library.add_file(write_tiny_llama(tmp_path / "base.gguf", chat_template=None))
    broken = library.add_file(write_tiny_llama(tmp_path / "broken.gguf", chat_template="{% if %}"))
    chat = library.add_file(write_tiny_llama(tmp_path / "chat.gguf"))
    assert base.needs_template and "base model, no chat template" in base.label()
    assert broken.needs_template and "does not compile" in broken.label()
    assert not chat.needs_template and "base model" not in chat.label()

    defaults = base.defaults
    defaults.chat_template = "chatml"
    library.set_defaults(base.path, defaults)
    reopened = ModelLibrary().get(base.path)  # saved with the model
    assert reopened is not None and reopened.defaults.chat_template == "chatml"
    assert not reopened.needs_template and "base model" not in reopened.label()


def test_records_from_before_template_problems_were_stored_still_say_base_model() -> None:
    old = ModelInfo.from_dict({"path": "/m/base.gguf", "name": "Base", "size": 1, "has_chat_template": False})
    assert old is not None and old.template_problem == "no chat template" and old.needs_template
    odd = ModelInfo.from_dict(
        {
            "path": "/m/x.gguf",
            "name": "X",
            "size": 1,
            "has_chat_template": "yes",
            "template_problem": 5,
            "defaults": {"chat_template": ["chatml"]},
        }
    )
    assert odd is not None and odd.template_problem is None and odd.defaults.chat_template is None


# -- stop sequences ------------------------------------------------------------------------


def _reference(pieces: list[str], stops: list[str]) -> tuple[str, str | None]:
    """What a reader of the whole text so far would cut, piece by piece."""
    text = ""
    for piece in pieces:
        text += piece
        found = [(text.find(s), s) for s in stops if s and s in text]
        if found:
            at, stop = min(found)
            return text[:at], stop
    return text, None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet="ab\n#", max_size=6), max_size=12),
    st.lists(st.text(alphabet="ab\n#", min_size=1, max_size=4), max_size=3),
)
def test_stop_matcher_shows_exactly_the_text_before_the_first_stop(pieces: list[str], stops: list[str]) -> None:
    matcher = StopMatcher(stops)
    shown = ""
    for piece in pieces:
        shown += matcher.feed(piece)
        if matcher.matched is not None:
            break
    shown += matcher.flush()
    expected, stop = _reference(pieces, stops)
    assert shown == expected
    assert (matcher.matched is None) == (stop is None)
    if matcher.matched is not None:  # of two stops at the same place, either one
        assert "".join(pieces)[len(shown) :].startswith(matcher.matched)


def test_stop_matcher_holds_back_a_possible_start_until_it_is_known() -> None:
    matcher = StopMatcher(["\n\nUser:"])
    assert matcher.feed("Hello\n") == "Hello"  # "\n" may begin the stop sequence
    assert matcher.feed("\nU") == ""
    assert matcher.feed("s") == ""
    assert matcher.feed("ually") == "\n\nUsually"
    assert matcher.feed(" yes\n\nUser: hi") == " yes" and matcher.matched == "\n\nUser:"
    assert matcher.feed("more") == "" and matcher.flush() == ""


# -- the engine uses a chosen template -------------------------------------------------------


class _Pipe:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, event: object) -> None:
        self.sent.append(event)


def test_the_engine_renders_a_chosen_template_for_a_base_model(tmp_path: Path) -> None:
    import threading

    from app.engine import protocol as p
    from app.engine.child import _Server

    base = write_tiny_llama(tmp_path / "base.gguf", chat_template=None)
    pipe = _Pipe()
    server = _Server(pipe, threading.Event())  # type: ignore[arg-type]
    try:
        server.handle(p.Load(str(base), n_ctx=256, n_threads=1))
        plain = pipe.sent[-1]
        assert isinstance(plain, p.Loaded) and not plain.template_from_gguf and server.formatter is None

        server.handle(p.Load(str(base), n_ctx=256, n_threads=1, chat_template="chatml"))
        loaded = pipe.sent[-1]
        assert isinstance(loaded, p.Loaded) and loaded.chat_format == "chatml"
        prompt = server.formatter(messages=CHAT[1:2]).prompt
        assert prompt == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
        assert server.llm.chat_handler is not None  # generation goes through it too
        assert server.template_stops == known_template("chatml").stop

        server.handle(p.Chat(CHAT[1:2], {"max_tokens": 4, "temperature": 0.0, "seed": 1}))
        info = next(e for e in pipe.sent if isinstance(e, p.PromptInfo))
        assert info.model_path == str(base)  # the reply is recorded as the model that wrote it
        assert info.prompt_tokens == len(server.llm.tokenize(prompt.encode(), add_bos=False, special=True))
        assert isinstance(pipe.sent[-1], p.Done)
    finally:
        server.shutdown()


# -- in the real window, with the real demo model ---------------------------------------------


def _pick(window, path: str) -> None:
    """Choose a model in the picker as a person does (``activated`` is the user's choice)."""
    index = window.model_picker.findData(path)
    window.model_picker.setCurrentIndex(index)
    window.model_picker.activated.emit(index)


def _send(qtbot, window, text: str):
    from app.session import EngineState

    session = window.session
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        window.input.setPlainText(text)
        window.send_current()
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=30_000)
    return finished.args[0]


@pytest.mark.model
def test_picking_a_template_for_a_base_model_in_the_window(qtbot, open_main_window, tmp_path: Path) -> None:
    from app.session import EngineState

    window = open_main_window()
    session = window.session
    base = session.add_model(str(write_tiny_llama(tmp_path / "base.gguf", chat_template=None)))
    assert base is not None
    labels = [window.model_picker.itemText(i) for i in range(window.model_picker.count())]
    assert any("base model, no chat template" in label for label in labels)

    _pick(window, base.path)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path == base.path, timeout=60_000
    )
    bar = window.template_bar
    qtbot.waitUntil(bar.isVisible)
    assert "no chat template" in bar.label.text() and "base model" in bar.label.text()

    bar.combo.setCurrentIndex(bar.combo.findData("chatml"))
    qtbot.mouseClick(bar.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.chat_format == "chatml", timeout=60_000
    )
    assert not bar.isVisible()
    assert ModelLibrary().get(base.path).defaults.chat_template == "chatml"  # saved with the model
    assert "base model" not in window.model_picker.currentText()
    reply = _send(qtbot, window, "Hello")
    assert reply.model == base.name


@pytest.mark.model
def test_an_empty_reply_says_that_a_stop_sequence_came_first(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=4)
    first = _send(qtbot, window, "List five fruits, one per line.")
    assert first.text.strip()
    # the same question in a new chat, now with the reply's first character as a stop sequence
    window.session.conversations.new_conversation()
    window.session.settings.stop = [first.text[0]]
    reply = _send(qtbot, window, "List five fruits, one per line.")
    assert reply.text == "" and reply.stats["stop_sequence"] == first.text[0]
    why = reply.stats["empty_reason"]
    assert "stop sequence" in why and window.info_bar.isVisible() and window.info_bar.label.text() == why
    assert why in window.chat_view.toPlainText()  # said where the reply would be
    assert window.status.currentMessage() == "Done — empty reply"


@pytest.mark.model
def test_an_empty_reply_from_the_model_itself_says_so(qtbot, open_main_window) -> None:
    from app.core.conversation import Message, MessageState, Role

    window = open_main_window()
    session = window.session
    # The engine's "stop" with nothing written: the model ended its turn at once.
    session._reply = Message(Role.ASSISTANT, "", MessageState.STREAMING, model="m")
    session.conversations.append(session._reply)
    session._on_finished("stop", {"tokens": 0})
    assert "ended its reply at once" in window.info_bar.label.text()
    session._reply = Message(Role.ASSISTANT, "", MessageState.STREAMING, model="m")
    session.conversations.append(session._reply)
    session._on_finished("context_full", {"tokens": 0})
    assert "context was full" in window.info_bar.label.text()


@pytest.mark.model
def test_max_new_tokens_above_a_small_context_is_clamped_not_refused(qtbot, open_main_window) -> None:
    window = open_main_window(n_ctx=256, max_tokens=512, stop=["\n"])
    session = window.session
    assert session.loaded_info.n_ctx == 256
    reply = _send(qtbot, window, "Say hello.")
    assert reply.text.strip()
    assert "limited to 256 tokens" in window.info_bar.label.text()
    assert not window.notice_bar.isVisible()  # nothing was refused
    assert session.settings.max_tokens == 512  # the person's setting itself is kept


@pytest.mark.model
def test_a_message_sent_while_another_model_loads_is_answered_and_recorded_by_it(
    qtbot, open_main_window, demo_model: Path, tiny: Path
) -> None:
    from app.session import EngineState

    window = open_main_window()
    session = window.session
    small = session.add_model(str(tiny))
    assert small is not None
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)
    demo = session.library.get(str(demo_model))
    # The demo model starts loading; before it is done the person picks the tiny one and sends.
    session.select_model(demo.path)
    qtbot.waitUntil(lambda: session.state is EngineState.LOADING)
    _pick(window, small.path)
    window.input.setPlainText("Hello")
    shown_while_writing: list[str] = []  # the model the window names while the reply streams
    session.messageAdded.connect(lambda m: shown_while_writing.append(session.current_model.path))
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        window.send_current()
    reply = finished.args[0]
    assert shown_while_writing == [small.path, small.path]  # the question, then the reply
    assert session.loaded_info.model_path == small.path  # the tiny model answered…
    assert reply.model == small.name  # …and the reply says so
    assert session.current_model.path == small.path
    assert window.model_picker.currentData() == small.path
