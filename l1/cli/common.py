"""What the commands share: the server they talk to and how they print.

Output is for people on a terminal (tables, short ids, colour) and for scripts
otherwise: with stdout not a terminal, lists are tab-separated lines with full ids and
no header, and ``--json`` prints the server's own JSON. Messages about what is going
on go to stderr, so that stdout carries only the result.

httpx and rich are imported when a command needs them, so that ``l1 --help`` is quick.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from l1.client import L1Client

__all__ = [
    "Column",
    "Target",
    "console",
    "current_target",
    "default_server",
    "echo_json",
    "first",
    "json_option",
    "note",
    "pass_client",
    "print_kept",
    "show_list",
    "shown_id",
    "stdout_is_terminal",
]

P = ParamSpec("P")
R = TypeVar("R")

# How many characters of an id a terminal shows; the server takes them as a prefix.
SHORT = 12


@dataclass(frozen=True)
class Target:
    """The server named by ``--server`` and the token to send it."""

    server: str
    token: str | None


def default_server() -> str:
    """``$L1_SERVER``, else the API of ``l1 up`` on ``$L1_HOST:$L1_PORT``."""
    if server := os.environ.get("L1_SERVER"):
        return server
    host = os.environ.get("L1_HOST", "127.0.0.1")
    return f"http://{host}:{os.environ.get('L1_PORT', '8100')}"


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.meta[key] = value

    return callback


def pass_client(fn: Callable[Concatenate[L1Client, P], R]) -> Callable[P, R]:
    """Give the command an :class:`L1Client` for the chosen server, closed after it.

    The command also takes ``--server`` and ``--token`` itself, so that they work
    after the command's name as well as before it.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from l1.client import L1Client

        ctx = click.get_current_context()
        target = current_target(ctx)
        client = ctx.with_resource(L1Client(target.server, token=target.token))
        return fn(client, *args, **kwargs)

    wrapper = click.option(
        "--token",
        default=None,
        expose_value=False,
        callback=_remember("l1.token"),
        help="Bearer token ($L1_TOKEN).",
    )(wrapper)
    wrapper = click.option(
        "--server",
        metavar="URL",
        default=None,
        expose_value=False,
        callback=_remember("l1.server"),
        help="The L1 server ($L1_SERVER, else http://$L1_HOST:$L1_PORT).",
    )(wrapper)
    return wrapper


def current_target(ctx: click.Context) -> Target:
    """The server and token: given after the command, else before it, else defaults."""
    given = ctx.find_object(Target) or Target(default_server(), os.environ.get("L1_TOKEN"))
    return Target(
        server=ctx.meta.get("l1.server", given.server),
        token=ctx.meta.get("l1.token", given.token),
    )


def json_option(fn: Callable[P, R]) -> Callable[P, R]:
    """``--json``: print the server's JSON instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")(fn)


def stdout_is_terminal() -> bool:
    """True when a person is reading stdout."""
    return sys.stdout.isatty()


@functools.cache
def console(*, stderr: bool = False) -> Console:
    """The rich console of stdout (or stderr), made on first use."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def note(text: str) -> None:
    """A line for the person at the terminal, on stderr (dim when stderr is a terminal)."""
    styled = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    click.secho(text, err=True, dim=styled)


def echo_json(data: Any) -> None:
    """``data`` as JSON on stdout: coloured for a terminal, plain for a script."""
    if stdout_is_terminal():
        console().print_json(data=data)
    else:
        click.echo(json.dumps(data, indent=2))


def shown_id(value: Any) -> str:
    """An id as a list shows it: short on a terminal, whole for a script."""
    text = "" if value is None else str(value)
    return text[:SHORT] if stdout_is_terminal() else text


@dataclass(frozen=True)
class Column:
    """One column of a list: its title and how to read it from an item."""

    title: str
    read: Callable[[dict[str, Any]], Any]
    is_id: bool = False  # shortened on a terminal
    is_time: bool = False  # to the second on a terminal


def show_list(
    items: Iterable[dict[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool,
    empty: str,
) -> None:
    """Print ``items``: JSON, a table for a terminal, or tab-separated lines otherwise."""
    items = list(items)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    rows = [[_cell(column, item) for column in columns] for item in items]
    if not stdout_is_terminal():
        for row in rows:
            click.echo("\t".join(cell or "-" for cell in row))
        return
    if not rows:
        note(empty)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(*(column.title for column in columns))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # text, never markup
    console().print(table)


def _cell(column: Column, item: dict[str, Any]) -> str:
    value = column.read(item)
    if column.is_id:
        return shown_id(value)
    if column.is_time and value and stdout_is_terminal():
        return str(value)[:19].replace("T", " ")
    # One line per item, its fields split by tabs: neither may occur inside a field.
    return "" if value is None else " ".join(str(value).split())


def first(items: Iterable[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` of ``items``, reading no further (they may come in pages)."""
    found: list[dict[str, Any]] = []
    if limit < 1:
        return found
    for item in items:
        found.append(item)
        if len(found) >= limit:
            break
    return found


def print_kept(held: list[dict[str, Any]]) -> None:
    """One line per item a deletion left in place, with what holds it."""
    for item in held:
        note(f"kept {item['content_hash']}: {'; '.join(item['reasons'])}")
