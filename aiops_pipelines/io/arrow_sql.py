"""Reading SQL rows through ADBC into Arrow, handed on as the chunks SQLAlchemy would give.

`pd.read_sql_query` builds every chunk from Python objects, one value at a time: 5.8 s for a
1M-row x 25-column day from SQLite, 12.6 s from PostgreSQL. The ADBC drivers for SQLite and
PostgreSQL fill Arrow arrays in C. `Source` reads through them where it can (`read_frames`) and
hands on the very frames `read_sql_query` would have built from the same rows:

- integers are int64 (float64 with a NULL among them), floats float64, booleans bool (object
  with a NULL), text `str` with NaN for NULL, PostgreSQL `numeric` float64 (`read_sql_query`
  coerces its decimals), `real` the float64 of its shortest decimal form (what psycopg parses
  from PostgreSQL's text), `uuid` Python UUIDs, dates and times Python objects, `timestamptz`
  UTC; a column NULL in every row of a chunk is object None (`read_sql_query` infers each
  chunk's types from its values). Other types (json, intervals, arrays, ...) are left to
  SQLAlchemy.
- SQLite has no column types, only affinities, and the driver fixes each column's Arrow type
  from the first batch of values. A later value of another type is either converted (a number
  in a column first seen as text becomes its text, an integer in a float column a float) or
  fails the stream (text or a float in a column first seen as integers, as a column NULL in
  the whole first batch is). So a column read as text must be declared with TEXT affinity (or
  be the window's timestamp column, which is parsed from its text either way) and a column
  read as float with REAL affinity: SQLite itself then stores only text, or only floats, in
  it. Otherwise the read is left to SQLAlchemy before any row is read (`AdbcUnsupported`); a
  stream failing later raises `AdbcError` and `Source` resumes through SQLAlchemy.
- PostgreSQL rows come through the driver's own streaming, COPY (binary): the driver fills
  a batch of about 16 MiB (`adbc.postgresql.batch_size_hint_bytes`, its default) from the
  rows as they arrive, so a day is never held whole (reading 3M rows x 31 columns peaked at
  285 MB, 1M at 267 MB). The driver's read alone of a 1M-row day: 3.4 s, where fetching
  50,000 rows at a time from a cursor without COPY took 7.0 s.
- Order: the SQLAlchemy read (`stream_results`) fetches from a cursor, which PostgreSQL plans
  for its first 10% of rows unless told otherwise (`cursor_tuple_fraction`), and may plan
  with an index where a plan for all rows scans the table: other rows first. COPY is planned
  for all rows, and may run on parallel workers, whose rows a Gather hands on in whatever
  order they come (a cursor never does). So the SQLAlchemy read plans its cursor for all rows
  (`SET LOCAL cursor_tuple_fraction = 1.0`) and this read asks for no workers
  (`max_parallel_workers_per_gather = 0`): one plan, the same rows in the same order, and a
  read ADBC fails mid-way continues through SQLAlchemy where it stopped. SQLite runs the same
  statement either way.
- Parameters: the statement `Source` builds names them (`:start`). For SQLite `bind` compiles
  it as SQLAlchemy does, with `?` in their place. COPY takes no parameters (and the driver's
  path for bound ones holds the whole result: 1.3 GB for a 1M-row day), so for PostgreSQL
  `literal_sql` renders them as literals, through SQLAlchemy: text quoted (read as written
  only with standard_conforming_strings on, which is checked), datetimes cast to the type
  psycopg binds them as. Their values come from our code: window bounds and date strings.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import uuid
from collections.abc import Collection, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

_SQLITE = sqlite.pysqlite.dialect()
# `$1` rather than psycopg's `%(name)s`, which doubles every '%' of the SQL it renders
_PG = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_PG_DRIVERS = {"postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
T = TypeVar("T")


class AdbcError(Exception):
    """A read through ADBC failed (the driver's or the conversion's reason as the message)."""


class AdbcUnsupported(AdbcError):
    """A read ADBC is not used for, found before any row was read; the message says why."""


@dataclass(frozen=True)
class AdbcTarget:
    """The ADBC driver and the connection string for a SQLAlchemy URL."""

    driver: Literal["sqlite", "postgresql"]
    uri: str


def adbc_target(url: str) -> AdbcTarget:
    """The ADBC connection for a SQLite file or a PostgreSQL URL (as libpq keywords, the URL's
    query among them, as psycopg passes them); `AdbcUnsupported` for any other URL."""
    u = sa.make_url(url)
    if u.drivername in _SQLITE_DRIVERS:
        db = u.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):
            raise AdbcUnsupported("an in-memory SQLite database is private to its connection")
        if u.query:
            raise AdbcUnsupported(f"the URL's options ({', '.join(u.query)}) are SQLAlchemy's")
        return AdbcTarget("sqlite", db)
    if u.drivername in _PG_DRIVERS:
        return AdbcTarget("postgresql", _libpq_conninfo(u))
    raise AdbcUnsupported(f"no ADBC driver is used for {u.drivername} URLs")


def _libpq_conninfo(u: sa.URL) -> str:
    """libpq's `keyword='value' ...` form of a URL (a URI rendered back by SQLAlchemy writes a
    space as '+', which libpq would keep)."""
    words: dict[str, object] = {
        "host": u.host,
        "port": u.port,
        "dbname": u.database,
        "user": u.username,
        "password": u.password,
    }
    for key, value in u.query.items():
        if not isinstance(value, str):
            raise AdbcUnsupported(f"the URL's option {key} is given more than once")
        words[key] = value
    return " ".join(f"{k}={_quoted(v)}" for k, v in words.items() if v is not None)


def _quoted(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _connect(target: AdbcTarget) -> Any:
    if target.driver == "sqlite":
        import adbc_driver_sqlite.dbapi as driver
    else:
        import adbc_driver_postgresql.dbapi as driver
    return driver.connect(target.uri)


# ------------------------------------------------------------------------------ parameters
def bind(sql: str, params: Mapping[str, object]) -> tuple[str, list[object]]:
    """`sql` with its named `:params` (parsed as `sa.text` parses them for the SQLAlchemy read)
    in SQLite's positional form, `?`, and the values in that order."""
    compiled = sa.text(sql).compile(dialect=_SQLITE)
    names = list(compiled.positiontup or [])
    missing = [n for n in names if n not in params]
    if missing:
        raise AdbcUnsupported(f"no value for the parameter :{missing[0]}")
    values = [params[n] for n in names]
    odd = [v for v in values if not isinstance(v, (str, int, float))]
    if odd:
        raise AdbcUnsupported(f"a parameter {type(odd[0]).__name__} is not bound by ADBC")
    return str(compiled), values


class _Instant(sa.TypeDecorator[datetime]):
    """A datetime rendered as a literal of the type psycopg binds it as: `timestamptz` when it
    has a time zone, `timestamp` when not (an untyped literal would leave `:start - interval
    '1 day'` ambiguous to PostgreSQL)."""

    impl = sa.DateTime
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(bindvalue, sa.DateTime(timezone=self.impl.timezone))


def literal_sql(sql: str, params: Mapping[str, object]) -> str:
    """`sql` with its named `:params` (parsed as `sa.text` parses them for the SQLAlchemy read)
    rendered as PostgreSQL literals by SQLAlchemy (`literal_binds`): COPY takes no bind
    parameters. Text as a quoted literal, its quotes doubled and its backslashes kept (what
    PostgreSQL reads with standard_conforming_strings on, which `read_frames` checks), of no
    type until PostgreSQL infers one, as psycopg binds text; a datetime as `CAST('...' AS
    TIMESTAMP WITH TIME ZONE)`, in UTC (the same instant), or `TIMESTAMP WITHOUT TIME ZONE`
    when naive. Other values are left to SQLAlchemy's read (`AdbcUnsupported`)."""
    stmt = sa.text(sql)
    names = list(dict.fromkeys(stmt.compile(dialect=_PG).positiontup or []))
    typed = []
    for name in names:
        if name not in params:
            raise AdbcUnsupported(f"no value for the parameter :{name}")
        value = params[name]
        if isinstance(value, datetime):
            aware = value.tzinfo is not None
            at = value.astimezone(UTC) if aware else value
            typed.append(sa.bindparam(name, at, type_=_Instant(timezone=aware)))
        elif isinstance(value, str):
            if "\x00" in value:
                raise AdbcUnsupported(f"the parameter :{name} holds a NUL character")
            typed.append(sa.bindparam(name, value, type_=sa.String()))
        else:
            raise AdbcUnsupported(f"a parameter {type(value).__name__} is not rendered for COPY")
    rendered = stmt.bindparams(*typed).compile(dialect=_PG, compile_kwargs={"literal_binds": True})
    return str(rendered)


# ------------------------------------------------------------------------------ SQLite types
def _affinity(declared: str) -> str:
    """SQLite's affinity of a declared column type (section 3.1 of its datatype page)."""
    d = declared.upper()
    if "INT" in d:
        return "INTEGER"
    if any(k in d for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in d or not d:
        return "BLOB"
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _sqlite_declared(cursor: Any, sql: str, params: Mapping[str, object]) -> list[str]:
    """The declared types of the result's columns: those of a temporary view of `sql` (its
    parameters NULL), which SQLite derives from the columns each result column reads."""
    stmt = sa.text(sql)
    names = list(dict.fromkeys(stmt.compile(dialect=_SQLITE).positiontup or []))
    nulls = stmt.bindparams(*(sa.bindparam(n, None) for n in names if n in params))
    body = str(nulls.compile(dialect=_SQLITE, compile_kwargs={"literal_binds": True}))
    view = f"aiops_probe_{uuid.uuid4().hex[:12]}"
    cursor.execute(f'CREATE TEMP VIEW "{view}" AS {body}')
    try:
        cursor.execute(f'PRAGMA temp.table_info("{view}")')
        return [str(row[2] or "") for row in cursor.fetchall()]
    finally:
        cursor.execute(f'DROP VIEW temp."{view}"')


def _check_sqlite_types(schema: pa.Schema, declared: list[str], text_ok: Collection[str]) -> None:
    for i, f in enumerate(schema):
        affinity = _affinity(declared[i]) if i < len(declared) else "BLOB"
        if pa.types.is_binary(f.type):
            raise AdbcUnsupported(f"column '{f.name}' holds blobs")
        text = pa.types.is_string(f.type) and affinity != "TEXT" and f.name not in text_ok
        if text or (pa.types.is_floating(f.type) and affinity != "REAL"):
            kind = "text" if text else "floats"
            raise AdbcUnsupported(
                f"column '{f.name}' (declared {declared[i] if i < len(declared) else '?'!r}, "
                f"{affinity} affinity) was read as {kind}, and SQLite may hold values of "
                "other types among them, which the ADBC driver would convert"
            )


# ------------------------------------------------------------------------------ frames
_KEEP, _INT64, _VIA_TEXT, _UUID = "keep", "int64", "via_text", "uuid"


def _conversion(field: pa.Field) -> str:
    """How a column becomes what `read_sql_query` builds from the same values."""
    t = field.type
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.uuid":
            return _UUID
        if t.extension_name == "arrow.opaque" and getattr(t, "type_name", "") == "numeric":
            return _VIA_TEXT
        raise AdbcUnsupported(f"column '{field.name}' has the type {t}")
    if pa.types.is_integer(t):
        return _KEEP if t == pa.int64() else _INT64
    if pa.types.is_floating(t):
        return _KEEP if t == pa.float64() else _VIA_TEXT
    if pa.types.is_decimal(t):
        return _VIA_TEXT
    if (
        pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_null(t)
    ):
        return _KEEP
    raise AdbcUnsupported(f"column '{field.name}' has the type {t}")


def _storage(column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if isinstance(t, pa.BaseExtensionType):
        return pa.chunked_array([c.storage for c in column.chunks], type=t.storage_type)
    return column


def frame(table: pa.Table, conversions: list[str]) -> pd.DataFrame:
    """An Arrow chunk as the frame `read_sql_query` builds from its rows (see the module)."""
    n = table.num_rows
    arrays: list[pa.ChunkedArray] = []
    uuids: dict[int, pa.ChunkedArray] = {}
    for i, (column, how) in enumerate(zip(table.columns, conversions, strict=True)):
        if n and column.null_count == n:
            column = pa.chunked_array([pa.nulls(n)])
        elif how == _INT64:
            column = column.cast(pa.int64())
        elif how == _VIA_TEXT:
            column = pc.cast(pc.cast(_storage(column), pa.string()), pa.float64())
        elif how == _UUID:
            uuids[i] = _storage(column)
            column = pa.chunked_array([pa.nulls(n)])
        arrays.append(column)
    out = pa.Table.from_arrays(arrays, names=table.column_names).to_pandas()
    for i, column in uuids.items():
        values = [None if b is None else uuid.UUID(bytes=b) for b in column.to_pylist()]
        out.isetitem(i, pd.Series(values, dtype=object, index=out.index))
    return out


def _rechunk(batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int) -> Iterator[pa.Table]:
    parts: list[pa.RecordBatch] = []
    have = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - have, batch.num_rows)
            parts.append(batch.slice(0, take))
            have += take
            batch = batch.slice(take)
            if have == rows:
                yield pa.Table.from_batches(parts, schema)
                parts, have = [], 0
    if have:
        yield pa.Table.from_batches(parts, schema)


def same_values(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two chunks hold the same rows in the same order, whatever their dtypes (5, 5.0
    and '5' agree; NULL, None, NaN and NaT agree)."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for i in range(a.shape[1]):
        for x, y in zip(a.iloc[:, i].tolist(), b.iloc[:, i].tolist(), strict=True):
            x_null, y_null = _is_null(x), _is_null(y)
            if x_null or y_null:
                if x_null != y_null:
                    return False
            elif not (x == y or str(x) == str(y)):
                return False
    return True


def _is_null(v: object) -> bool:
    if v is None or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


# ------------------------------------------------------------------------------ reading
def _pg_copy(cursor: Any, query: str) -> Any:
    """The rows of `query` as the driver streams them (COPY, binary): a record batch reader
    whose batches the driver fills to about `adbc.postgresql.batch_size_hint_bytes` (16 MiB by
    default) from the rows as they arrive, one batch at a time.

    Planned as the SQLAlchemy read's cursor is (`Source._sqlalchemy_chunks`): for all rows,
    and without parallel workers, which COPY may use and a cursor never does (a Gather hands
    on the workers' rows in whatever order they come), so both return the rows in the same
    order."""
    cursor.execute(
        "SELECT current_setting('standard_conforming_strings'), "
        "set_config('max_parallel_workers_per_gather', '0', false)"
    )
    ((conforming, _),) = cursor.fetchall()
    if conforming != "on":
        raise AdbcUnsupported(
            "standard_conforming_strings is off: a backslash in a parameter's literal would "
            "be read as an escape"
        )
    cursor.execute(query)
    return cursor.fetch_record_batch()


def read_frames(
    target: AdbcTarget,
    sql: str,
    params: Mapping[str, object],
    *,
    chunk_rows: int,
    text_ok: Collection[str] = (),
) -> Generator[pd.DataFrame, None, None]:
    """The rows of `sql` through ADBC, in frames of `chunk_rows` rows as `read_sql_query` gives
    them (one empty frame when there are none). `text_ok`: SQLite columns read as text
    whatever their declared type (the window's timestamp column).

    Raises `AdbcUnsupported` before the first frame when ADBC is not used for these rows, and
    `AdbcError` when the driver fails (also after frames were handed on).
    """
    import adbc_driver_manager

    conn = cursor = reader = None
    try:
        if target.driver == "sqlite":
            query, args = bind(sql, params)
            conn = _connect(target)
            cursor = conn.cursor()
            declared = _sqlite_declared(cursor, sql, params)
            options = {"adbc.sqlite.query.batch_rows": str(chunk_rows)}
            cursor.adbc_statement.set_options(**options)
            cursor.execute(query, args or None)
            reader = cursor.fetch_record_batch()
            _check_sqlite_types(reader.schema, declared, text_ok)
        else:
            query = literal_sql(sql, params)
            conn = _connect(target)
            cursor = conn.cursor()
            reader = _pg_copy(cursor, query)
        schema = reader.schema
        tables = _rechunk(reader, schema, chunk_rows)
        conversions = [_conversion(f) for f in schema]
        n = 0
        for table in tables:
            n += table.num_rows
            yield frame(table, conversions)
        if n == 0:
            yield pd.DataFrame.from_records([], columns=schema.names, coerce_float=True)
    except (adbc_driver_manager.Error, pa.ArrowException, OSError) as exc:
        raise AdbcError(str(exc).strip()) from exc
    finally:
        for handle in (reader, cursor, conn):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()


def prefetched(items: Generator[T, None, None], depth: int = 1) -> Generator[T, None, None]:
    """`items`, computed on a thread of their own up to `depth` items ahead of the consumer.

    The driver reads in C without Python's lock, so the next chunk is read while this one is
    profiled; at most `depth` + 2 chunks exist at a time. An error raised by `items` is
    raised here at the same place in the sequence. Closing this generator stops the thread
    and closes `items` (its connection) before returning.
    """
    q: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, end))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))
        finally:
            items.close()

    thread = threading.Thread(target=produce, name="aiops-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                assert isinstance(item, BaseException)
                raise item
            if item is end:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
