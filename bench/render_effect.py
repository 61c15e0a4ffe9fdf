"""Frames per second and peak memory of one effect over a generated clip.

Run from the repository root::

    python -m bench.render_effect                      # grayscale, 10 s of 1280x720 at 30 fps
    python -m bench.render_effect --effect blur --seconds 30

The clip is made first; the render then runs in a child process so that its peak
resident memory (``ru_maxrss``) is the render's alone, not the clip maker's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.media import make_clip

__all__ = ["main", "render_once"]


def render_once(clip: Path, effect_name: str, workdir: Path) -> dict[str, float]:
    """Render ``effect_name`` over ``clip``; seconds, frames per second and peak RSS (MB)."""
    from l1.effects import RenderContext
    from l1.effects.catalogue import media_effects
    from l1.effects.media.probe import probe

    effect = {e.name: e for e in media_effects()}[effect_name]
    frames = probe(clip).frames or 0
    started = time.perf_counter()
    effect.load()([clip], workdir, effect.parse_params({}), RenderContext())
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "seconds": seconds,
        "frames": frames,
        "fps": frames / seconds,
        "peak_mb": peak_kb / 1024,
    }


def main() -> None:
    """Make the clip, render it in a child process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effect", default="grayscale")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(render_once(args.child, args.effect, args.child.parent)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", args.seconds, args.width, args.height, args.fps)
        command = [sys.executable, "-m", "bench.render_effect", "--effect", args.effect]
        child = subprocess.run([*command, "--child", str(clip)], check=True, capture_output=True)
        figures = json.loads(child.stdout)
    print(
        f"{args.effect}: {figures['frames']} frames of {args.width}x{args.height} "
        f"({args.seconds:g} s at {args.fps} fps) in {figures['seconds']:.2f} s = "
        f"{figures['fps']:.1f} fps ({figures['fps'] / args.fps:.1f}x real time); "
        f"peak RSS {figures['peak_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
