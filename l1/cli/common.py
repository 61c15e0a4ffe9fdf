"""What the commands share: the server they talk to and how they print."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import click
from rich.console import Console

from l1.client import L1Client

__all__ = ["Target", "console", "pass_client", "print_kept", "short"]

P = ParamSpec("P")
R = TypeVar("R")

console = Console(highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Target:
    """The server named by ``--server`` and the token to send it."""

    server: str
    token: str | None


def pass_client(fn: Callable[Concatenate[L1Client, P], R]) -> Callable[P, R]:
    """Give the command an :class:`L1Client` for the chosen server, closed after it."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = click.get_current_context()
        target: Target = ctx.find_object(Target)  # type: ignore[assignment]
        client = ctx.with_resource(L1Client(target.server, token=target.token))
        return fn(client, *args, **kwargs)

    return wrapper


def print_kept(held: list[dict[str, Any]]) -> None:
    """One dim line per item a deletion left in place, with what holds it."""
    for item in held:
        console.print(f"[dim]kept {item['content_hash']}: {'; '.join(item['reasons'])}[/]")


def short(value: Any, width: int = 12) -> str:
    """A hash shortened for tables."""
    text = str(value or "")
    return text[:width]
