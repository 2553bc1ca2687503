"""Document retrieval at scale: indexing throughput, index size, query latency (issue 9).

Generates a corpus of text files (default 2,000 documents, ~10 MB: words drawn from a Zipf
vocabulary so common words are common and rare ones rare, in sentences and paragraphs),
then measures in one run:

* indexing: ``DocumentIndex.add_files`` on the files (read, hash, extract, chunk, FTS5
  insert, one transaction a file) in MB/s of file text; target ≥ 5 MB/s.
* retrieval: ``retrieve()`` for 100 questions (a few distinctive words of one passage in a
  question frame, with stop words): p50/p95 latency (target p95 ≤ 50 ms) and how often the
  passage the question was made from is among the hits (recall@6: a sanity check that the
  speed is not bought with wrong answers).
* vectors (``--dim``, 0 to skip): ``vector_search`` over random float32 vectors for every
  passage (numpy over BLOBs, the matrix cached), p50/p95.

The baseline in the same run is plain ``sqlite3`` + FTS5 doing the least the same work
needs: the same passages inserted into a bare FTS5 table in one transaction (no files, no
extraction, no hashing, no per-file commits), the same MATCH queries ranked by ``bm25()``,
and for vectors a matrix product over an in-memory array.  Ratios are Hearth/baseline
(time: ≥ 1 means Hearth is slower) and measured/target (≤ 1 meets the target).

    python bench/rag.py [--docs 2000] [--mb 10] [--queries 100] [--dim 384] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from app.core.documents.chunking import chunk_text  # noqa: E402
from app.core.documents.index import DocumentIndex  # noqa: E402
from app.core.documents.retrieval import fts_query, retrieve  # noqa: E402

INDEX_TARGET_MBS = 5.0
QUERY_P95_TARGET_S = 0.050

COMMON = (
    "the of and to a in is it you that he was for on are with as his they be at one have this "
    "from or had by not word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line"
).split()
QUESTION_FRAMES = [
    "What does the document say about {}?",
    "How is {} related to the rest?",
    "Explain {} please",
    "where do they mention {}",
    "{}",
]


def make_vocab(rng: random.Random, size: int) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "pe", "da", "xo", "bi", "gu", "ze", "fa", "hy"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) + rng.choice(["", "n", "s", "r"]))
    return sorted(words)


def make_corpus(folder: Path, docs: int, total_mb: float, rng: random.Random) -> tuple[list[Path], int]:
    vocab = COMMON + make_vocab(rng, 30_000)
    weights = [1.0 / (i + 1) ** 1.05 for i in range(len(vocab))]
    cum = list(np.cumsum(weights))
    per_doc = int(total_mb * 1024 * 1024 / docs)
    files: list[Path] = []
    total = 0
    for d in range(docs):
        words = rng.choices(vocab, cum_weights=cum, k=max(50, per_doc // 6))
        out: list[str] = []
        for i, w in enumerate(words):
            out.append(w)
            if i % 14 == 13:
                out[-1] += "."
                if rng.random() < 0.15:
                    out[-1] += "\n\n"
        text = " ".join(out).replace("\n\n ", "\n\n")
        path = folder / f"doc{d:05d}.txt"
        path.write_text(text, encoding="utf-8")
        total += len(text.encode("utf-8"))
        files.append(path)
    return files, total


def make_questions(index: DocumentIndex, count: int, rng: random.Random) -> list[tuple[str, int]]:
    """(question, passage id it was made from): 2–3 of the passage's rarest-looking words."""
    conn = index._conn()  # the benchmark may read the database directly
    n = conn.execute("SELECT max(id) FROM passages").fetchone()[0]
    common = set(COMMON)
    out: list[tuple[str, int]] = []
    while len(out) < count:
        pid = rng.randint(1, n)
        row = conn.execute("SELECT text FROM passages WHERE id = ?", (pid,)).fetchone()
        if row is None:
            continue
        words = [w.strip(".\n") for w in row[0].split()]
        rare = [w for w in dict.fromkeys(words) if w not in common and len(w) > 6]
        if len(rare) < 3:
            continue
        picked = rng.sample(rare, rng.randint(2, 3))
        out.append((rng.choice(QUESTION_FRAMES).format(" ".join(picked)), pid))
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384, help="embedding size for the vector search (0: skip)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="hearth-bench-rag-") as tmp:
        tmpdir = Path(tmp)
        corpus = tmpdir / "corpus"
        corpus.mkdir()
        t = time.perf_counter()
        files, total_bytes = make_corpus(corpus, args.docs, args.mb, rng)
        mb = total_bytes / 1024 / 1024
        print(f"corpus: {len(files)} documents, {mb:.1f} MB (generated in {time.perf_counter() - t:.1f} s)")

        # -- Hearth: index ------------------------------------------------------------------
        index = DocumentIndex(tmpdir / "documents.sqlite3")
        cid = index.create_collection("bench").id
        t = time.perf_counter()
        report = index.add_files(cid, files)
        index_s = time.perf_counter() - t
        stats = index.stats()
        assert report.added == len(files), report

        # -- baseline: the same passages into a bare FTS5 table ------------------------------
        passages = [piece for f in files for _, piece in chunk_text(f.read_text(encoding="utf-8"))]
        base = sqlite3.connect(tmpdir / "baseline.sqlite3", isolation_level=None)
        base.execute("PRAGMA journal_mode = WAL")
        base.execute("PRAGMA synchronous = NORMAL")
        base.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2')")
        t = time.perf_counter()
        base.execute("BEGIN")
        base.executemany("INSERT INTO f (text) VALUES (?)", ((p,) for p in passages))
        base.execute("COMMIT")
        base_index_s = time.perf_counter() - t
        base.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        base_size = (tmpdir / "baseline.sqlite3").stat().st_size

        hearth_mbs = mb / index_s
        base_mbs = mb / base_index_s
        print(f"\nindexing   Hearth {hearth_mbs:7.2f} MB/s ({index_s:.2f} s, {stats.passages} passages)")
        print(f"           baseline {base_mbs:5.2f} MB/s ({base_index_s:.2f} s, bare FTS5 insert of the same passages)")
        print(
            f"           Hearth/baseline time {index_s / base_index_s:.2f}x;"
            f" target {INDEX_TARGET_MBS} MB/s → ratio target/measured {INDEX_TARGET_MBS / hearth_mbs:.2f}"
            f" ({'meets' if hearth_mbs >= INDEX_TARGET_MBS else 'MISSES'} the target)"
        )
        index._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = index.stats().file_bytes
        print(
            f"index size Hearth {size / 1024 / 1024:.1f} MB ({size / total_bytes:.2f}x the text);"
            f" baseline {base_size / 1024 / 1024:.1f} MB"
        )

        # -- queries --------------------------------------------------------------------------
        questions = make_questions(index, args.queries, rng)
        for q, _ in questions[:5]:  # warm both caches alike
            retrieve(index, q, [cid])
            base.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY rank LIMIT 6", (fts_query(q),)).fetchall()
        hearth_t: list[float] = []
        base_t: list[float] = []
        found = 0
        for q, pid in questions:
            t = time.perf_counter()
            hits = retrieve(index, q, [cid], k=6, token_budget=2000)
            hearth_t.append(time.perf_counter() - t)
            found += any(h.passage_id == pid for h in hits)
            t = time.perf_counter()
            rows = base.execute(
                "SELECT rowid, bm25(f) AS s FROM f WHERE f MATCH ? ORDER BY s LIMIT 6", (fts_query(q),)
            ).fetchall()
            for rowid, _ in rows:
                base.execute("SELECT text FROM f WHERE rowid = ?", (rowid,)).fetchone()
            base_t.append(time.perf_counter() - t)
        hp50, hp95 = pct(hearth_t, 50), pct(hearth_t, 95)
        bp50, bp95 = pct(base_t, 50), pct(base_t, 95)
        print(f"\nretrieval  {len(questions)} questions, k=6, budget 2000 tokens")
        print(
            f"           Hearth   p50 {hp50 * 1000:6.2f} ms  p95 {hp95 * 1000:6.2f} ms"
            f"  recall@6 {found / len(questions):.0%}"
        )
        print(f"           baseline p50 {bp50 * 1000:6.2f} ms  p95 {bp95 * 1000:6.2f} ms (bare FTS5 MATCH + bm25)")
        print(
            f"           Hearth/baseline p95 {hp95 / bp95:.2f}x; target p95 {QUERY_P95_TARGET_S * 1000:.0f} ms"
            f" → ratio measured/target {hp95 / QUERY_P95_TARGET_S:.2f}"
            f" ({'meets' if hp95 <= QUERY_P95_TARGET_S else 'MISSES'} the target)"
        )

        # -- vectors ---------------------------------------------------------------------------
        if args.dim > 0:
            vrng = np.random.default_rng(args.seed)
            ids = [pid for pid, _ in index.passages_missing_vectors([cid], limit=10**9)]
            vecs = vrng.standard_normal((len(ids), args.dim), dtype=np.float32)
            t = time.perf_counter()
            index.store_vectors(ids, vecs)
            store_s = time.perf_counter() - t
            queries = vrng.standard_normal((len(questions), args.dim), dtype=np.float32)
            t = time.perf_counter()
            index.vector_search(queries[0], k=6, collection_ids=[cid])  # builds the cached matrix
            load_s = time.perf_counter() - t
            vt: list[float] = []
            bt: list[float] = []
            norm = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
            for qv in queries:
                t = time.perf_counter()
                index.vector_search(qv, k=6, collection_ids=[cid])
                vt.append(time.perf_counter() - t)
                t = time.perf_counter()
                sims = norm @ (qv / np.linalg.norm(qv))
                top = np.argpartition(-sims, 5)[:6]
                top[np.argsort(-sims[top])]
                bt.append(time.perf_counter() - t)
            print(
                f"\nvectors    {len(ids)} x {args.dim} float32: stored in {store_s:.2f} s,"
                f" first search (loads the matrix) {load_s * 1000:.1f} ms"
            )
            print(f"           Hearth   p50 {pct(vt, 50) * 1000:6.2f} ms  p95 {pct(vt, 95) * 1000:6.2f} ms")
            print(
                f"           baseline p50 {pct(bt, 50) * 1000:6.2f} ms  p95 {pct(bt, 95) * 1000:6.2f} ms"
                f" (numpy on an in-memory matrix); Hearth/baseline p95 {pct(vt, 95) / pct(bt, 95):.2f}x"
            )
        index.close()
        base.close()


if __name__ == "__main__":
    main()
