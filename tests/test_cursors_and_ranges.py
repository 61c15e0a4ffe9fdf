"""List cursors and download byte ranges, without servers."""

from __future__ import annotations

import pytest

from l1.api.downloads import Unsatisfiable, parse_range
from l1.errors import InvalidInput
from l1.pagination import check_limit, decode_cursor, encode_cursor


@pytest.mark.parametrize("member", ["a" * 64, "name with spaces:and:colons", "é"])
def test_a_cursor_names_its_item_and_nothing_else(member: str) -> None:
    cursor = encode_cursor(1_763_890_000_123_456, member)
    assert decode_cursor(cursor) == (1_763_890_000_123_456, member)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor


@pytest.mark.parametrize("cursor", ["not base64!", "bm90LWEtbnVtYmVy", "//8", ""])
def test_a_cursor_the_server_never_gave_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        decode_cursor(cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limits_outside_one_to_a_thousand_are_refused(limit: int) -> None:
    with pytest.raises(InvalidInput, match="between 1 and 1000"):
        check_limit(limit)
    assert check_limit(1) == 1 and check_limit(1000) == 1000


@pytest.mark.parametrize(
    ("header", "span"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=90-1000", (90, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file is a valid answer
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_ranges_within_the_file(header: str | None, span: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300", "bytes=9-5", "bytes=-0"])
def test_ranges_outside_the_file_are_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)
