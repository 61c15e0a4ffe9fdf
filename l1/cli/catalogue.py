"""Commands about what can be rendered: ``effects`` and ``recipes``.

An effect's parameters come from the JSON Schema ``GET /effects`` gives, the same one
the API validates runs against.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import click

from l1.cli.common import Column, json_option, pass_client, show_list, stdout_is_terminal

if TYPE_CHECKING:
    from l1.client import L1Client

__all__ = ["COMMANDS", "Param", "params_of"]


@dataclass(frozen=True)
class Param:
    """One parameter of an effect, as a person reads it."""

    name: str  # dotted for a nested one: encoding.crf
    type: str
    range: str
    default: str
    description: str


def params_of(schema: dict[str, Any]) -> list[Param]:
    """The parameters a JSON Schema object describes, nested objects flattened."""
    defs = schema.get("$defs", {})
    return _object_params(_deref(schema, defs), defs, prefix="")


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return _deref(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    return node


def _object_params(node: dict[str, Any], defs: dict[str, Any], prefix: str) -> list[Param]:
    required = set(node.get("required", []))
    params: list[Param] = []
    for name, raw in node.get("properties", {}).items():
        prop = _deref(raw, defs)
        if prop.get("type") == "object" and "properties" in prop:
            params += _object_params(prop, defs, prefix=f"{prefix}{name}.")
            continue
        options = [_deref(o, defs) for o in prop.get("anyOf", [])]
        nullable = any(o.get("type") == "null" for o in options)
        shape = next((o for o in options if o.get("type") != "null"), prop)
        if "default" in raw:
            default = _shown(raw["default"])
        else:
            default = "required" if name in required else ""
        params.append(
            Param(
                name=f"{prefix}{name}",
                type=_type(shape) + (" or null" if nullable else ""),
                # A described pattern reads better as its description.
                range=_range(shape, patterns="description" not in prop),
                default=default,
                description=raw.get("description") or prop.get("description") or "",
            )
        )
    return params


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "choice"
    if "const" in node:
        return f"exactly {node['const']}"
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind)


def _range(node: dict[str, Any], *, patterns: bool = True) -> str:
    if "enum" in node:
        return "one of " + ", ".join(str(v) for v in node["enum"])
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    parts = []
    for key, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            parts.append(f"{sign} {node[key]:g}")
    if "pattern" in node and patterns:
        parts.append(f"matches {node['pattern']}")
    if "minLength" in node or "maxLength" in node:
        parts.append(f"{node.get('minLength', 0)} to {node.get('maxLength', '…')} characters")
    if "minItems" in node or "maxItems" in node:
        parts.append(f"{node.get('minItems', 0)} to {node.get('maxItems', '…')} items")
    return ", ".join(parts)


def _brief(text: str, most: int = 26) -> str:
    """A long list of choices cut short, for the overview; `l1 effects NAME` has all."""
    return text if len(text) <= most else text[: most - 1].rpartition(",")[0] + ", …"


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    return value if isinstance(value, str) else json.dumps(value)


@click.command()
@click.argument("name", required=False)
@json_option
@pass_client
def effects(client: L1Client, name: str | None, as_json: bool) -> None:
    """List the effects with their parameters: type, range and default.

    With NAME, one effect, with what each parameter means. Set parameters with
    `l1 render NAME INPUT -p radius=4 -p encoding.crf=18`.
    """
    chosen = [client.effect(name)] if name else client.effects()
    if as_json:
        click.echo(json.dumps(chosen[0] if name else chosen, indent=2))
        return
    terminal = stdout_is_terminal()
    rows: list[dict[str, Any]] = []
    for effect in chosen:
        # Its own parameters first, then the shared ones (video encoding).
        params = sorted(params_of(effect["params"]), key=lambda p: "." in p.name)
        params = params or [Param("", "", "", "", "takes no parameters")]
        rows += [
            {"effect": effect["name"], "first": index == 0, **asdict(param)}
            for index, param in enumerate(params)
        ]
    if name and terminal:
        effect = chosen[0]
        kinds = " or ".join(effect["accepts"])
        click.echo(f"{effect['name']} (version {effect['version']}): {effect['description']}")
        click.echo(f"Takes {effect['inputs']} input(s): {kinds}.")
    columns = [
        # On a terminal, each effect's name once, above its parameters.
        Column("effect", lambda r: r["effect"] if r["first"] or not terminal else ""),
        Column("param", lambda r: r["name"] or ("(none)" if terminal else "")),
        Column("type", lambda r: r["type"]),
        Column("range", lambda r: r["range"] if name or not terminal else _brief(r["range"])),
        Column("default", lambda r: r["default"]),
    ]
    if name:
        columns.append(Column("meaning", lambda r: r["description"]))
    if name and terminal:
        columns = columns[1:]
    show_list(rows, columns, as_json=False, empty="no effects")


@click.command()
@json_option
@pass_client
def recipes(client: L1Client, as_json: bool) -> None:
    """List registered recipes and the effects that can be used as recipes."""
    found = [{**effect, "kind": "effect"} for effect in client.effects()]
    found += [{**stored, "kind": "recipe"} for stored in client.recipes()]
    columns = [
        Column("name", lambda r: r["name"]),
        Column("kind", lambda r: r["kind"]),
        Column("version", lambda r: r["version"]),
        Column("description", lambda r: r["description"]),
    ]
    if as_json:
        keep = ("name", "kind", "version", "description", "content_hash")
        found = [{k: item.get(k) for k in keep} for item in found]
    show_list(found, columns, as_json=as_json, empty="no recipes")


COMMANDS = [effects, recipes]
