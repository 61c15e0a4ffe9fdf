"""Reading an upload as a stream of bytes, raw or as the one file of a multipart form.

Nothing is buffered whole: each chunk goes on to the store as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from multipart import MultipartError, MultipartSegment, PushMultipartParser

from l1.errors import InvalidInput, TooLarge

__all__ = ["limited", "multipart_file"]

# Room for the multipart framing and small form fields around the file.
FRAMING_ALLOWANCE = 1 << 20


async def limited(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, refusing with :class:`TooLarge` past ``max_bytes``."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise TooLarge(f"upload is larger than the limit of {max_bytes} bytes")
        yield chunk


async def multipart_file(chunks: AsyncIterator[bytes], boundary: str) -> AsyncIterator[bytes]:
    """The bytes of the single file in a ``multipart/form-data`` body, as they arrive."""
    files = 0
    in_file = False
    try:
        with PushMultipartParser(boundary, max_segment_count=32, strict=True) as parser:
            async for chunk in chunks:
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        in_file = part.filename is not None
                        files += in_file
                        if files > 1:
                            raise InvalidInput("a multipart upload must hold exactly one file")
                    elif part is None:
                        in_file = False
                    elif in_file:
                        yield bytes(part)
                if parser.closed:
                    break
    except MultipartError as error:
        raise InvalidInput(f"malformed multipart body: {error}") from None
    if files == 0:
        raise InvalidInput("the multipart form holds no file")
