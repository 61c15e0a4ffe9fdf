"""L1, the rendering server of the Art DAG system."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("l1")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
