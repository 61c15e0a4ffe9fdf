"""List cursors and download byte ranges, without servers."""

from __future__ import annotations

import pytest

from l1.api.downloads import Unsatisfiable, etag_matches, parse_range
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


HUGE = "9" * 5000  # past the 4,300 digits Python turns into an int


@pytest.mark.parametrize(
    ("header", "span"),
    [
        (f"bytes=0-{HUGE}", (0, 99)),  # a last byte past the end is the end
        (f"bytes=-{HUGE}", (0, 99)),  # a suffix longer than the file is all of it
        (f"bytes={'0' * 5000}-9", (0, 9)),  # leading zeros are still a position
        ("bytes=90-99999999999999999999", (90, 99)),
    ],
)
def test_absurdly_long_numbers_in_a_range_mean_past_the_end(
    header: str, span: tuple[int, int]
) -> None:
    assert parse_range(header, 100) == span


@pytest.mark.parametrize("header", [f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE}"])
def test_a_range_starting_absurdly_far_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


def test_an_empty_file_has_no_range_to_send() -> None:
    # A suffix range is satisfiable over an empty file (RFC 9110 14.1.1) but has no byte
    # to name in a Content-Range: the whole (empty) file is the answer.
    assert parse_range("bytes=-5", 0) is None
    for header in ("bytes=0-", "bytes=0-0", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(header, 0)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ("*", True),
        ('"x", W/"abc"', True),
        ('"x",W/"y" , "abc"', True),
        ('"x", W/"y"', False),
        ('"abcd"', False),
        ('W/"ab"', False),
    ],
)
def test_if_none_match_compares_weakly(header: str, matches: bool) -> None:
    assert etag_matches(header, "abc") is matches
