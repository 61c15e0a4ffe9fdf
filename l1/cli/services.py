"""Commands that run L1's services: ``up``, ``api``, ``worker``, ``events``."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from l1.settings import Settings
    from l1.up import Deployment

# The services import their frameworks (Litestar, PyAV...) when they start, and even
# the settings wait for a command that needs them, so that `l1 --help` and the client
# commands stay quick.

__all__ = ["COMMANDS"]


def _overrides(**values: object) -> dict[str, str]:
    return {f"L1_{k.upper()}": str(v) for k, v in values.items() if v is not None}


class _Stop(BaseException):
    """A signal asked ``l1 up`` to stop while it was starting."""


class _Signals:
    """SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) all stop ``l1 up``.

    While it starts, the first one interrupts what it is doing; while it waits, or
    once it is stopping, they only set :attr:`stop`.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.interrupting = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _: Any) -> None:
        self.stop.set()
        if self.interrupting:
            self.interrupting = False
            raise _Stop(signum)


def _say(text: str, **style: Any) -> None:
    """A line for the terminal, which may be gone (closed, with SIGHUP on its way)."""
    with contextlib.suppress(OSError):
        click.secho(text, **style)


@click.command()
@click.option("--host", default=None, help="Address the API listens on ($L1_HOST).")
@click.option("--port", type=int, default=None, help="Port the API listens on ($L1_PORT).")
@click.option("--data-dir", default=None, help="Where everything is kept ($L1_DATA_DIR).")
@click.option("--nats-port", default=4223, show_default=True, help="Embedded NATS port.")
@click.option("--redis-port", default=6380, show_default=True, help="Embedded Redis port.")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option("--concurrency", default=4, show_default=True, help="Render slots per worker.")
@click.option(
    "--api-processes",
    type=click.IntRange(min=1),
    default=None,
    help="API processes sharing the port  [default: one per two cores]",
)
@click.option("--demo", is_flag=True, help="Once up, render the dog effect over the cat.")
def up(
    host: str | None,
    port: int | None,
    data_dir: str | None,
    nats_port: int,
    redis_port: int,
    workers: int,
    concurrency: int,
    api_processes: int | None,
    demo: bool,
) -> None:
    """Start the whole system on this machine; Ctrl-C stops it.

    Starts nats-server and a Redis-compatible server under the data directory (unless
    L1_NATS_URL and L1_REDIS_URL name running ones), the API, the event subscribers and
    the workers, each a process of its own. Ctrl-C, SIGTERM and SIGHUP (closing the
    terminal) stop all of it, and so does `l1 up` dying any other way: nothing it
    started outlives it. Processes an earlier `l1 up` on the same data directory left
    behind are stopped first.
    """
    from l1.up import Deployment

    env = {**os.environ, **_overrides(host=host, port=port, data_dir=data_dir)}
    deployment = Deployment(
        env,
        nats_port=nats_port,
        redis_port=redis_port,
        workers=workers,
        concurrency=concurrency,
        api_processes=api_processes or max(1, (os.cpu_count() or 1) // 2),
    )
    signals = _Signals()
    try:
        settings = deployment.start()
        for line in deployment.notes:
            _say(line, err=True)
        _describe(settings, deployment)
        if demo:
            _demo(settings)
        _say("Ctrl-C (or closing this terminal) stops everything.", dim=True)
        signals.interrupting = False
        if died := deployment.wait(signals.stop):
            raise click.ClickException(f"the {died} exited; see {deployment.logs / died}.log")
    except _Stop:
        pass  # asked to stop: a clean exit
    finally:
        signals.interrupting = False
        if deployment.servers or deployment.children:
            _say("stopping…")
        deployment.stop()


def _describe(settings: Settings, deployment: Deployment) -> None:
    url = settings.public_url
    _say(
        f"{click.style('L1 is up', fg='green', bold=True)} at {url}"
        f"  (dashboard: {url}/ui, docs: {url}/docs)"
    )
    _say(f"  data   {settings.data_dir}")
    _say(f"  cache  {settings.cache_dir}")
    _say(f"  nats   {settings.nats_url}")
    _say(f"  redis  {settings.redis_url}")
    _say(f"  logs   {deployment.logs}")


def _demo(settings: Settings) -> None:
    from l1.client import L1Client

    with L1Client(settings.public_url) as client:
        run = client.submit("dog", ["cat"], output_name="demo")
        run = client.run(run["run_id"], wait=60)
    if run["status"] != "completed":
        raise click.ClickException(f"the demo run {run['status']}: {run.get('error')}")
    output = run["output_hash"]
    _say(f"{click.style('demo:', bold=True)} dog over cat → {output}")
    _say(f"  fetch it: {settings.public_url}/cache/{output}  or  l1 fetch {output[:12]} -o dog.png")


@click.command()
@click.option("--host", default=None, help="Address to listen on ($L1_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on ($L1_PORT).")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="API processes sharing the port; with more than one, the subscribers run in "
    "a process of their own (unless --no-subscribers).",
)
@click.option(
    "--subscribers/--no-subscribers",
    default=True,
    show_default=True,
    help="Also run the event subscribers (in this process, or beside the API processes).",
)
def api(host: str | None, port: int | None, processes: int, subscribers: bool) -> None:
    """Run the HTTP API alone (what an API container runs)."""
    import subprocess
    import sys

    from l1.api.server import serve
    from l1.runtime import configure_logging
    from l1.settings import Settings

    settings = Settings.from_env(host=host, port=port)
    _require_servers(settings)
    configure_logging()
    if processes == 1:
        serve(settings, subscribers=subscribers)
        return
    # Every API process reads its settings from the environment, flags included.
    os.environ.update({"L1_HOST": settings.host, "L1_PORT": str(settings.port)})
    events = subprocess.Popen([sys.executable, "-m", "l1", "events"]) if subscribers else None
    try:
        serve(settings, processes=processes)
    finally:
        if events is not None:
            events.terminate()
            events.wait(timeout=30)


@click.command()
@click.option("--concurrency", "-c", default=4, show_default=True, help="Renders at once.")
def worker(concurrency: int) -> None:
    """Run one render worker (what a worker container runs)."""

    from l1.runtime import configure_logging, run_service, stop_on_signals
    from l1.settings import Settings
    from l1.wiring import run_worker

    settings = Settings.from_env()
    _require_servers(settings, redis=False)
    configure_logging()

    async def main() -> None:
        await run_worker(settings, concurrency=concurrency, stop=stop_on_signals())

    run_service(main)


@click.command()
def events() -> None:
    """Run the event subscribers alone (they also run inside `l1 api` by default)."""

    from l1.runtime import configure_logging, run_service, stop_on_signals
    from l1.settings import Settings
    from l1.wiring import run_subscribers

    settings = Settings.from_env()
    _require_servers(settings)
    configure_logging()

    async def main() -> None:
        await run_subscribers(settings, stop=stop_on_signals())

    run_service(main)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("name", type=click.Choice(["nats", "redis"]))
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def server(name: str, options: tuple[str, ...]) -> None:
    """Run the installed nats-server (with L1's nats.conf) or Redis-compatible server,
    with OPTIONS: what a fleet's server containers run, from the same image."""
    from l1.stack import bundled_server

    argv = [*bundled_server(name), *options]
    os.execv(argv[0], argv)


@click.command()
def healthcheck() -> None:
    """Exit 0 while this container's L1 service is connected and working (it keeps
    $L1_HEALTH_FILE fresh), 1 otherwise: what a container engine's health check runs."""
    from l1.liveness import STALE_AFTER, is_fresh
    from l1.settings import Settings

    path = Settings.from_env().health_file
    if path is None:
        raise click.ClickException("set L1_HEALTH_FILE (the image does) to use the check")
    if not is_fresh(path):
        raise click.ClickException(f"unhealthy: {path} not touched in {STALE_AFTER:g}s")
    click.echo("healthy")


def _require_servers(settings: Settings, *, redis: bool = True) -> None:
    missing = [n for n, v in (("L1_NATS_URL", settings.nats_url),) if not v]
    if redis and not settings.redis_url:
        missing.append("L1_REDIS_URL")
    if missing:
        raise click.ClickException(
            f"set {' and '.join(missing)} (or use `l1 up`, which starts its own servers)"
        )


COMMANDS = [up, api, worker, events, server, healthcheck]
