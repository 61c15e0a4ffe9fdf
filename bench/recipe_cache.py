"""A clip through one effect on the whole stack, then the same work again from the cache.

Run from the repository root::

    python -m bench.recipe_cache                     # 10 s of 1280x720 at 30 fps, grayscale
    python -m bench.recipe_cache --effect sepia --seconds 5

Starts its own NATS, Redis, API and worker (``l1 up``'s processes) on free ports, uploads
a generated clip, registers a one-step recipe, and reports: frames per second of the
render (started to completed, as the run records them), the worker's peak memory, the
time to answer the same run again, and the time of a second recipe whose first step is
the same one (it is served from the cache, not rendered).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from l1.client import L1Client
from l1.stack import free_port
from l1.up import Deployment
from tests.media import make_clip

RECIPE = """
name: bench-look
inputs: [{{name: clip}}]
nodes:
  - {{id: src, type: SOURCE, config: {{input: clip}}}}
  - {{id: look, type: EFFECT, config: {{effect: {effect}}}, inputs: [src]}}
output: look
"""

SHARING = """
name: bench-look-then-mirror
inputs: [{{name: clip}}]
nodes:
  - {{id: src, type: SOURCE, config: {{input: clip}}}}
  - {{id: look, type: EFFECT, config: {{effect: {effect}}}, inputs: [src]}}
  - {{id: out, type: EFFECT, config: {{effect: identity}}, inputs: [look]}}
output: out
"""


def _seconds(run: dict) -> float:
    parse = datetime.fromisoformat
    return (parse(run["completed_at"]) - parse(run["started_at"])).total_seconds()


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _timed_run(client: L1Client, recipe: str, clip: str) -> tuple[dict, float]:
    started = time.perf_counter()
    run = client.submit(recipe, [clip])
    while run["status"] in ("pending", "running"):
        run = client.run(run["run_id"], wait=300)
    if run["status"] != "completed":
        raise SystemExit(f"{recipe}: {run['status']}: {run.get('error')}")
    return run, time.perf_counter() - started


def main() -> None:
    """Render, render again, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effect", default="grayscale")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", args.seconds, args.width, args.height, args.fps)
        env = {k: v for k, v in os.environ.items() if k not in ("L1_NATS_URL", "L1_REDIS_URL")}
        env.update({"L1_DATA_DIR": str(Path(tmp) / "data"), "L1_PORT": str(free_port())})
        deployment = Deployment(env, nats_port=free_port(), redis_port=free_port(), concurrency=1)
        settings = deployment.start()
        try:
            with L1Client(settings.public_url, timeout=900) as client:
                content_hash = client.upload(clip)["content_hash"]
                client.register_recipe(RECIPE.format(effect=args.effect).encode())
                client.register_recipe(SHARING.format(effect=args.effect).encode())
                first, wall = _timed_run(client, "bench-look", content_hash)
                frames = args.seconds * args.fps
                render = _seconds(first)
                print(f"clip: {args.seconds:g} s of {args.width}x{args.height} at {args.fps} fps")
                print(
                    f"render ({args.effect}): {render:.2f} s, {frames / render:.1f} frames/s, "
                    f"{args.seconds / render:.2f}x real time (submit to answer {wall:.2f} s)"
                )
                print(f"worker peak memory: {_peak_mb(deployment.children['worker'].pid):.0f} MB")
                again, wall = _timed_run(client, "bench-look", content_hash)
                same = again["run_id"] == first["run_id"]
                print(f"same run again: answered in {wall * 1000:.1f} ms (same run: {same})")
                shared, wall = _timed_run(client, "bench-look-then-mirror", content_hash)
                look = next(s for s in shared["steps"] if s["node_id"] == "look")
                print(f"another recipe sharing the step: {wall:.2f} s, step {look['status']}")
        finally:
            deployment.stop()


if __name__ == "__main__":
    main()
