"""How much memory this computer has, so the model library can say whether a model fits.

A model that does not fit in memory either fails to load or makes the whole machine swap,
so the library flags models against the total and the currently available memory before
the user picks one.  Only the standard library is used (``/proc/meminfo`` on Linux,
``sysctl`` on macOS, ``GlobalMemoryStatusEx`` on Windows, ``os.sysconf`` elsewhere); when
nothing works the numbers are ``None`` and the UI says it cannot tell, instead of guessing.

API::

    memory() -> MemoryInfo(total: int | None, available: int | None)   # bytes
    parse_meminfo(text: str) -> MemoryInfo
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemoryInfo", "memory", "parse_meminfo"]


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
