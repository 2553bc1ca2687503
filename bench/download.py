"""Download throughput: the download manager against plain streaming clients, same file, same run.

A generated file (500 MB by default) is served by the local fake Hub (tests/fake_hub.py) in
a *separate process*, so the server does not compete with the client for the GIL, and
downloaded three ways into a temporary folder:

* (a) plain: one ``httpx2`` streaming GET written to a file — the floor;
* (b) plain + sha256: the same, hashing each chunk as it arrives;
* (d) plain + sha256 + one fsync at the end: the same durability as the manager's
  (it fsyncs before the file is verified and moved), to tell that cost from its own;
* (c) manager: ``DownloadQueue.add`` → COMPLETED (hashing as bytes arrive on a hash
  thread, fsync'ed checkpoints every 8 MB on a checkpoint thread, sha256 verified, atomic
  move into the models folder).

Each is run ``--rounds`` times (interleaved, so a warming page cache favours none) and the
best time is kept.  Printed: MB/s for each, the ratios c/a, c/b (and c/d) of throughput (1.0 = as
fast as the plain client; target ≥ 0.9) and the manager's peak RSS growth during its
downloads (target: flat, under 50 MB whatever the file size — the manager streams), and
how late a thread standing in for the GUI thread gets the GIL back while the manager
downloads (the window must not stutter while the user chats: under one frame, 16 ms).

``--link-mb-s N`` serves at most N MB/s, as a real connection does.  Over unlimited
loopback on a small machine the comparison with (a) is a CPU budget, not a transfer: (a)
neither hashes nor writes anything to disk before its clock stops (the kernel writes its
file back afterwards), while the manager must do both (sha256 ~1 GB/s with SHA-NI), so c/a
there measures how much of that work fits beside the socket on the cores left over.
c/b and c/d compare like with like.

    python bench/download.py [--size-mb 500] [--rounds 3] [--link-mb-s 125 0] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import httpx2  # noqa: E402

from app.core.downloads import DownloadEvent, DownloadQueue, DownloadState, EventKind  # noqa: E402

REPO = "bench/Big-GGUF"
NAME = "big.Q4_K_M.gguf"

SERVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from fake_hub import FakeHub, make_content, sha256_hex
    content = make_content({size}, seed=1)
    hub = FakeHub().start()
    hub.bytes_per_second = {rate}
    hub.add_repo({repo!r}, {{{name!r}: content}})
    print(hub.url, sha256_hex(content), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    hub.stop()
    """
)


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples RSS every 10 ms in a thread; ``growth`` is the peak above the start."""

    def __init__(self) -> None:
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def plain(url: str, dest: Path, hash_it: bool, sync: bool = False) -> str | None:
    hasher = hashlib.sha256() if hash_it else None
    with (
        httpx2.Client(timeout=30.0) as client,
        client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response,
        open(dest, "wb") as fh,
    ):
        response.raise_for_status()
        for chunk in response.iter_raw():
            fh.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    return hasher.hexdigest() if hasher is not None else None


class GilProbe:
    """Stands in for the GUI thread: wakes every 1 ms and notes how late it got the GIL back.

    Slots on the GUI thread need the GIL; a download that held it in long stretches would
    make the window stutter while the user chats.  Lateness above one frame (16 ms) would."""

    def __init__(self) -> None:
        self.late: list[float] = []  # over every time it was entered
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            time.sleep(0.001)
            self.late.append(time.perf_counter() - began - 0.001)

    def __enter__(self) -> GilProbe:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def p99_max_ms(self) -> tuple[float, float]:
        late = sorted(self.late) or [0.0]
        return late[int(len(late) * 0.99)] * 1000, late[-1] * 1000


def managed(
    base: str, url: str, workdir: Path, size: int, sha: str, probe: GilProbe | None = None
) -> tuple[float, int]:
    """One download through a fresh queue; returns (seconds, peak RSS growth in bytes)."""
    done = threading.Event()
    failed: list[str] = []

    def on_event(event: DownloadEvent) -> None:
        if event.kind == EventKind.COMPLETED:
            done.set()
        elif event.kind == EventKind.STATE and event.item.state == DownloadState.FAILED:
            failed.append(event.item.error or "failed")
            done.set()

    queue = DownloadQueue(workdir / "downloads.json", workdir / "models", on_event=on_event, endpoint=base)
    try:
        with PeakRss() as rss, probe or contextlib.nullcontext():
            began = time.perf_counter()
            queue.add(REPO, NAME, url, total=size, sha256=sha)
            done.wait()
            elapsed = time.perf_counter() - began
    finally:
        queue.close()
    if failed:
        raise SystemExit(f"the manager's download failed: {failed[0]}")
    return elapsed, rss.growth


def run_case(size_mb: int, rounds: int, link_mb_s: float, workdir: str | None) -> dict[str, float]:
    """One server (capped at ``link_mb_s`` MB/s, 0: unlimited), four clients; prints and returns the ratios."""
    size = size_mb * 1000 * 1000
    rate = link_mb_s * 1e6 if link_mb_s else None
    script = SERVER.format(tests=str(ROOT / "tests"), size=size, repo=REPO, name=NAME, rate=rate)
    server = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base, sha = server.stdout.readline().split()
        url = f"{base}/{REPO}/resolve/main/{NAME}"
        work = Path(tempfile.mkdtemp(prefix="hearth-bench-", dir=workdir))
        free = shutil.disk_usage(work).free
        if free < size * 2 + 500 * 1000 * 1000:
            raise SystemExit(f"not enough free space in {work} for a {size_mb} MB benchmark")
        link = f"at {link_mb_s:g} MB/s" if link_mb_s else "over unlimited loopback"
        print(f"\n{size_mb} MB from the fake Hub in another process {link}, best of {rounds}; writing to {work}")

        times: dict[str, list[float]] = {"a": [], "b": [], "d": [], "c": []}
        growth: list[int] = []
        probe = GilProbe()  # one probe over all the manager's rounds
        for _ in range(rounds):
            target = work / "plain.bin"
            began = time.perf_counter()
            plain(url, target, hash_it=False)
            times["a"].append(time.perf_counter() - began)
            target.unlink()

            began = time.perf_counter()
            got = plain(url, target, hash_it=True)
            times["b"].append(time.perf_counter() - began)
            target.unlink()
            assert got == sha, "the plain client's hash differs: the fake Hub is broken"

            began = time.perf_counter()
            plain(url, target, hash_it=True, sync=True)
            times["d"].append(time.perf_counter() - began)
            target.unlink()

            run_dir = work / "managed"
            elapsed, grew = managed(base, url, run_dir, size, sha, probe)
            times["c"].append(elapsed)
            growth.append(grew)
            shutil.rmtree(run_dir)

        best = {k: min(v) for k, v in times.items()}
        speed = {k: size / t / 1e6 for k, t in best.items()}
        for key, label in (
            ("a", "plain stream"),
            ("b", "plain stream + sha256"),
            ("d", "plain + sha256 + fsync"),
            ("c", "DownloadQueue"),
        ):
            runs = " ".join(f"{t:.2f}" for t in times[key])
            print(f"({key}) {label:<22}{speed[key]:8.1f} MB/s  (best {best[key]:.2f} s; runs: {runs})")
        p99, worst = probe.p99_max_ms()
        ratios = {
            "c/a": speed["c"] / speed["a"],
            "c/b": speed["c"] / speed["b"],
            "c/d": speed["c"] / speed["d"],
            "rss_mb": max(growth) / 1e6,
            "late_p99": p99,
            "late_max": worst,
        }
        print(f"ratio c/a (throughput)    {ratios['c/a']:8.2f}   (target >= 0.9)")
        print(f"ratio c/b (throughput)    {ratios['c/b']:8.2f}   (target >= 0.9)")
        print(f"ratio c/d (throughput)    {ratios['c/d']:8.2f}   (same durability)")
        print(f"manager peak RSS growth   {ratios['rss_mb']:8.1f} MB   (target < 50 MB, flat in file size)")
        print(
            f"GUI-thread stand-in late  p99 {p99:.1f} ms, max {worst:.1f} ms while the manager downloads"
            " (one frame: 16 ms)"
        )
        shutil.rmtree(work, ignore_errors=True)
        return ratios
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the files are written (default: a temp folder)")
    parser.add_argument(
        "--link-mb-s",
        type=float,
        nargs="+",
        default=[125.0, 0.0],
        help="serve at these many MB/s, like a real connection; 0: unlimited loopback "
        "(default: 125, a 1 Gbit/s line, then 0)",
    )
    args = parser.parse_args()
    results = {rate: run_case(args.size_mb, args.rounds, rate, args.dir) for rate in args.link_mb_s}
    print("\nsummary (manager / plain client, throughput; target >= 0.9)")
    for rate, ratios in results.items():
        link = f"{rate:g} MB/s link" if rate else "unlimited loopback"
        print(
            f"  {link:<20} c/a {ratios['c/a']:.2f}   c/b {ratios['c/b']:.2f}   c/d {ratios['c/d']:.2f}"
            f"   RSS +{ratios['rss_mb']:.1f} MB   GIL wait p99 {ratios['late_p99']:.1f} ms"
        )
    if any(not rate for rate in results):
        print(
            "  (over unlimited loopback c/a is a CPU budget: (a) neither hashes nor writes its file to disk\n"
            "   before its clock stops; c/b and c/d compare the same work)"
        )


if __name__ == "__main__":
    main()
