"""``/`` server info and ``/assets`` the known named assets."""

from __future__ import annotations

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.response import Redirect

from l1.api.health import Health, HealthCheck
from l1.api.openapi import errors
from l1.assets import Asset
from l1.effects import EffectInfo
from l1.schemas import Page

__all__ = ["InfoController", "ServerInfo"]


class ServerInfo(msgspec.Struct, kw_only=True):
    """What this server is and whether its dependencies answer."""

    name: str
    version: str
    actor: str
    public_url: str
    l2: str
    effects: list[EffectInfo]
    assets: list[str]
    health: Health


class InfoController(Controller):
    """The server itself."""

    tags = ["server"]

    @get(
        "/",
        summary="Server info",
        responses={
            200: ResponseSpec(data_container=ServerInfo, description="The server"),
            302: ResponseSpec(None, description="A browser (asking for HTML) is sent to /ui"),
            **errors(),
        },
    )
    async def info(
        self,
        request: Request,
        server_info: NamedDependency[ServerInfo],
        health_check: NamedDependency[HealthCheck],
    ) -> Response[bytes] | Redirect:
        """Name, version, the identity renders are signed with, effects, and health. A
        browser (asking for HTML before JSON) is sent to the dashboard at ``/ui``."""
        if request.accept.best_match([MediaType.JSON, MediaType.HTML]) == MediaType.HTML:
            return Redirect("/ui")
        info = msgspec.structs.replace(server_info, health=await health_check())
        return Response(msgspec.json.encode(info), media_type=MediaType.JSON)

    @get(
        "/health",
        summary="Readiness: do NATS and Redis answer",
        responses={
            200: ResponseSpec(Health, generate_examples=False, description="Both answer"),
            503: ResponseSpec(Health, generate_examples=False, description="One does not"),
            **errors(),
        },
    )
    async def health(self, health_check: NamedDependency[HealthCheck]) -> Response[Health]:
        """200 when every dependency answers, 503 naming the one that does not."""
        health = await health_check()
        return Response(health, status_code=200 if health.ready else 503)

    @get("/health/live", summary="Liveness: the process answers", responses=errors())
    async def live(self) -> dict[str, bool]:
        """Always 200 while the process serves requests."""
        return {"live": True}

    @get("/assets", summary="Known named assets", responses=errors())
    async def assets(self, assets: NamedDependency[dict[str, Asset]]) -> Page[Asset]:
        """Named media a run may use in place of a hash: every one, in one page."""
        return Page(items=list(assets.values()))
