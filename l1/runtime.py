"""Running a service until it is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop

__all__ = [
    "configure_logging",
    "every",
    "run_service",
    "settle_heap",
    "sleep_unless",
    "stop_on_signals",
]

log = logging.getLogger(__name__)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, for the running loop's services to watch."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def every(
    seconds: float,
    stop: asyncio.Event,
    job: Callable[[], Awaitable[str | None]],
    *,
    skip_on: tuple[type[BaseException], ...],
) -> None:
    """Run ``job`` now and then every ``seconds`` until ``stop`` is set. What it returns
    (a line saying what it did) is logged; an error of ``skip_on`` skips one round."""
    while not stop.is_set():
        try:
            done = await job()
        except skip_on as error:
            log.warning("%s skipped: %s", getattr(job, "__qualname__", job), error)
        else:
            if done:
                log.warning("%s", done)
        await sleep_unless(stop, seconds)


def run_service(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service's ``main`` to its end on uvloop's event loop (libuv: quicker
    sockets and timers than asyncio's own loop; the API's server uses it too)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def settle_heap() -> None:
    """Call once a service has started: what start-up built (frameworks, schemas,
    connections) lives as long as the process, so it is taken out of the garbage
    collector's sight. Otherwise every full collection walks all of it again, which
    stalled a loaded API's event loop for 50-90 ms about once a second."""
    gc.collect()
    gc.freeze()


def configure_logging(level: str = "INFO") -> None:
    """One log format for every L1 process."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
