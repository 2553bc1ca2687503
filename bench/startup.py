"""Start to first frame: Hearth against a minimal PySide6 window, and the GUI process's memory.

Each round starts, alternately, a fresh interpreter running Hearth's real entry point and one
that opens a bare QMainWindow holding a QTextBrowser (the floor: Python + Qt + one window),
both through bench/startup_probe.py. The time is from just before the process is started to
the first paint event of its main window (both on CLOCK_MONOTONIC); the CPU seconds are the
child's own up to that paint (less disturbed by other work on a shared machine than the wall
clock). RSS is read after the window has run ``--settle`` seconds more (for Hearth: the
document index opened, the engine child started; the engine's own memory is not counted).
Last, Hearth once more with a 1,000-message conversation open (the most recent one opens at
start).

    python bench/startup.py [--rounds 5] [--messages 1000] [--settle 1.5]

Every run uses a data folder made for this benchmark, which one unmeasured start of each kind
prepares first (as after a first start; the OS file cache is warm and the bytecode compiled
for both kinds alike, even where PYTHONDONTWRITEBYTECODE is set).
Targets (issue 18): first frame <= 0.6 s, ratio (Hearth / minimal) <= 2.5, RSS after start
<= 2x the minimal window's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE = ROOT / "bench" / "startup_probe.py"
MARK = "PROBE "
FRAME_TARGET_S = 0.6
RATIO_TARGET = 2.5
RSS_RATIO_TARGET = 2.0


def probe(mode: str, home: Path, settle: float) -> dict:
    """Start one probe process; its report, with ``frame_s`` measured from before the start."""
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"), HEARTH_HOME=str(home))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it: compiled once, then from .pyc
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(PROBE), mode, "--settle", str(settle)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise SystemExit(f"{mode}: no report (exit {out.returncode})\n{out.stdout}\n{out.stderr[-3000:]}")
    report = json.loads(lines[-1][len(MARK) :])
    report["frame_s"] = report["first_frame"] - started
    return report


def long_conversation(home: Path, count: int) -> None:
    """Store one conversation of ``count`` messages (markdown answers, some with code)."""
    os.environ["HEARTH_HOME"] = str(home)
    from app import paths
    from app.core.conversation import Conversation, Message, Role
    from app.core.store import ConversationStore

    paths.set_root(home)
    rng = random.Random(7)
    words = "the model reads each token and writes the next one while the window stays responsive".split()

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."

    conv = Conversation(title="a long conversation")
    for i in range(count):
        if i % 2 == 0:
            conv.messages.append(Message(Role.USER, sentence(rng.randint(6, 30))))
            continue
        text = f"### Answer {i}\n\n" + " ".join(sentence(12) for _ in range(rng.randint(2, 6))) + "\n\n"
        text += "".join(f"- {sentence(7)}\n" for _ in range(rng.randint(0, 4)))
        if i % 7 == 1:
            text += "\n```python\ndef add(a, b):\n    return a + b\n```\n"
        conv.messages.append(Message(Role.ASSISTANT, text, model="Bench-7B"))
    conv.link()
    store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
    store.import_conversations([conv])
    store.close()
    paths.set_root(None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=1.5, help="seconds after the first frame before RSS is read")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hearth-startup-") as tmp:
        home, long_home = Path(tmp) / "home", Path(tmp) / "long"
        probe("minimal", home, 0)  # unmeasured: the data folder and the file cache, alike for both
        probe("hearth", home, args.settle)
        runs: dict[str, list[dict]] = {"hearth": [], "minimal": []}
        for i in range(args.rounds):
            for mode in ("hearth", "minimal") if i % 2 == 0 else ("minimal", "hearth"):
                runs[mode].append(probe(mode, home, args.settle))
        long_conversation(long_home, args.messages)
        probe("hearth", long_home, 0)  # unmeasured, as above
        long_run = probe("hearth", long_home, args.settle)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    print(f"start to first frame, median of {args.rounds} alternated rounds (fresh interpreter each):")
    for mode in ("minimal", "hearth"):
        frames = ", ".join(f"{r['frame_s']:.3f}" for r in runs[mode])
        print(
            f"  {mode:8s} {med(mode, 'frame_s'):.3f} s  (runs: {frames})  CPU to frame {med(mode, 'cpu_frame_s'):.3f} s  "
            f"RSS at frame {med(mode, 'rss_frame_mb'):.0f} MB, after {args.settle:g} s {med(mode, 'rss_settled_mb'):.0f} MB"
        )
    ratio = med("hearth", "frame_s") / med("minimal", "frame_s")
    cpu_ratio = med("hearth", "cpu_frame_s") / med("minimal", "cpu_frame_s")
    rss_ratio = med("hearth", "rss_settled_mb") / med("minimal", "rss_settled_mb")
    print(
        f"  with a {args.messages}-message conversation open: first frame {long_run['frame_s']:.3f} s, "
        f"RSS at frame {long_run['rss_frame_mb']:.0f} MB, after {args.settle:g} s {long_run['rss_settled_mb']:.0f} MB"
    )
    print(f"hearth first frame: {med('hearth', 'frame_s'):.3f} s (target <= {FRAME_TARGET_S} s)")
    print(f"ratio: {ratio:.2f} (Hearth / minimal, wall clock; target <= {RATIO_TARGET})")
    print(f"cpu ratio: {cpu_ratio:.2f} (Hearth / minimal, CPU seconds to the first frame)")
    print(f"rss ratio: {rss_ratio:.2f} (Hearth / minimal after start; target <= {RSS_RATIO_TARGET})")


if __name__ == "__main__":
    main()
