"""What the provenance record says about the software and hardware that rendered."""

from __future__ import annotations

import os
import platform
import socket
from functools import cache
from pathlib import Path

import msgspec

import l1
from l1.identifiers import new_hasher, sha3_hex
from l1.schemas import Infrastructure, NamedHash

__all__ = ["infrastructure"]


def _software() -> NamedHash:
    # Hash of every installed source file, in a stable order: two workers with the
    # same code report the same software hash.
    package = Path(l1.__file__).parent
    hasher = new_hasher()
    for path in sorted(package.rglob("*.py")):
        hasher.update(path.relative_to(package).as_posix().encode() + b"\0")
        hasher.update(path.read_bytes())
    return NamedHash(name=f"l1 {l1.__version__}", content_hash=hasher.hexdigest())


def _hardware() -> NamedHash:
    description = {
        "host": socket.gethostname(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    return NamedHash(
        name=socket.gethostname(),
        content_hash=sha3_hex(msgspec.json.encode(description, order="sorted")),
    )


@cache
def infrastructure() -> Infrastructure:
    """This process's software and hardware, computed once."""
    return Infrastructure(software=_software(), hardware=_hardware())
