"""``/ui``: the dashboard's pages, server-rendered, and the live feed they listen to.

Every page is a GET and reads through the same services as the API, so it needs no
token; the buttons on it call the API's own endpoints, which ask for one when the
server has tokens.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, PathParameter, QueryParameter
from litestar.response import File, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage

from l1.api.errors import STATUS
from l1.api.live import RunFeed, Seat
from l1.api.lookups import Lookups
from l1.api.services.cache import CacheService
from l1.api.services.deletion import DeletionRules, ItemMeta
from l1.api.services.fleet import Fleet
from l1.api.services.runs import RunService
from l1.api.ui.thumbs import ThumbnailRefused, Thumbnails, ThumbnailsUnavailable
from l1.api.ui.views import layout, param_fields
from l1.assets import Asset
from l1.effects import EffectRegistry
from l1.errors import L1Error, NotFound
from l1.events.dead_letters import DeadLetters
from l1.runs.recipe_store import RecipeStore
from l1.schemas import RunStatus, RunView

__all__ = ["Dashboard", "DashboardController"]

# A quiet stream says so this often, so that a dead connection is noticed.
KEEP_ALIVE = 15.0
# Seconds a page refused a place on the live feed is asked to wait before trying again.
RETRY_AFTER = 5
PAGE = 50
# Seconds a thumbnail asked for while every thumbnail process is busy should wait.
THUMBNAIL_RETRY = 2
_view_decoder = msgspec.json.Decoder(RunView)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, kw_only=True)
class Dashboard:
    """What the pages need beyond the API's services."""

    thumbnails: Thumbnails
    feed: RunFeed
    tokens_required: bool
    version: str


Board = NamedDependency[Dashboard]
Runs = NamedDependency[RunService]
Cache = NamedDependency[CacheService]
Ids = NamedDependency[Lookups]
RunId = Annotated[str, PathParameter(description="A run id or a unique prefix of one")]
Cursor = Annotated[str | None, QueryParameter(max_length=512)]


def _page(name: str, board: Dashboard, section: str, **context: Any) -> Template:
    return Template(
        template_name=name,
        context={
            "section": section,
            "tokens_required": board.tokens_required,
            "version": board.version,
            **context,
        },
    )


def _error_page(request: Request, error: L1Error) -> Response[Any]:
    """A domain error as a page of the dashboard (the API's answer is JSON); the live
    feed and the thumbnails keep the API's plain status."""
    status = STATUS.get(type(error), 500)
    if not request.url.path.startswith(("/ui/thumbs", "/ui/events")):
        context = {"section": "", "tokens_required": False, "version": "", "status": status}
        context["message"] = str(error)[:500]
        return Template(template_name="error.html", context=context, status_code=status)
    return Response({"status_code": status, "detail": str(error)[:500]}, status_code=status)


class DashboardController(Controller):
    """The dashboard."""

    path = "/ui"
    include_in_schema = False
    exception_handlers = {L1Error: _error_page}

    @get("/")
    async def runs(
        self,
        dashboard: Board,
        run_service: Runs,
        status: Annotated[RunStatus | None, QueryParameter()] = None,
        cursor: Cursor = None,
    ) -> Template:
        """Runs, newest first, updated live."""
        page = await run_service.page(limit=PAGE, cursor=cursor, status=status)
        return _page(
            "runs.html",
            dashboard,
            "runs",
            runs=page.items,
            next_cursor=page.next_cursor,
            status=status,
            statuses=list(RunStatus),
        )

    @get("/runs/{run_id:str}")
    async def run(
        self,
        dashboard: Board,
        run_service: Runs,
        cache_service: Cache,
        lookups: Ids,
        run_id: RunId,
        part: Annotated[str | None, QueryParameter(pattern="^(detail|row)$")] = None,
    ) -> Template:
        """One run: its steps as a graph, output, timings and provenance; ``part``
        renders only the piece a live page swaps in."""
        full_id = await lookups.run_id(run_id)
        run = _view_decoder.decode(await run_service.view(full_id))
        if part == "row":
            return _page("_run_row.html", dashboard, "runs", run=run)
        output_type = None
        if run.output_hash:
            try:
                _, stored = await cache_service.locate(run.output_hash)
                output_type = stored.content_type
            except L1Error:
                output_type = None  # deleted since, or not yet here
        template = "_run_detail.html" if part == "detail" else "run.html"
        return _page(
            template, dashboard, "runs", run=run, graph=layout(run), output_type=output_type
        )

    @get("/cache")
    async def cache(
        self,
        dashboard: Board,
        cache_service: Cache,
        deletion_rules: NamedDependency[DeletionRules],
        cursor: Cursor = None,
    ) -> Template:
        """Cached items with thumbnails, who holds each, and whether it may go."""
        page = await cache_service.page(limit=PAGE, cursor=cursor)
        metas = await asyncio.gather(
            *(_meta(deletion_rules, item.content_hash) for item in page.items)
        )
        return _page(
            "cache.html",
            dashboard,
            "cache",
            items=list(zip(page.items, metas, strict=True)),
            next_cursor=page.next_cursor,
        )

    @get("/effects")
    async def effects(
        self,
        dashboard: Board,
        effects: NamedDependency[EffectRegistry],
        recipe_store: NamedDependency[RecipeStore],
        assets: NamedDependency[dict[str, Asset]],
        cache_service: Cache,
    ) -> Template:
        """Every effect with its parameters and a form to render it; the recipes."""
        infos = [effect.info() for effect in effects]
        recipes = await recipe_store.page(limit=100, cursor=None)
        recent = await cache_service.page(limit=30, cursor=None)
        return _page(
            "effects.html",
            dashboard,
            "effects",
            effects=[(info, param_fields(info.params)) for info in infos],
            recipes=recipes.items,
            assets=sorted(assets.values(), key=lambda asset: asset.name),
            recent=recent.items,
        )

    @get("/workers")
    async def workers(
        self,
        dashboard: Board,
        fleet: NamedDependency[Fleet],
        part: Annotated[str | None, QueryParameter(pattern="^fleet$")] = None,
    ) -> Template:
        """Live workers and the queues; ``part=fleet`` for the refreshing piece."""
        workers, queues = await asyncio.gather(fleet.workers(), fleet.queues())
        name = "_fleet.html" if part else "workers.html"
        return _page(name, dashboard, "workers", workers=workers, queues=queues)

    @get("/dead")
    async def dead(
        self,
        dashboard: Board,
        dead_letters: NamedDependency[DeadLetters],
        run_service: Runs,
    ) -> Template:
        """Dead letters, newest first, with their runs' current status."""
        letters = await dead_letters.latest(limit=PAGE)
        statuses = {}
        for letter in letters:
            try:
                statuses[letter.run_id] = str((await run_service.get(letter.run_id)).status)
            except L1Error:
                statuses[letter.run_id] = "discarded"
        return _page("dead.html", dashboard, "dead", letters=letters, statuses=statuses)

    @get("/thumbs/{content_hash:str}", cache_control=None)
    async def thumbnail(
        self, dashboard: Board, cache_service: Cache, lookups: Ids, content_hash: FromPath[str]
    ) -> Response[Any]:
        """A small JPEG of an image or of a video's first frame; 404 for other items,
        422 when none can be made of the item (over the pixel limit, undecodable, over
        its time or memory), 503 with a Retry-After while the thumbnail processes are
        busy. Pages show the item's kind where an answer is not a picture."""
        full = await lookups.content_hash(content_hash)
        path, item = await cache_service.locate(full)
        try:
            thumb = await dashboard.thumbnails.get(full, path, item.content_type)
        except ThumbnailRefused as refused:
            # Remembered for a while on the server; a browser may keep it a minute.
            headers = {"Cache-Control": "private, max-age=60"}
            return _no_thumbnail(422, f"no thumbnail of {full}: {refused}", headers)
        except ThumbnailsUnavailable as busy:
            headers = {"Cache-Control": "no-store", "Retry-After": str(THUMBNAIL_RETRY)}
            return _no_thumbnail(503, str(busy), headers)
        if thumb is None:
            raise NotFound(f"{full} has no thumbnail ({item.content_type})")
        return File(
            thumb,
            media_type="image/jpeg",
            content_disposition_type="inline",
            # Content-addressed: the picture of a hash never changes.
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    @get("/events")
    async def events(self, request: Request, dashboard: Board) -> Response[Any]:
        """Run updates as server-sent events (``event: run``, data: the update as JSON);
        429 with a Retry-After when too many pages listen already."""
        address = request.client.host if request.client else ""
        seat = dashboard.feed.seats.take(address)
        if seat is None:
            detail = dashboard.feed.seats.refusal(address)
            return Response(
                {"status_code": 429, "detail": detail},
                status_code=429,
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        stream = _stream(dashboard.feed, seat)
        # A stream that never starts (the client left at once) gives its seat back too.
        weakref.finalize(stream, seat.release)
        return ServerSentEvent(stream, retry_duration=1000)


async def _stream(feed: RunFeed, seat: Seat) -> AsyncIterator[ServerSentEventMessage]:
    try:
        with feed.updates() as page:
            yield ServerSentEventMessage(comment="listening")
            while True:
                try:
                    update = await page.next(KEEP_ALIVE)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                if update is None:  # too far behind: ended, the browser reconnects
                    return
                yield ServerSentEventMessage(event="run", data=_encoder.encode(update).decode())
    finally:
        seat.release()


def _no_thumbnail(status: int, detail: str, headers: dict[str, str]) -> Response[Any]:
    body = {"status_code": status, "detail": detail[:500]}
    return Response(body, status_code=status, headers=headers)


async def _meta(rules: DeletionRules, content_hash: str) -> ItemMeta | None:
    try:
        return await rules.meta(content_hash)
    except L1Error:  # L2 away, or deleted meanwhile: shown as unknown
        return None
