"""``/cache``: the content-addressed store over HTTP.

Wherever a path names an item, a unique prefix of its hash (at least 4 characters) or
the name of an asset (``cat``) will do.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, delete, get, head, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter, QueryParameter
from litestar.response import File, Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from l1.api.downloads import file_response, whole_file
from l1.api.lookups import Lookups
from l1.api.openapi import (
    DEPENDENCIES,
    ITEM_RULES,
    LOOKUP,
    REDIS,
    WRITE,
    DescribeItem,
    DownloadItem,
    UploadBody,
    errors,
)
from l1.api.services.cache import CacheService
from l1.api.services.deletion import DeletionRules, GcReport, ItemMeta
from l1.api.uploads import FRAMING_ALLOWANCE, limited, multipart_file
from l1.cache.index import CacheItem
from l1.errors import InvalidInput, TooLarge
from l1.schemas import Page, Provenance, StoredItem

__all__ = ["CacheController", "item_response"]

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Items per page, 1 to 1000")]
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=512, description="From a previous page's `next_cursor`, as given"),
]
Cache = NamedDependency[CacheService]
Rules = NamedDependency[DeletionRules]
Ids = NamedDependency[Lookups]
Hash = Annotated[
    str,
    PathParameter(
        description="A content hash, a unique prefix of one (4 to 64 characters), or an asset name",
        # For the schema only: the lookup refuses anything else with a message saying so.
        schema_extra=ITEM_RULES,
    ),
]
# The answer of a store call: 201 when the item is new, 200 when the cache held it.
STORED = {
    200: ResponseSpec(StoredItem, generate_examples=False, description="Already in the cache"),
    201: ResponseSpec(StoredItem, generate_examples=False, description="Stored"),
}


async def item_response(
    request: Request, content_hash: str, cache_service: CacheService
) -> Response[bytes] | File | Stream:
    """The item ``content_hash`` (a full hash) as ``GET /cache/{content_hash}`` serves
    it: ``ETag``, ``Range`` (206), ``If-None-Match`` (304)."""
    path, item = await cache_service.locate(content_hash)
    return file_response(
        path,
        etag=content_hash,
        content_type=item.content_type,
        size=item.size,
        range_header=request.headers.get("range"),
        if_none_match=request.headers.get("if-none-match"),
    )


def _stored(item: StoredItem) -> Response[StoredItem]:
    return Response(item, status_code=HTTP_201_CREATED if item.created else HTTP_200_OK)


class CacheController(Controller):
    """Items of the content-addressed cache."""

    path = "/cache"
    tags = ["cache"]

    @get("/", summary="List cached items, most recent first", responses=errors(REDIS))
    async def list_items(
        self, cache_service: Cache, limit: Limit = 100, cursor: Cursor = None
    ) -> Page[CacheItem]:
        """Items of the cache index."""
        return await cache_service.page(limit=limit, cursor=cursor)

    @get(
        "/{content_hash:str}",
        summary="Download an item",
        operation_class=DownloadItem,
        responses=errors(LOOKUP, DEPENDENCIES),
    )
    async def download(
        self, request: Request, content_hash: Hash, cache_service: Cache, lookups: Ids
    ) -> Response[bytes] | File | Stream:
        """The item's bytes; ``ETag`` is its hash, ``Range`` requests get 206."""
        return await item_response(request, await lookups.content_hash(content_hash), cache_service)

    @head(
        "/{content_hash:str}",
        summary="An item's size, type and ETag",
        operation_class=DescribeItem,
        responses=errors(LOOKUP, DEPENDENCIES),
    )
    async def describe(self, content_hash: Hash, cache_service: Cache, lookups: Ids) -> File:
        """The headers a download would have, without the bytes."""
        content_hash = await lookups.content_hash(content_hash)
        path, item = await cache_service.locate(content_hash)
        return whole_file(path, etag=content_hash, content_type=item.content_type)

    @get(
        "/{content_hash:str}/provenance",
        summary="How an output was made",
        responses=errors(LOOKUP, REDIS),
    )
    async def provenance(
        self, content_hash: Hash, cache_service: Cache, lookups: Ids
    ) -> Provenance:
        """The provenance record of an output."""
        return await cache_service.provenance(await lookups.content_hash(content_hash))

    @get(
        "/{content_hash:str}/meta",
        summary="Who holds an item, and can it be deleted",
        responses=errors(LOOKUP, DEPENDENCIES),
    )
    async def meta(self, content_hash: Hash, deletion_rules: Rules, lookups: Ids) -> ItemMeta:
        """The runs using the item, whether it is published, and whether it may be deleted."""
        return await deletion_rules.meta(await lookups.content_hash(content_hash))

    @delete(
        "/{content_hash:str}",
        summary="Delete an item",
        responses=errors(WRITE, LOOKUP, DEPENDENCIES),
    )
    async def delete_item(self, content_hash: Hash, deletion_rules: Rules, lookups: Ids) -> None:
        """204 when deleted; 409 naming the rule that forbids it; 503 if L2 cannot be asked."""
        await deletion_rules.delete(await lookups.content_hash(content_hash))

    @post(
        "/gc",
        summary="Delete every item the rules allow",
        status_code=HTTP_200_OK,
        responses=errors(WRITE, DEPENDENCIES),
    )
    async def collect(
        self,
        deletion_rules: Rules,
        dry_run: Annotated[bool, QueryParameter(description="Only report")] = False,
    ) -> GcReport:
        """Deletes the orphaned, unpublished items; says what holds each other one."""
        return await deletion_rules.collect(dry_run=dry_run)

    @post(
        "/import",
        summary="Import a file from the server's filesystem",
        status_code=HTTP_201_CREATED,
        responses={**STORED, **errors(WRITE, LOOKUP, 413, 422, DEPENDENCIES, 507)},
    )
    async def import_path(
        self,
        cache_service: Cache,
        path: Annotated[
            str,
            QueryParameter(
                min_length=1,
                max_length=4096,
                description="An absolute path under one of the server's L1_IMPORT_ROOTS",
                schema_extra={"pattern": "^/"},  # for the schema only: 400 says so
            ),
        ],
    ) -> Response[StoredItem]:
        """Store the file at ``path``, which must lie under one of ``L1_IMPORT_ROOTS``."""
        return _stored(await cache_service.import_path(path))

    @post(
        "/",
        summary="Upload an item",
        request_max_body_size=None,
        operation_class=UploadBody,
        status_code=HTTP_201_CREATED,
        responses={**STORED, **errors(WRITE, 409, 413, DEPENDENCIES, 507)},
    )
    async def upload(self, request: Request, cache_service: Cache) -> Response[StoredItem]:
        """Store the request body, sent raw or as the one file of a multipart form.

        201 when the item is new, 200 when the cache already held it; 413 past
        ``L1_MAX_UPLOAD_BYTES``, at once when ``Content-Length`` says so.
        """
        limit = cache_service.max_upload_bytes
        content_type, options = request.content_type
        # Before reading a byte (and before "100 Continue"): a body announced too large.
        allowance = FRAMING_ALLOWANCE if content_type == RequestEncodingType.MULTI_PART else 0
        if (request.content_length or 0) > limit + allowance:
            raise TooLarge(f"upload is larger than the limit of {limit} bytes")
        if content_type == RequestEncodingType.MULTI_PART:
            body = limited(request.stream(), limit + FRAMING_ALLOWANCE)
            if "boundary" not in options:
                raise InvalidInput("multipart Content-Type has no boundary")
            return _stored(await cache_service.upload(multipart_file(body, options["boundary"])))
        return _stored(await cache_service.upload(request.stream()))
