"""Serving a cached file: the whole of it or one byte range, with the hash as ETag."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

from aiofile import async_open
from litestar import Response
from litestar.datastructures import ETag
from litestar.response import File, Stream

__all__ = ["Unsatisfiable", "etag_matches", "file_response", "parse_range", "whole_file"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 20
# A position with more digits than this lies past the end of any file (and Python
# refuses to turn 4,300 digits or more into an int at all).
MAX_DIGITS = 18
# A stand-in for such a position: larger than any file's size.
BEYOND = 10**MAX_DIGITS


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
    if if_none_match and etag_matches(if_none_match, etag):
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


def etag_matches(if_none_match: str, etag: str) -> bool:
    """True when ``If-None-Match`` names ``etag`` (RFC 9110 13.1.2): ``*`` matches any
    existing item, and the comparison is weak, so ``W/"x"`` matches ``"x"``."""
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/").strip('"') == etag:
            return True
    return False


class Unsatisfiable(Exception):
    """The range lies outside the file (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, or None to send the whole file; :class:`Unsatisfiable`
    when the range lies outside it.

    An empty file has no byte to send: a suffix range over it (``bytes=-5``, which RFC
    9110 counts as satisfiable) gets the whole, empty file; any other range is 416."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: the whole file is a valid answer
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = _position(last)
        if length == 0:
            raise Unsatisfiable
        if size == 0:
            return None
        return max(size - length, 0), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise Unsatisfiable
    return start, end


def _position(digits: str) -> int:
    """A byte position as sent; one too long to be a position in any file is
    :data:`BEYOND` (what it means then: past the end)."""
    significant = digits.lstrip("0")
    return BEYOND if len(significant) > MAX_DIGITS else int(significant or "0")


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
