""" "Auto" threads: one llama.cpp thread per physical core we may use, passed explicitly.

llama-cpp-python's own default (``cpu_count() // 2``) assumes hyperthreading and gives one
thread on a 2-core machine without it: half the speed. These tests pin the mapping without
llama.cpp, with the machine's topology faked.
"""

from __future__ import annotations

import sys
import types

import pytest

from app.core import sysinfo
from app.core.settings import LoadSettings
from app.engine.params import llama_kwargs, thread_kwargs
from app.engine.protocol import Load


def _machine(monkeypatch, *, physical: int | None, logical: int, usable: int | None = None, quota=None) -> None:
    fake = types.ModuleType("psutil")
    fake.cpu_count = lambda logical=True: physical  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "psutil", fake)
    monkeypatch.setattr(sysinfo.os, "cpu_count", lambda: logical)
    cpus = set(range(usable if usable is not None else logical))
    monkeypatch.setattr(sysinfo.os, "sched_getaffinity", lambda _pid: cpus, raising=False)
    monkeypatch.setattr(sysinfo, "_cgroup_cpu_quota", lambda: quota)


@pytest.mark.parametrize(
    ("physical", "logical", "usable", "quota", "expected"),
    [
        (2, 2, None, None, 2),  # a 2-core VM without SMT: both cores (llama-cpp-python's default: 1)
        (8, 16, None, None, 8),  # SMT: one thread per physical core, not per hyperthread
        (4, 4, None, None, 4),
        (None, 6, None, None, 6),  # topology unknown: the logical count, not half of it
        (8, 16, 8, None, 4),  # an affinity mask of half the CPUs holds about half the cores
        (8, 8, None, 3, 3),  # a cgroup quota of 3 CPUs
        (1, 1, None, None, 1),
    ],
)
def test_auto_threads_are_the_physical_cores_we_may_use(
    monkeypatch, physical, logical, usable, quota, expected
) -> None:
    _machine(monkeypatch, physical=physical, logical=logical, usable=usable, quota=quota)
    assert sysinfo.physical_cores() == expected
    assert sysinfo.default_threads() == expected


def test_without_psutil_the_logical_count_is_used(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    monkeypatch.setattr(sysinfo.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(sysinfo.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(sysinfo, "_cgroup_cpu_quota", lambda: None)
    assert sysinfo.physical_cores() == 2


def test_cgroup_quota_is_read_from_cpu_max(monkeypatch, tmp_path) -> None:
    real_path = sysinfo.Path
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(sysinfo, "Path", lambda p: cpu_max if p == "/sys/fs/cgroup/cpu.max" else real_path(p))
    for text, expected in (("max 100000", None), ("150000 100000", 2), ("200000 100000", 2), ("junk", None)):
        cpu_max.write_text(text)
        assert sysinfo._cgroup_cpu_quota() == expected
    cpu_max.unlink()
    assert sysinfo._cgroup_cpu_quota() is None


def test_auto_is_passed_to_llama_cpp_explicitly_for_generation_and_batches(monkeypatch) -> None:
    monkeypatch.setattr(sysinfo, "default_threads", lambda: 2)
    for auto in (None, 0):
        kwargs = llama_kwargs(Load("/m.gguf", n_threads=auto))
        assert kwargs["n_threads"] == 2 and kwargs["n_threads_batch"] == 2
    assert thread_kwargs(None) == {"n_threads": 2, "n_threads_batch": 2}


def test_a_chosen_thread_count_is_kept(monkeypatch) -> None:
    monkeypatch.setattr(sysinfo, "default_threads", lambda: 2)
    kwargs = llama_kwargs(Load("/m.gguf", n_threads=3))
    assert kwargs["n_threads"] == 3 and kwargs["n_threads_batch"] == 3


def test_auto_stays_the_default_and_validates() -> None:
    assert LoadSettings().n_threads is None
    assert LoadSettings(n_threads=None).validate(None) == []
    assert LoadSettings.from_dict({"n_threads": None}).n_threads is None
