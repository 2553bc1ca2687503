"""Smoothness of the chat view while a long markdown reply streams, at any conversation length.

Streams a synthetic 4,000-token markdown reply (prose, lists, a table, three code blocks) at
200 tokens/s, in batches every 40 ms as the engine worker sends them, into the real
(offscreen) ChatView:
  (a) in an empty conversation,
  (b) at the end of a 1,000-message conversation.
A 1 ms QTimer inside a real QEventLoop measures the gaps of the GUI thread (idle between
events, as in the app). Prints p99 and max stall for each, the (b)/(a) p99 ratio, the time to
open the 1,000-message conversation, and the time each batch took in the view.

    python bench/chat_view.py [--rounds 1] [--tokens 4000] [--messages 1000] [--all-loaded]
--all-loaded adds (c): as (b), after the user has scrolled up through the whole conversation
(every message rendered in the document), to show what lazy rendering saves and what not.
Also prints the time to open a 10-message conversation (the baseline for the 1,000-message
one, same run), and the process's CPU seconds per 1,000 tokens streamed at --cpu-rate
tokens/s (a model's real speed on 2 cores) into (a) and (b), without the 1 ms probe timer.
Targets (issues 7, 18): p99 <= 16 ms, max <= 50 ms, open <= 100 ms, (b)/(a) p99 ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.conversation import Message, MessageState, Role  # noqa: E402
from app.ui.chat_view import ChatView, _warm_up_renderer  # noqa: E402

RATE = 200  # tokens/s
BATCH_MS = 40

_WORDS = (
    "the model reads each token and writes the next one while the window stays responsive "
    "a local engine keeps your data on your computer streaming text arrives in small batches "
    "markdown makes lists tables and code easy to read quickly"
).split()

_CODE = [
    (
        "python",
        '''import asyncio
from dataclasses import dataclass


@dataclass
class Job:
    name: str
    seconds: float = 0.5


async def run(job: Job) -> str:
    """Pretend to work for a while, then report."""
    await asyncio.sleep(job.seconds)
    return f"{job.name} done after {job.seconds:.1f}s"


async def main() -> None:
    jobs = [Job(f"job-{i}", i / 10) for i in range(10)]
    for result in await asyncio.gather(*(run(j) for j in jobs)):
        print(result)


if __name__ == "__main__":
    asyncio.run(main())''',
    ),
    (
        "javascript",
        """const cache = new Map();

export async function fetchJson(url, { retries = 3 } = {}) {
  if (cache.has(url)) return cache.get(url);
  for (let attempt = 1; attempt <= retries; attempt++) {
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      cache.set(url, data);
      return data;
    } catch (err) {
      if (attempt === retries) throw err;
      await new Promise((r) => setTimeout(r, 2 ** attempt * 100));
    }
  }
}""",
    ),
    (
        "bash",
        """#!/usr/bin/env bash
set -euo pipefail
for f in *.log; do
  lines=$(wc -l < "$f")
  echo "$f: $lines lines"
  gzip -9 "$f"
done
tar -czf logs.tar.gz ./*.gz && rm ./*.gz""",
    ),
]


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    text = text[0].upper() + text[1:]
    # a little inline markup, as models write
    return re.sub(r"\b(model|engine|tables)\b", lambda m: f"**{m.group(1)}**", text, count=1) + "."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, rng.randint(8, 18)) for _ in range(sentences))


def synthetic_reply(tokens: int, seed: int = 7) -> list[str]:
    """A markdown reply cut into ~tokens pieces of about 4 characters, like a tokenizer's."""
    rng = random.Random(seed)
    parts: list[str] = ["# A long answer\n\n", _paragraph(rng, 4), "\n\n"]
    section = 0
    while True:
        section += 1
        parts += [f"## Part {section}\n\n", _paragraph(rng, 5), "\n\n"]
        parts += [f"- {_sentence(rng, 8)}\n" for _ in range(5)] + ["\n"]
        if section == 2:
            parts.append("| Option | Meaning | Default |\n|---|---|---:|\n")
            parts += [f"| `opt{i}` | {_sentence(rng, 6)} | {i * 10} |\n" for i in range(8)] + ["\n"]
        if section in (1, 3, 5):
            lang, code = _CODE[(section - 1) // 2]
            parts += [f"```{lang}\n{code}\n```\n\n"]
        parts += [f"{i}. {_sentence(rng, 10)}\n" for i in range(1, 4)] + ["\n", _paragraph(rng, 4), "\n\n"]
        text = "".join(parts)
        pieces = re.findall(r"\s*\S{1,4}|\s+", text)
        if len(pieces) >= tokens and section >= 5:
            return pieces[:tokens]


def conversation(n: int, seed: int = 3) -> list[Message]:
    rng = random.Random(seed)
    messages = []
    for i in range(n):
        if i % 2 == 0:
            messages.append(Message(Role.USER, _sentence(rng, rng.randint(6, 30))))
        else:
            text = f"### Answer {i}\n\n{_paragraph(rng, rng.randint(2, 6))}\n\n"
            text += "".join(f"- {_sentence(rng, 7)}\n" for _ in range(rng.randint(0, 4)))
            if i % 7 == 1:
                lang, code = _CODE[i % 3]
                text += f"\n```{lang}\n{code[: rng.randint(100, 400)]}\n```\n"
            stats = {"tokens": len(text) // 4, "tokens_per_s": 21.5, "ttft": 0.31, "finish_reason": "stop"}
            messages.append(Message(Role.ASSISTANT, text, model="Bench-7B", stats=stats))
    return messages


def stream_into(
    app: QApplication, view: ChatView, pieces: list[str], *, probe: bool = True, rate: int = RATE
) -> tuple[list[float], list[float]]:
    """Stream pieces at ``rate`` tokens/s in BATCH_MS batches; returns (GUI gaps ms, per-batch
    view ms). Without ``probe`` the 1 ms timer does not run (it costs CPU of its own), so the
    process's CPU time is the view's."""
    per_batch = max(1, round(rate * BATCH_MS / 1000))
    batches = ["".join(pieces[i : i + per_batch]) for i in range(0, len(pieces), per_batch)]
    reply = Message(Role.ASSISTANT, "", MessageState.STREAMING, model="Bench-7B")
    view.add_message(reply)

    gaps: list[float] = []
    costs: list[float] = []
    clock = QElapsedTimer()
    last = [0.0]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        gaps.append(now - last[0])
        last[0] = now

    loop = QEventLoop()
    index = [0]

    def deliver() -> None:
        if index[0] >= len(batches):
            feeder.stop()
            reply.text = "".join(batches)
            reply.state = MessageState.COMPLETE
            reply.stats = {"tokens": len(pieces), "tokens_per_s": float(RATE), "ttft": 0.2, "finish_reason": "stop"}
            started = time.perf_counter()
            view.finish_message(reply)
            costs.append((time.perf_counter() - started) * 1000)
            QTimer.singleShot(50, loop.quit)
            return
        started = time.perf_counter()
        view.append_text(batches[index[0]])
        costs.append((time.perf_counter() - started) * 1000)
        index[0] += 1

    ticker = QTimer()
    ticker.setTimerType(ticker.timerType().PreciseTimer)
    ticker.setInterval(1)
    ticker.timeout.connect(tick)
    feeder = QTimer()
    feeder.setTimerType(feeder.timerType().PreciseTimer)
    feeder.setInterval(BATCH_MS)
    feeder.timeout.connect(deliver)
    clock.start()
    if probe:
        ticker.start()
    feeder.start()
    loop.exec()  # a real event loop, idle between events, as in the app
    ticker.stop()
    return gaps[1:], costs


def open_time(app: QApplication, messages: list[Message]) -> float:
    """Milliseconds from show_conversation to the first paint of it, in a shown view."""
    view = ChatView()
    view.resize(900, 700)
    view.show()
    app.processEvents()
    started = time.perf_counter()
    view.show_conversation(messages)
    app.processEvents()  # the deferred work and the first paint
    view.viewport().repaint()
    elapsed = (time.perf_counter() - started) * 1000
    view.close()
    return elapsed


def cpu_per_1k(app: QApplication, history: list[Message], pieces: list[str], rate: int) -> float:
    """This process's CPU seconds per 1,000 tokens streamed into a shown view (no probe timer)."""
    view = ChatView()
    view.resize(900, 700)
    view.show()
    view.show_conversation(history)
    app.processEvents()
    started = time.process_time()
    stream_into(app, view, pieces, probe=False, rate=rate)
    used = time.process_time() - started
    view.close()
    return used / len(pieces) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--all-loaded", action="store_true")
    parser.add_argument("--cpu-rate", type=int, default=70, help="tokens/s for the CPU-per-token pass")
    parser.add_argument("--cpu-tokens", type=int, default=1000)
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    pieces = synthetic_reply(args.tokens)
    history = conversation(args.messages)
    print(
        f"reply: {len(pieces)} tokens, {len(''.join(pieces)):,} characters; "
        f"history: {len(history)} messages, {sum(len(m.text) for m in history):,} characters"
    )

    # The view loads the highlighter's lexers on a thread when it first draws a message (see
    # chat_view._warm_up_renderer); in the app that is just after the first frame, when the last
    # conversation opens, or at the first message sent. Done here first, so the figures below
    # are of streaming, not of imports.
    _warm_up_renderer()
    for thread in threading.enumerate():
        if thread.name == "markdown-warm-up":
            thread.join()

    a_gaps: list[float] = []
    b_gaps: list[float] = []
    a_costs: list[float] = []
    b_costs: list[float] = []
    opens: list[float] = []
    c_gaps: list[float] = []
    c_costs: list[float] = []
    load_all_ms: list[float] = []
    small = conversation(10)
    small_opens: list[float] = []
    cpu_a: list[float] = []
    cpu_b: list[float] = []
    for round_ in range(args.rounds):
        small_opens.append(open_time(app, small))
        cpu_a.append(cpu_per_1k(app, [], pieces[: args.cpu_tokens], args.cpu_rate))
        cpu_b.append(cpu_per_1k(app, history, pieces[: args.cpu_tokens], args.cpu_rate))
        view = ChatView()
        view.resize(900, 700)
        view.show()
        app.processEvents()
        view.show_conversation([])
        gaps, costs = stream_into(app, view, pieces)
        a_gaps += gaps
        a_costs += costs
        view.close()

        view = ChatView()
        view.resize(900, 700)
        view.show()
        app.processEvents()
        started = time.perf_counter()
        view.show_conversation(history)
        app.processEvents()  # the deferred work and the first paint
        view.viewport().repaint()
        opens.append((time.perf_counter() - started) * 1000)
        gaps, costs = stream_into(app, view, pieces)
        b_gaps += gaps
        b_costs += costs
        assert view.is_following() and view.verticalScrollBar().value() == view.verticalScrollBar().maximum()
        view.close()

        if args.all_loaded:
            view = ChatView()
            view.resize(900, 700)
            view.show()
            view.show_conversation(history)
            app.processEvents()
            started = time.perf_counter()
            view.load_all()
            view.scroll_to_bottom()
            app.processEvents()
            load_all_ms.append((time.perf_counter() - started) * 1000)
            gaps, costs = stream_into(app, view, pieces)
            c_gaps += gaps
            c_costs += costs
            view.close()
        print(
            f"round {round_ + 1}: open {opens[-1]:.0f} ms; p99 stall (a) {percentile(a_gaps, 0.99):.1f} ms, "
            f"(b) {percentile(b_gaps, 0.99):.1f} ms"
        )

    a99, b99 = percentile(a_gaps, 0.99), percentile(b_gaps, 0.99)
    print()
    print(f"(a) empty conversation:      p99 stall {a99:5.1f} ms, max {max(a_gaps):5.1f} ms   (targets <= 16, <= 50)")
    print(
        f"(b) after {len(history):,} messages:     p99 stall {b99:5.1f} ms, max {max(b_gaps):5.1f} ms   (targets <= 16, <= 50)"
    )
    print(f"(b)/(a) p99 ratio:           {b99 / a99:.2f}   (target <= 1.2)")
    print(
        f"open {len(history):,}-message conversation: {max(opens):.0f} ms (worst of {len(opens)}); "
        f"{len(small)}-message baseline {max(small_opens):.0f} ms   (target <= 100)"
    )
    print(
        f"CPU per 1,000 tokens streamed at {args.cpu_rate} tokens/s: (a) {min(cpu_a):.3f} s, "
        f"(b) {min(cpu_b):.3f} s (best of {len(cpu_a)})"
    )
    if c_gaps:
        c99 = percentile(c_gaps, 0.99)
        print(
            f"(c) all {len(history):,} rendered:    p99 stall {c99:5.1f} ms, max {max(c_gaps):5.1f} ms, "
            f"ratio (c)/(a) {c99 / a99:.2f}; rendering them all took {max(load_all_ms):.0f} ms; "
            f"view time per batch median {percentile(c_costs, 0.5):.2f} ms, max {max(c_costs):.2f} ms"
        )
    print(
        f"view time per batch: (a) median {percentile(a_costs, 0.5):.2f} ms, p99 {percentile(a_costs, 0.99):.2f} ms, "
        f"max {max(a_costs):.2f} ms; (b) median {percentile(b_costs, 0.5):.2f} ms, "
        f"p99 {percentile(b_costs, 0.99):.2f} ms, max {max(b_costs):.2f} ms"
    )


if __name__ == "__main__":
    main()
