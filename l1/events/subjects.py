"""NATS subject names. Every subject L1 uses is built here."""

from __future__ import annotations

import re

__all__ = [
    "CACHE_EVENTS",
    "DEAD",
    "RENDER",
    "RUN_EVENTS",
    "cache_event",
    "dead_letter",
    "render",
    "run_event",
    "subject_token",
]

RENDER = "l1.render.>"
RUN_EVENTS = "l1.runs.>"
CACHE_EVENTS = "l1.cache.>"
DEAD = "l1.dead.>"

# Recipe node ids use letters, digits, "_" and "-"; the parts of a split step add "~".
_TOKEN = re.compile(r"^[A-Za-z0-9_~-]{1,128}$")


def subject_token(value: str) -> str:
    """``value`` if it is safe as one subject token (no dots, spaces or wildcards)."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} cannot be used in a NATS subject")
    return value


def render(recipe: str, run_id: str, node_id: str = "output") -> str:
    """Where a step of a run is published: ``l1.render.<recipe>.<run_id>.<node>``.

    The run and node tokens let anyone ask JetStream whether a step is still queued.
    """
    return f"l1.render.{subject_token(recipe)}.{run_id}.{subject_token(node_id)}"


def run_event(run_id: str, event: str) -> str:
    """A run's lifecycle event subject, e.g. ``l1.runs.<run_id>.completed``."""
    return f"l1.runs.{run_id}.{event}"


def cache_event(content_hash: str, event: str) -> str:
    """A cache item's event subject, e.g. ``l1.cache.<hash>.stored``."""
    return f"l1.cache.{content_hash}.{event}"


def dead_letter(recipe: str, run_id: str) -> str:
    """Where a render request that can never succeed is kept: ``l1.dead.<recipe>.<run_id>``."""
    return f"l1.dead.{subject_token(recipe)}.{run_id}"
