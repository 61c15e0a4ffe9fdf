"""Commands about the cache: ``import``, ``cache``, ``fetch``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from l1.cli.common import console, pass_client
from l1.client import L1Client

__all__ = ["COMMANDS"]


@click.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_client
def import_file(client: L1Client, path: Path) -> None:
    """Upload a local file into the cache and print its content hash."""
    console.print(client.upload(path)["content_hash"])


@click.command(name="cache")
@click.option("--limit", default=50, show_default=True, help="How many to show.")
@pass_client
def list_cache(client: L1Client, limit: int) -> None:
    """List cached items, most recent first."""
    table = Table("content hash", "type", "size", "stored")
    for index, item in enumerate(client.cache(limit=min(limit, 1000))):
        if index >= limit:
            break
        table.add_row(
            item["content_hash"], item["content_type"], str(item["size"]), item["stored_at"]
        )
    console.print(table)


@click.command()
@click.argument("content_hash")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write.",
)
@pass_client
def fetch(client: L1Client, content_hash: str, output: Path) -> None:
    """Download a cached item to a file."""
    written = client.download(content_hash, output)
    console.print(f"{output} ({written} bytes)")


COMMANDS = [import_file, list_cache, fetch]
