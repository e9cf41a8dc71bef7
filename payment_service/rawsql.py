"""Hot-path SQL: Core statements compiled once per dialect and run on the DBAPI cursor.

SQLAlchemy's Connection.execute costs 100-200 µs of CPU per statement (cache key, execution
context, result metadata), and the ORM Session more; on the two hot paths (creating a checkout,
claiming and recording callback deliveries) that was most of the request. There, a `Statement`
is compiled by SQLAlchemy once per dialect and run straight on the connection's DBAPI cursor
with SQLAlchemy's own bind and result processors: the SQL, the stored formats and the pooled,
checked connection are SQLAlchemy's; only the per-execution machinery is skipped. A `Tx`
also offers an ORM Session on the same transaction, for the rare paths that need models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from payment_service.db import Database

Row = tuple[Any, ...]
_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # parameter names in order, for qmark drivers (SQLite)
    defaults: dict[str, Any]  # values the statement itself carries (literals in a WHERE)
    binds: dict[str, Callable[[Any], Any]]  # name -> bind processor, where there is one
    results: tuple[_Processor, ...]  # per result column

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        merged = {**self.defaults, **values} if self.defaults else dict(values)
        for name, process in self.binds.items():
            if name in merged:
                merged[name] = process(merged[name])
        if self.positional is not None:
            return tuple(merged[name] for name in self.positional)
        return merged

    def row(self, raw: Sequence[Any]) -> Row:
        if not any(self.results):
            return tuple(raw)
        return tuple(p(v) if p else v for p, v in zip(self.results, raw, strict=True))


class Statement:
    """A Core statement (or one per dialect name, from a function), compiled on first use.

    Every value a statement needs must be passed when it runs: column defaults computed in
    Python are SQLAlchemy's execution machinery, which this skips (compiling refuses them)."""

    def __init__(
        self,
        statement: ClauseElement | Callable[[str], ClauseElement],
        *,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        self._build = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver)
        found = self._compiled.get(key)
        if found is None:  # a race only compiles twice, to the same thing
            found = self._compiled[key] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        build = self._build
        statement = build if isinstance(build, ClauseElement) else build(dialect.name)
        compiled: Any = statement.compile(dialect=dialect, column_keys=self._column_keys)
        if compiled.insert_prefetch or compiled.update_prefetch or compiled.escaped_bind_names:
            raise ValueError(f"not runnable without SQLAlchemy's execution context: {compiled}")
        defaults: dict[str, Any] = {}
        binds: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                defaults[name] = bind.effective_value
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds[name] = process
        columns = getattr(statement, "exported_columns", ())
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        positional = tuple(compiled.positiontup) if dialect.positional else None
        return _Compiled(compiled.string, positional, defaults, binds, results)


class Tx:
    """One transaction on a pooled connection: raw statements, and an ORM Session on the same
    transaction for what needs models. Database errors surface as SQLAlchemy's exceptions
    (IntegrityError, OperationalError, ...), as they would through a Session."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.is_postgresql = self.dialect.name == "postgresql"
        self._dbapi_connection: Any = connection.connection.dbapi_connection
        self._cursor: Any = self._dbapi_connection.cursor()  # one per transaction, reused
        self._session: Session | None = None

    def execute(self, statement: Statement, values: Mapping[str, Any] | None = None) -> int:
        """Run a statement; the number of rows it changed (for INSERT, UPDATE, DELETE)."""
        self._run(statement.compiled(self.dialect), values or {})
        return int(self._cursor.rowcount)

    def execute_many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per row of values (psycopg pipelines them: one round trip)."""
        compiled = statement.compiled(self.dialect)
        self._flush_session()
        try:
            self._cursor.executemany(compiled.sql, [compiled.parameters(row) for row in rows])
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._translated(exc, compiled.sql) from exc

    def all(self, statement: Statement, values: Mapping[str, Any] | None = None) -> list[Row]:
        compiled = statement.compiled(self.dialect)
        self._run(compiled, values or {})
        return [compiled.row(raw) for raw in self._cursor.fetchall()]

    def first(self, statement: Statement, values: Mapping[str, Any] | None = None) -> Row | None:
        rows = self.all(statement, values)
        return rows[0] if rows else None

    def _run(self, compiled: _Compiled, values: Mapping[str, Any]) -> None:
        self._flush_session()
        parameters = compiled.parameters(values)
        try:
            self._cursor.execute(compiled.sql, parameters)
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._translated(exc, compiled.sql) from exc

    def _flush_session(self) -> None:
        if self._session is not None:
            self._session.flush()  # what the session holds comes first, as with autoflush

    def _translated(self, exc: Any, sql: str) -> BaseException:
        invalidated = self.dialect.is_disconnect(exc, self._dbapi_connection, self._cursor)
        if invalidated:  # a connection the server dropped is never handed out again
            self.connection.invalidate(exc)
        return DBAPIError.instance(
            sql, None, exc, self.dialect.loaded_dbapi.Error, hide_parameters=True,
            connection_invalidated=invalidated, dialect=self.dialect,
        )  # fmt: skip

    @property
    def session(self) -> Session:
        """An ORM Session in this transaction (flushed before each raw statement and at the
        end; it never commits or rolls back the transaction itself)."""
        if self._session is None:
            self._session = Session(bind=self.connection, expire_on_commit=False)
        return self._session

    def _finish(self) -> None:
        if self._session is not None:
            self._session.flush()

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._cursor.close()


@contextmanager
def transaction(db: Database) -> Iterator[Tx]:
    """Begin (SQLite: BEGIN IMMEDIATE, as every transaction of ours), yield a Tx, commit on
    success and roll back on any exception."""
    with db.engine.begin() as connection:
        tx = Tx(connection)
        try:
            yield tx
            tx._finish()
        finally:
            tx._close()


@contextmanager
def single_statements(db: Database) -> Iterator[Tx]:
    """A Tx outside any transaction block (autocommit): each statement is its own transaction.

    For a unit of work that is one statement (PostgreSQL can insert into several tables in
    one, with data-modifying WITH clauses), this saves BEGIN and COMMIT: two round trips."""
    with db.engine.connect() as connection:
        dbapi_connection: Any = connection.connection.dbapi_connection
        try:
            dbapi_connection.autocommit = True
            tx = Tx(connection)
            try:
                yield tx
            finally:
                tx._close()
        finally:
            if not (dbapi_connection.closed or dbapi_connection.broken):
                dbapi_connection.autocommit = False
