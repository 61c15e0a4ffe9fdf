"""``join``: the parts of a split render put back together (:mod:`l1.runs.segments`
adds it after the parts).

The parts' video packets are copied in order, not encoded again: each part is a
closed encode whose timestamps already continue the part before
(:mod:`l1.effects.media.segments`). The sound is the source's, taken once for the
whole clip (copied or encoded as the format rules say), so it has no gaps or clicks
where the parts meet.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import av

from l1.effects.formats import CONTAINERS
from l1.effects.limits import MediaLimits
from l1.effects.media.output import Meter, Output, output_target
from l1.effects.media.probe import MediaError
from l1.effects.media.source import Source, codec_name, decoding, open_source
from l1.effects.params import JoinParams, VideoEncoding
from l1.effects.registry import RenderContext

__all__ = ["join"]

_Timed = tuple[float, int, av.Packet]  # (decoding seconds, order, packet)


def join(inputs: Sequence[Path], workdir: Path, params: JoinParams, context: RenderContext) -> Path:
    """The parts ``inputs[:-1]`` end to end, with the sound of the source ``inputs[-1]``,
    written as ``params.encoding.format``."""
    parts, source = list(inputs[:-1]), inputs[-1]
    if not parts:
        raise MediaError("a join needs at least one part")
    with ExitStack() as stack:
        src = stack.enter_context(open_source(source, context.limits))
        first = stack.enter_context(open_source(parts[0], context.limits))
        output, container = stack.enter_context(_open_output(workdir, params.encoding, src))
        codec = codec_name(first.picture)
        if not output.copies(codec):
            raise MediaError(f"{output.target.format} cannot hold the parts' {codec} video")
        video = _video_stream(container, first.picture, output.target.format)
        audio = output.audio(src)
        meter = Meter(sum(_packets(path, context.limits) for path in parts), context.progress)
        timed = heapq.merge(
            _video(parts, first, context.limits), _sound(src), key=lambda item: item[:2]
        )
        for _, _, packet in timed:
            if packet.stream.type == "video":
                # Every part is on the clip's clock already: packets keep their times.
                packet.stream = video
                container.mux(packet)
                meter.step()
            elif audio is not None:
                audio.feed(packet)
        if audio is not None:
            audio.finish()
    meter.finish()
    return output.path


@contextmanager
def _open_output(
    workdir: Path, encoding: VideoEncoding, src: Source
) -> Iterator[tuple[Output, av.container.OutputContainer]]:
    """The output file, as :func:`~l1.effects.media.output.open_output` opens it, and
    its container, which the parts' video stream is added to as it is."""
    target = output_target(workdir, encoding, src)
    rules = CONTAINERS.get(target.format)
    if rules is None:
        raise MediaError(f"a join writes a video format, not {target.format}")
    options = {"movflags": "+faststart"} if rules.muxer in ("mp4", "mov") else {}
    with av.open(str(target.path), "w", format=rules.muxer, options=options) as container:
        yield Output(target, encoding, src, container), container


def _video_stream(
    container: av.container.OutputContainer, template: av.video.stream.VideoStream, fmt: str
) -> av.stream.Stream:
    # Opaque: the stream's parameters as they are, whatever decoder read the part
    # (libdav1d, say, which is no encoder).
    stream = container.add_stream_from_template(template, opaque=True)
    if codec_name(template) == "hevc" and fmt in ("mp4", "mov"):
        stream.codec_tag = "hvc1"  # what Apple's players look for, as the parts have it
    return stream


def _packets(path: Path, limits: MediaLimits) -> int:
    with open_source(path, limits) as part:
        return part.picture.frames or part.frames


def _video(paths: list[Path], first: Source, limits: MediaLimits) -> Iterator[_Timed]:
    """The video packets of every part in order, each part checked against the first."""
    shape = (codec_name(first.picture), first.size)
    for index, path in enumerate(paths):
        with open_source(path, limits) as part:
            if (codec_name(part.picture), part.size) != shape:
                raise MediaError(
                    f"part {index + 1} is {codec_name(part.picture)} at {part.size}, "
                    f"not {shape[0]} at {shape[1]} as the first part"
                )
            yield from _timed(part, part.picture, order=0, origin=0.0)


def _sound(src: Source) -> Iterator[_Timed]:
    if src.audio is not None:
        yield from _timed(src, src.audio, order=1, origin=src.origin)


def _timed(src: Source, stream: av.stream.Stream, *, order: int, origin: float) -> Iterator[_Timed]:
    """The packets of ``stream`` with the clip time they are decoded at, to interleave
    the streams as a player reads them."""
    packets = decoding(lambda: src.container.demux(stream))
    while (packet := decoding(lambda: next(packets, None))) is not None:
        if packet.size == 0:
            continue  # the demuxer's empty packet at the end of the stream
        stamp = packet.dts if packet.dts is not None else packet.pts
        base = packet.time_base
        at = float(stamp * base) - origin if stamp is not None and base is not None else 0.0
        yield at, order, packet
