"""What the dashboard's templates are given: form fields from an effect's parameter
schema, a recipe's steps laid out as a graph, and readable sizes and times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from l1.schemas import Run

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
    """One node drawn at (``x``, ``y``): a step, or an input the recipe starts from."""

    node_id: str
    label: str
    status: str
    output_hash: str | None
    x: int
    y: int
    source: bool = False


@dataclass(frozen=True, kw_only=True)
class Graph:
    """A run's nodes as boxes, and the edges between them (from-box, to-box)."""

    boxes: list[Box]
    edges: list[tuple[Box, Box]]
    width: int
    height: int


def layout(run: Run) -> Graph:
    """Nodes in columns by depth (the run's inputs left, the output right), with an
    edge from each step's inputs."""
    steps = {step.node_id: step for step in run.steps}
    bound = run.bindings
    depth: dict[str, int] = {}

    def depth_of(node_id: str, seen: frozenset[str]) -> int:
        if node_id not in steps:
            return 0  # an input of the recipe
        if node_id not in depth:
            parents = [p for p in steps[node_id].inputs if p not in seen]
            depth[node_id] = 1 + max((depth_of(p, seen | {node_id}) for p in parents), default=0)
        return depth[node_id]

    sources = [p for s in run.steps for p in s.inputs if p not in steps]
    columns: dict[int, list[Box]] = {}
    for index, name in enumerate(dict.fromkeys(sources)):
        # Bound by node id in a recipe; an effect's inputs come in the run's order.
        given = run.inputs[index] if index < len(run.inputs) else None
        content = bound.get(name) or (given.content_hash if given else None)
        label = f"input {given.name}" if given and not run.bindings else "input"
        columns.setdefault(0, []).append(_box(name, label, "ready", content, source=True))
    for step in run.steps:
        # A step a finished run never got to reads as the run ended: cancelled, failed.
        status = step.status if step.done or not run.status.terminal else str(run.status)
        box = _box(step.node_id, step.effect, status, step.output_hash)
        columns.setdefault(depth_of(step.node_id, frozenset()), []).append(box)
    placed: dict[str, Box] = {}
    for index, column in enumerate(sorted(columns)):
        for row, box in enumerate(columns[column]):
            x, y = PAD + index * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y)
            placed[box.node_id] = Box(**{**box.__dict__, "x": x, "y": y})
    edges = [
        (placed[parent], placed[step.node_id])
        for step in run.steps
        for parent in step.inputs
        if parent in placed
    ]
    count = len(columns)
    rows = max((len(members) for members in columns.values()), default=1)
    return Graph(
        boxes=list(placed.values()),
        edges=edges,
        width=2 * PAD + count * BOX_W + max(count - 1, 0) * GAP_X,
        height=2 * PAD + rows * BOX_H + (rows - 1) * GAP_Y,
    )


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
