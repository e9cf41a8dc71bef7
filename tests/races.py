"""A race harness: N real threads released together by a barrier, results in thread order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Index, text

from payment_service.db import Base, Database

T = TypeVar("T")


def race(n: int, work: Callable[[int], T], timeout: float = 60) -> list[T]:
    barrier = threading.Barrier(n)
    results: list[T | BaseException | None] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


@contextmanager
def without_index(
    db: Database, table: str, index_name: str, *, clear_first: list[str]
) -> Iterator[None]:
    """Drop a guard index for a control experiment, and put it back (after emptying the tables
    whose duplicate rows would stop a unique index from being rebuilt)."""
    index = next(i for i in Base.metadata.tables[table].indexes if i.name == index_name)
    assert isinstance(index, Index)
    with db.engine.begin() as connection:
        connection.execute(text(f'DROP INDEX "{index_name}"'))
    try:
        yield
    finally:
        with db.engine.begin() as connection:
            for name in clear_first:
                connection.execute(text(f'DELETE FROM "{name}"'))
            index.create(connection)
