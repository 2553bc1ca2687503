"""Conversation store at scale: open + first page of the list, and search (issue 5, point 6).

Builds a database of 10,000 conversations and 500,000 messages (text drawn from a Zipf
vocabulary, so common words are common and rare ones rare) through the store's own bulk
import, then measures, in a fresh process (no warm SQLite cache, as at app start):

* open: ``ConversationStore(path)`` + ``recover_interrupted()`` + ``list_conversations(limit=200)``
  + ``count_conversations()`` — what the app does before it can show the list. Target 1 s.
* search: several ``search()`` queries (rare and common words, a prefix, two words, hostile
  punctuation, no match), each run 3 times. Target 100 ms each.

The baseline in the same run is the same SQL through plain ``sqlite3`` (the floor the store
can approach); ratios are measured/target (<= 1 meets the target) and store/baseline. The
OS page cache is warm after the build: a truly cold disk would be slower.

    python bench/store.py [--conversations 10000] [--messages 500000] [--db PATH]
With ``--db PATH`` an existing database of the right size is reused (building takes a while).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.conversation import Conversation, Message, MessageState, Role  # noqa: E402
from app.core.store import ConversationStore, fts_query  # noqa: E402

OPEN_TARGET_S = 1.0
SEARCH_TARGET_S = 0.100
PAGE = 200

COMMON = (
    "the of and to a in is it you that he was for on are with as I his they be at one have this "
    "from or had by not word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line "
    "differ turn cause much mean before move right boy old too same tell does set three want air "
    "well also play small end put home read hand port large spell add even land here must big "
    "high such follow act why ask men change went light kind off need house picture try us again "
    "animal point mother world near build self earth father head stand own page should country "
    "found answer school grow study still learn plant cover food sun four between state keep eye "
    "never last let thought city tree cross farm hard start might story saw far sea draw left "
    "late run while press close night real life few north open seem together next white children "
    "python code error function model token file list value string class import return test"
).split()
MARKERS = {"lighthouse": 0.002, "quokka": 0.0002}  # share of messages that mention each


def vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qua", "dri", "sen", "tor", "bel"]
    words = list(COMMON)
    seen = set(words)
    while len(words) < size:
        w = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def sentences(rng: random.Random, count: int) -> list[str]:
    words = vocabulary(rng, 20000)
    weights = [1.0 / (i + 1) ** 1.05 for i in range(len(words))]  # Zipf
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    out = []
    for _ in range(count):
        picked = rng.choices(words, cum_weights=cum, k=rng.randint(6, 20))
        out.append(" ".join(picked).capitalize() + rng.choice([".", ".", ".", "?", "!"]))
    return out


def generate(n_conversations: int, n_messages: int, seed: int = 7):
    """Yield chunks of Conversations with ``n_messages`` messages in all."""
    rng = random.Random(seed)
    pool = sentences(rng, 20000)
    per = [1] * n_conversations
    for _ in range(n_messages - n_conversations):
        per[rng.randrange(n_conversations)] += 1
    now = time.time()
    chunk: list[Conversation] = []
    for i, count in enumerate(per):
        start = now - rng.uniform(0, 2 * 365 * 86400)
        title = " ".join(rng.choice(pool).split()[:5]).rstrip(".?!")
        conv = Conversation(
            title=title,
            created=start,
            updated=start,
            pinned=rng.random() < 0.01,
            settings={"temperature": 0.7, "top_p": 0.95, "system_prompt": ""},
        )
        t = start
        for j in range(count):
            t += rng.uniform(5, 600)
            user = j % 2 == 0
            text = " ".join(rng.choices(pool, k=rng.randint(1, 2) if user else rng.randint(2, 9)))
            for marker, share in MARKERS.items():
                if rng.random() < share:
                    text += f" The {marker} again."
            conv.messages.append(
                Message(
                    Role.USER if user else Role.ASSISTANT,
                    text,
                    MessageState.COMPLETE,
                    model=None if user else "SmolLM2 135M Instruct Q4_1",
                    settings=None if user else {"temperature": 0.7, "seed": j},
                    stats=None if user else {"tokens": len(text) // 4, "tokens_per_s": 42.0},
                    created=t,
                )
            )
        conv.updated = t
        chunk.append(conv)
        if len(chunk) == 200 or i == n_conversations - 1:
            yield chunk
            chunk = []


def build(path: Path, n_conversations: int, n_messages: int) -> None:
    if path.exists():
        try:
            with ConversationStore(path) as store:
                if store.count_conversations() == n_conversations:
                    print(f"reusing {path}")
                    return
        except Exception:
            pass
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    print(f"building {n_conversations:,} conversations, {n_messages:,} messages in {path} …", flush=True)
    t0 = time.perf_counter()
    with ConversationStore(path) as store:
        done = 0
        for chunk in generate(n_conversations, n_messages):
            store.import_conversations(chunk)
            done += len(chunk)
            if done % 2000 == 0:
                store.flush()
                print(f"  {done:,} conversations ({time.perf_counter() - t0:.0f} s)", flush=True)
        store.flush()
    size = sum(Path(str(path) + s).stat().st_size for s in ("", "-wal") if Path(str(path) + s).exists())
    print(f"built in {time.perf_counter() - t0:.1f} s, {size / 1e6:.0f} MB", flush=True)


QUERIES = [
    ("rare word", "quokka"),
    ("uncommon word", "lighthouse"),
    ("common word", "the"),
    ("two words", "python error"),
    ("prefix (typing)", "ligh"),
    ("short prefix", "wa"),
    ("punctuation", 'say "hello" AND -world*'),
    ("no match", "zzyzxq"),
]


def measure(path: Path) -> dict[str, object]:
    """Runs in a fresh process: what the app pays at start and per search."""
    result: dict[str, object] = {}
    t0 = time.perf_counter()
    store = ConversationStore(path)
    t_open = time.perf_counter()
    recovered = store.recover_interrupted()
    page = store.list_conversations(limit=PAGE)
    total = store.count_conversations()
    t1 = time.perf_counter()
    result["open_s"] = t_open - t0
    result["open_list_count_s"] = t1 - t0
    result["page"] = len(page)
    result["total"] = total
    result["recovered"] = recovered
    later = []
    for offset in (PAGE, 5000, total - PAGE):
        t = time.perf_counter()
        store.list_conversations(limit=PAGE, offset=max(0, offset))
        later.append(time.perf_counter() - t)
    result["later_pages_s"] = later
    searches = {}
    for label, q in QUERIES:
        times = []
        hits = []
        for _ in range(3):
            t = time.perf_counter()
            hits = store.search(q)
            times.append(time.perf_counter() - t)
        searches[label] = {"query": q, "first_s": times[0], "median_s": statistics.median(times), "hits": len(hits)}
    result["search"] = searches
    # opening a long conversation (issue 5: a 1,000-message conversation in under 200 ms)
    long_conv = Conversation(id="bench-long-conversation", title="a long one")
    long_conv.messages = [
        Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, f"message {i}: " + "words of a reply " * 30)
        for i in range(1000)
    ]
    store.import_conversations([long_conv])
    store.flush()
    loads = []
    for _ in range(3):
        t = time.perf_counter()
        loaded = store.load(long_conv.id)
        loads.append(time.perf_counter() - t)
    assert len(loaded.messages) == 1000
    result["load_1000_s"] = statistics.median(loads)
    # update_message as the GUI thread sees it (enqueue only), and as the disk does
    conv = Conversation(title="bench")
    reply = Message(Role.ASSISTANT, "", MessageState.STREAMING)
    store.save_conversation(conv)
    store.add_message(conv.id, reply, 0)
    store.flush()
    n = 300
    enqueue = 0.0
    t = time.perf_counter()
    for i in range(n):
        reply.text += f"token{i} "
        e = time.perf_counter()
        store.update_message(reply)
        enqueue += time.perf_counter() - e
        store.flush()  # one transaction per update: the worst case
    result["update_enqueue_us"] = enqueue / n * 1e6
    result["update_commit_ms"] = (time.perf_counter() - t) / n * 1e3
    store.delete_conversation(conv.id)
    store.close()
    return result


def baseline(path: Path) -> dict[str, object]:
    """The same work through plain sqlite3, in a fresh process."""
    import sqlite3

    result: dict[str, object] = {}
    t0 = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute(
        "SELECT c.id, c.title, c.created, c.updated, c.pinned, "
        "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) FROM conversations c "
        "ORDER BY c.pinned DESC, c.updated DESC, c.id LIMIT ?",
        (PAGE,),
    ).fetchall()
    conn.execute("SELECT count(*) FROM conversations").fetchone()
    result["open_list_count_s"] = time.perf_counter() - t0
    searches = {}
    for label, q in QUERIES:
        match = fts_query(q)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            if match:
                conn.execute(
                    "SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH ? LIMIT 100", (match,)
                ).fetchall()
                conn.execute(
                    "SELECT rowid, snippet(messages_fts, 0, '[', ']', '…', 12) FROM messages_fts "
                    "WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT 100",
                    (match,),
                ).fetchall()
            times.append(time.perf_counter() - t)
        searches[label] = {"median_s": statistics.median(times)}
    result["search"] = searches
    conn.close()
    return result


def in_subprocess(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, f"--{mode}", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conversations", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--db", type=Path, help="database to build or reuse (default: a temporary file)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    if args.baseline:
        print(json.dumps(baseline(args.baseline)))
        return

    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="hearth-bench-")
        args.db = Path(tmp.name) / "conversations.sqlite3"
    build(args.db, args.conversations, args.messages)
    base = in_subprocess("baseline", args.db)
    m = in_subprocess("measure", args.db)

    print()
    print(f"{m['total']:,} conversations; first page {m['page']} rows; recovered {m['recovered']}")
    o = m["open_list_count_s"]
    print(
        f"open + recover + list({PAGE}) + count: {o * 1e3:8.1f} ms   target {OPEN_TARGET_S * 1e3:.0f} ms"
        f"   ratio {o / OPEN_TARGET_S:.3f}   (sqlite3 baseline {base['open_list_count_s'] * 1e3:.1f} ms,"
        f" store/baseline {o / max(base['open_list_count_s'], 1e-9):.1f}x; open alone {m['open_s'] * 1e3:.1f} ms)"
    )
    print("later pages (offset 200, 5000, last): " + ", ".join(f"{t * 1e3:.1f} ms" for t in m["later_pages_s"]))
    print(
        f"load a 1,000-message conversation: {m['load_1000_s'] * 1e3:8.1f} ms   target 200 ms"
        f"   ratio {m['load_1000_s'] / 0.2:.3f}"
    )
    print()
    print(f"{'search':18} {'query':28} {'hits':>5} {'first':>9} {'median':>9} {'ratio':>7} {'baseline':>9}")
    worst = 0.0
    for label, s in m["search"].items():
        ratio = s["median_s"] / SEARCH_TARGET_S
        worst = max(worst, s["first_s"] / SEARCH_TARGET_S)
        b = base["search"][label]["median_s"]
        print(
            f"{label:18} {s['query']!r:28} {s['hits']:>5} {s['first_s'] * 1e3:7.1f}ms {s['median_s'] * 1e3:7.1f}ms"
            f" {ratio:7.3f} {b * 1e3:7.1f}ms"
        )
    print(f"worst search (first run) / target: {worst:.3f}")
    print()
    print(
        f"update_message: {m['update_enqueue_us']:.1f} µs on the caller's thread; "
        f"{m['update_commit_ms']:.2f} ms per committed update on the writer"
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
