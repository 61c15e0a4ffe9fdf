"""Errors as they should be, against a running L1: absurd numbers in a Range, bodies
nested past all reason, a full disk, numbers written two ways, empty items, weak ETags,
ids smuggling a '/', and copies that change on disk without a trace."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from l1.cache.index import CacheIndex
from l1.cache.items import Items
from l1.cache.references import References
from l1.cache.repair import IndexRepair
from l1.cache.scrubber import Scrubber
from l1.cache.store import ContentStore
from l1.effects import default_effects
from l1.runs.recipes import parse_recipe, recipe_hash
from l1.settings import Settings
from tests.harness import Harness, upload, wait_for

HUGE = "9" * 5000  # past the 4,300 digits Python turns into an int


def sha3(data: bytes) -> str:
    """The content hash of ``data``."""
    return hashlib.sha3_256(data).hexdigest()


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """Log records that carry a traceback, as text."""
    return [
        r.getMessage()[:200]
        for r in records
        if r.exc_info or "Traceback" in r.getMessage() or "RecursionError" in r.getMessage()
    ]


# --- finding: numbers and bodies that break the parser ---------------------------------


async def test_an_absurdly_long_range_number_is_answered_not_a_500(
    l1: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    size = int((await l1.http.head("/cache/cat")).headers["content-length"])

    far = await l1.http.get("/cache/cat", headers={"Range": f"bytes={HUGE}-"})
    assert far.status_code == 416, far.text
    assert far.headers["content-range"] == f"bytes */{size}"

    to_the_end = await l1.http.get("/cache/cat", headers={"Range": f"bytes=0-{HUGE}"})
    assert to_the_end.status_code == 206, to_the_end.text
    assert to_the_end.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    assert len(to_the_end.content) == size

    suffix = await l1.http.get("/cache/cat", headers={"Range": f"bytes=-{HUGE}"})
    assert suffix.status_code == 206 and len(suffix.content) == size
    assert tracebacks(caplog.records) == []


async def test_json_nested_past_all_reason_is_400_and_logs_no_traceback(
    l1: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for body in (b"[" * 100_000, b'{"recipe": ' + b"[" * 100_000):
        response = await l1.http.post(
            "/runs", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert "nested too deeply" in response.json()["detail"]
    assert tracebacks(caplog.records) == []


# --- finding: a full disk --------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (mounting one needs root; the test is skipped, saying so, without)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: a full disk needs a small tmpfs to fill")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(path: Path) -> None:
    """Write ``path`` until its file system has no space left."""
    block = b"\0" * (64 << 10)
    with path.open("wb", buffering=0) as ballast:
        try:
            while True:
                ballast.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error


def files_under(root: Path) -> set[str]:
    """Every file under ``root``, as paths relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def test_a_full_disk_answers_507_keeps_nothing_and_recovers_once_freed(
    settings: Settings, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = small_disk / "cache"
    on_small_disk = msgspec.structs.replace(settings, cache_dir=cache)
    data = os.urandom(256 << 10)
    imported = settings.import_roots[0] / "picture.bin"
    imported.write_bytes(data)
    async with Harness(on_small_disk).running() as l1:
        ballast = small_disk / "ballast"
        fill(ballast)
        before = files_under(cache)

        uploaded = await l1.http.post("/cache", content=data)
        assert uploaded.status_code == 507, uploaded.text
        assert "no space left" in uploaded.json()["detail"]
        assert files_under(cache) == before, "a refused upload left something behind"

        multipart = await l1.http.post("/cache", files={"file": ("picture.bin", data)})
        assert multipart.status_code == 507, multipart.text
        imports = await l1.http.post("/cache/import", params={"path": str(imported)})
        assert imports.status_code == 507, imports.text
        assert files_under(cache) == before, "a refused import left something behind"

        ballast.unlink()
        again = await l1.http.post("/cache", content=data)
        assert again.status_code == 201, again.text
        assert again.json()["content_hash"] == sha3(data)
        assert (await l1.http.get(f"/cache/{sha3(data)}")).content == data
    assert tracebacks(caplog.records) == []


# --- finding: one number, one id ---------------------------------------------------------


async def test_minus_zero_and_zero_are_the_same_run_and_the_same_step(l1: Harness) -> None:
    runs = []
    for radius in (-0.0, 0.0, 0):
        response = await l1.http.post(
            "/runs", json={"recipe": "blur", "inputs": ["cat"], "params": {"radius": radius}}
        )
        assert response.status_code in {200, 202}, response.text
        runs.append(response.json())
    assert len({run["run_id"] for run in runs}) == 1, [run["run_id"] for run in runs]
    assert len({run["steps"][-1]["cache_id"] for run in runs}) == 1
    assert runs[0]["steps"][-1]["params"]["radius"] == 0.0
    # Other values are other work.
    other = await l1.http.post(
        "/runs", json={"recipe": "blur", "inputs": ["cat"], "params": {"radius": 0.5}}
    )
    assert other.json()["run_id"] != runs[0]["run_id"]


def test_a_recipe_writing_minus_zero_is_the_recipe_writing_zero() -> None:
    effects = default_effects(())

    def recipe(degrees: str) -> bytes:
        return (
            "name: turned\ninputs: [{name: picture}]\nnodes:\n"
            "  - {id: src, type: SOURCE, config: {input: picture}}\n"
            "  - {id: out, type: EFFECT, config: {effect: hue_shift, params: {degrees: "
            + degrees
            + "}}, inputs: [src]}\noutput: out\n"
        ).encode()

    hashes = {recipe_hash(parse_recipe(recipe(d), effects)) for d in ("-0.0", "0.0")}
    assert len(hashes) == 1
    assert recipe_hash(parse_recipe(recipe("0.5"), effects)) not in hashes


# --- finding: ranges over an empty item, and weak ETags ---------------------------------


async def test_an_empty_item_is_served_whole_for_a_suffix_range_and_416_otherwise(
    l1: Harness,
) -> None:
    empty = await upload(l1.http, b"")
    suffix = await l1.http.get(f"/cache/{empty}", headers={"Range": "bytes=-5"})
    assert suffix.status_code == 200, (suffix.status_code, suffix.headers)
    assert suffix.content == b"" and "content-range" not in suffix.headers
    for header in ("bytes=0-", "bytes=0-0"):
        refused = await l1.http.get(f"/cache/{empty}", headers={"Range": header})
        assert refused.status_code == 416, refused.text
        assert refused.headers["content-range"] == "bytes */0"


async def test_if_none_match_is_weak_takes_star_and_lists(l1: Harness) -> None:
    data = b"an item for conditional requests"
    content_hash = await upload(l1.http, data)
    for header in (f'W/"{content_hash}"', "*", f'"other", W/"{content_hash}"', f'"{content_hash}"'):
        response = await l1.http.get(f"/cache/{content_hash}", headers={"If-None-Match": header})
        assert response.status_code == 304, (header, response.status_code)
        assert response.content == b""
    changed = await l1.http.get(f"/cache/{content_hash}", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200 and changed.content == data


# --- finding: ids come from clean path segments ------------------------------------------


async def test_an_encoded_slash_in_an_id_is_refused_before_any_lookup(l1: Harness) -> None:
    run = (await l1.http.post("/runs", json={"recipe": "identity", "inputs": ["cat"]})).json()
    run_id = run["run_id"]
    for method, path in (
        ("GET", "/cache/cat%2Fmeta"),
        ("GET", "/cache/cat%2fprovenance"),
        ("POST", f"/runs/{run_id}%2Fcancel"),
        ("POST", f"/runs/{run_id[:8]}%2Fretry"),
        ("DELETE", f"/runs/{run_id}%2F"),
        ("GET", "/runs/abcd%2Fnothing%2Fhere"),
    ):
        response = await l1.http.request(method, path)
        assert response.status_code == 400, (method, path, response.status_code, response.text)
        assert "encoded '/'" in response.json()["detail"]
    assert (await l1.http.get(f"/runs/{run_id}")).json()["status"] != "cancelled"
    # Clean paths, and a '/' encoded in a query string, are as they were.
    assert (await l1.http.get("/cache/cat/meta")).status_code == 200
    imported = l1.settings.import_roots[0] / "a file.bin"
    imported.write_bytes(b"imported through an encoded path")
    response = await l1.http.post("/cache/import", params={"path": str(imported)})
    assert response.status_code == 201, response.text


# --- finding: a copy edited in place, its size and times kept ---------------------------


def edit_in_place(path: Path) -> None:
    """Change a byte of ``path`` and put its modification time back as it was."""
    before = path.stat()
    os.chmod(path, 0o644)
    with path.open("r+b") as file:
        first = file.read(1)
        file.seek(0)
        file.write(bytes([first[0] ^ 0xFF]))
    os.chmod(path, 0o444)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert settings.redis_url
    client = Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_copy_edited_in_place_is_found_by_the_scrubber_and_never_served_again(
    l1: Harness, redis: Redis
) -> None:
    data = os.urandom(300_000)
    content_hash = await upload(l1.http, data)
    store = ContentStore(l1.settings.cache_dir)
    edit_in_place(store.path_for(content_hash))
    # The seal (size and modification time) cannot see it: only reading it through can.
    served = await l1.http.get(f"/cache/{content_hash}")
    assert served.status_code == 200 and served.content != data

    items = Items(store)
    report = await Scrubber(items, bytes_per_second=0).once()
    assert report.damaged == [content_hash]
    assert report.checked >= 4  # the assets and the upload
    missing = await l1.http.get(f"/cache/{content_hash}")
    assert missing.status_code == 404, missing.text
    assert store.was_damaged(content_hash)

    # On one machine that copy was the only one: the index says the item is lost.
    repair = IndexRepair(items=items, index=CacheIndex(redis), references=References(redis))
    mended = await repair.once()
    assert mended is not None and "1 damaged item(s) marked lost" in mended
    cat = (await l1.http.head("/cache/cat")).headers["etag"].strip('"')

    async def lost_alone() -> bool:
        listed = {
            i["content_hash"]: i["lost"] for i in (await l1.http.get("/cache")).json()["items"]
        }
        return listed.get(content_hash) is True and listed.get(cat) is False

    await wait_for(lost_alone)
    assert await repair.once() is None  # marked once

    # The same bytes stored again bring it back.
    assert (await l1.http.post("/cache", content=data)).status_code == 201
    assert (await l1.http.get(f"/cache/{content_hash}")).content == data

    async def back() -> bool:
        listed = (await l1.http.get("/cache")).json()["items"]
        return any(i["content_hash"] == content_hash and not i["lost"] for i in listed)

    await wait_for(back)


async def test_the_scrubber_keeps_to_its_rate(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "cache")
    for seed in range(4):
        store.put_file(_written(tmp_path / f"in-{seed}", os.urandom(128 << 10)))
    rate = 1 << 20  # 512 KiB to read: at least half a second
    started = time.monotonic()
    report = await Scrubber(Items(store), bytes_per_second=rate).once()
    took = time.monotonic() - started
    assert (report.checked, report.bytes, report.damaged) == (4, 512 << 10, [])
    assert took >= (512 << 10) / rate * 0.95, took


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
