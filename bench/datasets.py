"""Fine-tuning dataset export at scale (issue 17, point 3).

Builds a store of N conversations (default 2,000), each 5 exchanges whose last reply has two
more versions (one rated Good and preferred, one rated Bad), with a system prompt and a
few-shot example; then measures ``datasets.build`` + ``write_jsonl`` for SFT rows and for
preference pairs, and the peak RSS of this process.

The baseline in the same run is the floor for the same work: every message row read with
plain ``sqlite3`` (one SELECT) and the same number of rows encoded with ``json.dumps`` and
written to a file. The ratio is Hearth / baseline.

    python bench/datasets.py [--conversations 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.conversation import Conversation, Message, Role  # noqa: E402
from app.core.datasets import DatasetSpec, build, write_jsonl  # noqa: E402
from app.core.store import ConversationStore  # noqa: E402

SETTINGS = {"system_prompt": "You are a careful assistant.", "temperature": 0.7}
TEXT = "A reply of a realistic length, with a few sentences in it. " * 8


def conversation(i: int) -> Conversation:
    conv = Conversation(title=f"chat {i}", settings={**SETTINGS, "few_shot": [["2+2?", "4."]]}, created=1000 + i)
    t = 1000.0 + i
    messages = []
    for turn in range(5):
        messages.append(Message(Role.USER, f"Question {turn} of chat {i}?", created=t))
        messages.append(Message(Role.ASSISTANT, TEXT, model="Model A", settings=SETTINGS, created=t + 1))
        t += 2
    conv.messages = messages
    conv.link()
    last = messages[-1]
    good = Message(Role.ASSISTANT, TEXT + " Better.", model="Model B", settings=SETTINGS, created=t + 1)
    bad = Message(Role.ASSISTANT, TEXT + " Worse.", model="Model B", settings=SETTINGS, created=t + 2)
    for m in (good, bad):
        m.parent_id, m.active = last.parent_id, False
    good.rating, good.preferred, bad.rating = 1, True, -1
    conv.branches = [good, bad]
    return conv


def baseline(db: Path, out: Path, rows: int) -> float:
    start = time.perf_counter()
    conn = sqlite3.connect(db)
    data = conn.execute(
        "SELECT conversation_id, role, text, state, model, settings, parent_id, rating, preferred "
        "FROM messages ORDER BY conversation_id, rid"
    ).fetchall()
    conn.close()
    with open(out, "w", encoding="utf-8") as fh:
        per = max(1, len(data) // max(rows, 1))
        for k in range(rows):
            chunk = data[k * per : (k + 1) * per]
            fh.write(json.dumps({"messages": [{"role": r[1], "content": r[2]} for r in chunk]}) + "\n")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "c.db"
        store = ConversationStore(db)
        t0 = time.perf_counter()
        store.import_conversations([conversation(i) for i in range(args.conversations)])
        store.flush()
        print(f"built {args.conversations:,} conversations in {time.perf_counter() - t0:.1f} s")
        for kind in ("sft", "preferences"):
            out = Path(tmp) / f"{kind}.jsonl"
            start = time.perf_counter()
            result = build(store, DatasetSpec(kind=kind))  # type: ignore[arg-type]
            write_jsonl(out, result.rows)
            took = time.perf_counter() - start
            base = baseline(db, Path(tmp) / "base.jsonl", len(result.rows))
            size = out.stat().st_size
            print(
                f"{kind:12s} {len(result.rows):7,} rows  {size / 1e6:6.1f} MB  {took:6.2f} s  "
                f"({len(result.rows) / took:,.0f} rows/s)  baseline {base:5.2f} s  ratio {took / base:5.1f}x"
            )
        store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
