"""The content-addressed store on a real file system: files and streams taken in block
by block arrive whole and hash to what they hold, written past the page cache where the
file system allows and through it where it does not, and an item's media type is
recorded when it is stored."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from l1.cache import incoming as incoming_module
from l1.cache.incoming import ALIGN, BLOCK, Incoming
from l1.cache.store import MEDIA_TYPE, ContentStore
from l1.errors import TooLarge
from l1.identifiers import sha3_hex

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


def odd_sized(path: Path) -> bytes:
    """A file across several blocks, ending part-way into one (and into a page)."""
    data = PNG + os.urandom(2 * BLOCK + 3 * ALIGN + 12345)
    path.write_bytes(data)
    return data


def assert_copied_in_whole(tmp_path: Path) -> None:
    data = odd_sized(tmp_path / "source")
    incoming = Incoming(tmp_path / "scratch", max_bytes=len(data))
    with (tmp_path / "source").open("rb", buffering=0) as source:
        incoming.copy_from(source)
    incoming.finish()
    assert incoming.content_hash == sha3_hex(data)
    assert (tmp_path / "scratch").read_bytes() == data


def direct_writes_work(directory: Path) -> bool:
    try:
        os.close(os.open(directory / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        return False
    return True


def test_a_file_read_in_is_stored_whole(store: ContentStore, tmp_path: Path) -> None:
    data = odd_sized(tmp_path / "source")
    item = store.commit(store.receive_file(tmp_path / "source"))
    assert item.content_hash == sha3_hex(data)
    assert (item.size, item.content_type) == (len(data), "image/png")
    assert store.path_for(item.content_hash).read_bytes() == data


def test_a_stored_file_bypasses_the_page_cache(store: ContentStore, tmp_path: Path) -> None:
    if not direct_writes_work(tmp_path):
        pytest.skip("this file system takes no direct writes")
    odd_sized(tmp_path / "source")
    item = store.commit(store.receive_file(tmp_path / "source"))
    fd = os.open(store.path_for(item.content_hash), os.O_RDONLY)
    try:
        # Asked not to wait for the disk, a read of a block written directly finds
        # nothing in the cache.
        with pytest.raises(BlockingIOError):
            os.preadv(fd, [bytearray(ALIGN)], BLOCK, os.RWF_NOWAIT)
    finally:
        os.close(fd)


def test_a_pipe_is_read_in(tmp_path: Path) -> None:
    data = odd_sized(tmp_path / "source")
    read_end, write_end = os.pipe()

    def feed() -> None:
        with open(write_end, "wb") as pipe:
            pipe.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    incoming = Incoming(tmp_path / "scratch", max_bytes=len(data))
    with open(read_end, "rb", buffering=0) as source:
        incoming.copy_from(source)
    incoming.finish()
    feeder.join()
    assert incoming.content_hash == sha3_hex(data)
    assert (tmp_path / "scratch").read_bytes() == data


def test_without_direct_writes_the_page_cache_takes_every_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: Path, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "no direct writes here")
        return real_open(path, flags, *args)

    monkeypatch.setattr(incoming_module.os, "open", no_direct)
    assert_copied_in_whole(tmp_path)


def test_a_direct_write_refused_part_way_goes_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some file systems open for direct writes and then refuse one: that block and the
    # rest are written through the cache, and nothing is lost or written twice.
    if not direct_writes_work(tmp_path):
        pytest.skip("this file system takes no direct writes")
    real_pwrite, direct_writes = os.pwrite, []

    def refuse_second(fd: int, data: memoryview, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            direct_writes.append(offset)
            if len(direct_writes) == 2:
                raise OSError(errno.EINVAL, "not this one")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(incoming_module.os, "pwrite", refuse_second)
    assert_copied_in_whole(tmp_path)
    assert direct_writes == [0, BLOCK]


async def test_a_stream_is_taken_in_whole(tmp_path: Path) -> None:
    data = odd_sized(tmp_path / "source")
    sizes = [1, 65536, 3, BLOCK, 100_000]

    async def chunks() -> AsyncIterator[bytes]:
        at = 0
        while at < len(data):
            size = sizes[at % len(sizes)]
            yield data[at : at + size]
            at += size

    incoming = Incoming(tmp_path / "scratch", max_bytes=len(data))
    await incoming.receive(chunks())
    incoming.finish()
    assert incoming.content_hash == sha3_hex(data)
    assert (tmp_path / "scratch").read_bytes() == data


def test_a_copy_past_the_limit_is_refused(tmp_path: Path) -> None:
    data = odd_sized(tmp_path / "source")
    incoming = Incoming(tmp_path / "scratch", max_bytes=len(data) - 1)
    with pytest.raises(TooLarge), (tmp_path / "source").open("rb", buffering=0) as source:
        incoming.copy_from(source)
    incoming.close()


def test_blocks_written_one_by_one_hash_to_what_they_hold(tmp_path: Path) -> None:
    blocks = [os.urandom(size) for size in (10, BLOCK, BLOCK + 1, 3 * BLOCK, 7)]
    incoming = Incoming(tmp_path / "scratch", max_bytes=1 << 30)
    for block in blocks:
        incoming.write(block)
    incoming.finish()
    data = b"".join(blocks)
    assert incoming.content_hash == sha3_hex(data)
    assert (tmp_path / "scratch").read_bytes() == data


def test_the_media_type_is_recorded_when_stored(store: ContentStore, tmp_path: Path) -> None:
    (tmp_path / "picture").write_bytes(PNG + os.urandom(1000))
    item = store.commit(store.receive_file(tmp_path / "picture"))
    path = store.path_for(item.content_hash)
    assert os.getxattr(path, MEDIA_TYPE) == b"image/png"
    assert store.describe(item.content_hash).content_type == "image/png"
    # An item stored before types were recorded is described from its bytes.
    os.chmod(path, 0o644)
    os.removexattr(path, MEDIA_TYPE)
    assert store.describe(item.content_hash).content_type == "image/png"
