"""Serving a cached file: the whole of it or one byte range, with the hash as ETag."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

from aiofile import async_open
from litestar import Response
from litestar.datastructures import ETag
from litestar.response import File, Stream

__all__ = ["Unsatisfiable", "file_response", "parse_range", "whole_file"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 20


def file_response(
    path: Path,
    *,
    etag: str,
    content_type: str,
    size: int,
    range_header: str | None,
    if_none_match: str | None,
) -> Response[bytes] | File | Stream:
    """A response for ``path``; honours ``Range`` (one range) and ``If-None-Match``."""
    headers = {"X-Content-Type-Options": "nosniff", "Accept-Ranges": "bytes"}
    if if_none_match and etag in {tag.strip().strip('"') for tag in if_none_match.split(",")}:
        return Response(b"", status_code=304, headers={**headers, "ETag": f'"{etag}"'})
    try:
        span = parse_range(range_header, size)
    except Unsatisfiable:
        return Response(
            b"", status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
        )
    if span is None:
        return whole_file(path, etag=etag, content_type=content_type)
    start, end = span
    return Stream(
        _read(path, start, end),
        status_code=206,
        media_type=content_type,
        headers={
            **headers,
            "ETag": f'"{etag}"',
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-Length": str(end - start + 1),
        },
    )


def whole_file(path: Path, *, etag: str, content_type: str) -> File:
    """The whole of ``path`` (for ``HEAD``, its headers only)."""
    return File(
        path,
        media_type=content_type,
        headers={"X-Content-Type-Options": "nosniff", "Accept-Ranges": "bytes"},
        etag=ETag(value=etag),
        content_disposition_type="inline",
        filename=etag,
    )


class Unsatisfiable(Exception):
    """The range lies outside the file (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, or None to send the whole file; :class:`Unsatisfiable`
    when the range lies outside it."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: the whole file is a valid answer
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            raise Unsatisfiable
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise Unsatisfiable
    return start, end


async def _read(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    remaining = end - start + 1
    async with async_open(path, "rb") as reader:
        reader.seek(start)
        while remaining > 0:
            chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
