"""The ``l1`` command: run the services, and talk to a running server.

Errors are one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
from typing import Any

import click

from l1.cli import cache, runs, services
from l1.cli.common import Target
from l1.client import L1ClientError
from l1.errors import L1Error
from l1.settings import SettingsError
from l1.stack import StackError

__all__ = ["main"]

_EXPECTED = (L1ClientError, L1Error, SettingsError, StackError, OSError)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _EXPECTED as error:
            raise click.ClickException(str(error)) from None


def _default_server() -> str:
    if server := os.environ.get("L1_SERVER"):
        return server
    host = os.environ.get("L1_HOST", "127.0.0.1")
    return f"http://{host}:{os.environ.get('L1_PORT', '8100')}"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--server",
    default=_default_server,
    show_default="$L1_SERVER or http://$L1_HOST:$L1_PORT",
    help="The L1 server to talk to.",
)
@click.option("--token", envvar="L1_TOKEN", default=None, help="Bearer token ($L1_TOKEN).")
@click.pass_context
def cli(ctx: click.Context, server: str, token: str | None) -> None:
    """L1, the rendering server of the Art DAG system."""
    ctx.obj = Target(server=server, token=token)


for module in (services, runs, cache):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Entry point of the ``l1`` console script."""
    cli(prog_name="l1")
