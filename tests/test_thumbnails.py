"""Thumbnails of hostile media: refused before decoding when over the pixel limit, made
in processes that are killed past their time limit and fail past their memory limit,
and never in the way of an ordinary thumbnail."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import msgspec
import pytest
from PIL import Image

from l1.api.ui.thumbs import Thumbnails, ThumbnailsUnavailable
from l1.settings import Settings
from tests.harness import Harness, upload, wait_for
from tests.media import make_image

HUGE = 16_000  # a side of the frame: 256 megapixels, over the default limit of 50


@pytest.fixture(scope="session")
def huge_video() -> bytes:
    """A Matroska file of one flat 16000x16000 H.264 frame (well under a megabyte)."""
    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width = stream.height = HUGE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51", "threads": "1"}
        frame = av.VideoFrame(HUGE, HUGE, "gray")  # flat: its planes are zeros
        frame.pts, frame.time_base = 0, Fraction(1, 1)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    """A flat picture: big in pixels, small in bytes."""
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 1).save(buffer, format="PNG")
    return buffer.getvalue()


def _kept(l1: Harness, content_hash: str) -> Path:
    return l1.settings.cache_dir / "thumbs" / content_hash[:2] / f"{content_hash}.jpg"


def _thumbnail_processes() -> set[int]:
    """This process's live thumbnail processes (the API runs in it)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if (
            fields.get("PPid", "").strip() == str(os.getpid())
            and not fields.get("State", "").startswith("Z")
            and b"l1.cache.thumbnails" in command
        ):
            found.add(int(entry.name))
    return found


@contextlib.asynccontextmanager
async def _deployment(settings: Settings, **limits: float) -> AsyncIterator[Harness]:
    """A deployment whose thumbnails have ``limits``."""
    async with Harness(msgspec.structs.replace(settings, **limits)).running() as harness:
        yield harness


async def test_a_video_frame_over_the_pixel_limit_is_refused_before_it_is_decoded(
    l1: Harness, huge_video: bytes
) -> None:
    item = await upload(l1.http, huge_video)
    response = await l1.http.get(f"/ui/thumbs/{item}")
    assert response.status_code == 422, response.text
    # Said by the check of the stream's header: a decoded frame would not be refused so.
    detail = response.json()["detail"]
    assert f"the video is {HUGE}x{HUGE}" in detail and "limit is 50 megapixels" in detail
    assert "max-age=60" in response.headers["cache-control"]
    assert not _kept(l1, item).exists()
    again = await l1.http.get(f"/ui/thumbs/{item}")  # remembered, not tried again
    assert (again.status_code, again.json()["detail"]) == (422, detail)


async def test_a_picture_over_the_pixel_limit_is_refused(l1: Harness) -> None:
    # 64 megapixels: past L1_MAX_PIXELS, yet under twice it, where Pillow only warns.
    item = await upload(l1.http, _png(8000, 8000, mode="1"))
    response = await l1.http.get(f"/ui/thumbs/{item}")
    assert response.status_code == 422, response.text
    assert "the image is 8000x8000 (64 megapixels)" in response.json()["detail"]
    assert not _kept(l1, item).exists()


async def test_a_thumbnail_is_made_while_oversized_ones_are_refused(
    l1: Harness, huge_video: bytes
) -> None:
    # Each a different item: a byte more at the end changes the hash, not the video.
    huge = [await upload(l1.http, huge_video + bytes([n])) for n in range(4)]
    ordinary = await upload(l1.http, _png(640, 480))
    answers = await asyncio.gather(
        *(l1.http.get(f"/ui/thumbs/{item}") for item in [*huge, ordinary])
    )
    assert [answer.status_code for answer in answers] == [422, 422, 422, 422, 200]
    assert answers[-1].headers["content-type"] == "image/jpeg"
    assert answers[-1].content[:2] == b"\xff\xd8"
    assert _kept(l1, ordinary).read_bytes() == answers[-1].content


async def test_a_thumbnail_over_its_time_limit_is_killed(settings: Settings) -> None:
    async with _deployment(settings, thumbnail_timeout=0.02) as l1:
        # 25 megapixels: allowed, but no machine decodes and scales them in 20 ms.
        item = await upload(l1.http, _png(5000, 5000))
        response = await l1.http.get(f"/ui/thumbs/{item}")
        assert response.status_code == 422, response.text
        assert "took longer than 0.02 s" in response.json()["detail"]

        async def killed() -> bool:  # an abandoned process would stay, idle, once done
            return not _thumbnail_processes()

        await wait_for(killed, timeout=5)
        assert not _kept(l1, item).exists()


async def test_a_thumbnail_over_its_memory_limit_fails_and_the_next_is_made(
    settings: Settings,
) -> None:
    async with _deployment(settings, thumbnail_memory=128 << 20) as l1:
        big = await upload(l1.http, _png(7000, 7000))  # 147 MB once decoded
        response = await l1.http.get(f"/ui/thumbs/{big}")
        assert response.status_code == 422, response.text
        assert "needed more than 128 MiB" in response.json()["detail"]
        ordinary = await upload(l1.http, _png(640, 480))
        assert (await l1.http.get(f"/ui/thumbs/{ordinary}")).status_code == 200


async def test_no_thumbnail_process_able_to_start_is_a_503_not_a_refusal(
    settings: Settings,
) -> None:
    async with _deployment(settings, thumbnail_memory=8 << 20) as l1:  # too little to start
        item = await upload(l1.http, _png(640, 480))
        for _ in range(2):  # not remembered against the item: tried again each time
            response = await l1.http.get(f"/ui/thumbs/{item}")
            assert response.status_code == 503, response.text
            assert "no thumbnail process could start" in response.json()["detail"]
            assert response.headers["retry-after"] == "2"
            assert response.headers["cache-control"] == "no-store"


async def test_a_request_is_answered_at_once_when_no_process_is_free(tmp_path: Path) -> None:
    big, small = tmp_path / "big.png", make_image(tmp_path / "small.png")
    big.write_bytes(_png(7000, 7000))
    thumbnails = Thumbnails(
        tmp_path / "thumbs",
        max_pixels=50_000_000,
        seconds=30.0,
        memory=0,
        processes=1,
        waiting=0,
    )

    async def started() -> set[int]:  # the process starts once it has the one slot
        return _thumbnail_processes()

    busy = asyncio.create_task(thumbnails.get("ab" * 32, big, "image/png"))
    try:
        await wait_for(started)
        with pytest.raises(ThumbnailsUnavailable, match="too many thumbnails are waiting"):
            await thumbnails.get("cd" * 32, small, "image/png")
        assert await busy == thumbnails.path("ab" * 32)
        assert await thumbnails.get("cd" * 32, small, "image/png") is not None
    finally:
        thumbnails.close()
