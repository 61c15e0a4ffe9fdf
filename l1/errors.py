"""One error hierarchy for the domain. Errors say what happened; the API maps them to HTTP."""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DependencyDown",
    "Forbidden",
    "InsufficientStorage",
    "InvalidInput",
    "L1Error",
    "NotFound",
    "TooLarge",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "UpstreamError",
]


class L1Error(Exception):
    """Base of every error L1 reports to a caller; ``str(error)`` is the message."""


class InvalidInput(L1Error):
    """The request is malformed (a bad hash, a bad parameter)."""


class Unauthorized(L1Error):
    """No credentials were given where they are required."""


class Forbidden(L1Error):
    """The caller may not do this (bad token, a path outside the import roots)."""


class NotFound(L1Error):
    """The thing asked for does not exist."""


class Conflict(L1Error):
    """A rule refuses the request."""


class TooLarge(L1Error):
    """The request or upload is larger than allowed."""


class Unprocessable(L1Error):
    """The request is well formed but cannot be acted on (unknown recipe, missing input)."""


class InsufficientStorage(L1Error):
    """The disk (or a quota) has no room for what is being stored; nothing was kept."""


class UnsupportedMediaType(L1Error):
    """The body is declared as a type the endpoint does not read."""


class DependencyDown(L1Error):
    """A service L1 depends on (NATS, Redis, L2) cannot be reached."""


class UpstreamError(L1Error):
    """A service L1 depends on answered, but with an error."""
