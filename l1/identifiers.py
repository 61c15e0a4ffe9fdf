"""The Art DAG's identifiers: content hashes and run ids."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = [
    "HASH_PATTERN",
    "canonical",
    "canonical_json",
    "is_content_hash",
    "new_hasher",
    "run_id_for",
    "sha3_hex",
]

HASH_PATTERN = r"^[0-9a-f]{64}$"
_HASH_RE = re.compile(HASH_PATTERN)


def is_content_hash(value: str) -> bool:
    """True when ``value`` is exactly 64 lowercase hex characters."""
    return bool(_HASH_RE.fullmatch(value))


def new_hasher() -> hashlib._Hash:
    """A fresh SHA3-256 hasher: the Art DAG's content address function."""
    return hashlib.sha3_256()


def sha3_hex(data: bytes) -> str:
    """SHA3-256 of ``data`` as 64 lowercase hex characters."""
    return hashlib.sha3_256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """The canonical JSON that ids are hashes of: keys sorted, no spaces, and numbers
    in one form each, so that the same work always has the same id.

    ``-0.0`` is written as ``0.0``. A float keeps its fractional form (``2.0``): every
    parameter is decoded into its declared type first, so a float parameter given as
    ``2`` is already ``2.0``, and the ids of everything rendered before stay as they were.
    """
    encoded = msgspec.json.encode(value, order="sorted")
    if b"-0.0" not in encoded:  # the common case: nothing to change, no walk
        return encoded
    return msgspec.json.encode(canonical(msgspec.to_builtins(value)), order="sorted")


def canonical(value: Any) -> Any:
    """``value`` (plain data) with every number in its canonical form (``-0.0`` is 0.0)."""
    if isinstance(value, float):
        return 0.0 if value == 0.0 else value
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def run_id_for(recipe: str, recipe_hash: str, input_hashes: Iterable[str]) -> str:
    """The run id: SHA3-256 of the canonical JSON of the recipe and its sorted inputs.

    The same recipe over the same inputs always gives the same id, so a repeated
    submission finds the first run instead of rendering again.
    """
    identity = {
        "inputs": sorted(input_hashes),
        "recipe": {"content_hash": recipe_hash, "name": recipe},
    }
    return sha3_hex(canonical_json(identity))
