"""Renders in processes of their own, with real processes and signals: a time-out or a
cancel ends the render's process, a crash or a memory hog fails one attempt and not the
worker, media past the limits is refused, and a killed worker leaves nothing running
or half-written behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import av

from tests.harness import EventTap, wait_for
from tests.media import make_clip
from tests.processes import Deployment, OwnServers


def alive(pid: int) -> bool:
    """True while a process with ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pids(marker: Path) -> list[int]:
    """The process ids the ``hang`` effect recorded for ``marker``."""
    path = Path(f"{marker}.pids")
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def hanging_run(deployment: Deployment, marker: Path) -> str:
    """A ``hang`` run that renders for as long as ``marker`` exists."""
    marker.touch()
    item = await deployment.upload(f"hang:{marker}".encode())
    return str((await deployment.submit("hang", [item]))["run_id"])


async def test_a_timed_out_render_is_killed_before_it_is_tried_again(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Long enough for every attempt to start and write its pid on a loaded machine.
    deployment.env.update({"L1_RENDER_TIMEOUT": "2", "L1_MAX_DELIVER": "3"})
    await deployment.start_api()
    deployment.start_worker(concurrency=2)
    marker = tmp_path / "never-ends"
    run_id = await hanging_run(deployment, marker)
    seen: list[int] = []

    async def attempts_one_at_a_time() -> bool:
        for pid in pids(marker)[len(seen) :]:
            # A new attempt has begun: every earlier one must be gone already.
            assert not [p for p in seen if alive(p)], "an attempt ran beside its retry"
            seen.append(pid)
        return len(seen) == 3

    await wait_for(attempts_one_at_a_time, timeout=60, interval=0.02)
    run = await deployment.finished(run_id, timeout=60)
    assert run["status"] == "failed" and "timed out after 2s" in run["error"]
    await wait_for(lambda: _none_alive(seen), timeout=5)


async def _none_alive(process_ids: list[int]) -> bool:
    return not any(alive(pid) for pid in process_ids)


async def test_cancelling_a_run_ends_its_render_process(
    deployment: Deployment, own: OwnServers, tmp_path: Path
) -> None:
    await deployment.start_api()
    worker = deployment.start_worker()
    marker = tmp_path / "cancel-me"
    run_id = await hanging_run(deployment, marker)
    async with EventTap(own.nats_url, f"l1.runs.{run_id}.started") as tap:
        await tap.until(bool)
    await wait_for(lambda: _recorded(marker), timeout=10)
    [pid] = pids(marker)
    assert alive(pid)
    response = await deployment.http.post(f"/runs/{run_id}/cancel")
    assert response.json()["status"] == "cancelled"
    await wait_for(lambda: _none_alive([pid]), timeout=2)
    assert marker.exists(), "the render was stopped, not allowed to finish"
    assert worker.alive


async def _recorded(marker: Path) -> bool:
    return bool(pids(marker))


async def test_a_crashing_render_fails_its_attempts_and_not_the_worker(
    deployment: Deployment,
) -> None:
    await deployment.start_api()
    worker = deployment.start_worker()
    item = await deployment.upload(b"crash me")
    run = await deployment.finished((await deployment.submit("crash", [item]))["run_id"])
    assert run["status"] == "failed"
    assert "SIGSEGV" in run["error"] and run["attempts"] == 3
    assert worker.alive
    healthy = await deployment.upload(b"still rendering")
    after = await deployment.finished((await deployment.submit("identity", [healthy]))["run_id"])
    assert after["status"] == "completed"


async def test_a_render_past_its_memory_is_refused(deployment: Deployment) -> None:
    deployment.env["L1_RENDER_MEMORY"] = str(256 << 20)
    await deployment.start_api()
    worker = deployment.start_worker()
    item = await deployment.upload(b"feed me")
    run = await deployment.finished((await deployment.submit("hog", [item]))["run_id"])
    assert run["status"] == "failed"
    assert "more than 256 MiB" in run["error"] and run["attempts"] == 1
    assert worker.alive


def raw_h264(path: Path, frames: int) -> Path:
    """An H.264 elementary stream: no container to say how many frames it holds."""
    with av.open(str(path), "w", format="h264") as output:
        stream = output.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


async def test_video_past_the_frame_limit_is_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.env["L1_MAX_FRAMES"] = "10"
    await deployment.start_api()
    deployment.start_worker()
    said = await deployment.upload(make_clip(tmp_path / "said.mp4", seconds=1.0).read_bytes())
    unsaid = await deployment.upload(raw_h264(tmp_path / "unsaid.h264", 30).read_bytes())
    told = await deployment.finished((await deployment.submit("grayscale", [said]))["run_id"])
    found = await deployment.finished((await deployment.submit("grayscale", [unsaid]))["run_id"])
    # The container says 24 frames: refused before decoding.
    assert told["status"] == "failed" and "has 24 frames; the limit is 10" in told["error"]
    # A stream that does not say: refused while decoding, at the eleventh frame.
    assert found["status"] == "failed" and "more than 10 frames" in found["error"]
    assert told["attempts"] == found["attempts"] == 1


async def test_a_killed_worker_takes_its_renders_with_it_and_its_leftovers_are_swept(
    deployment: Deployment, tmp_path: Path
) -> None:
    await deployment.start_api()
    first = deployment.start_worker()
    marker = tmp_path / "orphaned"
    run_id = await hanging_run(deployment, marker)
    await wait_for(lambda: _recorded(marker), timeout=10)
    [pid] = pids(marker)
    scratch = deployment.root / "data" / "cache" / "tmp"
    # The worker's scratch directory, with the render's work directory in it.
    left = {p.parent for p in scratch.glob("scratch-*/render-*")}
    assert len(left) == 1

    await first.kill()
    await wait_for(lambda: _none_alive([pid]), timeout=5)

    deployment.start_worker("second")
    marker.unlink()  # the request comes back to the new worker, which can finish it now

    async def swept() -> bool:
        return not (left & set(scratch.iterdir()))

    await wait_for(swept, timeout=20)
    assert (await deployment.finished(run_id, timeout=30))["status"] == "completed"
    assert first.returncode == -signal.SIGKILL
