"""A worker's own metrics, exposed on ``L1_METRICS_PORT`` for Prometheus to scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["RENDER_BUCKETS", "WorkerMetrics"]

# Renders take from milliseconds (a file passed along) to many minutes (a long clip).
RENDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class WorkerMetrics:
    """Render counts and durations by effect, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.render_seconds = Histogram(
            "l1_render_seconds",
            "Time one render step took, by effect",
            ["effect"],
            buckets=RENDER_BUCKETS,
            registry=registry,
        )
        self.renders = Counter(
            "l1_renders",
            "Render steps finished, by effect and outcome (completed, split, retried, failed)",
            ["effect", "outcome"],
            registry=registry,
        )
        self.rendering = Gauge(
            "l1_worker_rendering", "Render steps this worker holds now", registry=registry
        )

    def finished(self, effect: str, outcome: str, seconds: float | None = None) -> None:
        """A render of ``effect`` ended with ``outcome``, taking ``seconds`` if it ran."""
        self.renders.labels(effect=effect, outcome=outcome).inc()
        if seconds is not None:
            self.render_seconds.labels(effect=effect).observe(seconds)
