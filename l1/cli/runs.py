"""Commands about runs: ``render``, ``runs``, ``run``, ``cancel``, ``retry``..."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from l1.cli.common import (
    Column,
    current_target,
    default_server,
    echo_json,
    first,
    json_option,
    note,
    pass_client,
    print_kept,
    show_list,
)

if TYPE_CHECKING:
    from l1.client import L1Client

__all__ = ["COMMANDS"]

TERMINAL = {"completed", "failed", "cancelled"}
# Exit status after Ctrl-C, as a shell reports a command ended by SIGINT.
INTERRUPTED = 130


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

    Inputs are content hashes (or unique prefixes), asset names or local files
    (uploaded first), given in order or as -i NAME=INPUT. Params: -p radius=3, or
    -p node.param=value for a recipe (`l1 effects NAME` lists an effect's).

    Prints the run id; with --sync, the run id on stderr at once and, once the run
    completes, the output hash alone on stdout. Ctrl-C stops waiting, not the run.
    """
    recipe_file = _local_file(recipe)
    if recipe_file is not None:
        recipe = client.register_recipe(recipe_file.read_bytes())["name"]
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
        click.echo(run["run_id"])
        return
    try:
        # Inside the try: Ctrl-C may come the moment the run id is printed.
        note(f"run {run['run_id']} {run['status']}")
        run = _follow(client, run, timeout)
    except KeyboardInterrupt:
        # Other clients may be waiting on the same run: it is theirs too, so it goes on.
        cancel = f"l1 cancel {run['run_id']}{_server_flag()}"
        note(f"run {run['run_id']} keeps rendering; cancel it with: {cancel}")
        sys.exit(INTERRUPTED)
    if run["status"] not in TERMINAL:
        raise click.ClickException(
            f"run {run['run_id']} is still {run['status']} after {timeout:g}s; "
            f"wait for it with: l1 run {run['run_id']} --wait 300{_server_flag()}"
        )
    if run["status"] != "completed":
        raise click.ClickException(f"run {run['run_id']} {run['status']}: {run.get('error')}")
    output = run["output_hash"]
    click.echo(output)
    note(f"fetch: {client.base_url}/cache/{output}  or  l1 fetch {output[:12]} -o FILE")


def _server_flag() -> str:
    server = current_target(click.get_current_context()).server
    return "" if server == default_server() else f" --server {server}"


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


def _local_file(value: str) -> Path | None:
    """The file ``value`` names, if it names one; an error if it looks like a path
    that is not a file. Names and hashes never hold a dot or a slash; paths do."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if "/" in value or "." in value or value.startswith("~"):
        if path.exists():
            raise click.ClickException(f"not a file: {value}")
        raise click.ClickException(f"no such file: {value}")
    return None


def _as_input(client: L1Client, value: str) -> str:
    path = _local_file(value)
    if path is not None:
        return str(client.upload(path)["content_hash"])
    return value


def _follow(client: L1Client, run: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Wait for the run to finish, with a progress bar when a person watches stderr."""
    if not sys.stderr.isatty():
        return _poll(client, run, timeout, lambda _: None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from l1.cli.common import console

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(stderr=True), transient=True) as progress:
        task = progress.add_task(run["status"], total=100)

        def show(current: dict[str, Any]) -> None:
            completed = current.get("progress") or 0
            progress.update(task, description=current["status"], completed=completed)

        return _poll(client, run, timeout, show)


def _poll(client: L1Client, run: dict[str, Any], timeout: float, show: Any) -> dict[str, Any]:
    waited = 0.0
    while run["status"] not in TERMINAL and waited < timeout:
        # Long-poll: the server answers as soon as the run finishes.
        run = client.run(run["run_id"], wait=2.0)
        waited += 2.0
        show(run)
    return run


@click.command(name="runs")
@click.option("--status", default=None, help="Only runs in this status.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="How many to show."
)
@json_option
@pass_client
def list_runs(client: L1Client, status: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    found = first(client.runs(status=status, limit=min(limit, 1000)), limit)
    columns = [
        Column("run", lambda r: r["run_id"], is_id=True),
        Column("recipe", lambda r: r["recipe"]),
        Column("status", lambda r: r["status"]),
        Column("created", lambda r: r["created_at"], is_time=True),
        Column("output", lambda r: r.get("output_hash"), is_id=True),
    ]
    show_list(found, columns, as_json=as_json, empty="no runs")


@click.command(name="run")
@click.argument("run_id")
@click.option("--wait", default=0.0, help="Seconds to wait for it to finish.")
@pass_client
def show_run(client: L1Client, run_id: str, wait: float) -> None:
    """Show one run as JSON (RUN_ID or a unique prefix of it); the parts of a step
    split by time are summed up on stderr."""
    run = client.run(run_id, wait=wait)
    echo_json(run)
    for line in parts_summary(run):
        note(line)


def parts_summary(run: dict[str, Any]) -> list[str]:
    """Under each split step, how many of its parts are done and one line per part:
    index, time range, status, worker."""
    lines = []
    for node_id, parts in (run.get("segments") or {}).items():
        done = sum(part["status"] in ("completed", "cached") for part in parts)
        lines.append(f"step {node_id}: {done}/{len(parts)} parts done")
        for part in parts:
            end = "end" if part["end"] is None else f"{part['end']:.2f}"
            span = f"{part['start']:.2f}-{end} s"
            lines.append(
                f"  #{part['index']:<3} {span:<18} {part['status']:<10} {part.get('worker') or '-'}"
            )
    return lines


@click.command()
@click.argument("run_id")
@click.option("--cancel", is_flag=True, help="Cancel the run first if it has not finished.")
@pass_client
def discard(client: L1Client, run_id: str, cancel: bool) -> None:
    """Discard a run and delete the items it leaves orphaned and unpublished."""
    report = client.discard(run_id, cancel=cancel)
    for content_hash in report["deleted"]:
        click.echo(f"deleted {content_hash}")
    print_kept(report["kept"])
    click.echo(f"discarded {report['run_id']}")


@click.command()
@click.argument("run_id")
@pass_client
def cancel(client: L1Client, run_id: str) -> None:
    """Cancel a pending or running run."""
    run = client.cancel(run_id)
    click.echo(f"{run['run_id']} {run['status']}")


@click.command()
@click.argument("run_id")
@pass_client
def publish(client: L1Client, run_id: str) -> None:
    """Ask L2 to publish a completed run."""
    report = client.publish(run_id)
    click.echo(f"published {report['run_id']}: {', '.join(report['published'])}")


@click.command()
@click.argument("run_id")
@pass_client
def retry(client: L1Client, run_id: str) -> None:
    """Send a failed or cancelled run to the workers again."""
    run = client.retry(run_id)
    click.echo(f"{run['run_id']} {run['status']} (attempt generation {run['generation']})")


@click.command()
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="How many to show."
)
@json_option
@pass_client
def dead(client: L1Client, limit: int, as_json: bool) -> None:
    """List render requests that could never succeed, newest first."""
    columns = [
        Column("run", lambda d: d["run_id"], is_id=True),
        Column("recipe", lambda d: d["recipe"]),
        Column("reason", lambda d: d["reason"]),
    ]
    found = first(client.dead(limit=min(limit, 1000)), limit)
    show_list(found, columns, as_json=as_json, empty="no dead render requests")


COMMANDS = [render, list_runs, show_run, discard, cancel, publish, retry, dead]
