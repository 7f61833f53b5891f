"""How many threads a model uses when none are asked for, and how many it may be given.

The default is one thread per physical core this process may run on: a second hardware
thread of a core shares that core's vector units and memory path, which the ternary kernels
already fill, and waiting for it costs more than it brings. A CPU quota (cgroup ``cpu.max``,
as containers set) lowers it further. A model loaded with this default also adapts while it
runs (``adapt_to_busy_cores``): when other programs take the cores, it runs its work on the
calling thread alone as long as that is measured to be faster. A count the user gives is
used as given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from .errors import InvalidParameterError

_SYS_CPU = Path("/sys/devices/system/cpu")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")

# More threads than this per usable CPU only adds switching and memory; 256 bounds the pool
# on any machine (each thread has its own stack).
MAX_THREADS_PER_CPU = 4
MAX_THREADS = 256
# Small machines and containers still accept a few threads (tests, experiments).
_MIN_THREADS_CAP = 8


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity mask)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return list(range(os.cpu_count() or 1))


def physical_cores(cpus: Iterable[int], sys_cpu: Path = _SYS_CPU) -> int:
    """How many distinct physical cores the logical CPUs ``cpus`` belong to.

    A CPU whose topology cannot be read counts as a core of its own.
    """
    cores: set[str] = set()
    for cpu in cpus:
        siblings = sys_cpu / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(f"cpu{cpu}")
    return len(cores)


def cpu_quota(cpu_max: Path = _CGROUP_CPU_MAX) -> float | None:
    """CPUs' worth of time the cgroup quota allows (``cpu.max``), or None without a quota."""
    try:
        fields = cpu_max.read_text().split()
    except OSError:
        return None
    try:
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def default_threads() -> int:
    """Worker threads when none are asked for: the physical cores this process may use."""
    n = physical_cores(usable_cpus())
    quota = cpu_quota()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def adapt_to_busy_cores(engine: object) -> bool:
    """Let an engine loaded with default_threads() shrink its team while that is faster.

    Engines that can (the ``cpu`` backend) have ``set_adaptive_threads``; for others this
    does nothing. Returns whether the engine adapts.
    """
    set_adaptive = getattr(engine, "set_adaptive_threads", None)
    if set_adaptive is None:
        return False
    set_adaptive(True)
    return True


def max_threads() -> int:
    """The most threads a model accepts on this machine (see MAX_THREADS_PER_CPU)."""
    per_cpu = MAX_THREADS_PER_CPU * len(usable_cpus())
    return min(MAX_THREADS, max(_MIN_THREADS_CAP, per_cpu))


def check_n_threads(n_threads: object) -> int:
    """``n_threads`` if it is an integer from 1 to max_threads(), else InvalidParameterError."""
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise InvalidParameterError(f"n_threads must be an integer >= 1, got {n_threads!r}")
    limit = max_threads()
    if n_threads > limit:
        raise InvalidParameterError(
            f"n_threads {n_threads} is more than this machine can use: at most {limit} here "
            f"({MAX_THREADS_PER_CPU} per usable CPU, at most {MAX_THREADS})"
        )
    return n_threads
