"""The content-addressed store on a real file system: files copied in by the kernel or
read in block by block arrive whole and hash to what they hold, and an item's media
type is recorded when it is stored."""

from __future__ import annotations

import errno
import mmap
import os
import threading
from pathlib import Path

import pytest

from l1.cache import incoming as incoming_module
from l1.cache.incoming import BLOCK, COPY_CHUNK, Incoming
from l1.cache.store import MEDIA_TYPE, ContentStore
from l1.errors import TooLarge
from l1.identifiers import sha3_hex

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


def odd_sized(path: Path) -> bytes:
    """A file across several copy chunks and blocks, ending part-way into one."""
    data = PNG + os.urandom(2 * COPY_CHUNK + 3 * BLOCK + 12345)
    path.write_bytes(data)
    return data


def test_a_file_copied_in_by_the_kernel_is_stored_whole(
    store: ContentStore, tmp_path: Path
) -> None:
    data = odd_sized(tmp_path / "source")
    item = store.commit(store.receive_file(tmp_path / "source"))
    assert item.content_hash == sha3_hex(data)
    assert (item.size, item.content_type) == (len(data), "image/png")
    assert store.path_for(item.content_hash).read_bytes() == data


def test_a_file_the_kernel_cannot_copy_is_read_in(tmp_path: Path) -> None:
    # A pipe is no file to copy_file_range: the same bytes come in by reading.
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


def test_a_copy_that_cannot_be_mapped_is_read_in_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file system that cannot map files: the kernel's copy is dropped and the file
    # read in from the start instead.
    def unmappable(*args: object, **kwargs: object) -> mmap.mmap:
        raise OSError(errno.ENODEV, "no mmap here")

    monkeypatch.setattr(incoming_module.mmap, "mmap", unmappable)
    data = odd_sized(tmp_path / "source")
    incoming = Incoming(tmp_path / "scratch", max_bytes=len(data))
    with (tmp_path / "source").open("rb", buffering=0) as source:
        incoming.copy_from(source)
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
        incoming.write(bytearray(block))
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
