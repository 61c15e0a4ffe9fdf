"""``/cache``: uploads, imports, downloads and the index, against a running L1."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from PIL import Image

from l1.settings import Settings
from tests.harness import Harness, upload, wait_for


def sha3(data: bytes) -> str:
    """The content hash of ``data``."""
    return hashlib.sha3_256(data).hexdigest()


def stored_files(settings: Settings) -> set[str]:
    """Names of every object file and temporary file under the cache directory."""
    return {p.name for p in settings.cache_dir.rglob("*") if p.is_file()}


def small_png(seed: int) -> bytes:
    """A PNG of a few pixels whose bytes depend on ``seed``."""
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), color=(seed % 256, 40, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def small_uploads(settings: Settings) -> AsyncIterator[Harness]:
    """An L1 whose uploads may be at most 1000 bytes."""
    limited = msgspec.structs.replace(settings, max_upload_bytes=1000)
    async with Harness(limited).running() as harness:
        yield harness


async def test_raw_upload_is_addressed_by_sha3(l1: Harness) -> None:
    data = b"raw bytes \x00\x01\x02 " * 10
    first = await l1.http.post("/cache", content=data)
    assert first.status_code == 201, first.text
    assert first.json()["content_hash"] == sha3(data)
    assert first.json()["size"] == len(data)

    files_before = stored_files(l1.settings)
    again = await l1.http.post("/cache", content=data)
    assert again.status_code == 200, again.text
    assert again.json()["content_hash"] == sha3(data)
    assert stored_files(l1.settings) == files_before
    assert sha3(data) in files_before


async def test_multipart_upload_matches_raw(l1: Harness) -> None:
    data = b"the same bytes, sent as a form " + os.urandom(16)
    multipart = await l1.http.post(
        "/cache", files={"file": ("anything.bin", data, "application/octet-stream")}
    )
    assert multipart.status_code == 201, multipart.text
    raw = await l1.http.post("/cache", content=data)
    assert raw.status_code == 200, raw.text
    assert multipart.json()["content_hash"] == raw.json()["content_hash"] == sha3(data)
    assert (await l1.http.get(f"/cache/{sha3(data)}")).content == data


async def test_upload_past_the_limit_is_refused_and_not_kept(small_uploads: Harness) -> None:
    l1 = small_uploads
    fits = b"f" * 1000
    assert (await l1.http.post("/cache", content=fits)).status_code == 201
    files_before = stored_files(l1.settings)

    too_big = b"x" * 1001
    raw = await l1.http.post("/cache", content=too_big)
    assert raw.status_code == 413, raw.text
    assert raw.json()["detail"]
    form = await l1.http.post("/cache", files={"file": ("big.bin", too_big)})
    assert form.status_code == 413, form.text

    assert stored_files(l1.settings) == files_before
    assert (await l1.http.get(f"/cache/{sha3(too_big)}")).status_code == 404


async def test_download_whole_item(l1: Harness) -> None:
    data = b"download me, every byte"
    content_hash = await upload(l1.http, data)
    response = await l1.http.get(f"/cache/{content_hash}")
    assert response.status_code == 200
    assert response.content == data
    assert content_hash in response.headers["etag"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_content_type_comes_from_the_bytes(l1: Harness) -> None:
    png = small_png(1)
    content_hash = await upload(l1.http, png)
    response = await l1.http.get(f"/cache/{content_hash}")
    assert response.headers["content-type"] == "image/png"
    assert response.content == png
    text = await upload(l1.http, b"plain words, no magic number")
    assert (await l1.http.get(f"/cache/{text}")).headers["content-type"] != "image/png"


async def test_if_none_match_answers_304(l1: Harness) -> None:
    content_hash = await upload(l1.http, b"cached by the client")
    for tag in (f'"{content_hash}"', content_hash, f'"other", "{content_hash}"'):
        response = await l1.http.get(f"/cache/{content_hash}", headers={"If-None-Match": tag})
        assert response.status_code == 304, (tag, response.text)
        assert response.content == b""
    other = await l1.http.get(f"/cache/{content_hash}", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200


async def test_range_requests_get_exact_bytes(l1: Harness) -> None:
    data = b"0123456789abcdef"
    content_hash = await upload(l1.http, data)
    cases = [("bytes=2-5", b"2345", "bytes 2-5/16"), ("bytes=-3", b"def", "bytes 13-15/16")]
    cases.append(("bytes=10-", b"abcdef", "bytes 10-15/16"))
    for header, body, content_range in cases:
        response = await l1.http.get(f"/cache/{content_hash}", headers={"Range": header})
        assert response.status_code == 206, (header, response.text)
        assert response.content == body, header
        assert response.headers["content-range"] == content_range
        assert content_hash in response.headers.get("etag", "")


async def test_unsatisfiable_range_is_416(l1: Harness) -> None:
    data = b"short"
    content_hash = await upload(l1.http, data)
    response = await l1.http.get(f"/cache/{content_hash}", headers={"Range": "bytes=999999-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(data)}"


MALFORMED = ["xyz", "abc", "A" * 64, "a" * 65, "g" * 64, "%2E%2E", "%00", "a" * 5000]


async def test_malformed_hashes_are_400(l1: Harness) -> None:
    for bad in MALFORMED:
        for suffix in ("", "/provenance"):
            response = await l1.http.get(f"/cache/{bad}{suffix}")
            assert response.status_code == 400, (bad, suffix, response.text)
            assert response.json()["detail"]


async def test_encoded_traversal_never_reaches_a_file(l1: Harness) -> None:
    for path in ("/cache/..%2Fetc%2Fpasswd", "/cache/..%2F..%2F..%2Fetc%2Fpasswd"):
        response = await l1.http.get(path)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert b"root:" not in response.content


async def test_encoded_traversal_is_a_malformed_hash(l1: Harness) -> None:
    response = await l1.http.get("/cache/..%2Fetc%2Fpasswd")
    assert response.status_code == 400, response.text


async def test_unknown_hash_is_404(l1: Harness) -> None:
    unknown = sha3(b"never uploaded")
    for suffix in ("", "/provenance"):
        response = await l1.http.get(f"/cache/{unknown}{suffix}")
        assert response.status_code == 404, response.text
        assert response.json()["detail"]


async def _import(l1: Harness, path: Path | str) -> Any:
    """``POST /cache/import?path=``; the response."""
    return await l1.http.post("/cache/import", params={"path": str(path)})


async def test_import_inside_root(l1: Harness) -> None:
    root = l1.settings.import_roots[0]
    data = b"a file the server may read"
    (root / "nested").mkdir()
    target = root / "nested" / "ok.bin"
    target.write_bytes(data)
    first = await _import(l1, target)
    assert first.status_code == 201, first.text
    assert first.json()["content_hash"] == sha3(data)
    assert (await _import(l1, target)).status_code == 200
    assert (await l1.http.get(f"/cache/{sha3(data)}")).content == data


async def test_import_refuses_paths_outside_root(l1: Harness, tmp_path: Path) -> None:
    root = l1.settings.import_roots[0]
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"not for import")
    (root / "link.bin").symlink_to(outside)
    (root / "dirlink").symlink_to(tmp_path)
    cases: list[tuple[str, int]] = [
        (str(outside), 403),
        (str(root / "link.bin"), 403),
        (str(root / "dirlink" / "secret.bin"), 403),
        (f"{root}/../secret.bin", 403),
        ("imports/secret.bin", 400),
        ("secret.bin", 400),
        (str(root / "missing.bin"), 404),
    ]
    for path, status in cases:
        response = await _import(l1, path)
        assert response.status_code == status, (path, response.text)
        assert response.json()["detail"]
    assert sha3(b"not for import") not in stored_files(l1.settings)


async def test_import_of_a_directory_is_refused(l1: Harness) -> None:
    root = l1.settings.import_roots[0]
    (root / "folder").mkdir()
    response = await _import(l1, root / "folder")
    assert 400 <= response.status_code < 500, response.text


async def _listed(l1: Harness, limit: int) -> list[dict[str, Any]]:
    """Every item of ``GET /cache``, following the pages of ``limit`` items."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await l1.http.get("/cache", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


async def test_cache_index_lists_uploads_and_paginates(l1: Harness) -> None:
    blobs = [f"indexed item {i}".encode() for i in range(5)]
    hashes = [await upload(l1.http, blob) for blob in blobs]

    async def all_indexed() -> list[dict[str, Any]] | None:
        items = await _listed(l1, 1000)
        return items if set(hashes) <= {i["content_hash"] for i in items} else None

    everything = await wait_for(all_indexed)
    by_hash = {item["content_hash"]: item for item in everything}
    for blob, content_hash in zip(blobs, hashes, strict=True):
        assert by_hash[content_hash]["size"] == len(blob)

    paged = await _listed(l1, 2)
    assert [i["content_hash"] for i in paged] == [i["content_hash"] for i in everything]
    assert len({i["content_hash"] for i in paged}) == len(paged)
    stored_at = [i["stored_at"] for i in paged]
    assert stored_at == sorted(stored_at, reverse=True)

    for query in ({"limit": 0}, {"limit": 1001}, {"cursor": "garbage"}):
        assert (await l1.http.get("/cache", params=query)).status_code == 400, query
