"""Every Redis key L1 uses, in one place. All live under ``artdag:``."""

from __future__ import annotations

__all__ = [
    "ACTIVITIES",
    "CACHE_HASHES",
    "CACHE_ITEMS",
    "CACHE_LOST",
    "PUBLISHED",
    "RECIPES",
    "RUNS",
    "RUNS_FINISHED_CHANNEL",
    "RUN_IDS",
    "activity",
    "cache_item",
    "cancel_request",
    "provenance",
    "recipe",
    "references",
    "run",
    "run_claim",
    "runs_with_status",
    "step",
    "tombstone",
]

RUNS = "artdag:runs"  # sorted set of run ids, scored by creation time (µs)
CACHE_ITEMS = "artdag:cache:items"  # sorted set of content hashes, scored by first store time
# The same members scored 0, so that they sort by name: a prefix finds its matches with
# ZRANGEBYLEX (``l1 run 4046dcdb`` as git takes a short commit id).
RUN_IDS = "artdag:runs:ids"  # every run id (members of RUNS)
CACHE_HASHES = "artdag:cache:hashes"  # every indexed content hash (members of CACHE_ITEMS)
# Indexed items whose only copy was found damaged and set aside, until stored again.
CACHE_LOST = "artdag:cache:lost"
ACTIVITIES = "artdag:activities"  # sorted set of run ids with a recorded activity
RUNS_FINISHED_CHANNEL = "artdag:runs:finished"  # pub/sub: a run id each time one finishes
RECIPES = "artdag:recipes"  # sorted set of recipe names, scored by registration time
PUBLISHED = "artdag:published"  # set of content hashes L2 published through this server


def run(run_id: str) -> str:
    """The run record (msgspec JSON of :class:`l1.schemas.Run`)."""
    return f"artdag:run:{run_id}"


def run_claim(run_id: str) -> str:
    """Set while a discard or a publish has the run (``<action> <token>``, expiring):
    one such action at a time, and no retry meanwhile."""
    return f"artdag:claim:{run_id}"


def cancel_request(run_id: str) -> str:
    """The generation of the run a cancel was last asked for: one cancel of it answers."""
    return f"artdag:cancelling:{run_id}"


def runs_with_status(status: str) -> str:
    """Sorted set of the run ids currently in ``status``."""
    return f"artdag:runs:status:{status}"


def cache_item(content_hash: str) -> str:
    """The index entry of a cache item (size, media type, first stored)."""
    return f"artdag:cache:item:{content_hash}"


def provenance(content_hash: str) -> str:
    """The provenance record of an output."""
    return f"artdag:provenance:{content_hash}"


def activity(run_id: str) -> str:
    """A run's activity: the items it used and made."""
    return f"artdag:activity:{run_id}"


def references(content_hash: str) -> str:
    """Set of run ids whose activity uses or made ``content_hash``."""
    return f"artdag:refs:{content_hash}"


def recipe(name: str) -> str:
    """A registered recipe (its latest version)."""
    return f"artdag:recipe:{name}"


def step(cache_id: str) -> str:
    """The output hash of the step with ``cache_id`` (a node's Art DAG cache id)."""
    return f"artdag:step:{cache_id}"


def tombstone(content_hash: str) -> str:
    """Set while ``content_hash`` is being deleted; no run may start using it meanwhile."""
    return f"artdag:deleting:{content_hash}"
