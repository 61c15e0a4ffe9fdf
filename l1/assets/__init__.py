"""Sample media shipped with L1, known by name as assets (``cat``, ``dog``)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import msgspec

from l1.identifiers import sha3_hex

__all__ = ["Asset", "asset_path", "known_assets"]

_FILES = {
    "cat": ("cat.png", "image/png"),
    "dog": ("dog.png", "image/png"),
    "clip": ("clip.mp4", "video/mp4"),
}


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    """A named piece of media that runs can use in place of a hash."""

    name: str
    content_hash: str
    content_type: str


def asset_path(name: str) -> Path:
    """The shipped file of the asset ``name``."""
    return Path(str(resources.files(__name__).joinpath(_FILES[name][0])))


@cache
def known_assets() -> dict[str, Asset]:
    """Every shipped asset by name, with its content hash."""
    return {
        name: Asset(
            name=name,
            content_hash=sha3_hex(asset_path(name).read_bytes()),
            content_type=content_type,
        )
        for name, (_, content_type) in _FILES.items()
    }
