"""The fleet of compose.yaml in real containers: a worker killed mid-render.

Runs where a container engine (podman or docker) and a compose tool are present; on
this kind of machine, ``../shared/containers/prepare-host.sh`` provides podman and a
local base image. Each test run builds the image (cached layers make that quick after
the first time) and starts its own compose project on free ports, removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from l1.stack import free_port
from tests.media import make_clip

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_BASE = "localhost/debian-python:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE = "localhost/l1:latest"


def _engine() -> str | None:
    return next((e for e in ("podman", "docker") if shutil.which(e)), None)


def _compose(engine: str) -> list[str] | None:
    if engine == "podman" and shutil.which("podman-compose"):
        return ["podman-compose"]
    probe = subprocess.run([engine, "compose", "version"], capture_output=True, check=False)
    return [engine, "compose"] if probe.returncode == 0 else None


ENGINE = _engine()
COMPOSE = _compose(ENGINE) if ENGINE else None

pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="no container engine with compose (podman-compose or docker compose)"
)


def _run(*command: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def _until(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {result!r})")
        time.sleep(0.5)


def _build(engine: str) -> None:
    base = os.environ.get("L1_BASE")
    if (
        base is None
        and subprocess.run(
            [engine, "image", "inspect", LOCAL_BASE], capture_output=True, check=False
        ).returncode
        == 0
    ):
        base = LOCAL_BASE
    command = [engine, "build", "-t", IMAGE, "-f", "Containerfile"]
    if engine == "podman":
        command += ["--format", "docker"]  # keeps the HEALTHCHECK
    if base:
        command += ["--build-arg", f"BASE={base}"]
    if CA_BUNDLE.exists():
        command += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    _run(*command, ".")


class Fleet:
    """One compose project of compose.yaml, on ports of its own."""

    def __init__(self, engine: str, compose: list[str]) -> None:
        self.engine = engine
        self.project = f"l1-test-{uuid.uuid4().hex[:8]}"
        self.ports = [free_port(), free_port()]
        self._compose = [*compose, "-p", self.project]
        self._env = {
            **os.environ,
            "L1_FLEET_PORT_1": str(self.ports[0]),
            "L1_FLEET_PORT_2": str(self.ports[1]),
        }
        self.apis = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=30) for p in self.ports]

    def compose(self, *args: str) -> str:
        return _run(*self._compose, *args, env=self._env)

    def up(self) -> None:
        self.compose("up", "-d")
        for api in self.apis:
            _until(
                lambda api=api: api.get("/health").status_code == 200,
                timeout=240,
                what=f"{api.base_url} ready",
            )

    def down(self) -> None:
        for api in self.apis:
            api.close()
        subprocess.run(
            [*self._compose, "down", "-v"],
            cwd=REPO_ROOT,
            env=self._env,
            capture_output=True,
            check=False,
        )
        # podman-compose leaves the project's network behind.
        network = [self.engine, "network", "rm", f"{self.project}_default"]
        subprocess.run(network, capture_output=True, check=False)

    def logs(self) -> str:
        done = subprocess.run(
            [*self._compose, "logs"],
            cwd=REPO_ROOT,
            env=self._env,
            capture_output=True,
            text=True,
            check=False,
        )
        return (done.stdout + done.stderr)[-20000:]


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    assert ENGINE is not None and COMPOSE is not None
    _build(ENGINE)
    fleet = Fleet(ENGINE, COMPOSE)
    try:
        fleet.up()
        yield fleet
    except BaseException:
        print(fleet.logs())
        raise
    finally:
        fleet.down()


@pytest.mark.timeout(1800)
def test_a_worker_container_killed_mid_render_leaves_the_run_to_another(
    fleet: Fleet, tmp_path: Path
) -> None:
    first, second = fleet.apis
    clip = make_clip(
        tmp_path / "long.mp4", seconds=40, width=640, height=360, fps=30, preset="ultrafast"
    )
    uploaded = first.post("/cache", content=clip.read_bytes())
    assert uploaded.status_code in (200, 201), uploaded.text
    accepted = second.post(
        "/runs",
        json={
            "recipe": "blur",
            "inputs": [uploaded.json()["content_hash"]],
            "params": {"radius": 12},
        },
    )
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]

    def running() -> dict[str, Any] | None:
        run = first.get(f"/runs/{run_id}").json()
        return run if run["status"] == "running" and run.get("worker") else None

    taken = _until(running, timeout=240, what="a worker takes the run")
    container = taken["worker"].rsplit("-", 1)[0]  # a container's host name is its id
    _run(fleet.engine, "kill", "--signal", "KILL", container)
    _run(fleet.engine, "stop", "--time", "0", container)  # and no restart takes it back
    assert first.get(f"/runs/{run_id}").json()["status"] != "completed", "killed too late"

    def finished() -> dict[str, Any] | None:
        run = first.get(f"/runs/{run_id}").json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = _until(finished, timeout=900, what="the run completes on another worker")
    assert run["status"] == "completed", run
    assert run["attempts"] >= 2
    assert not run["worker"].startswith(container)
    assert not run["provenance"]["rendered_by"].endswith(container)
    output = run["output_hash"]
    served = [api.get(f"/cache/{output}").content for api in (first, second)]
    assert served[0] == served[1] and len(served[0]) > 0
