"""The two effects that prove the plumbing: ``identity`` and ``dog``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from l1.assets import asset_path, known_assets
from l1.workers.effects.registry import Effect, NoParams, Progress

__all__ = ["basic_effects"]


def identity(inputs: Sequence[Path], workdir: Path, params: NoParams, progress: Progress) -> Path:
    """The output is the input."""
    return inputs[0]


def dog(inputs: Sequence[Path], workdir: Path, params: NoParams, progress: Progress) -> Path:
    """The output is the dog picture."""
    return asset_path("dog")


def basic_effects() -> list[Effect]:
    """``identity`` and ``dog``."""
    return [
        Effect(
            name="identity",
            version="1",
            description="The output is the input: same bytes, same hash.",
            render=identity,
        ),
        Effect(
            name="dog",
            version="1",
            description="Whatever the input, the output is the dog picture.",
            render=dog,
            # The effect is its picture, so its hash is the picture's.
            content_hash=known_assets()["dog"].content_hash,
        ),
    ]
