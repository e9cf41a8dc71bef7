"""One-statement units of work on PostgreSQL, run on the pooled DBAPI connection in autocommit.

A unit of work that is one statement needs no BEGIN and no COMMIT: outside a transaction
block PostgreSQL runs each statement as its own transaction, all of it or none. And
SQLAlchemy's Connection.execute costs about 90 us of CPU per statement on top of the
driver's (execution context, events, result set-up), as much again as the statement itself
on a short path like a paid start. So a ``SingleStatement`` is compiled by SQLAlchemy once
per dialect (its SQL, bind casts and bind and result processors) and runs straight on a
cursor of a pooled connection: the pool, and its check for connections the server closed,
stay SQLAlchemy's. Database errors surface as SQLAlchemy's exceptions (IntegrityError, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

Row = tuple[Any, ...]
_Processor = Callable[[Any], Any] | None
# SQL, values the statement carries, bind processors by name, result processors by column.
_Compiled = tuple[str, dict[str, Any], dict[str, Callable[[Any], Any]], tuple[_Processor, ...]]


def supported(engine: Engine) -> bool:
    """Whether single statements run on this engine: PostgreSQL through psycopg 3."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


class SingleStatement:
    """A Core statement (or ``text()`` with typed bind parameters), compiled on first use."""

    def __init__(self, statement: ClauseElement) -> None:
        """Runs on psycopg 3 (``supported``): it uses that driver's autocommit attribute."""
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:  # a race only compiles twice, to the same thing
            compiled: Any = self._statement.compile(dialect=dialect)
            if compiled.insert_prefetch or compiled.update_prefetch:
                # A column default or onupdate computed in Python: SQLAlchemy's execution
                # context does that, which this skips. Bind such columns explicitly.
                raise ValueError(f"the statement needs Python-side defaults: {compiled}")
            if compiled.escaped_bind_names:
                # A bind name the driver cannot take as it is ("a.b" is sent as "a_b"):
                # SQLAlchemy's execution context renames the values, which this skips.
                raise ValueError(f"the statement has bind names the driver escapes: {compiled}")
            defaults: dict[str, Any] = {}
            binds: dict[str, Callable[[Any], Any]] = {}
            for bind, name in compiled.bind_names.items():
                if not bind.required:  # a value the statement carries (a literal in WHERE)
                    defaults[name] = bind.effective_value
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    binds[name] = process
            columns = getattr(self._statement, "exported_columns", ())
            results = tuple(
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            )
            found = self._compiled[dialect.name] = (compiled.string, defaults, binds, results)
        return found

    def first(self, engine: Engine, values: Mapping[str, Any]) -> Row | None:
        """Run it (its own transaction); its first row, or None."""
        rows = self._run(engine, values, fetch=True)
        return rows[0] if rows else None

    def execute(self, engine: Engine, values: Mapping[str, Any]) -> int:
        """Run it (its own transaction); the number of rows it changed."""
        return int(self._run(engine, values, fetch=False)[0][0])

    def _run(self, engine: Engine, values: Mapping[str, Any], *, fetch: bool) -> list[Row]:
        dialect = engine.dialect
        sql, defaults, binds, results = self._compile(dialect)
        params = {**defaults, **values}
        for name, process in binds.items():
            if name in params:
                params[name] = process(params[name])
        with _autocommit_cursor(engine) as (pooled, cursor):
            try:
                cursor.execute(sql, params)
                if not fetch:
                    return [(cursor.rowcount,)]
                raw = cursor.fetchall()
            except dialect.loaded_dbapi.Error as exc:
                invalidated = dialect.is_disconnect(exc, pooled.driver_connection, cursor)
                if invalidated:  # a dropped connection is discarded, never pooled again
                    pooled.invalidate(exc)
                raise DBAPIError.instance(
                    sql, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
                    connection_invalidated=invalidated, dialect=dialect,
                ) from exc  # fmt: skip
        if not any(results):
            return [tuple(row) for row in raw]
        return [tuple(p(v) if p else v for p, v in zip(results, row, strict=True)) for row in raw]


@contextmanager
def _autocommit_cursor(engine: Engine) -> Iterator[tuple[Any, Any]]:
    """(the pooled connection, a cursor), the connection in autocommit until it goes back."""
    pooled = engine.raw_connection()  # the pool's checkout event replaces a dead connection
    try:
        connection: Any = pooled.driver_connection
        try:
            connection.autocommit = True
            cursor = connection.cursor()
            try:
                yield pooled, cursor
            finally:
                cursor.close()
        finally:
            if not (connection.closed or connection.broken):
                connection.autocommit = False
    finally:
        pooled.close()  # back to the pool (or away, if invalidated)
