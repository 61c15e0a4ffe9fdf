"""L1 against the design it replaces, side by side on this machine.

The reference (``bench/celery_ref``: FastAPI + Celery, prefork with two processes,
acks late, + Redis, reduced to the run path) and L1 (``l1 up``'s deployment) run at
the same time on free ports; the same load client (``bench/runload.py``) measures
them in turn, L1 then the reference, twice for each run count. Throughput is runs
over the servers' own first ``created_at`` → last ``completed_at``.

Then, for L1 alone: its latency at half its peak rate (runs sent at that rate, accepted
→ completed by the servers' clocks), the server time of a repeated submit (the
``Server-Timing`` of ``POST /runs`` for a run that exists), and how it scales with API
processes and workers.

    python -m bench.compare                # 2,000 and 4,000 runs, 32 clients
    python -m bench.compare --runs 2000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from l1.stack import free_port, port_open, redis_server
from l1.timestamps import micros
from l1.up import Deployment

__all__ = ["main"]

HERE = Path(__file__).resolve().parent


def machine() -> str:
    """The CPU model and core count."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load(
    url: str, runs: int, clients: int, inbox: Path, recipe: str = "identity"
) -> dict[str, Any]:
    """One run of the shared load client against ``url``."""
    command = [sys.executable, str(HERE / "runload.py"), "--url", url, "-n", str(runs),
               "-c", str(clients), "--dir", str(inbox), "--recipe", recipe]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@contextmanager
def reference(root: Path) -> Iterator[str]:
    """The Celery reference, up; its URL."""
    redis = redis_server(port=free_port(), data_dir=root / "redis", log_path=root / "redis.log",
                         persist=False)  # fmt: skip
    redis.start()
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE / "celery_ref"),
        "REF_BROKER": f"redis://127.0.0.1:{redis.port}/0",
        "REF_RUNS": f"redis://127.0.0.1:{redis.port}/5",
        "REF_CACHE": str(root / "cache"),
    }
    port = free_port()
    logs = (root / "celery.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--concurrency", "2",
         "--loglevel", "warning"], cwd=HERE / "celery_ref", env=env, stdout=logs, stderr=logs,
    )  # fmt: skip
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server:app", "--port", str(port), "--log-level",
         "warning"], cwd=HERE / "celery_ref", env=env, stdout=logs, stderr=logs,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            if time.monotonic() > deadline or api.poll() is not None:
                raise RuntimeError(f"the reference did not start; see {root / 'celery.log'}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(timeout=30)
        redis.stop()


def l1_deployment(
    root: Path, inbox: Path, *, workers: int = 1, api_processes: int = 1
) -> Deployment:
    """An ``l1 up`` deployment on free ports under ``root``, importing from ``inbox``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
    env |= {"L1_DATA_DIR": str(root), "L1_PORT": str(free_port()), "L1_IMPORT_ROOTS": str(inbox)}
    return Deployment(env, nats_port=free_port(), redis_port=free_port(), workers=workers,
                      api_processes=api_processes)  # fmt: skip


async def _latency_at(url: str, inbox: Path, runs: int, rate: float) -> list[float]:
    """Submit ``runs`` runs at ``rate`` a second; accepted → completed of each, in ms."""
    async with aiohttp.ClientSession(url) as http:
        items = []
        for index in range(runs):
            path = inbox / f"latency-{time.time_ns()}-{index}"
            path.write_bytes(os.urandom(64 << 10))
            async with http.post("/cache/import", params={"path": str(path)}) as response:
                items.append((await response.json())["content_hash"])
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(index: int, item: str) -> str:
            await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
            async with http.post(
                "/runs", json={"recipe": "identity", "inputs": [item]}
            ) as response:
                return str((await response.json())["run_id"])

        run_ids = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        finished = []
        for run_id in run_ids:
            async with http.get(f"/runs/{run_id}", params={"wait": "30"}) as response:
                finished.append(await response.json())
    return [(micros(r["completed_at"]) - micros(r["created_at"])) / 1000 for r in finished]


async def _repeat_server_ms(url: str, times: int) -> list[float]:
    """Server time (its Server-Timing stages summed) of submitting an existing run again."""
    body = {"recipe": "dog", "inputs": ["cat"]}
    spent = []
    async with aiohttp.ClientSession(url) as http:
        for _ in range(times):
            async with http.post("/runs", json=body) as response:
                await response.read()
                timing = response.headers.get("Server-Timing", "")
                spent.append(
                    sum(float(p.split("dur=")[1]) for p in timing.split(",") if "dur=" in p)
                )
    return spent[10:]  # the first ones warm up


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternations per run count")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="l1-compare-"))
    inbox = root / "inbox"
    inbox.mkdir()
    print(f"machine: {machine()}")
    l1 = l1_deployment(root / "l1", inbox)
    try:
        settings = l1.start()
        with reference(root / "reference") as ref_url:
            print(f"{'runs':>6} {'round':>5} {'L1 runs/s':>10} {'reference':>10} {'ratio':>7}"
                  f" {'L1 p50/p99 ms':>15} {'failed':>7}")  # fmt: skip
            ratios: dict[int, list[float]] = {}
            for runs in args.runs:
                for round_ in range(1, args.rounds + 1):
                    ours = load(settings.public_url, runs, args.clients, inbox)
                    theirs = load(ref_url, runs, args.clients, inbox)
                    ratio = ours["runs_per_s"] / theirs["runs_per_s"]
                    ratios.setdefault(runs, []).append(ratio)
                    failed = (runs - ours["completed"]) + (runs - theirs["completed"])
                    print(f"{runs:>6} {round_:>5} {ours['runs_per_s']:>10.0f} "
                          f"{theirs['runs_per_s']:>10.0f} {ratio:>6.2f}x "
                          f"{ours['p50_ms']:>7.0f}/{ours['p99_ms']:<7.0f} {failed:>7}")  # fmt: skip
        for runs, values in ratios.items():
            print(f"ratio at {runs} runs: median {statistics.median(values):.2f}x")
        peak = max(
            load(settings.public_url, 2000, args.clients, inbox)["runs_per_s"] for _ in range(2)
        )
        latencies = asyncio.run(_latency_at(settings.public_url, inbox, 1000, peak / 2))
        print(f"L1 at half its peak ({peak / 2:.0f} runs/s): accepted → completed "
              f"p50 {_pct(latencies, 0.5):.1f} ms, p99 {_pct(latencies, 0.99):.1f} ms")  # fmt: skip
        repeats = asyncio.run(_repeat_server_ms(settings.public_url, 510))
        print(f"repeated submit, server time: p50 {_pct(repeats, 0.5):.2f} ms, "
              f"p99 {_pct(repeats, 0.99):.2f} ms")  # fmt: skip
    finally:
        l1.stop()
    if not args.no_scaling:
        print(f"{'API processes':>14} {'workers':>8} {'runs/s':>8}")
        for api_processes, workers in ((1, 1), (2, 1), (1, 2), (2, 2)):
            deployment = l1_deployment(root / f"l1-{api_processes}-{workers}", inbox,
                                       workers=workers, api_processes=api_processes)  # fmt: skip
            try:
                url = deployment.start().public_url
                rates = [load(url, 2000, args.clients, inbox)["runs_per_s"] for _ in range(2)]
                print(f"{api_processes:>14} {workers:>8} {max(rates):>8.0f}")
            finally:
                deployment.stop()
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
