"""``l1 up`` as a real process: it starts, renders the demo, stops on Ctrl-C, and keeps
runs and cache across a restart on the same data directory. It stops everything it
started on SIGHUP and SIGTERM too, takes it all with it when killed, stops what an
earlier one left behind, and says what to do when it cannot start."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from l1.assets import known_assets
from l1.leftovers import recorded as left_behind
from l1.stack import free_port, nats_server
from tests.processes import REPO_ROOT

START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def up_environment(data_dir: Path) -> dict[str, str]:
    """This environment without the developer's ``L1_*`` settings, on ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
    env.update({"L1_DATA_DIR": str(data_dir), "COLUMNS": "250", "NO_COLOR": "1"})
    return env


def up_command(port: int, nats_port: int, redis_port: int) -> list[str]:
    """``python -m l1 up`` on these ports."""
    return [
        *(sys.executable, "-m", "l1", "up", "--port", str(port)),
        *("--nats-port", str(nats_port), "--redis-port", str(redis_port)),
    ]


class UpProcess:
    """``python -m l1 up`` with its output read line by line as it comes."""

    def __init__(self, data_dir: Path, *, demo: bool, nats_port: int | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.nats_port = nats_port or free_port()
        argv = up_command(self.port, self.nats_port, free_port())
        if demo:
            argv.append("--demo")
        self.process = subprocess.Popen(
            argv,
            env=up_environment(data_dir),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def line_containing(self, text: str, *, timeout: float = START_TIMEOUT) -> str:
        """The first output line containing ``text``; fails at EOF or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout}s: {self.lines}") from None
            if line is None:
                raise AssertionError(f"exited before printing {text!r}: {self.lines}")
            self.lines.append(line)
            if text in line:
                return line

    def interrupt(self) -> int:
        """Send Ctrl-C and return the exit code, which must come within the deadline."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """Make sure the process is gone (after a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def up_processes() -> Iterator[list[UpProcess]]:
    """Every ``l1 up`` a test starts, killed at the end if still running."""
    started: list[UpProcess] = []
    yield started
    for process in started:
        process.kill()


def test_up_demo_restart_keeps_runs_and_cache(
    tmp_path: Path, up_processes: list[UpProcess]
) -> None:
    data_dir = tmp_path / "artdag"
    dog = known_assets()["dog"].content_hash
    blob = b"kept across a restart " + os.urandom(8)

    first = UpProcess(data_dir, demo=True)
    up_processes.append(first)
    assert dog in first.line_containing("demo:")
    with httpx.Client(base_url=first.base_url, timeout=30) as http:
        runs = http.get("/runs").json()["items"]
        demo = next(run for run in runs if run["output_name"] == "demo")
        assert demo["status"] == "completed"
        assert demo["output_hash"] == dog
        uploaded = http.post("/cache", content=blob)
        assert uploaded.status_code == 201, uploaded.text
        blob_hash = uploaded.json()["content_hash"]
    assert first.interrupt() == 0, first.lines
    assert {"cache", "nats", "redis"} <= {p.name for p in data_dir.iterdir()}

    second = UpProcess(data_dir, demo=False)
    up_processes.append(second)
    second.line_containing("L1 is up")
    with httpx.Client(base_url=second.base_url, timeout=30) as http:
        again = http.get(f"/runs/{demo['run_id']}")
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "completed"
        assert again.json()["created_at"] == demo["created_at"]
        listed = http.get("/runs").json()["items"]
        assert demo["run_id"] in {run["run_id"] for run in listed}
        assert http.get(f"/cache/{blob_hash}").content == blob
        cached = http.get("/cache", params={"limit": 1000}).json()["items"]
        assert blob_hash in {item["content_hash"] for item in cached}
    assert second.interrupt() == 0, second.lines


def recorded(data_dir: Path) -> dict[str, Any]:
    """``up.json``: the running ``l1 up`` and every process it started."""
    return dict(json.loads((data_dir / "up.json").read_text()))


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (an exited one not yet reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def all_gone(pids: list[int], *, timeout: float = STOP_TIMEOUT) -> list[int]:
    """The pids still running after ``timeout`` seconds (none, when all went)."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


STACK = {"nats-server", "redis", "api", "events", "worker"}


def test_hangup_stops_everything_and_a_second_up_is_told_what_to_do(
    tmp_path: Path, up_processes: list[UpProcess]
) -> None:
    data_dir = tmp_path / "artdag"
    first = UpProcess(data_dir, demo=False)
    up_processes.append(first)
    first.line_containing("L1 is up")
    state = recorded(data_dir)
    assert state["up"]["pid"] == first.process.pid
    assert {p["name"] for p in state["processes"]} == STACK
    pids = [p["pid"] for p in state["processes"]]
    assert all(running(pid) for pid in pids)

    second = subprocess.run(
        up_command(free_port(), free_port(), free_port()),
        env=up_environment(data_dir),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1, second
    pid = first.process.pid
    assert f"already running on {data_dir} (pid {pid})" in second.stderr
    assert f"`kill {pid}`" in second.stderr and "--data-dir" in second.stderr
    assert recorded(data_dir)["up"]["pid"] == pid  # the running one's record is kept

    first.process.send_signal(signal.SIGHUP)  # the terminal closed
    assert first.process.wait(timeout=STOP_TIMEOUT) == 0
    assert all_gone(pids) == []
    assert not (data_dir / "up.json").exists()


def test_killed_up_takes_everything_with_it_and_leftovers_are_stopped(
    tmp_path: Path, up_processes: list[UpProcess]
) -> None:
    data_dir = tmp_path / "artdag"
    first = UpProcess(data_dir, demo=False)
    up_processes.append(first)
    first.line_containing("L1 is up")
    state = recorded(data_dir)
    first.process.kill()  # kill -9: no chance to stop anything itself
    first.process.wait()
    assert all_gone([p["pid"] for p in state["processes"]]) == []

    # A server left running by an `l1 up` that could not take it along (another
    # system, an older version): the next `l1 up` on the directory stops it.
    leftover = nats_server(
        port=free_port(), store_dir=data_dir / "nats", log_path=tmp_path / "leftover.log"
    )
    leftover.start()
    try:
        assert leftover.pid is not None
        state["processes"] = [msgspec.to_builtins(left_behind("nats-server", leftover.pid))]
        (data_dir / "up.json").write_text(json.dumps(state))

        second = UpProcess(data_dir, demo=False, nats_port=leftover.port)
        up_processes.append(second)
        line = second.line_containing("left running")
        assert f"nats-server (pid {leftover.pid})" in line
        second.line_containing("L1 is up")
        assert not leftover.running
        assert recorded(data_dir)["up"]["pid"] == second.process.pid
        assert second.interrupt() == 0, second.lines
    finally:
        leftover.kill()


def test_a_port_in_use_names_the_option_to_change_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for argv, option, variable in (
            (up_command(free_port(), port, free_port()), "--nats-port", "L1_NATS_URL"),
            (up_command(free_port(), free_port(), port), "--redis-port", "L1_REDIS_URL"),
            (up_command(port, free_port(), free_port()), "--port", "L1_PORT"),
        ):
            result = subprocess.run(
                argv,
                env=up_environment(tmp_path / "artdag"),
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 1, result
            error = result.stderr.strip()
            assert f"port {port} is already in use by pid {os.getpid()}" in error
            assert f"`l1 up {option} N`" in error and variable in error
            assert "Traceback" not in error and "stopping" not in result.stdout
    assert not (tmp_path / "artdag" / "up.json").exists()
