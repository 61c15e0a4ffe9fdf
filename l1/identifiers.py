"""The Art DAG's identifiers: content hashes and run ids."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import msgspec

__all__ = ["HASH_PATTERN", "is_content_hash", "new_hasher", "run_id_for", "sha3_hex"]

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


def run_id_for(recipe: str, recipe_hash: str, input_hashes: Iterable[str]) -> str:
    """The run id: SHA3-256 of the canonical JSON of the recipe and its sorted inputs.

    The same recipe over the same inputs always gives the same id, so a repeated
    submission finds the first run instead of rendering again.
    """
    canonical = {
        "inputs": sorted(input_hashes),
        "recipe": {"content_hash": recipe_hash, "name": recipe},
    }
    return sha3_hex(msgspec.json.encode(canonical, order="sorted"))
