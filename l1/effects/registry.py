"""What an effect is, and the registry the API validates runs against.

An effect names its render code by reference (``"package.module:qualname"``) instead
of holding it, so the catalogue can be listed, validated against and hashed without
importing the media libraries; a worker loads the code when it renders.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from l1.effects.identity import effect_hash, split_reference
from l1.effects.limits import MediaLimits
from l1.effects.params import NoParams
from l1.errors import L1Error, Unprocessable

if TYPE_CHECKING:
    from l1.schemas import SegmentSpan

__all__ = [
    "Effect",
    "EffectInfo",
    "EffectRegistry",
    "MediaError",
    "MediaKind",
    "Progress",
    "RenderContext",
    "RenderFn",
    "load_effects",
]

MediaKind = Literal["image", "video", "audio", "any"]


class MediaError(Exception):
    """The input is not media the effect accepts, cannot be decoded, or is refused
    (too large); ``str(error)`` says which, for a person to read. No retry helps."""


Progress = Callable[[float], None]
"""Called by a render with a percentage (0-100) where the effect can tell."""


def _ignore(_percent: float) -> None:
    """Progress nobody watches."""


@dataclass(frozen=True, kw_only=True)
class RenderContext:
    """What a render is given besides its inputs and params: where to report
    progress, the limits, how many threads decoding, filters and the encoder may each
    use (0: as many as the libraries like), and the part of a split step to render
    (None: the whole)."""

    progress: Progress = _ignore
    limits: MediaLimits = field(default_factory=MediaLimits)
    threads: int = 0
    segment: SegmentSpan | None = None


RenderFn = Callable[[Sequence[Path], Path, Any, RenderContext], Path]
"""``render(inputs, workdir, params, context)``: write the output under ``workdir``
and return its path (or return the path of an existing file when the output is one)."""


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
    """A named, versioned piece of render code with typed parameters.

    ``render`` names a :data:`RenderFn` or a class whose instances are one.
    ``inline`` effects only pass files along (no decoding), so a worker runs them in
    its own process; every other render runs in a child process of its own.
    ``segmentable`` effects change each frame on its own, so a worker may split a long
    video into parts rendered side by side (:mod:`l1.runs.segments`).
    ``content_hash`` defaults to :func:`l1.effects.identity.effect_hash`.
    """

    name: str
    version: str
    description: str
    render: str
    params: type[msgspec.Struct] = NoParams
    accepts: frozenset[MediaKind] = frozenset({"any"})
    inputs: int = 1
    inline: bool = False
    segmentable: bool = False
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            digest = effect_hash(self.name, self.version, self.render)
            object.__setattr__(self, "content_hash", digest)

    def load(self) -> RenderFn:
        """The render code, imported now."""
        module_name, qualname = split_reference(self.render)
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
        return target() if isinstance(target, type) else target  # type: ignore[no-any-return]

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


def load_effects(specs: Sequence[str]) -> list[Effect]:
    """The effects of extra modules, each named ``package.module:function`` (the
    function returns a list of :class:`Effect`; ``L1_EFFECT_MODULES``)."""
    effects: list[Effect] = []
    for spec in specs:
        module_name, _, function = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), function or "effects")
        except (ImportError, AttributeError) as error:
            raise L1Error(
                f"cannot load effects from {spec!r} (L1_EFFECT_MODULES): {error}"
            ) from None
        effects.extend(factory())
    return effects
