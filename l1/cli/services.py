"""Commands that run L1's services: ``up``, ``api``, ``worker``, ``events``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

import click
import uvicorn

from l1.api.app import create_app
from l1.cli.common import console
from l1.client import L1Client
from l1.events.main import run_subscribers
from l1.runtime import configure_logging, stop_on_signals
from l1.settings import Settings
from l1.up import Deployment
from l1.workers.main import run_worker

__all__ = ["COMMANDS"]


def _overrides(**values: object) -> dict[str, str]:
    return {f"L1_{k.upper()}": str(v) for k, v in values.items() if v is not None}


@click.command()
@click.option("--host", default=None, help="Address the API listens on ($L1_HOST).")
@click.option("--port", type=int, default=None, help="Port the API listens on ($L1_PORT).")
@click.option("--data-dir", default=None, help="Where everything is kept ($L1_DATA_DIR).")
@click.option("--nats-port", default=4223, show_default=True, help="Embedded NATS port.")
@click.option("--redis-port", default=6380, show_default=True, help="Embedded Redis port.")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option("--concurrency", default=4, show_default=True, help="Render slots per worker.")
@click.option("--demo", is_flag=True, help="Once up, render the dog effect over the cat.")
def up(
    host: str | None,
    port: int | None,
    data_dir: str | None,
    nats_port: int,
    redis_port: int,
    workers: int,
    concurrency: int,
    demo: bool,
) -> None:
    """Start the whole system on this machine; Ctrl-C stops it.

    Starts nats-server and a Redis-compatible server under the data directory (unless
    L1_NATS_URL and L1_REDIS_URL name running ones), the API, the event subscribers and
    the workers, each a process of its own.
    """
    env = {**os.environ, **_overrides(host=host, port=port, data_dir=data_dir)}
    deployment = Deployment(
        env,
        nats_port=nats_port,
        redis_port=redis_port,
        workers=workers,
        concurrency=concurrency,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        settings = deployment.start()
        _describe(settings, deployment)
        if demo:
            _demo(settings)
        console.print("[dim]Ctrl-C stops everything.[/]")
        if died := deployment.wait(stop):
            raise click.ClickException(f"the {died} exited; see {deployment.logs / died}.log")
    finally:
        console.print("stopping…")
        deployment.stop()


def _describe(settings: Settings, deployment: Deployment) -> None:
    url = settings.public_url
    console.print(f"[bold green]L1 is up[/] at {url}  (docs: {url}/docs)")
    console.print(f"  data   {settings.data_dir}")
    console.print(f"  cache  {settings.cache_dir}")
    console.print(f"  nats   {settings.nats_url}")
    console.print(f"  redis  {settings.redis_url}")
    console.print(f"  logs   {deployment.logs}")


def _demo(settings: Settings) -> None:
    with L1Client(settings.public_url) as client:
        run = client.submit("dog", ["cat"], output_name="demo")
        run = client.run(run["run_id"], wait=60)
    if run["status"] != "completed":
        raise click.ClickException(f"the demo run {run['status']}: {run.get('error')}")
    output = run["output_hash"]
    console.print(f"[bold]demo:[/] dog over cat → {output}")
    console.print(
        f"  fetch it: {settings.public_url}/cache/{output}  or  l1 fetch {output} -o dog.png"
    )


@click.command()
@click.option("--host", default=None, help="Address to listen on ($L1_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on ($L1_PORT).")
@click.option(
    "--subscribers/--no-subscribers",
    default=True,
    show_default=True,
    help="Also run the event subscribers in this process.",
)
def api(host: str | None, port: int | None, subscribers: bool) -> None:
    """Run the HTTP API alone (what an API container runs)."""
    settings = Settings.from_env(host=host, port=port)
    _require_servers(settings)
    configure_logging()
    uvicorn.run(
        create_app(settings, subscribers=subscribers),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,  # a line per request costs more than the request itself
        timeout_graceful_shutdown=10,
    )


@click.command()
@click.option("--concurrency", "-c", default=4, show_default=True, help="Renders at once.")
def worker(concurrency: int) -> None:
    """Run one render worker (what a worker container runs)."""
    settings = Settings.from_env()
    _require_servers(settings, redis=False)
    configure_logging()

    async def main() -> None:
        await run_worker(settings, concurrency=concurrency, stop=stop_on_signals())

    asyncio.run(main())
    # A render thread cannot be interrupted, and the interpreter joins such threads at
    # exit; their requests were handed back, so leave without them.
    logging.shutdown()
    os._exit(0)


@click.command()
def events() -> None:
    """Run the event subscribers alone (they also run inside `l1 api` by default)."""
    settings = Settings.from_env()
    _require_servers(settings)
    configure_logging()

    async def main() -> None:
        await run_subscribers(settings, stop=stop_on_signals())

    asyncio.run(main())


def _require_servers(settings: Settings, *, redis: bool = True) -> None:
    missing = [n for n, v in (("L1_NATS_URL", settings.nats_url),) if not v]
    if redis and not settings.redis_url:
        missing.append("L1_REDIS_URL")
    if missing:
        raise click.ClickException(
            f"set {' and '.join(missing)} (or use `l1 up`, which starts its own servers)"
        )


COMMANDS = [up, api, worker, events]
