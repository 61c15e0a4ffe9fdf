"""``/runs``: submit a run, list runs, read one (optionally waiting for it).

Wherever a path names a run, a unique prefix of its id will do (at least 4 characters).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import File, Stream
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from l1.api.controllers.cache import item_response
from l1.api.lookups import Lookups
from l1.api.openapi import (
    DEPENDENCIES,
    JSON_BODY,
    LOOKUP,
    REDIS,
    RUN_ID_RULES,
    WRITE,
    DownloadItem,
    RunBody,
    errors,
)
from l1.api.services.cache import CacheService
from l1.api.services.deletion import DiscardReport
from l1.api.services.publishing import PublishReport, PublishService
from l1.api.services.runs import RunService
from l1.schemas import Page, Run, RunStatus, RunSubmission, RunView
from l1.timing import Laps

__all__ = ["RunController"]

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Items per page, 1 to 1000")]
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=512, description="From a previous page's `next_cursor`, as given"),
]
Runs = NamedDependency[RunService]
Ids = NamedDependency[Lookups]
RunId = Annotated[
    str,
    PathParameter(
        description="A run id, or a unique prefix of one (4 to 64 characters)",
        # For the schema only: the lookup refuses anything else with a message saying so.
        schema_extra=RUN_ID_RULES,
    ),
]
# What an action on a run (cancel, retry, discard, publish) can answer besides success:
# 409 when the run's state refuses it.
ACTION = (*WRITE, *LOOKUP, *DEPENDENCIES)


def _run(status: int, description: str) -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(Run, generate_examples=False, description=description)}


class RunController(Controller):
    """Runs of recipes over inputs."""

    path = "/runs"
    tags = ["runs"]

    @post(
        "/",
        summary="Submit a run",
        status_code=HTTP_202_ACCEPTED,
        operation_class=RunBody,
        responses={
            **_run(200, "The same run, already finished"),
            **_run(202, "Accepted: queued or rendering"),
            **errors(WRITE, 409, JSON_BODY, DEPENDENCIES),
        },
    )
    async def submit(self, data: JSONBody[RunSubmission], run_service: Runs) -> Response[Run]:
        """Accept a run; 202 while it is queued or rendering, 200 when it already finished.

        The same recipe over the same inputs is the same run, so a repeat returns it.
        Inputs are content hashes, unique prefixes of them, or asset names.
        """
        laps = Laps()
        run, _ = await run_service.submit(data, requested_by="api", laps=laps)
        status = HTTP_200_OK if run.status.terminal else HTTP_202_ACCEPTED
        return Response(run, status_code=status, headers={"Server-Timing": laps.header()})

    @get("/", summary="List runs, newest first", responses=errors(REDIS))
    async def list_runs(
        self,
        run_service: Runs,
        limit: Limit = 100,
        cursor: Cursor = None,
        status: FromQuery[RunStatus | None] = None,
    ) -> Page[Run]:
        """Runs, newest first, optionally only those in one status."""
        return await run_service.page(limit=limit, cursor=cursor, status=status)

    @get(
        "/{run_id:str}",
        summary="Read a run",
        responses={
            200: ResponseSpec(data_container=RunView, description="The run"),
            **errors(LOOKUP, REDIS),
        },
    )
    async def get_run(
        self,
        run_id: RunId,
        run_service: Runs,
        wait: Annotated[
            float, QueryParameter(ge=0, le=300, description="Seconds to wait for the run to finish")
        ] = 0,
    ) -> Response[bytes]:
        """The run; with ``?wait=SECONDS`` the answer comes as soon as it finishes."""
        view = await run_service.view(run_id, wait=wait)
        return Response(view, media_type=MediaType.JSON)

    @get(
        "/{run_id:str}/preview",
        summary="Preview a run's output",
        operation_class=DownloadItem,
        responses=errors(LOOKUP, DEPENDENCIES),
    )
    async def preview(
        self,
        request: Request,
        run_id: RunId,
        run_service: Runs,
        cache_service: NamedDependency[CacheService],
    ) -> Response[bytes] | File | Stream:
        """The first part of a split render once it is rendered, then the whole output
        once the run completes; served as ``GET /cache/{content_hash}`` serves an item
        (ranges, ``ETag``). 404 before then, saying so."""
        content_hash = await run_service.preview(run_id)
        return await item_response(request, content_hash, cache_service)

    @post(
        "/{run_id:str}/cancel",
        summary="Cancel a run",
        status_code=HTTP_200_OK,
        responses=errors(ACTION),
    )
    async def cancel(self, run_id: RunId, run_service: Runs) -> Run:
        """Stop a pending run or ask the worker rendering it to stop; 409 once finished."""
        return await run_service.cancel(run_id)

    @post(
        "/{run_id:str}/retry",
        summary="Retry a failed or cancelled run",
        status_code=HTTP_202_ACCEPTED,
        responses=errors(ACTION),
    )
    async def retry(self, run_id: RunId, run_service: Runs) -> Run:
        """Send the run to the workers again; 409 unless it failed or was cancelled."""
        return await run_service.retry(run_id)

    @delete(
        "/{run_id:str}", summary="Discard a run", status_code=HTTP_200_OK, responses=errors(ACTION)
    )
    async def discard(
        self,
        run_id: RunId,
        run_service: Runs,
        cancel: Annotated[
            bool, QueryParameter(description="Cancel the run first if it has not finished")
        ] = False,
    ) -> DiscardReport:
        """Remove the run and its activity, then delete the items it leaves orphaned.

        409 if any of its items is published, or if it has not finished (unless
        ``?cancel=true``); 503 when L2 cannot be asked.
        """
        return await run_service.discard(run_id, cancel=cancel)

    @post(
        "/{run_id:str}/publish",
        summary="Publish a run to L2",
        status_code=HTTP_200_OK,
        responses=errors(ACTION),
    )
    async def publish(
        self, run_id: RunId, publish_service: NamedDependency[PublishService], lookups: Ids
    ) -> PublishReport:
        """Ask L2 to publish the run's output; its items can never be deleted afterwards."""
        return await publish_service.publish(await lookups.run_id(run_id))
