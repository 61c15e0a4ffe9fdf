"""Commands that watch the fleet: ``workers`` and ``top``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from l1.cli.common import Column, first, json_option, pass_client, show_list

if TYPE_CHECKING:
    from rich.console import Group
    from rich.text import Text

    from l1.client import L1Client

__all__ = ["COMMANDS"]


def _rendering(worker: dict[str, Any]) -> str:
    held = worker.get("rendering") or []
    if not held:
        return "idle"
    return ", ".join(f"{r['effect']} {r['run_id'][:8]}" for r in held)


WORKER_COLUMNS = [
    Column("worker", lambda w: w["worker"]),
    Column("host", lambda w: w["host"]),
    Column("since", lambda w: w["started_at"], is_time=True),
    Column("rendering", _rendering),
    Column("done", lambda w: w["renders_done"]),
    Column("failed", lambda w: w["renders_failed"]),
]


@click.command()
@json_option
@pass_client
def workers(client: L1Client, as_json: bool) -> None:
    """List live workers: host, since when, what each renders, renders done and failed."""
    show_list(client.workers(), WORKER_COLUMNS, as_json=as_json, empty="no live workers")


@click.command()
@click.option(
    "--every", default=2.0, show_default=True, type=click.FloatRange(min=0.2), help="Seconds."
)
@click.option("--once", is_flag=True, help="Print one screen and exit.")
@pass_client
def top(client: L1Client, every: float, once: bool) -> None:
    """A live view of the queues, the workers and the latest runs (Ctrl-C to leave)."""
    from rich.live import Live

    from l1.cli.common import console

    if once:
        console().print(_screen(client))
        return
    try:
        with Live(_screen(client), console=console(), screen=False, auto_refresh=False) as live:
            while True:
                time.sleep(every)  # a terminal view's refresh, not a wait on anything
                live.update(_screen(client), refresh=True)
    except KeyboardInterrupt:
        pass


def _screen(client: L1Client) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    queues = Table(title="queues", title_justify="left", expand=True)
    for title in ("stream", "consumer", "pending", "ack pending", "redelivered"):
        queues.add_column(title)
    for q in client.queues():
        queues.add_row(
            q["stream"],
            q["consumer"],
            str(q["pending"]),
            str(q["ack_pending"]),
            str(q["redelivered"]),
        )
    fleet = Table(title="workers", title_justify="left", expand=True)
    for column in WORKER_COLUMNS:
        fleet.add_column(column.title)
    for worker in client.workers():
        fleet.add_row(*(Text(str(column.read(worker))) for column in WORKER_COLUMNS))
    runs = Table(title="latest runs", title_justify="left", expand=True)
    for title in ("run", "recipe", "status", "progress", "created"):
        runs.add_column(title)
    for run in first(client.runs(limit=10), 10):
        progress = 100.0 if run["status"] == "completed" else run.get("progress") or 0.0
        runs.add_row(
            run["run_id"][:12],
            Text(run["recipe"]),
            _status(run["status"]),
            _bar(progress),
            run["created_at"][:19].replace("T", " "),
        )
    return Group(queues, fleet, runs)


def _status(status: str) -> Text:
    from rich.text import Text

    colour = {"completed": "green", "failed": "red", "running": "cyan", "pending": "yellow"}
    return Text(status, style=colour.get(status, "dim"))


def _bar(percent: float, width: int = 20) -> str:
    filled = round(width * min(max(percent, 0.0), 100.0) / 100)
    return "█" * filled + "░" * (width - filled) + f" {percent:5.1f}%"


COMMANDS = [workers, top]
