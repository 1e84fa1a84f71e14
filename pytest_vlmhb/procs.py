"""Finding and re-prioritising a server's own processes (Linux /proc; elsewhere a no-op)."""

from __future__ import annotations

import os
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


def lower_priority(pid: int, niceness: int) -> int:
    """Set every thread of ``pid`` to ``niceness``; the number of threads changed.

    Linux keeps a nice value per thread, so the process's threads are set one
    by one; threads they start later inherit it. Lowering one's own priority
    needs no privilege.
    """
    changed = 0
    try:
        threads = [int(t.name) for t in (PROC / str(pid) / "task").iterdir()]
    except OSError:
        return 0
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
            changed += 1
        except OSError:
            pass  # the thread ended meanwhile
    return changed
