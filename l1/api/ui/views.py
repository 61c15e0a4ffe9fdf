"""What the dashboard's templates are given: form fields from an effect's parameter
schema, a recipe's steps laid out as a graph, and readable sizes and times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from l1.api.services.runs import preview_hash
from l1.schemas import Run, StepState

__all__ = [
    "Box",
    "Cell",
    "Field",
    "Graph",
    "duration",
    "human_bytes",
    "layout",
    "param_fields",
    "short_time",
    "time_range",
]

# Grid of the step graph, in SVG user units.
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 64, 60, 24, 10
# The strip of a split step's parts, drawn under its box.
STRIP_GAP, STRIP_H = 4, 14


@dataclass(frozen=True, kw_only=True)
class Field:
    """One form field for an effect parameter."""

    name: str
    kind: str  # number, integer, boolean, choice, text
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] = field(default_factory=list)
    description: str = ""
    optional: bool = False


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {}))
    return node


def param_fields(schema: dict[str, Any]) -> list[Field]:
    """The simple parameters of an effect as form fields. Nested ones (``encoding``) are
    left to the form's JSON box."""
    root = _resolve(schema, schema)
    fields = []
    for name, raw in root.get("properties", {}).items():
        node = _resolve(schema, raw)
        optional = False
        if "anyOf" in node:  # "a number or null": an optional value
            options = [_resolve(schema, o) for o in node["anyOf"] if o.get("type") != "null"]
            optional = len(options) < len(node["anyOf"])
            if len(options) != 1:
                continue
            node = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        kind = _kind(node)
        if kind is None:
            continue
        fields.append(
            Field(
                name=name,
                kind=kind,
                default=node.get("default"),
                minimum=node.get("minimum", node.get("exclusiveMinimum")),
                maximum=node.get("maximum", node.get("exclusiveMaximum")),
                choices=list(node.get("enum", [])),
                description=str(node.get("description", "")),
                optional=optional,
            )
        )
    return fields


def _kind(node: dict[str, Any]) -> str | None:
    if "enum" in node:
        return "choice"
    return {"number": "number", "integer": "integer", "boolean": "boolean", "string": "text"}.get(
        str(node.get("type"))
    )


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One part of a split step in the strip under its box: ``x`` from the box's left
    edge and ``width`` in proportion to its frames."""

    index: int
    status: str
    x: float
    width: float
    title: str
    output_hash: str | None


@dataclass(frozen=True, kw_only=True)
class Box:
    """One node drawn at (``x``, ``y``): a step, or an input the recipe starts from; a
    step split by time has its parts as ``cells``."""

    node_id: str
    label: str
    status: str
    output_hash: str | None
    x: int
    y: int
    source: bool = False
    cells: tuple[Cell, ...] = ()

    @property
    def parts_done(self) -> int:
        """How many of its parts are rendered."""
        return sum(cell.status in ("completed", "cached") for cell in self.cells)


@dataclass(frozen=True, kw_only=True)
class Graph:
    """A run's nodes as boxes, and the edges between them (from-box, to-box);
    ``preview`` when the first part of a split render is there to watch before the
    run completes."""

    boxes: list[Box]
    edges: list[tuple[Box, Box]]
    width: int
    height: int
    preview: bool = False


@dataclass(frozen=True, kw_only=True)
class _Node:
    """A step as the graph draws it: a split step's parts and join make one node."""

    box: Box
    inputs: list[str]


def layout(run: Run) -> Graph:
    """Nodes in columns by depth (the run's inputs left, the output right), with an
    edge from each step's inputs. A step split by time is one node, with its parts."""
    steps = {node.box.node_id: node for node in _nodes(run)}
    bound = run.bindings
    depth: dict[str, int] = {}

    def depth_of(node_id: str, seen: frozenset[str]) -> int:
        if node_id not in steps:
            return 0  # an input of the recipe
        if node_id not in depth:
            parents = [p for p in steps[node_id].inputs if p not in seen]
            depth[node_id] = 1 + max((depth_of(p, seen | {node_id}) for p in parents), default=0)
        return depth[node_id]

    sources = [p for s in steps.values() for p in s.inputs if p not in steps]
    columns: dict[int, list[Box]] = {}
    for index, name in enumerate(dict.fromkeys(sources)):
        # Bound by node id in a recipe; an effect's inputs come in the run's order.
        given = run.inputs[index] if index < len(run.inputs) else None
        content = bound.get(name) or (given.content_hash if given else None)
        label = f"input {given.name}" if given and not run.bindings else "input"
        columns.setdefault(0, []).append(_box(name, label, "ready", content, source=True))
    for node_id, node in steps.items():
        columns.setdefault(depth_of(node_id, frozenset()), []).append(node.box)
    # Rows leave room for a strip when any step is split.
    row_h = BOX_H + (STRIP_GAP + STRIP_H if any(n.box.cells for n in steps.values()) else 0)
    placed: dict[str, Box] = {}
    for index, column in enumerate(sorted(columns)):
        for row, box in enumerate(columns[column]):
            x, y = PAD + index * (BOX_W + GAP_X), PAD + row * (row_h + GAP_Y)
            placed[box.node_id] = Box(**{**box.__dict__, "x": x, "y": y})
    edges = [
        (placed[parent], placed[node_id])
        for node_id, node in steps.items()
        for parent in node.inputs
        if parent in placed
    ]
    count = len(columns)
    rows = max((len(members) for members in columns.values()), default=1)
    return Graph(
        boxes=list(placed.values()),
        edges=edges,
        width=2 * PAD + count * BOX_W + max(count - 1, 0) * GAP_X,
        height=2 * PAD + rows * row_h + (rows - 1) * GAP_Y,
        preview=run.status != "completed" and preview_hash(run) is not None,
    )


def _nodes(run: Run) -> list[_Node]:
    """The run's steps as the graph's nodes, in the order they first appear."""
    parts: dict[str, list[StepState]] = {}
    own: dict[str, StepState] = {}
    for step in run.steps:
        if step.segment is not None:
            parts.setdefault(step.segment.of_node, []).append(step)
        else:  # a plain step, or the join of a split one (under the step's own id)
            own[step.node_id] = step
    order = [s.segment.of_node if s.segment is not None else s.node_id for s in run.steps]
    nodes = []
    for node_id in dict.fromkeys(order):
        if node_id in parts:
            nodes.append(_split_node(run, node_id, parts[node_id], own.get(node_id), parts))
            continue
        step = own[node_id]
        box = _box(node_id, step.effect, _status(run, step), step.output_hash)
        nodes.append(_Node(box=box, inputs=step.inputs))
    return nodes


def _status(run: Run, step: StepState) -> str:
    # A step a finished run never got to reads as the run ended: cancelled, failed.
    return step.status if step.done or not run.status.terminal else str(run.status)


def _split_node(
    run: Run,
    node_id: str,
    parts: list[StepState],
    join: StepState | None,
    split: dict[str, list[StepState]],
) -> _Node:
    """One box for a split step; its inputs are those of its parts, each part of an
    earlier split step read as that step (the join's own inputs are its parts)."""
    owner = {p.node_id: of for of, members in split.items() for p in members}
    inputs = [owner.get(i, i) for p in parts for i in p.inputs]
    parts = sorted(parts, key=lambda p: p.segment.index if p.segment else 0)
    label = f"{parts[0].effect} · {len(parts)} parts"
    status = _split_status(run, parts, join)
    box = _box(node_id, label, status, join.output_hash if join else None)
    box = Box(**{**box.__dict__, "cells": _cells(run, parts)})
    return _Node(box=box, inputs=[i for i in dict.fromkeys(inputs) if i != node_id])


def _split_status(run: Run, parts: list[StepState], join: StepState | None) -> str:
    """Done when every part (and the join) is; rendering while any part is under way."""
    every = [*parts, *([join] if join else [])]
    if all(s.done for s in every):
        return "cached" if all(s.status == "cached" for s in every) else "completed"
    if run.status.terminal:
        return str(run.status)
    if all(p.done for p in parts):
        return "joining"
    if any(p.done or p.status == "dispatched" for p in parts):
        return "rendering"
    return "pending"


def _cells(run: Run, parts: list[StepState]) -> tuple[Cell, ...]:
    """The strip: each part as wide as its share of the frames."""
    total = sum(p.segment.frames for p in parts if p.segment) or 1
    cells, at = [], 0
    for part in parts:
        span = part.segment
        assert span is not None
        left, at = BOX_W * at / total, at + span.frames
        status = _status(run, part)
        cells.append(
            Cell(
                index=span.index,
                status=status,
                x=round(left, 2),
                width=round(BOX_W * at / total - left, 2),
                title=_cell_title(part, status),
                output_hash=part.output_hash if part.done else None,
            )
        )
    return tuple(cells)


def _cell_title(part: StepState, status: str) -> str:
    span = part.segment
    assert span is not None
    worker = f" · worker {part.worker}" if part.worker else ""
    plural = "s" if part.attempts != 1 else ""
    tries = f" · {part.attempts} attempt{plural}" if part.attempts else ""
    return (
        f"part #{span.index} of {span.count} · {time_range(span.start, span.end)} · "
        f"{span.frames} frames · {status}{worker}{tries}"
    )


def time_range(start: float, end: float | None) -> str:
    """A part's time range: ``10.00 s to 20.00 s``, or ``50.00 s to the end``."""
    return f"{start:.2f} s to " + (f"{end:.2f} s" if end is not None else "the end")


def _box(node_id: str, label: str, status: str, output: str | None, *, source: bool = False) -> Box:
    return Box(
        node_id=node_id, label=label, status=status, output_hash=output, x=0, y=0, source=source
    )


def human_bytes(size: int | None) -> str:
    """``1.5 MB`` and the like."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def short_time(stamp: str | None) -> str:
    """``2026-11-23 23:50:01`` (UTC) from an ISO 8601 timestamp."""
    if not stamp:
        return "—"
    return _parse(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(start: str | None, end: str | None = None) -> str:
    """How long from ``start`` to ``end`` (or now): ``850 ms``, ``12.3 s``, ``4 min 2 s``."""
    if not start:
        return "—"
    finish = _parse(end) if end else datetime.now(UTC)
    seconds = max((finish - _parse(start)).total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
