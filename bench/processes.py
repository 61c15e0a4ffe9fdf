"""CPU time used by a deployment's processes (and their children), read from /proc."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cpu_seconds", "descendants"]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid``, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # utime, stime, and the same of children it has reaped (render processes that ended).
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children[stat[0]].append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its children."""
    used: dict[str, float] = {}
    for name, pid in roots.items():
        total = 0.0
        for member in descendants(pid):
            if (stat := _stat(member)) is not None:
                total += stat[1]
        used[name] = total
    return used
