"""What a server process costs, read from ``/proc`` (Linux only).

Every function takes the PIDs that serve connections (see :func:`serving_pids`) and sums over
them. Where ``/proc`` is missing, they raise :class:`OSError`; callers report the figure as
missing rather than guess.
"""

from __future__ import annotations

__all__ = ["cpu_seconds", "cpu_user_system", "rss_kib", "serving_pids", "thread_count", "tree_pids"]

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def serving_pids(root: int) -> list[int]:
    """The processes that hold the connections of the server started as ``root``.

    gunicorn's master only supervises: its forked workers hold the connections, so they are
    what is measured. A server without child processes measures itself.
    """
    children = [pid for pid in _all_pids() if _parent_of(pid) == root]
    return children or [root]


def tree_pids(root: int) -> list[int]:
    """``root`` and every process it started, and they started, while they run.

    What a server's CPU time is summed over: gunicorn's master as well as its workers.
    """
    parents = {pid: _parent_of(pid) for pid in _all_pids()}
    tree = [root]
    for pid in tree:  # grows as children are found: a breadth-first walk
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


def thread_count(pids: Iterable[int]) -> int:
    """OS threads of the processes, from ``/proc/PID/task``."""
    return sum(len(os.listdir(PROC / str(pid) / "task")) for pid in pids)


def rss_kib(pids: Iterable[int]) -> int:
    """Resident memory of the processes in KiB, from ``VmRSS`` in ``/proc/PID/status``."""
    total = 0
    for pid in pids:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                break
    return total


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time the processes used so far, all their threads included.

    Threads that have ended count too: Linux adds their time to their process's, so a server
    that starts a thread per connection is charged for the connections that have closed.
    """
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def cpu_user_system(pids: Iterable[int]) -> tuple[float, float]:
    """:func:`cpu_seconds`, as user and system time apart."""
    user = system = 0
    for pid in pids:
        fields = _stat_fields(pid)
        user += int(fields[11])
        system += int(fields[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name, which may contain spaces."""
    stat = (PROC / str(pid) / "stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _parent_of(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return None  # the process ended while we looked


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir(PROC) if name.isdigit()]
