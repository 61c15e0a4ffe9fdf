"""``identity`` and ``dog``: renders that only pass a file along."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from l1.assets import asset_path
from l1.effects.params import NoParams
from l1.effects.registry import RenderContext

__all__ = ["dog", "identity"]


def identity(
    inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext
) -> Path:
    """The output is the input."""
    return inputs[0]


def dog(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """The output is the dog picture."""
    return asset_path("dog")
