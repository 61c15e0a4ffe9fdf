"""The plugin that wires L1 into a Litestar app: routes, dependencies, errors, and the
lifespan that owns the NATS and Redis connections and the background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from litestar.di import Provide
from litestar.plugins import InitPluginProtocol
from prometheus_client import CollectorRegistry

import l1
from l1.api.allow import answer_options
from l1.api.auth import token_guard
from l1.api.clean_paths import refuse_encoded_slashes
from l1.api.controllers import (
    CacheController,
    DeadLetterController,
    EffectController,
    InfoController,
    RecipeController,
    RunController,
)
from l1.api.controllers.fleet import FleetController
from l1.api.controllers.info import ServerInfo
from l1.api.crosssite import cross_site_guard
from l1.api.errors import exception_handlers
from l1.api.health import Health, HealthCheck
from l1.api.live import RunFeed, Seats
from l1.api.lookups import Lookups
from l1.api.metrics import ApiMetrics, MetricsController, http_metrics
from l1.api.run_waiter import RunWaiter
from l1.api.services.cache import CacheService
from l1.api.services.deletion import DeletionRules
from l1.api.services.fleet import Fleet
from l1.api.services.publishing import PublishService
from l1.api.services.runs import RunService
from l1.api.ui import Dashboard, DashboardController, Thumbnails, static_files, templates
from l1.assets import asset_path, known_assets
from l1.cache.activities import ActivityLog
from l1.cache.index import CacheIndex
from l1.cache.references import References
from l1.effects import EffectRegistry
from l1.events.dead_letters import DeadLetters
from l1.events.streams import READY_WITHIN
from l1.events.transient import patiently
from l1.l2_client import L2Client
from l1.runs.planner import Planner
from l1.runs.recipe_store import RecipeStore
from l1.runs.scheduler import Scheduler
from l1.runs.store import RunStore
from l1.runtime import settle_heap
from l1.wiring import Backbone, connected, subscribe

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.config.app import AppConfig

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
    lookups: Lookups
    fleet: Fleet
    api_metrics: ApiMetrics
    dashboard: Dashboard


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
                FleetController,
                MetricsController,
                DashboardController,
                static_files(),
            ]
        )
        app_config.template_config = templates()
        app_config.middleware.append(http_metrics().middleware)
        app_config.middleware.append(refuse_encoded_slashes)
        app_config.middleware.append(cross_site_guard(self._settings))
        app_config.middleware.append(answer_options)
        if self._settings.api_tokens:  # a guard costs every request a copy of its handler
            app_config.guards.append(token_guard(self._settings.api_tokens))
        for name in Services.__dataclass_fields__:
            app_config.dependencies[name] = Provide(self._provider(name), sync_to_thread=False)
        app_config.exception_handlers.update(exception_handlers())
        app_config.lifespan.append(self._lifespan)
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
        async with AsyncExitStack() as stack:
            backbone = await stack.enter_async_context(connected(settings, role="api"))
            l2 = L2Client(
                settings.l2_url,
                timeout=settings.l2_timeout,
                publish_timeout=settings.l2_publish_timeout,
                cache_seconds=settings.l2_cache_seconds,
            )
            stack.push_async_callback(l2.aclose)
            scheduler = backbone.scheduler()
            stack.push_async_callback(scheduler.close)
            services = self._build(backbone, l2, scheduler)
            await services.lookups.backfill()
            for name, asset in services.assets.items():
                # A cluster just started may still be electing the blob tier's leader:
                # ride that out as long as declaring the streams may (storing is idempotent).
                store = partial(
                    services.cache_service.store_file, asset_path(name), source=f"asset:{name}"
                )
                await patiently(store, within=READY_WITHIN, what=f"storing the asset {name}")
                # Named assets stay usable: they hold their item like a run would.
                await References(backbone.redis).hold(f"asset:{name}", [asset.content_hash])

            stack.callback(services.dashboard.thumbnails.close)
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(services.run_service.waiter.listen(stop)),
                asyncio.create_task(services.dashboard.feed.run(stop)),
                asyncio.create_task(
                    services.dashboard.thumbnails.forget_deleted(backbone.nc, stop)
                ),
            ]
            if self._subscribers:
                registry = services.api_metrics.registry  # theirs beside the API's
                tasks.append(asyncio.create_task(subscribe(backbone, stop, registry=registry)))
            tasks.append(asyncio.create_task(backbone.janitor().run(stop)))
            self._services = services
            settle_heap()
            try:
                yield
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._services = None

    @staticmethod
    def _build(backbone: Backbone, l2: L2Client, scheduler: Scheduler) -> Services:
        settings, redis, items = backbone.settings, backbone.redis, backbone.items
        runs, references = RunStore(redis), References(redis)
        effects, assets = backbone.effects, known_assets()
        publisher = backbone.publisher
        rules = DeletionRules(
            items=items,
            runs=runs,
            activities=ActivityLog(redis),
            references=references,
            l2=l2,
            publisher=publisher,
        )
        recipes = RecipeStore(redis)
        waiter = RunWaiter(redis, runs)
        fleet = Fleet(backbone.js)
        api_metrics = ApiMetrics(
            CollectorRegistry(), redis=redis, fleet=fleet, effects=[e.name for e in effects]
        )
        lookups = Lookups(redis, assets)
        run_service = RunService(
            runs=runs,
            items=items,
            planner=Planner(effects=effects, recipes=recipes, assets=assets),
            scheduler=scheduler,
            publisher=publisher,
            waiter=waiter,
            references=references,
            rules=rules,
            lookups=lookups,
        )
        return Services(
            run_service=run_service,
            cache_service=CacheService(
                items=items,
                index=CacheIndex(redis),
                references=references,
                publisher=publisher,
                import_roots=settings.import_roots,
                max_upload_bytes=settings.max_upload_bytes,
                max_import_bytes=settings.max_import_bytes,
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
            health_check=HealthCheck(backbone.nc, redis),
            assets=assets,
            dead_letters=DeadLetters(backbone.js),
            recipe_store=recipes,
            effects=effects,
            lookups=lookups,
            fleet=fleet,
            api_metrics=api_metrics,
            dashboard=Dashboard(
                thumbnails=Thumbnails(
                    settings.cache_dir / "thumbs",
                    max_pixels=settings.max_pixels,
                    seconds=settings.thumbnail_timeout,
                    memory=settings.thumbnail_memory,
                ),
                feed=RunFeed(
                    backbone.nc,
                    runs=runs,
                    waiter=waiter,
                    listeners=[api_metrics.observe],
                    seats=Seats(
                        total=settings.feed_max_clients,
                        per_address=settings.feed_max_per_address,
                    ),
                ),
                tokens_required=bool(settings.api_tokens),
                version=l1.__version__,
            ),
        )
