"""Finding a server's own processes, re-prioritising and pinning them (Linux /proc)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")


def _parent(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, children first."""
    if not PROC.is_dir():
        return []
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        out.append(child)
        todo.extend(children.get(child, []))
    return out


def process_name(pid: int) -> str:
    """The kernel's name of a process (``/proc/<pid>/comm``, 15 characters), or ""."""
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def _each_thread(pid: int, change: Callable[[int], object]) -> int:
    """Apply ``change`` to every thread of ``pid``; the number of threads changed."""
    changed = 0
    try:
        threads = [int(t.name) for t in (PROC / str(pid) / "task").iterdir()]
    except OSError:
        return 0
    for tid in threads:
        try:
            change(tid)
            changed += 1
        except OSError:
            pass  # the thread ended meanwhile
    return changed


def lower_priority(pid: int, niceness: int) -> int:
    """Set every thread of ``pid`` to ``niceness``; the number of threads changed.

    Linux keeps a nice value per thread, so the process's threads are set one
    by one; threads they start later inherit it. Lowering one's own priority
    needs no privilege.
    """
    return _each_thread(pid, lambda tid: os.setpriority(os.PRIO_PROCESS, tid, niceness))


def pin(pid: int, cpus: set[int]) -> int:
    """Bind every thread of ``pid`` to ``cpus``; the number of threads changed."""
    return _each_thread(pid, lambda tid: os.sched_setaffinity(tid, cpus))


def cpus_of(pid: int) -> set[int]:
    """The CPUs ``pid`` may run on (empty if it is gone)."""
    try:
        return set(os.sched_getaffinity(pid))
    except OSError:
        return set()
