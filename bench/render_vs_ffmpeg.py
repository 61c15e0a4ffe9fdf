"""Per-frame video effects against the ``ffmpeg`` command line, side by side.

Run from the repository root (needs ``ffmpeg`` on the PATH, e.g. Debian's package)::

    python -m bench.render_vs_ffmpeg                      # grayscale, blur, sepia; 3 rounds
    python -m bench.render_vs_ffmpeg --effects invert,flip,mirror --rounds 5
    python -m bench.render_vs_ffmpeg --effects all --rounds 2   # every per-frame effect

Each effect runs with the representative params of :data:`PARAMS` (its defaults when
it has no entry there).

A 10 s 1280x720 30 fps clip (``testsrc2`` with a sine tone, libx264 + AAC) is made
with ffmpeg first. Each round then renders every effect twice over it: once through
L1's render code, as a worker's render process runs it (load, parse the params,
render; in this process), and once with ``ffmpeg -i clip -vf <the same filter chain>
-c:v libx264 -preset P -crf C -c:a copy``. Both sides use the same encoder settings
(libx264, ``--preset``/``--crf``, yuv420p, default threads) and the same filters: the
ffmpeg side runs exactly the chain L1's effect builds. Which side goes first alternates
between rounds, so that a machine shared with other work disadvantages neither.

It prints each side's frames per second and their ratio (L1 / ffmpeg) per round, then
the median and range across rounds, with the machine and both FFmpeg versions. On a
machine shared with other work the wall-clock ratio swings from round to round, so it
also prints the CPU ratio (ffmpeg's CPU seconds / L1's, all threads): above 1, L1 spent
less CPU on the same frames.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["ffmpeg", "main", "make_test_clip"]

DEFAULT_EFFECTS = "grayscale,blur,sepia"

# Representative params per effect, for the 1280x720 clip.
PARAMS: dict[str, dict[str, Any]] = {
    "blur": {"radius": 2},
    "sepia": {},
    "sharpen": {},
    "brightness": {"factor": 1.3},
    "contrast": {"factor": 1.5},
    "saturation": {"factor": 1.5},
    "hue_shift": {"degrees": 90},
    "posterize": {"bits": 3},
    "pixelate": {"block_size": 8},
    "resize": {"width": 640, "height": 360},
    "rotate": {"degrees": 30},
    "crop": {"left": 160, "top": 90, "width": 960, "height": 540},
}


def make_test_clip(path: Path, args: argparse.Namespace) -> Path:
    """Write the test clip with ffmpeg: ``testsrc2`` video and a 440 Hz tone (a key
    frame every ``args.gop`` frames when that is set, else x264's default)."""
    size = f"{args.width}x{args.height}"
    keys = ["-g", str(gop)] if (gop := getattr(args, "gop", None)) else []
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={args.fps}:duration={args.seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={args.seconds}",
        "-c:v", "libx264", "-preset", args.preset, "-crf", str(args.crf), "-pix_fmt", "yuv420p",
        *keys, "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


def ffmpeg(*arguments: str) -> None:
    """Run the ``ffmpeg`` command line, quietly."""
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *arguments]
    subprocess.run(command, check=True)


def _effect_names(chosen: str) -> list[str]:
    """The effects ``--effects`` names: a comma-separated list, or ``all``."""
    if chosen.strip() == "all":
        from l1.effects.catalogue import frame_effects

        return [effect.name for effect in frame_effects()]
    return [name.strip() for name in chosen.split(",") if name.strip()]


def _params(name: str, encoding: dict[str, Any]) -> dict[str, Any]:
    return {**PARAMS.get(name, {}), "encoding": encoding}


def _filter_chain(name: str, clip: Path, encoding: dict[str, Any]) -> tuple[Any, Any, str]:
    """The effect ``name``, its params, and the libavfilter chain it filters video with."""
    from l1.effects.catalogue import frame_effects
    from l1.effects.media.probe import probe
    from l1.effects.render.frames import FrameEffect

    effects = {effect.name: effect for effect in frame_effects()}
    if name not in effects:
        raise SystemExit(f"{name!r} is not a per-frame effect; these are: {', '.join(effects)}")
    effect = effects[name]
    params = effect.parse_params(_params(name, encoding))
    info = probe(clip)
    render = effect.load()
    assert isinstance(render, FrameEffect)
    chain = render.video_filter(params, (info.width or 0, info.height or 0))
    if chain is None:
        raise SystemExit(f"{name!r} has no libavfilter chain (it renders through Pillow)")
    return effect, params, chain


class Timing(NamedTuple):
    """Wall-clock and CPU seconds (user + system, every thread) of one render."""

    wall: float
    cpu: float


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _time_l1(effect: Any, clip: Path, encoding: dict[str, Any], workdir: Path) -> Timing:
    """One render of ``effect``, the way a render process runs it."""
    from l1.effects import RenderContext

    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    render = effect.load()
    params = effect.parse_params(_params(effect.name, encoding))
    render([clip], workdir, params, RenderContext())
    return Timing(time.perf_counter() - started, _cpu(resource.RUSAGE_SELF) - cpu)


def _timeffmpeg(chain: str, clip: Path, args: argparse.Namespace, target: Path) -> Timing:
    """The ffmpeg command line doing the same chain with the same encoder."""
    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    ffmpeg(
        "-i", str(clip), "-vf", f"{chain},format=yuv420p",
        "-c:v", "libx264", "-preset", args.preset, "-crf", str(args.crf),
        "-c:a", "copy", str(target),
    )  # fmt: skip
    return Timing(time.perf_counter() - started, _cpu(resource.RUSAGE_CHILDREN) - cpu)


def _machine() -> list[str]:
    import av

    model = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return [
        f"machine: {model}, {os.cpu_count()} cores, load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"ffmpeg command line: {ffmpeg.stdout.splitlines()[0]}",
        f"L1: PyAV {av.__version__} with FFmpeg {av.ffmpeg_version_info}, Python "
        f"{platform.python_version()}",
    ]


def main() -> None:
    """Make the clip, run the rounds, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effects", default=DEFAULT_EFFECTS, help="comma-separated names, or all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--preset", default="veryfast")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not on the PATH (Debian: apt-get install ffmpeg)")
    encoding = {"crf": args.crf, "preset": args.preset}
    frames = round(args.seconds * args.fps)
    print(*_machine(), sep="\n")
    print(
        f"clip: {args.seconds:g} s of {args.width}x{args.height} at {args.fps} fps "
        f"({frames} frames) + AAC; encoder on both sides: libx264 -preset {args.preset} "
        f"-crf {args.crf}, yuv420p, default threads; audio copied"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = make_test_clip(root / "clip.mp4", args)
        chosen = _effect_names(args.effects)
        chains = {name: _filter_chain(name, clip, encoding) for name in chosen}
        ratios: dict[str, list[float]] = {name: [] for name in chosen}
        cpu_ratios: dict[str, list[float]] = {name: [] for name in chosen}
        fps: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in chosen}
        for round_ in range(args.rounds):
            for name in chosen:
                effect, _, chain = chains[name]
                workdir = root / f"l1-{name}-{round_}"
                workdir.mkdir()
                target = root / f"ffmpeg-{name}-{round_}.mp4"
                if round_ % 2 == 0:
                    ours = _time_l1(effect, clip, encoding, workdir)
                    theirs = _timeffmpeg(chain, clip, args, target)
                else:
                    theirs = _timeffmpeg(chain, clip, args, target)
                    ours = _time_l1(effect, clip, encoding, workdir)
                if round_ == 0 and name == chosen[0]:
                    print(f"libx264: L1 {_x264(workdir / 'output.mp4')}, ffmpeg {_x264(target)}")
                ours_fps, theirs_fps = frames / ours.wall, frames / theirs.wall
                cpu_ratios[name].append(theirs.cpu / ours.cpu)
                fps[name][0].append(ours_fps)
                fps[name][1].append(theirs_fps)
                ratios[name].append(ours_fps / theirs_fps)
                print(
                    f"round {round_ + 1} {name:<11} L1 {ours_fps:6.1f} fps  "
                    f"ffmpeg {theirs_fps:6.1f} fps  ratio {ours_fps / theirs_fps:.2f}  "
                    f"CPU ms/frame L1 {1000 * ours.cpu / frames:.1f} "
                    f"ffmpeg {1000 * theirs.cpu / frames:.1f}",
                    flush=True,
                )
                shutil.rmtree(workdir)
                target.unlink()
    print()
    print(
        "| effect | filter chain | L1 fps | ffmpeg fps | fps ratio, median (range) "
        "| CPU ratio, median (range) |"
    )
    print("|---|---|---|---|---|---|")
    for name in chosen:
        ours_list, theirs_list = fps[name]
        print(
            f"| {name} | `{chains[name][2]}` | {_span(ours_list)} | {_span(theirs_list)} | "
            f"{statistics.median(ratios[name]):.2f} "
            f"({min(ratios[name]):.2f}-{max(ratios[name]):.2f}) | "
            f"{statistics.median(cpu_ratios[name]):.2f} "
            f"({min(cpu_ratios[name]):.2f}-{max(cpu_ratios[name]):.2f}) |"
        )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _x264(path: Path) -> str:
    """The x264 build that wrote ``path``, from the version string it leaves in the stream."""
    data = path.read_bytes()
    start = data.find(b"x264 - core ")
    return data[start + 7 : data.find(b" - ", start + 12)].decode() if start >= 0 else "?"


def _span(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


if __name__ == "__main__":
    main()
