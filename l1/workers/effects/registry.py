"""What an effect is, and the registry the API validates runs against.

An effect's ``content_hash`` identifies its implementation: it goes into run ids and
provenance, so changing an effect changes the ids of everything it renders.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from l1.errors import Unprocessable
from l1.identifiers import sha3_hex

__all__ = [
    "Effect",
    "EffectInfo",
    "EffectRegistry",
    "MediaKind",
    "NoParams",
    "Progress",
    "implementation_hash",
]

MediaKind = Literal["image", "video", "audio", "any"]
Progress = Callable[[float], None]
"""Called by a render with a percentage (0-100) where the effect can tell."""

RenderFn = Callable[[Sequence[Path], Path, Any, Progress], Path]
"""``render(inputs, workdir, params, progress)``: write the output under ``workdir``
and return its path (or return the path of an existing file when the output is one)."""


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    """The parameters of an effect that takes none."""


class EffectInfo(msgspec.Struct, kw_only=True):
    """An effect as ``GET /`` and ``GET /effects`` list it."""

    name: str
    version: str
    description: str
    content_hash: str
    accepts: list[str]
    inputs: int
    params: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Effect:
    """A named, versioned render function with typed parameters."""

    name: str
    version: str
    description: str
    render: RenderFn
    params: type[msgspec.Struct] = NoParams
    accepts: frozenset[MediaKind] = frozenset({"any"})
    inputs: int = 1
    content_hash: str = field(default="")

    def __post_init__(self) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", implementation_hash(self.render, self.version))

    def parse_params(self, raw: Mapping[str, Any] | None) -> msgspec.Struct:
        """Validate ``raw`` against the effect's parameters (defaults fill the gaps)."""
        try:
            return msgspec.convert(dict(raw or {}), self.params)
        except msgspec.ValidationError as error:
            raise Unprocessable(f"effect {self.name!r}: {error}") from None

    def info(self) -> EffectInfo:
        """The public description of the effect, its parameters as JSON Schema."""
        return EffectInfo(
            name=self.name,
            version=self.version,
            description=self.description,
            content_hash=self.content_hash,
            accepts=sorted(self.accepts),
            inputs=self.inputs,
            params=msgspec.json.schema(self.params),
        )


def implementation_hash(render: Callable[..., Any], version: str) -> str:
    """SHA3-256 of a render function's module source and the effect's version."""
    module = inspect.getmodule(render)
    source = inspect.getsource(module) if module else inspect.getsource(render)
    return sha3_hex(f"{render.__qualname__}\0{version}\0{source}".encode())


class EffectRegistry:
    """Effects by name."""

    def __init__(self, effects: Sequence[Effect]) -> None:
        self._effects = {effect.name: effect for effect in effects}

    def get(self, name: str) -> Effect:
        """The effect called ``name``, or :class:`Unprocessable` naming the known ones."""
        try:
            return self._effects[name]
        except KeyError:
            known = ", ".join(sorted(self._effects))
            raise Unprocessable(f"unknown recipe {name[:80]!r}; known recipes: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._effects

    def __iter__(self) -> Iterator[Effect]:
        return iter(self._effects.values())
