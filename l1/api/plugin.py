"""The plugin that wires L1 into a Litestar app: routes, dependencies, errors, and the
lifespan that owns the NATS and Redis connections and the background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

import l1
from l1.api.auth import token_guard
from l1.api.controllers import (
    CacheController,
    DeadLetterController,
    EffectController,
    InfoController,
    RecipeController,
    RunController,
)
from l1.api.controllers.info import ServerInfo
from l1.api.errors import exception_handlers
from l1.api.health import Health, HealthCheck
from l1.api.run_waiter import RunWaiter
from l1.api.services.cache import CacheService
from l1.api.services.plans import Planner
from l1.api.services.publishing import PublishService
from l1.api.services.runs import RunService
from l1.assets import asset_path, known_assets
from l1.cache.activities import ActivityLog
from l1.cache.deletion import DeletionRules
from l1.cache.index import CacheIndex
from l1.cache.references import References
from l1.cache.store import ContentStore
from l1.connections import connect_nats, connect_redis
from l1.dispatch import Dispatcher
from l1.events.dead_letters import DeadLetters
from l1.events.publisher import Publisher
from l1.events.service import SubscriberService
from l1.events.streams import ensure_streams
from l1.l2_client import L2Client
from l1.recipe_store import RecipeStore
from l1.run_store import RunStore
from l1.workers.effects import EffectRegistry, default_effects

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.config.app import AppConfig
    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext
    from redis.asyncio import Redis

    from l1.assets import Asset
    from l1.settings import Settings

__all__ = ["L1Plugin"]


@dataclass(frozen=True, kw_only=True)
class Services:
    """What the controllers are given, built once per app start."""

    run_service: RunService
    cache_service: CacheService
    publish_service: PublishService
    deletion_rules: DeletionRules
    server_info: ServerInfo
    health_check: HealthCheck
    assets: dict[str, Asset]
    dead_letters: DeadLetters
    recipe_store: RecipeStore
    effects: EffectRegistry


class L1Plugin(InitPluginProtocol):
    """Adds L1's routes and owns its connections for the life of the app."""

    def __init__(self, settings: Settings, *, subscribers: bool = True) -> None:
        self._settings = settings
        self._subscribers = subscribers
        self._services: Services | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Register routes, dependency providers, error handlers and the lifespan."""
        app_config.route_handlers.extend(
            [
                InfoController,
                RunController,
                CacheController,
                RecipeController,
                EffectController,
                DeadLetterController,
            ]
        )
        app_config.guards.append(token_guard(self._settings.api_tokens))
        for name in Services.__dataclass_fields__:
            app_config.dependencies[name] = Provide(self._provider(name), sync_to_thread=False)
        app_config.exception_handlers.update(exception_handlers())
        app_config.lifespan.append(self._lifespan)
        app_config.request_max_body_size = self._settings.max_body_bytes
        return app_config

    def _provider(self, name: str) -> Callable[[], Any]:
        def provide() -> Any:
            if self._services is None:
                raise RuntimeError("the app has not started")
            return getattr(self._services, name)

        return provide

    @asynccontextmanager
    async def _lifespan(self, _: Litestar) -> AsyncIterator[None]:
        settings = self._settings
        assert settings.nats_url and settings.redis_url, "NATS and Redis URLs are required"
        async with AsyncExitStack() as stack:
            nc = await connect_nats(settings.nats_url, name="l1-api")
            stack.push_async_callback(nc.close)
            redis = connect_redis(settings.redis_url)
            stack.push_async_callback(redis.aclose)
            js = nc.jetstream()
            await ensure_streams(js, settings)

            l2 = L2Client(
                settings.l2_url,
                timeout=settings.l2_timeout,
                publish_timeout=settings.l2_publish_timeout,
                cache_seconds=settings.l2_cache_seconds,
            )
            stack.push_async_callback(l2.aclose)
            store = ContentStore(settings.cache_dir)
            services = self._build(settings, store=store, redis=redis, js=js, l2=l2, nc=nc)
            for name, asset in services.assets.items():
                await services.cache_service.store_file(asset_path(name), source=f"asset:{name}")
                # Named assets stay usable: they hold their item like a run would.
                await References(redis).hold(f"asset:{name}", [asset.content_hash])

            stop = asyncio.Event()
            tasks = [asyncio.create_task(services.run_service.waiter.listen(stop))]
            if self._subscribers:
                subscribers = SubscriberService.for_redis(nc, redis, store, settings)
                tasks.append(asyncio.create_task(subscribers.run(stop)))
            self._services = services
            try:
                yield
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._services = None

    @staticmethod
    def _build(
        settings: Settings,
        *,
        store: ContentStore,
        redis: Redis,
        js: JetStreamContext,
        l2: L2Client,
        nc: NATS,
    ) -> Services:
        runs, publisher, references = RunStore(redis), Publisher(nc), References(redis)
        effects, assets = default_effects(settings.effect_modules), known_assets()
        rules = DeletionRules(
            store=store,
            runs=runs,
            activities=ActivityLog(redis),
            references=references,
            l2=l2,
            publisher=publisher,
        )
        index, recipes = CacheIndex(redis), RecipeStore(redis)
        run_service = RunService(
            runs=runs,
            store=store,
            planner=Planner(effects=effects, recipes=recipes, assets=assets, store=store),
            dispatcher=Dispatcher(store=store, index=index, publisher=publisher),
            publisher=publisher,
            waiter=RunWaiter(redis, runs),
            references=references,
            rules=rules,
        )
        return Services(
            run_service=run_service,
            cache_service=CacheService(
                store=store,
                index=index,
                publisher=publisher,
                import_roots=settings.import_roots,
                max_upload_bytes=settings.max_upload_bytes,
            ),
            publish_service=PublishService(
                runs=run_service, l2=l2, references=references, public_url=settings.public_url
            ),
            deletion_rules=rules,
            server_info=ServerInfo(
                name="l1",
                version=l1.__version__,
                actor=settings.actor,
                public_url=settings.public_url,
                l2=settings.l2_url or "stand-alone: no L2 configured, nothing is published",
                effects=[effect.info() for effect in effects],
                assets=sorted(assets),
                health=Health(nats="ok", redis="ok"),
            ),
            health_check=HealthCheck(nc, redis),
            assets=assets,
            dead_letters=DeadLetters(js),
            recipe_store=recipes,
            effects=effects,
        )
