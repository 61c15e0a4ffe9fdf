"""Splitting a step by time: a per-frame effect over a long video becomes parts that
the workers render side by side, and a ``join`` that puts them back together.

A worker decides a step is worth splitting and finds the parts (``RunSplit``: where
they begin, which frames each holds, and the format and codec of the output); this
module turns that into steps of the run. The per-frame steps that follow in a chain
(each the only user of the one before) are split the same way, part *i* of each
taking part *i* of the one before, so that the chain is joined once, at its end.
Each part has a cache id of its own, so a part rendered before (by an earlier attempt
or another run) is not rendered again.
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from l1.effects.formats import CONTAINERS, Format, VideoCodec, video_format_for
from l1.identifiers import sha3_hex
from l1.schemas import Run, SegmentPlan, SegmentSpan, StepState

__all__ = ["JOIN", "frames_done", "part_id", "split"]

JOIN = "join"
"""The effect that puts a split step's parts back together."""


def part_id(node_id: str, index: int) -> str:
    """The node id of part ``index`` of the step ``node_id`` (``~`` is in no recipe id)."""
    return f"{node_id}~{index}"


def split(run: Run, node_id: str, plan: SegmentPlan, join_hash: str) -> Run | None:
    """``run`` with the step ``node_id`` (and the per-frame steps chained after it)
    replaced by the parts of ``plan`` and one join; None when the step is not there to
    split (done, split already, or not a per-frame step)."""
    steps = run.steps
    first = next((s for s in steps if s.node_id == node_id), None)
    if first is None or first.done or first.segment is not None or not first.segmentable:
        return None
    chain = _chain(steps, first, plan.format, plan.codec)
    parts: list[StepState] = []
    for span in plan.segments:  # part 0 of every step first: it is the preview
        previous = None
        for step, fmt, codec in chain:
            parts.append(_part(step, span, fmt, codec, previous))
            previous = step.node_id
    last, fmt, codec = chain[-1]
    join = StepState(
        node_id=last.node_id,
        cache_id=last.cache_id,  # the joined output is the step's own output
        effect=JOIN,
        effect_hash=join_hash,
        params={"encoding": _encoding(last.params, fmt, codec)},
        inputs=[*(part_id(last.node_id, s.index) for s in plan.segments), first.inputs[0]],
    )
    replaced = {step.node_id for step, _, _ in chain}
    kept: list[StepState] = []
    for step in steps:
        if step.node_id == last.node_id:
            kept += [*parts, join]
        elif step.node_id not in replaced:
            kept.append(step)
    return replace(run, steps=kept)


def frames_done(steps: list[StepState], node_id: str | None, percent: float) -> float | None:
    """How much of a split run is done, as a fraction of the frames of its parts (the
    part ``node_id`` being ``percent`` done); None when no step is split."""
    parts = [s for s in steps if s.segment is not None]
    total = sum(s.segment.frames for s in parts if s.segment is not None)
    if not total:
        return None
    done = 0.0
    for step in parts:
        assert step.segment is not None
        if step.done:
            done += step.segment.frames
        elif step.node_id == node_id:
            done += step.segment.frames * percent / 100
    return done / total


_Link = tuple[StepState, Format, VideoCodec]


def _chain(steps: list[StepState], first: StepState, fmt: str, codec: str) -> list[_Link]:
    """``first`` and the per-frame steps after it, each the only user of the one
    before, that write a video format, with the format and codec each writes."""
    # The first step's format and codec are the worker's, found from the video itself.
    chain: list[_Link] = [(first, fmt, codec)]  # type: ignore[list-item]
    while True:
        step, fmt, _ = chain[-1]
        users = [s for s in steps if step.node_id in s.inputs]
        if len(users) != 1 or not _splits_after(users[0], step):
            return chain
        follow = _written(users[0], fmt)
        if follow is None:
            return chain
        chain.append((users[0], *follow))


def _splits_after(step: StepState, before: StepState) -> bool:
    return step.segmentable and not step.done and step.inputs == [before.node_id]


def _written(step: StepState, before: Format) -> tuple[Format, VideoCodec] | None:
    """The format and codec ``step`` writes over a video in ``before``'s format, or
    None when it writes no video format (an animation, a still)."""
    encoding = step.params.get("encoding") or {}
    codec: VideoCodec | None = encoding.get("codec")
    fmt: Format = encoding.get("format") or video_format_for(before, codec)
    container = CONTAINERS.get(fmt)
    if container is None:
        return None
    return fmt, codec or container.codecs[0]


def _part(
    step: StepState, span: SegmentSpan, fmt: str, codec: str, previous: str | None
) -> StepState:
    source = previous is None
    inputs = step.inputs[:1] if previous is None else [part_id(previous, span.index)]
    bounds = f"{span.index}/{span.count}:{span.first_frame}+{span.frames}:{span.start}"
    return StepState(
        node_id=part_id(step.node_id, span.index),
        # The step's cache id stands for its inputs all the way back.
        cache_id=sha3_hex(f"{step.cache_id}:part:{bounds}:{fmt}:{codec}".encode()),
        effect=step.effect,
        effect_hash=step.effect_hash,
        params={**step.params, "encoding": _encoding(step.params, fmt, codec)},
        inputs=inputs,
        segmentable=True,
        segment=replace(span, of_node=step.node_id, from_source=source),
    )


def _encoding(params: dict[str, Any], fmt: str, codec: str) -> dict[str, Any]:
    return {**(params.get("encoding") or {}), "format": fmt, "codec": codec}
