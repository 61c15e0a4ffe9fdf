"""The event subscribers' metrics: what each projector applied and handed back."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["SubscriberMetrics"]


class SubscriberMetrics:
    """Events projected, handed back and dropped, and batch times, by consumer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        labels = ["consumer"]
        self.applied = Counter(
            "l1_events_projected", "Events applied and acknowledged", labels, registry=registry
        )
        self.retried = Counter(
            "l1_events_handed_back", "Events handed back to come again", labels, registry=registry
        )
        self.dropped = Counter(
            "l1_events_dropped", "Malformed events dropped", labels, registry=registry
        )
        self.batch_seconds = Histogram(
            "l1_projection_seconds", "Time to project one batch", labels, registry=registry
        )
