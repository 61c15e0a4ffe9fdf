"""Commands about the cache: ``import``, ``cache``, ``fetch``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from l1.cli.common import console, pass_client, print_kept
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


@click.command()
@click.argument("content_hash")
@pass_client
def rm(client: L1Client, content_hash: str) -> None:
    """Delete a cached item, if the deletion rules allow it."""
    client.delete_item(content_hash)
    console.print(f"deleted {content_hash}")


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@pass_client
def gc(client: L1Client, dry_run: bool) -> None:
    """Delete every item the rules allow; list what holds the others."""
    report = client.gc(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for content_hash in report["deletable"] if dry_run else report["deleted"]:
        console.print(f"{verb} {content_hash}")
    print_kept(report["held"])
    count = len(report["deletable"] if dry_run else report["deleted"])
    console.print(f"{verb} {count}, kept {len(report['held'])}")


COMMANDS = [import_file, list_cache, fetch, rm, gc]
