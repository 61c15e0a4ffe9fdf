"""What a running ``l1 up`` records in its data directory, and what the next one does
with it.

``$L1_DATA_DIR/up.json`` names the ``l1 up`` process and every process it started,
each with its start time, so that a pid the system has since given to another
process is never taken for ours. A second ``l1 up`` on the same directory finds there
either a running stack (and says how to stop it), or processes whose ``l1 up`` is
gone (and stops them), or nothing alive (and starts afresh).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec

__all__ = [
    "Recorded",
    "StateFile",
    "UpState",
    "alive",
    "port_holder",
    "recorded",
    "stop_all",
]

STATE_FILE = "up.json"
_PROC = Path("/proc")


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """A process: its name in the stack, pid and start time."""

    name: str
    pid: int
    started: str


class UpState(msgspec.Struct, kw_only=True):
    """The ``l1 up`` process and what it started, newest last."""

    up: Recorded
    processes: list[Recorded] = []


class StateFile:
    """``up.json`` of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE

    def read(self) -> UpState | None:
        """The recorded state, or None if there is none (or it cannot be read)."""
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=UpState)
        except (OSError, msgspec.ValidationError, msgspec.DecodeError):
            return None

    def write(self, state: UpState) -> None:
        """Record ``state``, replacing the file in one step."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_bytes(msgspec.json.encode(state))
        partial.replace(self.path)

    def remove(self) -> None:
        """Forget the state (the stack stopped)."""
        self.path.unlink(missing_ok=True)


def started(pid: int) -> str | None:
    """When process ``pid`` started, as the system tells it, or None if it is gone."""
    if not (_PROC / "self" / "stat").exists():  # not Linux
        return _started_by_ps(pid)
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    # Field 22 (start time in clock ticks), the 20th after the command name; a zombie
    # (state Z) has exited.
    return None if fields[0] == "Z" else fields[19]


def _started_by_ps(pid: int) -> str | None:
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return None
    return out or None


def recorded(name: str, pid: int) -> Recorded:
    """``pid`` as a record, with its start time."""
    return Recorded(name=name, pid=pid, started=started(pid) or "")


def alive(process: Recorded) -> bool:
    """True while the recorded process runs (the same one: same pid and start time)."""
    return bool(process.started) and started(process.pid) == process.started


def stop_all(processes: list[Recorded], *, grace: float = 15.0) -> list[Recorded]:
    """SIGTERM each live process, newest first, then SIGKILL what is left after
    ``grace`` seconds; returns the ones that were alive."""
    running = [p for p in reversed(processes) if alive(p)]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(p) for p in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in running:
        if alive(process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    return running


def port_holder(port: int) -> tuple[int, str] | None:
    """The process listening on TCP ``port``, its pid and command line, where the
    system lets us see it (Linux, processes of this user); None otherwise."""
    inodes = _listening_inodes(port)
    if not inodes or sys.platform != "linux":
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if links & {f"socket:[{inode}]" for inode in inodes}:
            return int(entry.name), command[:120]
    return None


def _listening_inodes(port: int) -> set[str]:
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:  # LISTEN
                found.add(inode)
    return found
