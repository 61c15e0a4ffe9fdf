"""What the dashboard's templates are given: form fields from an effect's parameter
schema, a recipe's steps laid out as a graph, and readable sizes and times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from l1.schemas import Run, StepState

__all__ = [
    "Box",
    "Field",
    "Graph",
    "duration",
    "human_bytes",
    "layout",
    "param_fields",
    "short_time",
]

# Grid of the step graph, in SVG user units.
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 64, 60, 24, 10


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
class Box:
    """One step drawn at (``x``, ``y``)."""

    step: StepState
    x: int
    y: int


@dataclass(frozen=True, kw_only=True)
class Graph:
    """A run's steps as boxes, and the edges between them (from-box, to-box)."""

    boxes: list[Box]
    edges: list[tuple[Box, Box]]
    width: int
    height: int


def layout(run: Run) -> Graph:
    """Steps in columns by depth (sources left, the output right), edges from inputs."""
    steps = {step.node_id: step for step in run.steps}
    depth: dict[str, int] = {}

    def depth_of(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id not in depth:
            parents = [p for p in steps[node_id].inputs if p in steps and p not in seen]
            below = [depth_of(p, seen | {node_id}) for p in parents]
            depth[node_id] = 1 + max(below) if below else 0
        return depth[node_id]

    columns: dict[int, list[StepState]] = {}
    for step in run.steps:
        columns.setdefault(depth_of(step.node_id), []).append(step)
    boxes: dict[str, Box] = {}
    for column, members in columns.items():
        for row, step in enumerate(members):
            x = PAD + column * (BOX_W + GAP_X)
            boxes[step.node_id] = Box(step=step, x=x, y=PAD + row * (BOX_H + GAP_Y))
    edges = [
        (boxes[parent], box)
        for box in boxes.values()
        for parent in box.step.inputs
        if parent in boxes
    ]
    rows = max((len(m) for m in columns.values()), default=1)
    return Graph(
        boxes=list(boxes.values()),
        edges=edges,
        width=2 * PAD + len(columns) * BOX_W + max(len(columns) - 1, 0) * GAP_X,
        height=2 * PAD + rows * BOX_H + (rows - 1) * GAP_Y,
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
