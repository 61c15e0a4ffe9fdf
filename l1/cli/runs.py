"""Commands about runs: ``render``, ``runs``, ``run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from l1.cli.common import console, pass_client, print_kept, short
from l1.client import L1Client

__all__ = ["COMMANDS"]

TERMINAL = {"completed", "failed", "cancelled"}


@click.command()
@click.argument("recipe")
@click.argument("inputs", nargs=-1)
@click.option(
    "-i", "--input", "named", multiple=True, metavar="NAME=INPUT", help="Bind a recipe input."
)
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="An effect parameter."
)
@click.option("--sync", is_flag=True, help="Wait for the render, showing progress.")
@click.option("--output-name", default=None, help="Name recorded for the output.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds --sync waits.")
@pass_client
def render(
    client: L1Client,
    recipe: str,
    inputs: tuple[str, ...],
    named: tuple[str, ...],
    params: tuple[str, ...],
    sync: bool,
    output_name: str | None,
    timeout: float,
) -> None:
    """Render RECIPE (an effect, a registered recipe or a recipe file) over INPUTS.

    Inputs are content hashes, asset names or local files (uploaded first), given in
    order or as -i NAME=INPUT. Params: -p radius=3, or -p node.param=value for a recipe.
    """
    if Path(recipe).is_file():
        recipe = client.register_recipe(Path(recipe).read_bytes())["name"]
    bound: list[str] | dict[str, str] = [_as_input(client, value) for value in inputs]
    if named:
        if bound:
            raise click.UsageError("give inputs in order or as -i NAME=INPUT, not both")
        bound = {k: _as_input(client, v) for k, v in (_pair(item, "-i") for item in named)}
    if not bound:
        raise click.UsageError("no inputs: give INPUTS or -i NAME=INPUT")
    values = {k: _value(v) for k, v in (_pair(item, "-p") for item in params)}
    run = client.submit(recipe, bound, output_name=output_name, params=values)
    if not sync:
        console.print(run["run_id"])
        return
    run = _follow(client, run, timeout)
    if run["status"] != "completed":
        raise click.ClickException(f"run {run['run_id']} {run['status']}: {run.get('error')}")
    output = run["output_hash"]
    console.print(output)
    console.print(f"[dim]fetch: {client.base_url}/cache/{output}  or  l1 fetch {output} -o FILE[/]")


def _pair(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise click.UsageError(f"{flag} takes KEY=VALUE, not {item!r}")
    return key, value


def _value(text: str) -> Any:
    # Numbers and booleans as JSON; anything else is a string.
    try:
        return json.loads(text)
    except ValueError:
        return text


def _as_input(client: L1Client, value: str) -> str:
    path = Path(value)
    if path.is_file():
        return str(client.upload(path)["content_hash"])
    return value


def _follow(client: L1Client, run: dict[str, Any], timeout: float) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(run["status"], total=100)
        waited = 0.0
        while run["status"] not in TERMINAL and waited < timeout:
            # Long-poll: the server answers as soon as the run finishes.
            run = client.run(run["run_id"], wait=2.0)
            waited += 2.0
            progress.update(task, description=run["status"], completed=run.get("progress") or 0)
    return run


@click.command(name="runs")
@click.option("--status", default=None, help="Only runs in this status.")
@click.option("--limit", default=50, show_default=True, help="How many to show.")
@pass_client
def list_runs(client: L1Client, status: str | None, limit: int) -> None:
    """List runs, newest first."""
    table = Table("run", "recipe", "status", "created", "output")
    for index, run in enumerate(client.runs(status=status, limit=min(limit, 1000))):
        if index >= limit:
            break
        table.add_row(
            short(run["run_id"]),
            run["recipe"],
            run["status"],
            run["created_at"],
            short(run.get("output_hash")),
        )
    console.print(table)


@click.command(name="run")
@click.argument("run_id")
@click.option("--wait", default=0.0, help="Seconds to wait for it to finish.")
@pass_client
def show_run(client: L1Client, run_id: str, wait: float) -> None:
    """Show one run as JSON."""
    console.print_json(data=client.run(run_id, wait=wait))


@click.command()
@click.argument("run_id")
@click.option("--cancel", is_flag=True, help="Cancel the run first if it has not finished.")
@pass_client
def discard(client: L1Client, run_id: str, cancel: bool) -> None:
    """Discard a run and delete the items it leaves orphaned and unpublished."""
    report = client.discard(run_id, cancel=cancel)
    for content_hash in report["deleted"]:
        console.print(f"deleted {content_hash}")
    print_kept(report["kept"])
    console.print(f"discarded {run_id}")


@click.command()
@click.argument("run_id")
@pass_client
def cancel(client: L1Client, run_id: str) -> None:
    """Cancel a pending or running run."""
    console.print(f"{run_id} {client.cancel(run_id)['status']}")


@click.command()
@click.argument("run_id")
@pass_client
def publish(client: L1Client, run_id: str) -> None:
    """Ask L2 to publish a completed run."""
    report = client.publish(run_id)
    console.print(f"published {run_id}: {', '.join(report['published'])}")


@click.command()
@click.argument("run_id")
@pass_client
def retry(client: L1Client, run_id: str) -> None:
    """Send a failed or cancelled run to the workers again."""
    run = client.retry(run_id)
    console.print(f"{run_id} {run['status']} (attempt generation {run['generation']})")


@click.command()
@click.option("--limit", default=50, show_default=True, help="How many to show.")
@pass_client
def dead(client: L1Client, limit: int) -> None:
    """List render requests that could never succeed, newest first."""
    table = Table("run", "recipe", "reason")
    for letter in client.dead(limit=limit):
        table.add_row(letter["run_id"], letter["recipe"], letter["reason"])
    console.print(table)


@click.command()
@pass_client
def recipes(client: L1Client) -> None:
    """List registered recipes and the effects that can be used as recipes."""
    table = Table("name", "kind", "version", "description")
    for effect in client.effects():
        table.add_row(effect["name"], "effect", effect["version"], effect["description"])
    for stored in client.recipes():
        table.add_row(stored["name"], "recipe", stored["version"], stored["description"])
    console.print(table)


COMMANDS = [render, list_runs, show_run, discard, cancel, publish, retry, dead, recipes]
