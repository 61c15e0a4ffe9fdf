"""One long render split across workers: one worker against two, on the whole stack.

Run from the repository root (needs ``ffmpeg`` and ``taskset`` on the PATH, and two
cores)::

    python -m bench.split                  # 60 s 1280x720 30 fps through blur, 2 rounds
    python -m bench.split --rounds 3 --segment-seconds 5
    python -m bench.split --gop 30 --timeline    # a key frame a second; when each part ran

A clip (``testsrc2`` with a 440 Hz tone, libx264 + AAC, made as
``bench.render_vs_ffmpeg`` makes its clip; ``--gop N``: a key frame every N frames, not
x264's 250) goes through ``blur`` on ``l1 up``'s deployment (NATS, Redis, the API and the
subscribers, on free ports under a temporary directory). The workers are started here,
each pinned to one core (``taskset -c N``), with one render slot and single-threaded
renders (``L1_RENDER_THREADS=1``), in three set-ups:

- ``split x1``: one worker, the render split into parts (``L1_SEGMENT_SECONDS``);
- ``split x2``: two workers on two cores, the same split;
- ``whole x1``: one worker, splitting off (``L1_SEGMENT_SECONDS=0``): L1 before parts.

Each round runs the three, in an order that alternates between rounds, each over a copy
of the clip that differs only in a metadata tag (so no run or part is found cached). It
prints, per render, the wall-clock seconds (submit → the run reads completed), the CPU
seconds of the workers (their render processes included) and of the whole deployment
(servers, API, subscribers too), and when ``GET /runs/{id}/preview`` first answered 200;
then the medians and the targets: two workers at least 1.7x as fast as one, the split
render's CPU at most 1.1x the whole render's, the preview within 15 % of the render.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
from nats.js.api import DeliverPolicy

from bench.compare import machine
from bench.processes import cpu_seconds
from bench.render_vs_ffmpeg import ffmpeg, make_test_clip
from l1.stack import free_port
from l1.timestamps import micros
from l1.up import Deployment

__all__ = ["main"]

SETUPS: dict[str, tuple[int, bool]] = {  # name → (workers, split)
    "split x1": (1, True),
    "split x2": (2, True),
    "whole x1": (1, False),
}
SPEEDUP_TARGET = 1.7
CPU_TARGET = 1.1
PREVIEW_TARGET = 0.15


@dataclass(frozen=True)
class Result:
    """One render's figures."""

    setup: str
    wall: float
    cpu_workers: float
    cpu_all: float
    preview: float | None  # seconds from submit to the first 200 of the preview
    parts: int
    timeline: list[str]  # each step's render, from the run's events


class Bench:
    """The deployment, the clip's copies and the workers started for each render."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root = root
        self.args = args
        self.inbox = root / "inbox"
        self.inbox.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
        env |= {"L1_DATA_DIR": str(root / "l1"), "L1_PORT": str(free_port()),
                "L1_IMPORT_ROOTS": str(self.inbox), "L1_BLOB_TIER": "off"}  # fmt: skip
        # Workers are started here, pinned; the deployment runs none of its own.
        self.deployment = Deployment(env, nats_port=free_port(), redis_port=free_port(), workers=0)
        self.clip = root / "clip.mp4"
        self.copies = 0

    def start(self) -> str:
        """Make the clip and start the deployment; the API's URL."""
        make_test_clip(self.clip, argparse.Namespace(**vars(self.args), preset="veryfast", crf=23))
        return self.deployment.start().public_url

    def stop(self) -> None:
        """Stop the deployment."""
        self.deployment.stop()

    def fresh_copy(self) -> Path:
        """The clip with a metadata tag of its own: the same frames, a new input."""
        self.copies += 1
        path = self.inbox / f"clip-{self.copies}.mp4"
        ffmpeg("-i", str(self.clip), "-map", "0", "-c", "copy", "-metadata",
                f"comment=copy {self.copies}", str(path))  # fmt: skip
        return path

    def workers(self, count: int, *, split: bool) -> list[subprocess.Popen[bytes]]:
        """``count`` workers, worker n pinned to core n, one slot, one thread each."""
        env = {**self.deployment.env, "L1_METRICS_PORT": "0", "L1_RENDER_THREADS": "1",
               "L1_SEGMENT_SECONDS": str(self.args.segment_seconds if split else 0)}  # fmt: skip
        logs = self.deployment.logs
        started = []
        for core in self.args.cores[:count]:
            command = ["taskset", "-c", str(core), sys.executable, "-m", "l1", "worker",
                       "--concurrency", "1"]  # fmt: skip
            with (logs / f"bench-worker-{core}.log").open("ab") as log:
                started.append(
                    subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
                )
        return started

    def roots(self, workers: list[subprocess.Popen[bytes]]) -> dict[str, dict[str, int]]:
        """The processes whose CPU is counted: the workers, and everything else."""
        others = {name: child.pid for name, child in self.deployment.children.items()}
        others |= {s.name: s.pid for s in self.deployment.servers if s.pid is not None}
        return {"workers": {f"w{w.pid}": w.pid for w in workers}, "others": others}


async def _ready(http: httpx.AsyncClient, pids: set[int]) -> None:
    """Wait until every worker of ``pids`` beats."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = await http.get("/workers")
        if response.status_code == 200 and pids <= {w["pid"] for w in response.json()["items"]}:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the workers did not start; see the bench-worker logs")


async def _watch_preview(http: httpx.AsyncClient, run_id: str, since: float) -> float:
    """Seconds from ``since`` until the run's preview first answers 200."""
    while True:
        async with http.stream("GET", f"/runs/{run_id}/preview") as response:
            if response.status_code == 200:
                return time.perf_counter() - since
        await asyncio.sleep(0.05)


async def render(bench: Bench, http: httpx.AsyncClient, setup: str) -> Result:
    """One render of a fresh copy of the clip with the workers of ``setup``."""
    count, split = SETUPS[setup]
    clip = bench.fresh_copy()
    imported = await http.post("/cache/import", params={"path": str(clip)})
    imported.raise_for_status()
    item = imported.json()["content_hash"]
    workers = bench.workers(count, split=split)
    try:
        await _ready(http, {w.pid for w in workers})
        roots = bench.roots(workers)
        before = {group: cpu_seconds(pids) for group, pids in roots.items()}
        started = time.perf_counter()
        submitted = await http.post("/runs", json={"recipe": "blur", "inputs": [item]})
        submitted.raise_for_status()
        run_id = submitted.json()["run_id"]
        preview = asyncio.create_task(_watch_preview(http, run_id, started))
        run = await _finished(http, run_id)
        wall = time.perf_counter() - started
        after = {group: cpu_seconds(pids) for group, pids in roots.items()}
        shown = await asyncio.wait_for(preview, timeout=30)
    finally:
        _stop(workers)
    if run["status"] != "completed":
        raise RuntimeError(f"the {setup} render {run['status']}: {run.get('error')}")
    spent = {g: sum(after[g].values()) - sum(before[g].values()) for g in after}
    parts = len(next(iter(run["segments"].values()), []))
    timeline = await _timeline(bench, run_id)
    return Result(setup, wall, spent["workers"], spent["workers"] + spent["others"],
                  shown if parts else None, parts, timeline)  # fmt: skip


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL for a worker still there after 30 s."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def _timeline(bench: Bench, run_id: str) -> list[str]:
    """When each step of the run started and finished rendering, and on which worker,
    in seconds from the submit (read from the run's events)."""
    nc = await nats.connect(bench.deployment.env["L1_NATS_URL"])
    events = []
    try:
        sub = await nc.jetstream().subscribe(
            f"l1.runs.{run_id}.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        with contextlib.suppress(nats.errors.TimeoutError):
            while True:
                events.append(json.loads((await sub.next_msg(timeout=1)).data))
    finally:
        await nc.close()
    origin = micros(events[0]["at"])
    steps: dict[str, dict[str, str]] = {}
    for event in events:
        node = event.get("node_id") or "(output)"  # the run's completion
        at = f"{(micros(event['at']) - origin) / 1e6:6.2f}"
        if event["event"] == "started":
            steps.setdefault(node, {})["start"] = at
            steps[node]["worker"] = event["worker"][-8:]
        elif event["event"] in ("split", "completed") or event.get("output_hash"):
            steps.setdefault(node, {})["end"] = at
    return [
        f"{node:>10} {t.get('start', '     -')}-{t.get('end', '     -')} s {t.get('worker', '')}"
        for node, t in steps.items()
    ]


async def _finished(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    while True:
        response = await http.get(f"/runs/{run_id}", params={"wait": 60})
        response.raise_for_status()
        run = dict(response.json())
        if run["status"] in ("completed", "failed", "cancelled"):
            return run


async def measure(bench: Bench, url: str, rounds: int, *, timelines: bool) -> list[Result]:
    """Every set-up in every round, the order alternating; each result as it comes."""
    results = []
    names = list(SETUPS)
    print(f"{'round':>5} {'set-up':9} {'parts':>5} {'wall s':>8} {'CPU s workers':>14}"
          f" {'CPU s all':>10} {'preview s':>10} {'share':>6}")  # fmt: skip
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for round_ in range(1, rounds + 1):
            for setup in names if round_ % 2 else reversed(names):
                result = await render(bench, http, setup)
                results.append(result)
                preview, share = "-", "-"
                if result.preview is not None:
                    preview = f"{result.preview:.2f}"
                    share = f"{result.preview / result.wall:.0%}"
                print(f"{round_:>5} {setup:9} {result.parts:>5} {result.wall:>8.2f} "
                      f"{result.cpu_workers:>14.2f} {result.cpu_all:>10.2f} {preview:>10} "
                      f"{share:>6}", flush=True)  # fmt: skip
                if timelines:
                    print("\n".join(f"{'':16}{line}" for line in result.timeline))
    return results


def summarize(results: list[Result]) -> bool:
    """Print the medians against the targets; True when every target is met."""

    def median(setup: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results if r.setup == setup)

    speedup = median("split x1", "wall") / median("split x2", "wall")
    over_whole = median("whole x1", "wall") / median("split x2", "wall")
    cpu = median("split x2", "cpu_all") / median("whole x1", "cpu_all")
    cpu_workers = median("split x2", "cpu_workers") / median("whole x1", "cpu_workers")
    shares = [r.preview / r.wall for r in results if r.setup == "split x2" and r.preview]
    share = statistics.median(shares)
    met = speedup >= SPEEDUP_TARGET and cpu <= CPU_TARGET and share < PREVIEW_TARGET
    print(f"speed-up, two workers over one (both split): {speedup:.2f}x "
          f"(target >= {SPEEDUP_TARGET}x); over one worker unsplit: {over_whole:.2f}x")  # fmt: skip
    print(f"CPU seconds, split over two workers / unsplit: {cpu:.2f}x whole deployment, "
          f"{cpu_workers:.2f}x workers alone (target <= {CPU_TARGET}x)")  # fmt: skip
    print(f"preview ready after {share:.1%} of the two-worker render "
          f"(target < {PREVIEW_TARGET:.0%})")  # fmt: skip
    print("targets met" if met else "targets NOT met")
    return met


def _cores(text: str) -> list[int]:
    cores = [int(core) for core in text.split(",")]
    if len(cores) < 2 or not set(cores) <= os.sched_getaffinity(0):
        raise argparse.ArgumentTypeError(f"two cores this process may use, not {text!r}")
    return cores


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every render completed (whatever the figures)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=f"machine: {machine()}"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternations (default 2)")
    parser.add_argument("--seconds", type=float, default=60.0, help="clip length")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument(
        "--segment-seconds", type=float, default=10.0, help="L1_SEGMENT_SECONDS when split"
    )
    parser.add_argument(
        "--cores", type=_cores, default=[0, 1], help="the cores to pin workers to (default 0,1)"
    )
    parser.add_argument(
        "--gop", type=int, default=0, help="key frame every N frames (default: x264's, 250)"
    )
    parser.add_argument(
        "--timeline", action="store_true", help="print when each step rendered, and where"
    )
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"clip: {args.seconds:g} s {args.width}x{args.height} {args.fps} fps through blur, "
          f"a key frame every {args.gop or 250} frames; parts of {args.segment_seconds:g} s; "
          f"workers on cores {args.cores[:2]}")  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="l1-split-"))
    bench = Bench(root, args)
    try:
        url = bench.start()
        results = asyncio.run(measure(bench, url, args.rounds, timelines=args.timeline))
    except (RuntimeError, httpx.HTTPError, subprocess.CalledProcessError) as error:
        print(f"failed: {error!r}; logs in {bench.deployment.logs}", file=sys.stderr)
        return 1
    finally:
        bench.stop()
    summarize(results)
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
