"""L1, the rendering server of the Art DAG system."""

from __future__ import annotations

import functools

__all__ = ["__version__"]


@functools.cache
def _version() -> str:
    # Read on first use: importlib.metadata costs more than the rest of `l1 --help`.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("l1")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'l1' has no attribute {name!r}")
