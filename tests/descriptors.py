"""Tests that need high file-descriptor numbers (select() refuses those >= 1024)."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def descriptors_above_1024(tmp_path: Path, count: int = 1100) -> Iterator[None]:
    """Hold ``count`` open files, so that sockets opened meanwhile get numbers above 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    filler = [open(tmp_path / "filler", "w") for _ in range(count)]  # noqa: SIM115
    try:
        yield
    finally:
        for handle in filler:
            handle.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
