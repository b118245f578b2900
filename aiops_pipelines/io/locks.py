"""Locks that make a second run of the same (asset, partition) wait for the first.

Two runs of one partition at once (the same range run twice, a late-labels re-run next to the
daily run) would otherwise compute, write files, replace the store's rows and update the MLflow
run side by side. Each asset holds its partition's lock while it runs; a second run waits for
it (up to a bound) and then recomputes from what the first stored, which changes nothing.

Every lock dies with its holder, so a killed run never leaves one behind:
- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a hash of the schema
  and the key, released by the server when the holder's connection ends.
- SQLite file: an `flock` on one of 256 lock files in a folder beside the database
  (`store.db.locks/`), released by the kernel when the holder's process ends. A row in a lock
  table would outlive a killed holder and need its own staleness rules; a SQLite file is only
  ever shared by processes of one host, which is where `flock` works. Two keys may share a
  lock file: they then wait for each other, briefly, and never nest (an asset holds one lock).
- In-memory SQLite: no lock; no other process can see that database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aiops_pipelines.core.errors import AiopsError


class LockTimeout(AiopsError):
    """Another run held the lock for longer than the caller would wait."""


def _waits(timeout: float) -> Iterator[None]:
    """Yields before each attempt until `timeout` seconds have passed (backing off to 1 s)."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        yield
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(pause, left))
        pause = min(pause * 2, 1.0)


def _timed_out(key: str, timeout: float) -> LockTimeout:
    return LockTimeout(
        f"another run has been working on {key} for more than {timeout:.0f} s (this run waited "
        "for it to finish so the two do not overwrite each other): try again when it is done"
    )


def sqlite_file(url: str | sa.URL) -> Path | None:
    """The database file of a SQLite URL (None in memory or for another backend)."""
    url = sa.make_url(url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if "mode=memory" in database:
        return None
    return Path(database.removeprefix("file:").split("?")[0]).expanduser()


def lock_folder(db: Path) -> Path:
    """Where the lock files of the SQLite database `db` live."""
    return db.with_name(f"{db.name}.locks")


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float, what: str = "") -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for _ in _waits(timeout):
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                continue
        else:
            raise _timed_out(what or str(path), timeout)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _advisory_number(conn: Connection, key: str) -> int:
    """A 64-bit advisory lock number for `key` in the connection's schema (the same key in
    two stores of one database, e.g. the tests' schemas, are different locks)."""
    schema = conn.info.get("aiops_schema")
    if schema is None:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        conn.info["aiops_schema"] = schema
    digest = hashlib.sha1(f"{schema}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_for_write(conn: Connection, key: str) -> None:
    """In a write transaction: wait for any other transaction writing `key` to end (PostgreSQL,
    `pg_advisory_xact_lock`, released at commit or rollback). A delete-then-insert of the same
    rows by two transactions at once would otherwise fail on a unique key. SQLite needs none:
    its writers take the database's write lock at BEGIN (`schema.prepare_engine`)."""
    if conn.dialect.name == "postgresql":
        number = _advisory_number(conn, f"write/{key}")
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(number)))


@contextlib.contextmanager
def _advisory_lock(engine: Engine, key: str, timeout: float) -> Iterator[None]:
    with engine.connect() as conn:
        number = _advisory_number(conn, key)
        conn.commit()
        for _ in _waits(timeout):
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(number))).scalar_one()
            conn.commit()  # a session lock outlives the transaction: none stays open
            if got:
                break
        else:
            raise _timed_out(key, timeout)
        try:
            yield
        finally:
            try:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(number)))
                conn.commit()
            except sa.exc.DBAPIError:
                conn.invalidate()  # closing the session releases it


@contextlib.contextmanager
def partition_lock(engine: Engine, key: str, *, timeout: float) -> Iterator[None]:
    """Hold the lock of `key` (e.g. "drift_report:2026-03-05|acme.churn") in the database
    `engine` points at, waiting up to `timeout` seconds for another holder (`LockTimeout`)."""
    if engine.url.get_backend_name() == "postgresql":
        with _advisory_lock(engine, key, timeout):
            yield
        return
    db = sqlite_file(engine.url)
    if db is None:
        yield
        return
    bucket = hashlib.sha1(key.encode()).digest()[0]  # one of 256 lock files
    with file_lock(lock_folder(db) / f"{bucket:03d}.lock", timeout=timeout, what=key):
        yield
