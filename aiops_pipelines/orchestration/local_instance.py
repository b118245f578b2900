"""The embedded Dagster instance of a home (wiring): Dagster's own SQLite storages, each reusing
its database connections.

Dagster's SQLite run and event-log storages create a SQLAlchemy engine and open a new
connection for every read and every write (`NullPool`), and the default event log keeps a
database per run, created and stamped by Alembic as the run starts, each asset event written
twice (the run's database and the index). On a day's runs that is most of what a run costs
beyond the assets' own work: measured on this 2-core machine over 28 days of one model (range
runs, 1,000 rows a day), 48.1 s with the default storages, 43.2 s with the consolidated event
log alone, 33.3 s with it reusing its connections (`benchmarks/bench_backfill.py` prints the
whole path).

These classes are Dagster's own (`ConsolidatedSqliteEventLogStorage`, one database for every
run's events; `SqliteRunStorage`), plugged in through `dagster.yaml` as Dagster's storage
configuration allows, with one change: one engine per storage and process, whose pooled
connections (SQLAlchemy's `QueuePool`, the default for a SQLite file; pysqlite connections then
move between threads) are reused, and dropped in a process that forked from the one that opened
them. The schema, the files' layout and the queries are Dagster's, so `dagster dev` and the
daemon read the same instance. PostgreSQL, for production, is `aiops instance`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection, Engine


class _Engines:
    """One pooled engine for a database URL, per process."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._pid = 0

    def get(self) -> Engine:
        with self._lock:
            if self._engine is not None and self._pid != os.getpid():
                # forked: the parent's connections are the parent's
                self._engine.dispose(close=False)
                self._engine = None
            if self._engine is None:
                self._engine = create_engine(
                    self._url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
                )
                self._pid = os.getpid()
            return self._engine

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


@contextmanager
def _transaction(storage: object, url: str) -> Iterator[Connection]:
    """A transaction on `storage`'s pooled engine (made on first use: Dagster's constructors
    already read and write through the storage)."""
    engines = storage.__dict__.get("_aiops_engines")
    if engines is None:
        engines = storage.__dict__.setdefault("_aiops_engines", _Engines(url))
    with engines.get().connect() as conn, conn.begin():
        yield conn


def _dispose(storage: object) -> None:
    engines = storage.__dict__.get("_aiops_engines")
    if engines is not None:
        engines.dispose()


class PooledSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log (`<base_dir>/event_log.db`), reusing its
    connections."""

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with _transaction(self, self._conn_string) as conn:
            yield conn

    def has_table(self, table_name: str) -> bool:
        """Whether the database has the table, asked of it once per table and process.

        Dagster asks before every asset event's tags are written and before every dynamic
        partition is looked up (a range run's metadata looks up each of its days), each time
        through a new engine and connection: 3.5% of a 90-day range run's time (py-spy). Its
        migrations add tables and never drop one, so a table found stays found; one not found
        is asked again.
        """
        found = self.__dict__.setdefault("_aiops_tables", set())
        if table_name not in found:
            with _transaction(self, self._conn_string) as conn:
                if conn.dialect.has_table(conn, table_name):
                    found.add(table_name)
        return table_name in found

    def dispose(self) -> None:
        super().dispose()
        _dispose(self)


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage (`<base_dir>/runs.db`), reusing its connections."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # noqa: ANN001, ANN206 - Dagster's
        return cls.from_local(inst_data=inst_data, **config_value)  # the parent names itself

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(self, self._conn_string) as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()
        _dispose(self)
