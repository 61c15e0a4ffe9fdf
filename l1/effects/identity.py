"""An effect's identity: the content hash that goes into every ``cache_id``, run id and
provenance record of what it renders.

The hash is SHA3-256 of the canonical JSON of the effect's ``name``, its declared
``version`` and the source text of its own render code: the function (or
:class:`~l1.effects.render.frames.FrameEffect` class) its ``render`` reference names,
dedented. Helpers it calls are not part of it, so moving code between modules, or
editing a helper, leaves every hash as it was; bumping ``version`` is how an effect
says "my output changed", and it invalidates that effect's cached renders.

The source is read from the module's file without importing it, so the API can
identify effects without loading the media libraries a worker renders with.
"""

from __future__ import annotations

import ast
import importlib.util
import textwrap
from functools import cache
from pathlib import Path

import msgspec

from l1.identifiers import sha3_hex

__all__ = ["effect_hash", "render_source", "split_reference"]


def effect_hash(name: str, version: str, render: str) -> str:
    """The content hash of the effect ``name`` at ``version`` rendered by ``render``
    (``"package.module:qualname"``)."""
    identity = {"name": name, "version": version, "source": render_source(render)}
    return sha3_hex(msgspec.json.encode(identity, order="sorted"))


def split_reference(render: str) -> tuple[str, str]:
    """``"package.module:qualname"`` as (module, qualname)."""
    module, sep, qualname = render.partition(":")
    if not sep or not module or not qualname:
        raise ValueError(f"a render reference is 'package.module:name', not {render!r}")
    return module, qualname


def render_source(render: str) -> str:
    """The dedented source text of the function or class ``render`` names."""
    module, qualname = split_reference(render)
    tree, text = _parsed(_module_file(module))
    node = _find(tree.body, qualname.split("."), render)
    segment = ast.get_source_segment(text, node, padded=True)
    assert segment is not None  # the node came from parsing this very text
    return textwrap.dedent(segment)


def _module_file(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ValueError(f"no Python source for module {module!r}")
    return spec.origin


@cache
def _parsed(path: str) -> tuple[ast.Module, str]:
    text = Path(path).read_text(encoding="utf-8")
    return ast.parse(text), text


Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _find(body: list[ast.stmt], names: list[str], render: str) -> Definition:
    for node in body:
        if isinstance(node, Definition) and node.name == names[0]:
            if len(names) == 1:
                return node
            return _find(node.body, names[1:], render)
    raise ValueError(f"{render!r}: no function or class named {names[0]!r} there")
