"""The engine service: API jobs share the engine with the chat window, one at a time.

Driven through the real window's session (real llama.cpp, the demo model): jobs submitted
from another thread stream their events, the person's message goes before queued API jobs,
the window's Stop never stops an API job and an API client's cancel never stops the
person's reply, a full queue says when to retry, and unknown models are refused at once.
"""

from __future__ import annotations

import threading
import time

import pytest

from app.core.conversation import MessageState
from app.core.library import ModelDefaults
from app.engine import protocol as p
from app.engine.jobs import Embedded, JobFailed, JobRequest, QueueFull, UnknownModel
from app.session import EngineState

pytestmark = pytest.mark.model

ASK = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def _settings(max_tokens: int, **extra) -> dict:
    return {"temperature": 0.0, "seed": 1, "max_tokens": max_tokens, **extra}


def _collect(job, timeout: float = 120.0) -> list:
    return list(job.events(timeout=timeout))


def test_chat_completion_and_embedding_jobs_stream_from_another_thread(qtbot, open_main_window) -> None:
    window = open_main_window()
    service = window.session.worker
    entries = service.models()
    assert [e.loaded for e in entries] == [True] and entries[0].name == window.session.current_model.name

    results: dict[str, list] = {}

    def client() -> None:  # not the GUI thread, not the engine's
        results["chat"] = _collect(service.submit(JobRequest("chat", messages=ASK, settings=_settings(8))))
        results["complete"] = _collect(
            service.submit(JobRequest("complete", prompt="Once upon a time", settings=_settings(8)))
        )
        results["embed"] = _collect(service.submit(JobRequest("embed", texts=["a lighthouse", "a storm"])))

    thread = threading.Thread(target=client)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=180_000)

    chat = results["chat"]
    assert isinstance(chat[0], p.PromptInfo) and chat[0].prompt_tokens > 5
    assert any(isinstance(e, p.Delta) and e.text for e in chat)
    assert isinstance(chat[-1], p.Done) and chat[-1].reason == "length" and chat[-1].stats["tokens"] >= 7
    complete = results["complete"]
    assert isinstance(complete[-1], p.Done) and "".join(e.text for e in complete if isinstance(e, p.Delta))
    embedded = results["embed"][-1]
    assert isinstance(embedded, Embedded) and len(embedded.vectors) == 2 and len(embedded.vectors[0]) > 16
    assert embedded.model == entries[0].id  # the chat model in embedding mode: the response says which
    assert window.session.state is EngineState.READY  # the window was never taken over


def test_the_persons_message_goes_before_queued_api_jobs(qtbot, open_main_window) -> None:
    window = open_main_window()
    session = window.session
    service = session.worker
    order: list[str] = []
    first = service.submit(JobRequest("chat", messages=ASK, settings=_settings(120), client="first"))
    qtbot.waitUntil(lambda: service._api_running, timeout=30_000)  # started, not only queued
    queued = [service.submit(JobRequest("chat", messages=ASK, settings=_settings(4), client=f"q{i}")) for i in (1, 2)]
    for job, name in ((first, "first"), (queued[0], "q1"), (queued[1], "q2")):
        threading.Thread(target=lambda j=job, n=name: (_collect(j), order.append(n)), daemon=True).start()
    session.replyFinished.connect(lambda _m: order.append("window"))
    window.input.setPlainText("Hello")
    window.send_current()
    qtbot.waitUntil(lambda: len(order) == 4, timeout=180_000)
    assert order == ["first", "window", "q1", "q2"]


def test_stop_in_the_window_and_a_client_cancel_each_stop_only_their_own(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=200)
    session = window.session
    service = session.worker

    # The window's Stop while an API job streams: the API job goes on to its end.
    api = service.submit(JobRequest("chat", messages=ASK, settings=_settings(60)))
    qtbot.waitUntil(lambda: service._api_running, timeout=30_000)  # started, not only queued
    window.input.setPlainText("Tell me a story.")
    window.send_current()  # waits behind the API job
    session.stop()
    events = _collect(api)
    assert isinstance(events[-1], p.Done) and events[-1].reason == "length"
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=30_000)
    assert session.conversation.messages[-1].state is MessageState.STOPPED

    # A client that goes away mid-stream: its job ends as cancelled, promptly.
    api = service.submit(JobRequest("chat", messages=ASK, settings=_settings(200)))
    it = api.events(timeout=60)
    while not isinstance(next(it), p.Delta):
        pass
    asked = time.monotonic()
    api.cancel()
    rest = list(it)
    assert isinstance(rest[-1], p.Done) and rest[-1].reason == "cancelled"
    assert time.monotonic() - asked < 5  # generous: a cancelled job must not run to its 200 tokens


def test_a_full_queue_and_unknown_models_are_refused_at_once(qtbot, open_main_window, tiny) -> None:
    window = open_main_window()
    session = window.session
    service = session.worker
    with pytest.raises(UnknownModel) as unknown:
        service.submit(JobRequest("chat", model="no-such-model", messages=ASK))
    assert unknown.value.available == [service.models()[0].id]

    small = session.add_model(str(tiny))
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=30_000)
    session.select_model(session.library.models()[0].path)  # back to the demo model
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)
    with pytest.raises(UnknownModel):  # another library model, and switching is not allowed
        service.submit(JobRequest("chat", model=small.name, messages=ASK))

    service.max_waiting = 1
    running = service.submit(JobRequest("chat", messages=ASK, settings=_settings(80)))
    qtbot.waitUntil(lambda: service._api_running, timeout=30_000)  # started, not only queued
    waiting = service.submit(JobRequest("chat", messages=ASK, settings=_settings(2)))
    with pytest.raises(QueueFull) as full:
        service.submit(JobRequest("chat", messages=ASK, settings=_settings(2)))
    assert full.value.retry_after > 0
    running.cancel()
    assert isinstance(_collect(waiting)[-1], p.Done)

    # the model's own defaults, saved in Manage models, apply when a request switches to it
    session.library.set_defaults(small.path, ModelDefaults(n_ctx=256, flash_attn="off", use_mmap=False))
    session.models.modelsChanged.emit()  # as the Models dialog does after saving
    service.allow_model_switch = True  # the person allowed it: the request loads the model
    events = _collect(service.submit(JobRequest("chat", model=small.name, messages=ASK, settings=_settings(4))))
    assert isinstance(events[-1], p.Done)
    qtbot.waitUntil(lambda: session.current_model is not None and session.current_model.path == small.path)
    assert service._model is not None and service._model.model_path == small.path
    assert (service._model.n_ctx, service._model.flash_attn, service._model.use_mmap) == (256, "off", False)
    qtbot.waitUntil(lambda: session.loaded_info is not None and session.loaded_info.model_path == small.path)
    assert session.loaded_info.n_ctx == 256
    failed = _collect(service.submit(JobRequest("chat", messages=ASK, settings=_settings(0))))
    assert isinstance(failed[-1], JobFailed) and failed[-1].status == 400  # bad input is the client's
