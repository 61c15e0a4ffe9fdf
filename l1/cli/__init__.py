"""The ``l1`` command: run the services, and talk to a running server.

Errors are one clear line on stderr and a non-zero exit, never a traceback. Nothing
heavy is imported before a command needs it (``tests/test_layout.py`` checks), so
that ``l1 --help`` answers at once.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from l1.cli import cache, catalogue, fleet, runs, services
from l1.cli.common import Target, default_server
from l1.errors import L1Error

__all__ = ["main"]

# Errors a command reports as one line; their modules are looked up only if loaded,
# since an error can only come from a module that was.
_EXPECTED_IN = {
    "l1.client": "L1ClientError",
    "l1.settings": "SettingsError",
    "l1.stack": "StackError",
}


def _expected() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [L1Error, OSError]
    for module, name in _EXPECTED_IN.items():
        if (loaded := sys.modules.get(module)) is not None:
            found.append(getattr(loaded, name))
    return tuple(found)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, BrokenPipeError):
            raise  # click reports the one, and ends quietly on the other (`| head -1`)
        except Exception as error:
            if isinstance(error, _expected()):
                raise click.ClickException(str(error)) from None
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--server",
    metavar="URL",
    default=default_server,
    show_default="$L1_SERVER or http://$L1_HOST:$L1_PORT",
    help="The L1 server to talk to (also taken after the command).",
)
@click.option("--token", envvar="L1_TOKEN", default=None, help="Bearer token ($L1_TOKEN).")
@click.pass_context
def cli(ctx: click.Context, server: str, token: str | None) -> None:
    """L1, the rendering server of the Art DAG system.

    Wherever a command takes a run id or a content hash, a unique prefix of it will do
    (at least 4 characters, as `l1 runs` and `l1 cache` show them); wherever it takes
    an input, an asset name (cat, dog, clip) or a local file will too.
    """
    ctx.obj = Target(server=server, token=token)


for module in (services, runs, cache, catalogue, fleet):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Entry point of the ``l1`` console script."""
    cli(prog_name="l1")
