"""Settings, read once from ``L1_*`` environment variables.

Every component receives the :class:`Settings` it needs; nothing reads the
environment at import time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

import msgspec

from l1.effects.limits import MAX_FRAMES, MAX_PIXELS, MAX_SECONDS, MediaLimits

__all__ = ["Settings", "SettingsError"]


class SettingsError(ValueError):
    """An ``L1_*`` variable holds a value that cannot be used."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything configurable about one L1 process."""

    data_dir: Path
    cache_dir: Path
    nats_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8100
    import_roots: tuple[Path, ...] = ()
    max_upload_bytes: int = 1 << 30
    max_import_bytes: int = 16 << 30
    max_body_bytes: int = 1 << 20
    actor: str
    public_url: str
    l2_url: str | None = None
    l2_timeout: float = 5.0
    l2_publish_timeout: float = 30.0
    l2_cache_seconds: float = 10.0
    api_tokens: tuple[str, ...] = ()
    # Empty: where the API listens and the public URL's host (l1.api.crosssite).
    allowed_hosts: tuple[str, ...] = ()
    ack_wait: float = 30.0
    max_deliver: int = 5
    retry_delay: float = 2.0
    reconcile_every: float = 60.0
    stale_after: float = 300.0
    render_timeout: float = 600.0
    render_memory: int = 4 << 30
    # A per-frame render over a longer video is split into parts of about this many
    # seconds, rendered side by side (0: never split).
    segment_seconds: float = 10.0
    render_threads: int = 0  # per render: decoding, filters, encoder (0: the libraries')
    thumbnail_timeout: float = 10.0
    thumbnail_memory: int = 512 << 20
    max_pixels: int = MAX_PIXELS
    max_frames: int = MAX_FRAMES
    max_seconds: float = MAX_SECONDS
    effect_modules: tuple[str, ...] = ()
    blob_tier: bool = False
    replicas: int = 1
    cache_max_bytes: int = 0
    scrub_bytes_per_second: int = 32 << 20
    health_file: Path | None = None
    heartbeat_every: float = 5.0
    metrics_port: int = 0
    feed_max_clients: int = 64
    feed_max_per_address: int = 8

    @property
    def embedded(self) -> bool:
        """Whether ``l1 up`` must start its own NATS and Redis servers."""
        return self.nats_url is None or self.redis_url is None

    @property
    def media_limits(self) -> MediaLimits:
        """What one render may take on."""
        return MediaLimits(
            max_pixels=self.max_pixels, max_frames=self.max_frames, max_seconds=self.max_seconds
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("L1_DATA_DIR", "~/.artdag")).expanduser()
        host = env.get("L1_HOST", "127.0.0.1")
        port = _int(env, "L1_PORT", 8100)
        values: dict[str, object] = {
            "data_dir": data_dir,
            "cache_dir": Path(env.get("L1_CACHE_DIR", data_dir / "cache")).expanduser(),
            "nats_url": env.get("L1_NATS_URL") or None,
            "redis_url": env.get("L1_REDIS_URL") or None,
            "host": host,
            "port": port,
            "import_roots": tuple(
                Path(p).expanduser() for p in env.get("L1_IMPORT_ROOTS", "").split(os.pathsep) if p
            ),
            "max_upload_bytes": _int(env, "L1_MAX_UPLOAD_BYTES", 1 << 30),
            "max_import_bytes": _int(env, "L1_MAX_IMPORT_BYTES", 16 << 30),
            "max_body_bytes": _int(env, "L1_MAX_BODY_BYTES", 1 << 20),
            "actor": env.get("L1_ACTOR") or f"@l1@{socket.gethostname()}",
            "public_url": env.get("L1_PUBLIC_URL") or f"http://{host}:{port}",
            "l2_url": (env.get("L1_L2_URL") or "").rstrip("/") or None,
            "l2_timeout": _float(env, "L1_L2_TIMEOUT", 5.0),
            "l2_publish_timeout": _float(env, "L1_L2_PUBLISH_TIMEOUT", 30.0),
            "l2_cache_seconds": _float(env, "L1_L2_CACHE_SECONDS", 10.0),
            "api_tokens": tuple(t for t in env.get("L1_API_TOKENS", "").split(",") if t),
            "allowed_hosts": _hosts(env, "L1_ALLOWED_HOSTS"),
            "ack_wait": _float(env, "L1_ACK_WAIT", 30.0),
            "max_deliver": _int(env, "L1_MAX_DELIVER", 5),
            "retry_delay": _float(env, "L1_RETRY_DELAY", 2.0),
            "reconcile_every": _float(env, "L1_RECONCILE_EVERY", 60.0),
            "stale_after": _float(env, "L1_STALE_AFTER", 300.0),
            "render_timeout": _float(env, "L1_RENDER_TIMEOUT", 600.0),
            "render_memory": _int(env, "L1_RENDER_MEMORY", 4 << 30),
            "segment_seconds": _float(env, "L1_SEGMENT_SECONDS", 10.0),
            "render_threads": _int(env, "L1_RENDER_THREADS", 0),
            "thumbnail_timeout": _float(env, "L1_THUMBNAIL_TIMEOUT", 10.0),
            "thumbnail_memory": _int(env, "L1_THUMBNAIL_MEMORY", 512 << 20),
            "max_pixels": _int(env, "L1_MAX_PIXELS", MAX_PIXELS),
            "max_frames": _int(env, "L1_MAX_FRAMES", MAX_FRAMES),
            "max_seconds": _float(env, "L1_MAX_SECONDS", MAX_SECONDS),
            "blob_tier": _bool(env, "L1_BLOB_TIER", False),
            "replicas": _int(env, "L1_REPLICAS", 1),
            "cache_max_bytes": _int(env, "L1_CACHE_MAX_BYTES", 0),
            "scrub_bytes_per_second": _int(env, "L1_SCRUB_BYTES_PER_SECOND", 32 << 20),
            "health_file": Path(env["L1_HEALTH_FILE"]) if env.get("L1_HEALTH_FILE") else None,
            "heartbeat_every": _float(env, "L1_HEARTBEAT_EVERY", 5.0),
            "metrics_port": _int(env, "L1_METRICS_PORT", 0),
            "feed_max_clients": _int(env, "L1_FEED_MAX_CLIENTS", 64),
            "feed_max_per_address": _int(env, "L1_FEED_MAX_PER_ADDRESS", 8),
            "effect_modules": tuple(
                m.strip() for m in env.get("L1_EFFECT_MODULES", "").split(",") if m.strip()
            ),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(values, cls, strict=False)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be on or off (1/0, true/false, yes/no), not {raw!r}")


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in env.get(name, "").split(",") if h.strip())
    for host in hosts:
        if "/" in host or ("*" in host and host != "*"):
            raise SettingsError(f"{name} takes host names, host:port or *, not {host!r}")
    return hosts


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
