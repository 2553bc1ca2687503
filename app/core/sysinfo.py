"""How much memory this computer has, so the model library can say whether a model fits.

A model that does not fit in memory either fails to load or makes the whole machine swap,
so the library flags models against the total and the currently available memory before
the user picks one.  Only the standard library is used (``/proc/meminfo`` on Linux,
``sysctl`` on macOS, ``GlobalMemoryStatusEx`` on Windows, ``os.sysconf`` elsewhere); when
nothing works the numbers are ``None`` and the UI says it cannot tell, instead of guessing.

API::

    memory() -> MemoryInfo(total: int | None, available: int | None)   # bytes
    parse_meminfo(text: str) -> MemoryInfo
    physical_cores() -> int                 # cores this process may use, SMT siblings not counted
    default_threads() -> int                # what "Auto" threads means for llama.cpp here
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemoryInfo", "default_threads", "memory", "parse_meminfo", "physical_cores"]


@dataclass(frozen=True)
class MemoryInfo:
    """Physical memory in bytes; ``None`` where the platform would not tell us."""

    total: int | None
    available: int | None


def memory() -> MemoryInfo:
    """Total and available memory of this machine (or of the container we run in).

    Never raises: a failure to read one source falls through to the next, and finally to
    ``MemoryInfo(None, None)``.
    """
    info: MemoryInfo | None = None
    if sys.platform.startswith("linux"):
        try:
            info = parse_meminfo(Path("/proc/meminfo").read_text(encoding="ascii", errors="replace"))
        except OSError:
            info = None
        if info is not None and info.total is not None:
            return _apply_cgroup_limit(info)
    elif sys.platform == "darwin":
        info = _macos_memory()
    elif sys.platform == "win32":
        info = _windows_memory()
    if info is None or info.total is None:
        info = _sysconf_memory()
    return info


def parse_meminfo(text: str) -> MemoryInfo:
    """Read ``/proc/meminfo`` text.

    ``MemAvailable`` (Linux 3.14+) is the kernel's own estimate of what can be allocated
    without swapping; older kernels lack it, and then free + buffers + page cache is the
    usual approximation.
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            number = int(parts[0])
        except ValueError:
            continue
        unit = parts[1].lower() if len(parts) > 1 else ""
        values[key.strip()] = number * 1024 if unit == "kb" else number
    total = values.get("MemTotal")
    available = values.get("MemAvailable")
    if available is None and "MemFree" in values:
        available = values["MemFree"] + values.get("Buffers", 0) + values.get("Cached", 0)
    if total is not None and available is not None:
        available = min(available, total)
    return MemoryInfo(total, available)


def _apply_cgroup_limit(info: MemoryInfo) -> MemoryInfo:
    """Lower the numbers to a cgroup v2 memory limit, if one is set and smaller.

    In a container ``/proc/meminfo`` shows the host's memory, but the kernel kills us at
    the container's limit; that limit is what a model has to fit in.
    """
    try:
        raw = Path("/sys/fs/cgroup/memory.max").read_text(encoding="ascii").strip()
        if raw == "max":
            return info
        limit = int(raw)
        used = int(Path("/sys/fs/cgroup/memory.current").read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return info
    if info.total is not None and limit >= info.total:
        return info
    total = limit
    available = max(limit - used, 0)
    if info.available is not None:
        available = min(available, info.available)
    return MemoryInfo(total, available)


def _sysconf_memory() -> MemoryInfo:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
    except (AttributeError, OSError, ValueError):
        return MemoryInfo(None, None)
    try:
        available: int | None = os.sysconf("SC_AVPHYS_PAGES") * page
    except (AttributeError, OSError, ValueError):
        available = None
    if total <= 0:
        return MemoryInfo(None, None)
    return MemoryInfo(total, available if available is None or available >= 0 else None)


def _macos_memory() -> MemoryInfo | None:
    """``hw.memsize`` via sysctlbyname; available memory is not exposed this simply."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        size = ctypes.c_uint64(0)
        length = ctypes.c_size_t(ctypes.sizeof(size))
        if libc.sysctlbyname(b"hw.memsize", ctypes.byref(size), ctypes.byref(length), None, 0) != 0:
            return None
    except (OSError, AttributeError, TypeError):
        return None
    return MemoryInfo(int(size.value) or None, None)


def _windows_memory() -> MemoryInfo | None:
    class MEMORYSTATUSEX(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    try:
        status = MEMORYSTATUSEX()
        status.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
        if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return None
    except (OSError, AttributeError):
        return None
    return MemoryInfo(int(status.ullTotalPhys), int(status.ullAvailPhys))


def physical_cores() -> int:
    """Physical cores this process may run on (at least 1).

    llama.cpp is fastest with one thread per physical core: a second thread on a core's
    hyperthread sibling competes for the same execution units. llama-cpp-python's own default,
    ``cpu_count() // 2``, assumes every core has a sibling; on a VM or a CPU without SMT it
    halves the speed. psutil knows the real topology (it is imported here, not at module load,
    so the GUI process does not pay for it at start). The count is then scaled down to the CPUs
    we are allowed to use: a CPU affinity mask (taskset, containers) and a cgroup v2 CPU quota.
    """
    logical = os.cpu_count() or 1
    physical: int | None = None
    try:
        import psutil  # noqa: PLC0415 - only the engine child needs it, once

        physical = psutil.cpu_count(logical=False)
    except (ImportError, OSError, RuntimeError):
        physical = None
    if not physical or physical > logical:
        physical = logical  # unknown topology: assume no SMT rather than halving the speed
    usable = logical
    if hasattr(os, "sched_getaffinity"):
        try:
            usable = len(os.sched_getaffinity(0)) or logical
        except OSError:
            usable = logical
    quota = _cgroup_cpu_quota()
    if quota is not None:
        usable = min(usable, quota)
    # SMT siblings scale down with the rest: half the logical CPUs hold about half the cores.
    return max(1, min(physical, (physical * usable) // logical if usable < logical else physical))


def _cgroup_cpu_quota() -> int | None:
    """CPUs a cgroup v2 quota allows (``cpu.max``: "quota period"), rounded up; None if unlimited."""
    try:
        raw = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="ascii").split()
    except OSError:
        return None
    if len(raw) != 2 or raw[0] == "max":
        return None
    try:
        quota, period = int(raw[0]), int(raw[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def default_threads() -> int:
    """The thread count "Auto" gives llama.cpp, for generation and for prompt batches.

    Every physical core, none kept back for the GUI: while a reply streams the GUI process
    needs about a millisecond of CPU per token (a few percent of one core), far less than the
    core llama.cpp would give up. Measured through the real window on a 2-core machine, two
    threads streamed faster than one (bench/streaming.py --threads 1 against the default).
    """
    return physical_cores()
