"""``l1 up`` as a real process: it starts, renders the demo, stops on Ctrl-C, and keeps
runs and cache across a restart on the same data directory."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from l1.assets import known_assets
from l1.stack import free_port

START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


class UpProcess:
    """``python -m l1 up`` with its output read line by line as it comes."""

    def __init__(self, data_dir: Path, *, demo: bool) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
        env.update({"L1_DATA_DIR": str(data_dir), "COLUMNS": "250", "NO_COLOR": "1"})
        argv = [sys.executable, "-m", "l1", "up", "--port", str(self.port)]
        argv += ["--nats-port", str(free_port()), "--redis-port", str(free_port())]
        if demo:
            argv.append("--demo")
        self.process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
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
