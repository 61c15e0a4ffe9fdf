"""Audio on its way to the encoder: an optional ``atempo`` stretch (pitch kept), then
resampling to the encoder's format; and silence to fill gaps with."""

from __future__ import annotations

from fractions import Fraction

import av
import av.error
import av.filter

__all__ = ["AudioChain", "silence"]


class AudioChain:
    """Decoded audio to the encoder's format: optional ``atempo`` stretch, then resampling."""

    def __init__(self, rate: int, layout: str, tempo: float, format: str = "fltp") -> None:
        self._resampler = av.AudioResampler(format=format, layout=layout, rate=rate)
        self._tempo = tempo
        self._graph: av.filter.Graph | None = None

    def process(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """Converted frames for ``frame`` (possibly none yet: filters buffer)."""
        stretched = self._stretch(frame) if self._tempo != 1.0 else [frame]
        return [out for piece in stretched for out in self._resampler.resample(piece)]

    def flush(self) -> list[av.AudioFrame]:
        """Whatever the filters still hold."""
        tail = self._stretch(None) if self._graph is not None else []
        frames = [out for piece in tail for out in self._resampler.resample(piece)]
        return frames + self._resampler.resample(None)

    def _stretch(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if self._graph is None:
            assert frame is not None
            self._graph = _tempo_graph(frame, self._tempo)
        self._graph.push(frame)
        return _drain(self._graph)


def _tempo_graph(frame: av.AudioFrame, tempo: float) -> av.filter.Graph:
    graph = av.filter.Graph()
    time_base = frame.time_base or Fraction(1, frame.sample_rate)
    nodes = [
        graph.add(
            "abuffer",
            sample_rate=str(frame.sample_rate),
            sample_fmt=frame.format.name,
            channel_layout=frame.layout.name,
            time_base=str(time_base),
        )
    ]
    nodes += [graph.add("atempo", f"{step:.6f}") for step in _tempo_steps(tempo)]
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


def _tempo_steps(tempo: float) -> list[float]:
    """``atempo`` stages of 0.5-2.0 each (older FFmpeg refuses more), multiplying to ``tempo``."""
    steps: list[float] = []
    while tempo > 2.0:
        steps.append(2.0)
        tempo /= 2.0
    while tempo < 0.5:
        steps.append(0.5)
        tempo /= 0.5
    return [*steps, tempo]


def _drain(graph: av.filter.Graph) -> list[av.AudioFrame]:
    frames: list[av.AudioFrame] = []
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames
        if isinstance(frame, av.AudioFrame):
            frames.append(frame)


def silence(samples: int, rate: int, layout: str, format: str = "fltp") -> av.AudioFrame:
    """``samples`` of silence at ``rate`` in ``layout`` and sample ``format``."""
    frame = av.AudioFrame(format=format, layout=layout, samples=samples)
    frame.sample_rate = rate
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    return frame
