"""Bad requests get a 4xx with a JSON ``detail`` a person can act on, never a 5xx."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from tests.harness import Harness


def sha3(data: bytes) -> str:
    """The content hash of ``data``."""
    return hashlib.sha3_256(data).hexdigest()


def refused(response: httpx.Response, *statuses: int) -> str:
    """The ``detail`` of a refusal with one of ``statuses`` (any 4xx when none given)."""
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.text)
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


async def _post_run(l1: Harness, body: Any) -> httpx.Response:
    return await l1.http.post("/runs", json=body)


async def test_unknown_recipe_is_422_naming_it(l1: Harness) -> None:
    detail = refused(await _post_run(l1, {"recipe": "no-such-effect", "inputs": ["cat"]}), 422)
    assert "no-such-effect" in detail


async def test_input_neither_hash_nor_asset_is_422(l1: Harness) -> None:
    detail = refused(await _post_run(l1, {"recipe": "dog", "inputs": ["a-horse"]}), 422)
    assert "a-horse" in detail


async def test_malformed_hash_input_is_400(l1: Harness) -> None:
    for bad in ("A" * 64, "0123456789ABCDEF" * 4, "a" * 65):
        refused(await _post_run(l1, {"recipe": "dog", "inputs": [bad]}), 400)


async def test_hash_prefix_input_matching_nothing_is_422(l1: Harness) -> None:
    for prefix in ("a" * 63, "abcd"):
        detail = refused(await _post_run(l1, {"recipe": "dog", "inputs": [prefix]}), 422)
        assert prefix in detail


async def test_valid_hash_missing_from_cache_is_422(l1: Harness) -> None:
    missing = sha3(b"never stored anywhere")
    detail = refused(await _post_run(l1, {"recipe": "identity", "inputs": [missing]}), 422)
    assert missing in detail


async def test_wrong_number_of_inputs_is_4xx(l1: Harness) -> None:
    refused(await _post_run(l1, {"recipe": "identity", "inputs": ["cat", "dog"]}))


SHAPES: list[Any] = [
    {"inputs": ["cat"]},
    {"recipe": "dog"},
    {"recipe": "dog", "inputs": "cat"},
    {"recipe": 7, "inputs": ["cat"]},
    {"recipe": "dog", "inputs": [7]},
    {"recipe": "dog", "inputs": [None]},
    {"recipe": "dog", "inputs": ["cat"], "output_name": 3},
    {"recipe": "dog", "inputs": ["cat"], "colour": "blue"},
    {"recipe": "dog", "inputs": []},
    {"recipe": "dog", "inputs": [""]},
    {"recipe": "", "inputs": ["cat"]},
    {"recipe": "dog", "inputs": ["cat"] * 100_000},
    {"recipe": "d" * 200_000, "inputs": ["cat"]},
    {"recipe": "dog", "inputs": ["c" * 200_000]},
    {"recipe": "dog", "inputs": ["cat"], "output_name": "o" * 200_000},
    {"recipe": "dog", "inputs": ["cat"], "output_name": "line\nbreak"},
    {"recipe": "dog", "inputs": ["cat"], "output_name": "bell\x07"},
    {"recipe": "dog", "inputs": ["cat"], "output_name": "nul\x00"},
    {"recipe": "dog", "inputs": ["cat"], "output_name": "del\x7f"},
    {"recipe": "dog", "inputs": ["cat"], "output_name": ""},
    {"recipe": "dog\x00", "inputs": ["cat"]},
    {"recipe": "dog", "inputs": ["cat\n"]},
    ["dog", "cat"],
    "dog",
    None,
]


async def test_malformed_bodies_are_4xx_with_detail(l1: Harness) -> None:
    for body in SHAPES:
        refused(await _post_run(l1, body))
    listed = (await l1.http.get("/runs")).json()["items"]
    assert listed == [], "a refused submission must not create a run"


async def test_unparseable_bodies_are_400(l1: Harness) -> None:
    headers = {"Content-Type": "application/json"}
    for raw in (b"{not json", b"", b"\xff\xfe", b'{"recipe": "dog", "inputs": ["cat"]'):
        response = await l1.http.post("/runs", content=raw, headers=headers)
        refused(response, 400)


async def test_deeply_nested_json_is_400(l1: Harness) -> None:
    for raw in (b"[" * 10_000, b'{"recipe": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"):
        response = await l1.http.post(
            "/runs", content=raw, headers={"Content-Type": "application/json"}
        )
        refused(response, 400)


async def test_ten_megabyte_body_is_413(l1: Harness) -> None:
    body = b'{"recipe": "dog", "inputs": ["' + b"c" * (10 << 20) + b'"]}'
    response = await l1.http.post(
        "/runs", content=body, headers={"Content-Type": "application/json"}
    )
    refused(response, 413)


async def test_run_lookups_with_bad_ids(l1: Harness) -> None:
    refused(await l1.http.get("/runs/not-a-hash"), 400)
    refused(await l1.http.get(f"/runs/{'A' * 64}"), 400)
    refused(await l1.http.get(f"/runs/{'a' * 65}"), 400)
    refused(await l1.http.get("/runs/abc"), 400)  # a prefix is at least 4 characters
    refused(await l1.http.get(f"/runs/{'a' * 63}"), 404)  # a prefix of no run
    refused(await l1.http.get(f"/runs/{sha3(b'no such run')}"), 404)


async def test_wait_outside_its_range_is_400(l1: Harness) -> None:
    run_id = sha3(b"no such run")
    for wait in ("-1", "100000", "soon", "nan"):
        refused(await l1.http.get(f"/runs/{run_id}", params={"wait": wait}), 400)
