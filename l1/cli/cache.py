"""Commands about the cache: ``import``, ``cache``, ``fetch``, ``rm``, ``gc``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from l1.cli.common import Column, first, json_option, note, pass_client, print_kept, show_list

if TYPE_CHECKING:
    from l1.client import L1Client

__all__ = ["COMMANDS"]


@click.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_client
def import_file(client: L1Client, path: Path) -> None:
    """Upload a local file into the cache and print its content hash."""
    click.echo(client.upload(path)["content_hash"])


@click.command(name="cache")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="How many to show."
)
@json_option
@pass_client
def list_cache(client: L1Client, limit: int, as_json: bool) -> None:
    """List cached items, most recent first."""
    found = first(client.cache(limit=min(limit, 1000)), limit)
    columns = [
        Column("content hash", lambda i: i["content_hash"], is_id=True),
        Column("type", lambda i: i["content_type"]),
        Column("size", lambda i: i["size"]),
        Column("stored", lambda i: i["stored_at"], is_time=True),
    ]
    show_list(found, columns, as_json=as_json, empty="the cache is empty")


@click.command()
@click.argument("item")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write.",
)
@pass_client
def fetch(client: L1Client, item: str, output: Path) -> None:
    """Download a cached ITEM (a content hash, a unique prefix of one, or an asset name)."""
    written = client.download(item, output)
    note(f"{output} ({written} bytes)")


@click.command()
@click.argument("item")
@pass_client
def rm(client: L1Client, item: str) -> None:
    """Delete a cached ITEM, if the deletion rules allow it (a hash or a unique prefix)."""
    content_hash = client.content_hash(item)
    client.delete_item(content_hash)
    click.echo(f"deleted {content_hash}")


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@pass_client
def gc(client: L1Client, dry_run: bool) -> None:
    """Delete every item the rules allow; list what holds the others."""
    report = client.gc(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for content_hash in report["deletable"] if dry_run else report["deleted"]:
        click.echo(f"{verb} {content_hash}")
    print_kept(report["held"])
    count = len(report["deletable"] if dry_run else report["deleted"])
    note(f"{verb} {count}, kept {len(report['held'])}")


COMMANDS = [import_file, list_cache, fetch, rm, gc]
