"""Reading a model's rows: any SQLAlchemy URL (table or query) or Parquet files, streamed.

Rows always arrive as bounded chunks (`SourceConfig.chunk_rows`), so the memory needed to
profile a day does not grow with the day's size. SQLite and PostgreSQL rows are read through
ADBC into Arrow where that gives the very chunks SQLAlchemy gives (`io.arrow_sql`, the
source's `reader`), Parquet a batch of a row group at a time; both run one chunk ahead on a
thread while the last chunk is used. Timestamps must carry their time zone: a
tz-naive timestamp is ambiguous (is it UTC? the server's local time?) and is refused with a
`DataError` naming the column.

A window is a range of instants, whatever offset the rows were written with:
'2026-03-05T23:30:00-05:00' belongs to 2026-03-06 UTC. Where the database holds instants
(PostgreSQL timestamptz, typed Parquet) it compares them itself. Where it holds text (SQLite,
text columns, string Parquet columns), text must not be compared with the window's bounds: the
written date is the local one. The database then selects an index-friendly range of written
dates one day wider on each side (no offset moves a date further), keeps the rows its own
parser puts near the window (SQLite and PostgreSQL parse ISO-8601 offsets), and the window is
applied exactly after parsing here.

`Source.count_window` counts a window's rows without the read's filters, so a profiled day can
be checked against it (`check_window_count`): a mismatch is a `DataError`, never a quietly
smaller day.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, SourceConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.values import cap_strings, quoted
from aiops_pipelines.io.arrow_sql import (
    AdbcError,
    AdbcTarget,
    AdbcUnsupported,
    adbc_target,
    prefetched,
    read_frames,
    same_values,
)

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_HAS_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)\s*$"
_ENGINES: dict[str, sa.Engine] = {}
# SQL parsers round text instants (SQLite to the millisecond, a '.9996' fraction up into the
# next second): the database keeps rows this close to a bound, the exact filter here decides
_SLACK = timedelta(milliseconds=2)
_PG_TEXT_TYPES = {25, 1042, 1043}  # text, char(n), varchar(n): PostgreSQL type oids
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
# the resolution pandas parses ISO-8601 text to (6 decimals or fewer: microseconds from pandas 3)
_TEXT_UNIT = pa.timestamp("us" if int(pd.__version__.split(".")[0]) >= 3 else "ns", "UTC")


def served(chunk: pd.DataFrame, prediction: str, status: str | None) -> pd.DataFrame:
    """The rows that carry a served prediction: a failed request (status other than "ok") may
    log no prediction; it counts as an error in the operational signals and is left out of
    drift and performance. Without a status column every row must carry a prediction."""
    if not status or status not in chunk.columns or prediction not in chunk.columns:
        return chunk
    missing = chunk[prediction].isna()
    if not missing.any():  # the usual chunk: no status to compare
        return chunk
    failed_empty = missing & (chunk[status].astype(str) != "ok")
    return chunk[~failed_empty] if failed_empty.any() else chunk


def day_window(day: date | str) -> tuple[datetime, datetime]:
    """The UTC window [start, end) of a daily partition."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def written_dates(start: datetime, end: datetime) -> tuple[str, str]:
    """Date prefixes [lo, hi) bracketing how every instant in [start, end) can be written as
    ISO-8601 text with any UTC offset (less than a day): the local date is at most one day off.

    As prefixes they compare correctly with text whatever separates date and time ('T' or ' ').
    """
    lo = start.astimezone(UTC).date() - timedelta(days=1)
    hi = (end.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=2)
    return lo.isoformat(), hi.isoformat()


def _fields(schema: pa.Schema, names: Sequence[str]) -> list[tuple[str, pa.DataType]] | None:
    if any(n not in schema.names for n in names):
        return None
    return [(n, schema.field(n).type) for n in names]


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 of each 64-bit value: a bijection, so distinct values never share a hash."""
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_LENGTH_KEY = np.uint64(0xD6E8FEB86659FD93)
_ALL_BYTES = np.uint64(0xFFFFFFFFFFFFFFFF)


def _text_hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each text (NULL hashes as the empty text): the sum, wrapping, of the
    splitmix64 of each 8-byte word (zero-padded at the end) xor its position's key, then the
    length mixed in. Vectorised over the Arrow buffers, a word at a time (no Python string is
    made; a byte at a time took 6x longer: 12 ms per 50,000 ids); two different texts share a
    hash with probability about 2^-64, and callers check the texts behind a shared hash."""
    if isinstance(values, pa.ChunkedArray):
        parts = [_text_hashes(chunk) for chunk in values.chunks]
        return np.concatenate(parts) if parts else np.empty(0, np.uint64)
    narrow = pa.types.is_string(values.type) or pa.types.is_binary(values.type)
    if not (
        narrow or pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type)
    ):
        values = pc.cast(values, pa.large_binary())
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], np.int32 if narrow else np.int64)
    offsets = offsets[values.offset : values.offset + n + 1].astype(np.int64)
    lengths = np.diff(offsets)
    if values.null_count:
        lengths[values.is_null().to_numpy(zero_copy_only=False)] = 0
    out = np.zeros(n, np.uint64)
    longest = int(lengths.max()) if n else 0
    if not longest:
        return out
    first, total = int(offsets[0]), int(offsets[-1] - offsets[0])
    data = np.zeros(total + 8, np.uint8)  # a last word may run past the last text
    data[:total] = np.frombuffer(values.buffers()[2], np.uint8, total, first)
    # the 8 bytes from every byte on, as one little-endian word: an unaligned view, no copy
    words = np.ndarray((total + 1,), "<u8", data, strides=(1,))
    starts = offsets[:-1] - first
    shortest = int(lengths.min())
    rows = np.arange(n)
    for j in range(-(-longest // 8)):
        at = 8 * j
        every = at < shortest  # every text has bytes here: whole arrays, no row index
        if not every:
            rows = rows[lengths[rows] > at]
        w = words[starts + at] if every else words[starts[rows] + at]
        if at + 8 > shortest:  # some texts end in this word: zero the bytes after their end
            left = np.minimum(lengths - at if every else lengths[rows] - at, 8)
            w &= _ALL_BYTES >> (np.uint64(8) * (np.uint64(8) - left.astype(np.uint64)))
        key = _splitmix64(np.array([j], np.uint64))[0]
        if every:
            out += _splitmix64(w ^ key)
        else:
            out[rows] += _splitmix64(w ^ key)
    return out ^ (lengths.astype(np.uint64) * _LENGTH_KEY)


class IdHashes:
    """A 64-bit hash of every id of a window, collected chunk by chunk, to tell whether any id
    repeats without a second scan of the window (8 bytes an id).

    Equal ids always hash alike, so no repeat among the hashes means no repeated id. A repeat
    may be two ids sharing a hash (about 2^-64 a pair): `maybe_repeated` says only that the
    ids must be compared (`Source.duplicate_ids`). Text ids hash their text (`_text_hashes`),
    integer ids their value; ids of any other type (a float or mixed column, which the
    database may group by value rather than by text) are not hashed: `usable` turns False.
    """

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self.usable = True

    def add(self, ids: pd.Series) -> None:
        if not self.usable or not len(ids):
            return
        dtype = ids.dtype
        if isinstance(dtype, pd.StringDtype):
            self._parts.append(_text_hashes(pa.array(ids, type=pa.large_string())))
        elif pd.api.types.is_integer_dtype(dtype) and isinstance(dtype, np.dtype):
            self._parts.append(_splitmix64(ids.to_numpy()))
        else:
            self.usable = False
            self._parts = []

    def maybe_repeated(self) -> bool:
        """Whether two ids added share a hash (always True once `usable` is False)."""
        if not self.usable:
            return True
        if not self._parts:
            return False
        # one array, filled as the parts are let go: 8 bytes an id at the peak, not 16
        every = np.empty(sum(len(p) for p in self._parts), np.uint64)
        at = 0
        self._parts.reverse()
        while self._parts:
            part = self._parts.pop()
            every[at : at + len(part)] = part
            at += len(part)
        every.sort()
        return bool((every[1:] == every[:-1]).any())


def _julian_day(t: datetime) -> float:
    return t.timestamp() / 86400 + _UNIX_EPOCH_JULIAN_DAY


@dataclass(frozen=True)
class WindowCount:
    """Rows the database counts in a window: `low` surely in it, `high` at most.

    They differ only when a text timestamp lies within the database's rounding of a bound (or
    is written in a form the database cannot parse); the exact count read is between them.
    """

    low: int
    high: int

    def admits(self, n: int) -> bool:
        return self.low <= n <= self.high

    def __str__(self) -> str:
        return f"{self.low:,}" if self.low == self.high else f"{self.low:,} to {self.high:,}"


def check_window_count(
    source: str, column: str, start: datetime, end: datetime, counted: WindowCount, read: int
) -> None:
    """Fail when the rows read from a window are not the rows the source counts in it."""
    if counted.admits(read):
        return
    raise DataError(
        f"{source} has {counted} rows with {column} in [{start:%Y-%m-%d %H:%M:%S}, "
        f"{end:%Y-%m-%d %H:%M:%S}) UTC but {read:,} were read, so the window is not judged on "
        "its rows. Was the source written to during the read? Rerun; if it persists, report "
        "it with a few of the source's timestamps",
        column=column,
    )


def engine_for(url: str) -> sa.Engine:
    """One pooled engine per URL per process."""
    eng = _ENGINES.get(url)
    if eng is None:
        eng = sa.create_engine(url)
        _ENGINES[url] = eng
    return eng


def _quote(engine: sa.Engine, name: str, what: str) -> str:
    if not _IDENT.match(name):
        raise DataError(f"invalid {what} name {name!r}")
    prep = engine.dialect.identifier_preparer
    return ".".join(prep.quote(part) for part in name.split("."))


def parse_timestamps(values: pd.Series, *, column: str) -> pd.Series:
    """Parse a timestamp column to tz-aware UTC, refusing tz-naive values."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        raise DataError(
            "timestamps are timezone-naive; store them in UTC with an explicit time zone",
            column=column,
        )
    if values.isna().any():
        raise DataError(f"{int(values.isna().sum())} rows have no timestamp", column=column)
    text = values.astype(str)
    naive = ~text.str.contains(_HAS_OFFSET, regex=True)
    if naive.any():
        raise DataError(
            f"{int(naive.sum())} timestamps are timezone-naive "
            f"(e.g. {quoted(text[naive].iloc[0])}); "
            "store UTC with an explicit offset such as '+00:00'",
            column=column,
        )
    parsed = _arrow_instants(text)
    if parsed is not None:
        return parsed
    try:
        return pd.to_datetime(text, format="ISO8601", utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"unparseable timestamps: {exc}", column=column) from None


def _arrow_instants(text: pd.Series) -> pd.Series | None:
    """ISO-8601 text with offsets as `pd.to_datetime(text, format="ISO8601", utc=True)` parses
    it, by Arrow (0.1 s per 1M values where pandas takes 2 s); None when Arrow does not parse
    every value, and pandas parses them.

    Arrow takes a subset of the forms pandas does (a 'T' or a space, hours with or without
    minutes and seconds, at most 6 decimals, 'Z' or an offset with or without a colon), to the
    same instants (checked on 136,000 random variations of such texts), at the resolution
    pandas gives them (microseconds from pandas 3 on, nanoseconds before; none is left to
    pandas, which types it by its own rule).
    """
    if not len(text):
        return None
    try:
        instants = pc.cast(pa.array(text, type=pa.large_string()), _TEXT_UNIT)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    out = instants.to_pandas()
    out.index, out.name = text.index, text.name
    return out


@dataclass(frozen=True)
class _ParquetWindow:
    """The rows of a Parquet source a window reads: `column` in [lo, hi), and NULLs when
    `keep_null` (text timestamps: refused after the read, not dropped)."""

    column: str
    lo: pa.Scalar
    hi: pa.Scalar
    keep_null: bool = False

    @property
    def expression(self) -> pads.Expression:
        field = pads.field(self.column)
        inside = (field >= self.lo) & (field < self.hi)
        return inside | field.is_null() if self.keep_null else inside

    def keeps_all(self, batch: pa.RecordBatch) -> bool:
        """Whether `expression` keeps every row of `batch`, from the column's bounds."""
        if self.column not in batch.schema.names:
            return False
        values = batch.column(self.column)
        if values.null_count:
            if not self.keep_null:
                return False
            if values.null_count == len(values):
                return True
        bounds = pc.min_max(values)
        return bool(
            pc.greater_equal(bounds["min"], self.lo).as_py()
            and pc.less(bounds["max"], self.hi).as_py()
        )


@dataclass
class StringCap:
    """Cuts the strings of `columns` longer than `max_length` as chunks are read, and counts,
    per column, how many it cut and the longest length it saw (`cap_strings`)."""

    max_length: int
    columns: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    longest: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_model(cls, model: ModelConfig) -> StringCap:
        """The model's columns whose values become names in its profiles: categorical features
        (profile keys, unseen-category findings), the version (rows per version) and a
        classifier's predicted class (prediction drift)."""
        c = model.columns
        names = [*model.features.categorical, c.version]
        if model.task.is_classification:
            names.append(c.prediction)
        return cls(model.max_string_length, tuple(dict.fromkeys(names)))

    def apply(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The chunk with the long strings of the capped columns cut (the chunk itself when
        there were none)."""
        cut: dict[str, pd.Series] = {}
        for name in self.columns:
            if name in chunk.columns:
                values, n, longest = cap_strings(chunk[name], self.max_length)
                if n:
                    cut[name] = values
                    self.counts[name] = self.counts.get(name, 0) + n
                    self.longest[name] = max(self.longest.get(name, 0), longest)
        return chunk.assign(**cut) if cut else chunk


class Source:
    """A configured table/query/Parquet source of one model; with `strings`, the long strings
    of its columns are cut as the rows are read (`iter_all`, `iter_window`)."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        chunk_rows: int | None = None,
        strings: StringCap | None = None,
    ) -> None:
        self.config = config
        self.chunk_rows = chunk_rows or config.chunk_rows
        self._text_columns: dict[str, bool] = {}
        self.strings = strings

    def describe(self) -> str:
        c = self.config
        if c.parquet:
            return f"parquet {c.parquet}"
        return f"{c.url} {'table ' + c.table if c.table else 'query'}"

    # ---------------------------------------------------------------- reading
    def columns(self) -> list[str]:
        """The source's column names, read from its schema (no rows are fetched)."""
        if self.config.parquet:
            return list(self._dataset().schema.names)
        eng = engine_for(self.config.url or "")
        sql, params = self._sql_select(eng, None, None)
        with eng.connect() as conn:
            try:
                return list(
                    conn.execute(sa.text(f"SELECT * FROM ({sql}) AS p LIMIT 0"), params).keys()
                )
            except sa.exc.SQLAlchemyError as exc:
                raise DataError(f"reading {self.describe()} failed: {exc.orig or exc}") from None

    def iter_all(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Every row, chunked (reference data)."""
        chunks = (
            prefetched(self._parquet_chunks(columns, None))
            if self.config.parquet
            else self._sql_chunks(columns, None)
        )
        with contextlib.closing(chunks):
            for chunk in chunks:
                yield self.strings.apply(chunk) if self.strings else chunk

    def iter_window(
        self,
        timestamp_col: str,
        start: datetime,
        end: datetime,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Rows whose `timestamp_col` lies in [start, end), chunked, timestamps parsed to UTC."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        window = (timestamp_col, start, end)
        chunks = (
            prefetched(self._parquet_chunks(columns, window))
            if self.config.parquet
            else self._sql_chunks(columns, window)
        )
        with contextlib.closing(chunks):
            for chunk in chunks:
                if timestamp_col not in chunk.columns:
                    raise DataError("timestamp column is missing", column=timestamp_col)
                ts = parse_timestamps(chunk[timestamp_col], column=timestamp_col)
                keep = (ts >= start) & (ts < end)
                chunk = chunk.assign(**{timestamp_col: ts})
                if not keep.all():
                    chunk = chunk.loc[keep.to_numpy()]
                if len(chunk):
                    chunk = chunk.reset_index(drop=True)
                    yield self.strings.apply(chunk) if self.strings else chunk

    def count_window(self, timestamp_col: str, start: datetime, end: datetime) -> WindowCount:
        """The rows whose `timestamp_col` lies in [start, end), as the source itself counts them.

        Written apart from the read's filters, to check them: instants are compared by the
        database; text is counted over its written dates (`written_dates`) by the database's
        own parse (Arrow's for Parquet), with the rows it cannot place exactly as a range.
        """
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        window = (timestamp_col, start, end)
        if self.config.parquet:
            return self._parquet_count(self._dataset(), window)
        eng = engine_for(self.config.url or "")
        qts = _quote(eng, timestamp_col, "column")
        params = self._query_params(eng, start, end)
        if not self._text_timestamps(eng, window):
            sql = (
                f"SELECT COUNT(*) FROM {self._from(eng)} WHERE {qts} >= :c_start AND {qts} < :c_end"
            )
            params |= {"c_start": start, "c_end": end}
        else:
            lo, hi = written_dates(start, end)
            sure, near = (start + _SLACK, end - _SLACK), (start - _SLACK, end + _SLACK)
            if eng.dialect.name == "sqlite":
                instant = f"julianday({qts})"
                sure, near = tuple(map(_julian_day, sure)), tuple(map(_julian_day, near))
            else:
                instant = f"CAST({qts} AS TIMESTAMPTZ)"
            # a row the database cannot parse (NULL) may be in the window: counted as unsure
            sql = (
                f"SELECT COALESCE(SUM(CASE WHEN {instant} BETWEEN :c_sure_from AND :c_sure_to "
                "THEN 1 ELSE 0 END), 0), "
                f"COALESCE(SUM(CASE WHEN COALESCE({instant} BETWEEN :c_from AND :c_to, TRUE) "
                f"THEN 1 ELSE 0 END), 0) FROM {self._from(eng)} "
                f"WHERE {qts} >= :c_lo AND {qts} < :c_hi"
            )
            params |= {"c_sure_from": sure[0], "c_sure_to": sure[1], "c_from": near[0]}
            params |= {"c_to": near[1], "c_lo": lo, "c_hi": hi}
        with eng.connect() as conn:
            try:
                row = conn.execute(sa.text(sql), params).one()
            except sa.exc.SQLAlchemyError as exc:
                raise DataError(f"counting {self.describe()} failed: {exc.orig or exc}") from None
        return WindowCount(int(row[0]), int(row[-1]))

    def lookup(
        self, id_col: str, ids: Sequence[str], columns: Sequence[str], batch: int = 500
    ) -> Iterator[pd.DataFrame]:
        """The rows whose `id_col` is one of `ids`, in batches (an index lookup in SQL)."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        cols = list(dict.fromkeys([id_col, *columns]))
        if self.config.parquet:
            ds = self._dataset()
            self._require(cols)
            for lo in range(0, len(ids), 50_000):
                wanted = pa.array(ids[lo : lo + 50_000], type=ds.schema.field(id_col).type)
                table = ds.to_table(columns=cols, filter=pads.field(id_col).isin(wanted))
                if table.num_rows:
                    yield table.to_pandas()
            return
        eng = engine_for(self.config.url or "")
        self._require(cols)
        inner, params = self._sql_select(eng, cols, None)
        qid = _quote(eng, id_col, "column")
        with eng.connect() as conn:
            for lo in range(0, len(ids), batch):
                part = ids[lo : lo + batch]
                names = {f"id{i}": v for i, v in enumerate(part)}
                marks = ", ".join(f":{k}" for k in names)
                sql = sa.text(f"SELECT * FROM ({inner}) AS l WHERE {qid} IN ({marks})")
                frame = pd.read_sql_query(sql, conn, params={**params, **names})
                if len(frame):
                    yield frame

    def duplicate_ids(
        self, id_col: str, timestamp_col: str, start: datetime, end: datetime, limit: int = 5
    ) -> list[str]:
        """Request ids that occur more than once in the window (checked by the database)."""
        if self.config.parquet:
            return self._parquet_duplicates(id_col, timestamp_col, start, end, limit)
        eng = engine_for(self.config.url or "")
        inner, params = self._sql_select(eng, [id_col, timestamp_col], (timestamp_col, start, end))
        qid = _quote(eng, id_col, "column")
        sql = sa.text(
            f"SELECT {qid} AS rid, COUNT(*) AS n FROM ({inner}) AS w "
            f"GROUP BY {qid} HAVING COUNT(*) > 1 LIMIT {int(limit)}"
        )
        with eng.connect() as conn:
            return [str(r.rid) for r in conn.execute(sql, params)]

    def _require(self, columns: Sequence[str]) -> None:
        """Name the missing column up front instead of surfacing a driver error."""
        present = self.columns()
        missing = [c for c in columns if c not in present]
        if missing:
            raise DataError(
                f"column missing from {self.describe()} (has: {', '.join(present)})",
                column=missing[0],
            )

    # ---------------------------------------------------------------- SQL
    def _query_params(self, eng: sa.Engine, start: datetime, end: datetime) -> dict[str, object]:
        """The `:start`/`:end` a query may use: the window's UTC bounds, as text on SQLite."""
        if ":start" not in (self.config.query or "") and ":end" not in (self.config.query or ""):
            return {}
        if eng.dialect.name == "sqlite":
            return {"start": f"{start:%Y-%m-%d %H:%M:%S}", "end": f"{end:%Y-%m-%d %H:%M:%S}"}
        return {"start": start, "end": end}

    def _from(self, eng: sa.Engine) -> str:
        if self.config.table:
            return _quote(eng, self.config.table, "table")
        return f"({(self.config.query or '').strip().rstrip(';')}) AS q"

    def _text_timestamps(self, eng: sa.Engine, window: tuple[str, datetime, datetime]) -> bool:
        """Whether the database holds the timestamp column as text rather than as instants."""
        if eng.dialect.name == "sqlite":
            return True  # SQLite has no timestamp type: ISO-8601 text
        if eng.dialect.name != "postgresql":
            return False
        ts = window[0]
        if ts not in self._text_columns:
            sql = f"SELECT {_quote(eng, ts, 'column')} FROM {self._from(eng)} LIMIT 0"
            params = self._query_params(eng, window[1], window[2])
            with eng.connect() as conn:
                try:
                    described = conn.execute(sa.text(sql), params).cursor.description
                except sa.exc.SQLAlchemyError as exc:
                    raise DataError(
                        f"reading {self.describe()} failed: {exc.orig or exc}"
                    ) from None
            self._text_columns[ts] = described[0].type_code in _PG_TEXT_TYPES
        return self._text_columns[ts]

    def _window_where(
        self, eng: sa.Engine, window: tuple[str, datetime, datetime]
    ) -> tuple[str, dict[str, object]]:
        """The WHERE clause selecting the window, and its parameters.

        Text: an index-friendly range of written dates (`written_dates`), narrowed by the
        database's own parse to the window and `_SLACK` around it; `iter_window` filters exactly.
        """
        ts, start, end = window
        qts = _quote(eng, ts, "column")
        if not self._text_timestamps(eng, window):
            return f"{qts} >= :w_start AND {qts} < :w_end", {"w_start": start, "w_end": end}
        lo, hi = written_dates(start, end)
        where = f"{qts} >= :w_lo AND {qts} < :w_hi"
        params: dict[str, object] = {"w_lo": lo, "w_hi": hi}
        if eng.dialect.name == "sqlite":
            instant = f"julianday({qts})"
            params |= {"w_from": _julian_day(start - _SLACK), "w_to": _julian_day(end + _SLACK)}
            # NULL: a form SQLite does not parse (e.g. '+0500'); kept for the exact parse here
            where += f" AND IFNULL({instant} BETWEEN :w_from AND :w_to, 1)"
        else:
            instant = f"CAST({qts} AS TIMESTAMPTZ)"
            params |= {"w_from": start - _SLACK, "w_to": end + _SLACK}
            where += f" AND {instant} BETWEEN :w_from AND :w_to"
        return where, params

    def _sql_select(
        self,
        eng: sa.Engine,
        columns: Sequence[str] | None,
        window: tuple[str, datetime, datetime] | None,
    ) -> tuple[str, dict[str, object]]:
        cols = ", ".join(_quote(eng, c, "column") for c in columns) if columns else "*"
        sql = f"SELECT {cols} FROM {self._from(eng)}"
        if not window:
            return sql, {}
        # a query using :start/:end windows itself; the window is applied around it all the same
        where, params = self._window_where(eng, window)
        return f"{sql} WHERE {where}", {**self._query_params(eng, window[1], window[2]), **params}

    def _sql_chunks(
        self, columns: Sequence[str] | None, window: tuple[str, datetime, datetime] | None
    ) -> Generator[pd.DataFrame, None, None]:
        """The rows of the select `_sql_select` builds, through ADBC where it reads them (see
        `arrow_sql`), else through SQLAlchemy: the same chunks either way."""
        eng = engine_for(self.config.url or "")
        if columns:
            self._require(columns)
        sql, params = self._sql_select(eng, columns, window)
        target = self._adbc_target()
        if target is None:
            yield from self._sqlalchemy_chunks(eng, sql, params)
            return
        frames = prefetched(
            read_frames(
                target,
                sql,
                params,
                chunk_rows=self.chunk_rows,
                text_ok=window[:1] if window else (),
            )
        )
        read, last = 0, None
        try:
            for chunk in frames:
                yield chunk
                read, last = read + len(chunk), chunk
            return
        except AdbcError as exc:
            if self.config.reader == "adbc":
                raise DataError(
                    f"reading {self.describe()} through ADBC failed: {exc}"
                    + (f" (after {read:,} rows)" if read else "")
                ) from None
            after = f" after {read:,} rows" if read else ""
            log.info(
                "reading %s through SQLAlchemy: ADBC failed%s: %s", self.describe(), after, exc
            )
            failure = str(exc)
        finally:
            frames.close()
        yield from self._resumed(eng, sql, params, read, last, failure)

    def _adbc_target(self) -> AdbcTarget | None:
        """Where ADBC reads this source's rows (None: SQLAlchemy reads them)."""
        if self.config.reader == "sqlalchemy":
            return None
        try:
            return adbc_target(self.config.url or "")
        except AdbcUnsupported as exc:
            if self.config.reader == "adbc":
                raise DataError(f"{self.describe()} cannot be read through ADBC: {exc}") from None
            log.debug("reading %s through SQLAlchemy: %s", self.describe(), exc)
            return None

    def _resumed(
        self,
        eng: sa.Engine,
        sql: str,
        params: dict[str, object],
        skip: int,
        last: pd.DataFrame | None,
        failure: str,
    ) -> Generator[pd.DataFrame, None, None]:
        """The SQLAlchemy read of `sql` after its first `skip` rows, which ADBC handed on before
        it failed. Both read the same statement in chunks of `chunk_rows`: SQLAlchemy's chunk
        ending at `skip` must hold the rows of `last`, ADBC's last chunk, or no row can be
        trusted to be read once (a writer, or another plan), and the read fails."""
        seen = 0
        for chunk in self._sqlalchemy_chunks(eng, sql, params):
            if seen >= skip:
                yield chunk
                continue
            seen += len(chunk)
            if seen > skip or (seen == skip and (last is None or not same_values(chunk, last))):
                seen = -1
                break
        if seen != skip:
            raise DataError(
                f"reading {self.describe()} through ADBC failed after {skip:,} rows ({failure}),"
                " and SQLAlchemy's read does not return those rows in the same order, so it "
                "cannot continue where ADBC stopped. Was the source written to during the read? "
                "Rerun, or set `reader: sqlalchemy` on this source"
            )

    def _sqlalchemy_chunks(
        self, eng: sa.Engine, sql: str, params: dict[str, object]
    ) -> Generator[pd.DataFrame, None, None]:
        with eng.connect().execution_options(stream_results=True) as conn:
            try:
                if eng.dialect.name == "postgresql":
                    # stream_results reads from a cursor, which PostgreSQL plans for its first
                    # 10% of rows unless told otherwise, and ADBC's COPY for all of them: the
                    # same plan for both, so both return the rows in the same order (arrow_sql)
                    conn.exec_driver_sql(
                        "SET LOCAL cursor_tuple_fraction = 1.0",
                        execution_options={"stream_results": False},
                    )
                yield from pd.read_sql_query(
                    sa.text(sql), conn, params=params, chunksize=self.chunk_rows
                )
            except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
                # pandas raises the statement's error as its own DatabaseError
                cause = exc.__cause__ if isinstance(exc.__cause__, sa.exc.SQLAlchemyError) else exc
                reason = getattr(cause, "orig", None) or cause
                raise DataError(f"reading {self.describe()} failed: {reason}") from None

    # ---------------------------------------------------------------- Parquet
    def _dataset(self) -> pads.Dataset:
        spec = self.config.parquet or ""
        p = Path(spec)
        if p.is_dir():
            return pads.dataset(str(p), format="parquet")
        files = sorted(glob.glob(spec)) if any(ch in spec for ch in "*?[") else [spec]
        files = [f for f in files if Path(f).is_file()]
        if not files:
            raise DataError(f"no Parquet files match {spec}")
        return pads.dataset(files, format="parquet")

    def _parquet_window(
        self, ds: pads.Dataset, window: tuple[str, datetime, datetime] | None
    ) -> _ParquetWindow | None:
        """What Arrow keeps of a window: None when it keeps every row (no window, or a
        timestamp column of a type the read parses)."""
        if not window:
            return None
        ts, start, end = window
        if ts not in ds.schema.names:
            raise DataError("timestamp column is missing", column=ts)
        typ = ds.schema.field(ts).type
        if pa.types.is_timestamp(typ):
            if typ.tz is None:
                raise DataError(
                    "timestamps are timezone-naive; store them in UTC with an explicit time zone",
                    column=ts,
                )
            return _ParquetWindow(ts, pa.scalar(start, type=typ), pa.scalar(end, type=typ))
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            # written dates around the window (row groups outside it are skipped); the exact
            # window after parsing. Rows without a timestamp are read, to be refused.
            lo, hi = written_dates(start, end)
            return _ParquetWindow(ts, pa.scalar(lo), pa.scalar(hi), keep_null=True)
        return None

    def _parquet_filter(
        self, ds: pads.Dataset, window: tuple[str, datetime, datetime] | None
    ) -> pads.Expression | None:
        kept = self._parquet_window(ds, window)
        return kept.expression if kept else None

    def _parquet_chunks(
        self, columns: Sequence[str] | None, window: tuple[str, datetime, datetime] | None
    ) -> Generator[pd.DataFrame, None, None]:
        ds = self._dataset()
        if columns:
            self._require(columns)
        kept = self._parquet_window(ds, window)
        flt = kept.expression if kept else None
        names = list(columns) if columns else list(ds.schema.names)
        fragments = list(ds.get_fragments(filter=flt))
        want = [(n, ds.schema.field(n).type) for n in names]
        if all(_fields(f.physical_schema, names) == want for f in fragments):
            batches = self._parquet_row_groups(fragments, names, kept)
        else:  # files of other types than the dataset's: the scanner casts them
            batches = ds.scanner(columns=names, filter=flt, batch_size=self.chunk_rows)
            batches = batches.to_batches()
        for batch in batches:
            if batch.num_rows:
                yield batch.to_pandas()

    def _parquet_row_groups(
        self, fragments: list[pads.Fragment], names: list[str], kept: _ParquetWindow | None
    ) -> Iterator[pa.RecordBatch | pa.Table]:
        """The batches the dataset's scanner gives (`chunk_rows` rows of a row group at a
        time, then filtered), decoded a batch at a time: the scanner decodes whole row groups,
        several ahead (3.7 GB for 10 files of one 1M-row row group each; this, ~300 MB). A
        batch wholly inside the window is not filtered: Arrow's filter took 6.6 ms a 50k-row
        batch, its bounds 0.04 ms."""
        flt = kept.expression if kept else None
        for fragment in fragments:
            groups = [g.id for part in fragment.split_by_row_group(flt) for g in part.row_groups]
            if not groups:
                continue
            with fragment.filesystem.open_input_file(fragment.path) as f:
                reader = pq.ParquetFile(f, pre_buffer=False)
                for group in groups:
                    for batch in reader.iter_batches(
                        self.chunk_rows, row_groups=[group], columns=names
                    ):
                        batch = batch.select(names)
                        if kept is None or kept.keeps_all(batch):
                            yield batch
                        else:
                            yield pa.Table.from_batches([batch]).filter(flt)

    def _parquet_count(
        self, ds: pads.Dataset, window: tuple[str, datetime, datetime]
    ) -> WindowCount:
        """The rows in the window as Arrow counts them: its own ISO-8601 parse for text."""
        ts, start, end = window
        flt = self._parquet_filter(ds, window)
        if pa.types.is_timestamp(ds.schema.field(ts).type):
            n = ds.count_rows(filter=flt)
            return WindowCount(n, n)
        n = 0
        utc = pa.timestamp("ns", "UTC")
        lo, hi = pa.scalar(start, type=utc), pa.scalar(end, type=utc)
        for batch in ds.scanner(columns=[ts], filter=flt, batch_size=self.chunk_rows).to_batches():
            try:
                instants = pc.cast(batch.column(ts), utc)
            except pa.ArrowInvalid:  # a form Arrow does not parse: count with the read's parser
                instants = pa.array(parse_timestamps(batch.column(ts).to_pandas(), column=ts))
            inside = pc.and_(pc.greater_equal(instants, lo), pc.less(instants, hi))
            n += pc.sum(inside).as_py() or 0
        return WindowCount(n, n)

    def _parquet_duplicates(
        self, id_col: str, timestamp_col: str, start: datetime, end: datetime, limit: int
    ) -> list[str]:
        """The first `limit` ids seen a second time, in the order they were, compared as text.

        Memory: 8 bytes an id, a 64-bit hash of each (`_text_hashes`), sorted once to find the
        hashes seen twice; a second pass keeps the ids behind those (the repeats, and the rare
        ids sharing a hash) and finds the repeats exactly. (The ids themselves in a dict took
        ~150 bytes each, in Arrow's hash table ~70.)
        """
        hashes = [_text_hashes(ids) for ids in self._window_ids(id_col, timestamp_col, start, end)]
        every = np.sort(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)
        twice = np.unique(every[1:][every[1:] == every[:-1]])
        del hashes, every
        if not len(twice):
            return []
        seen: set[str] = set()
        dups: list[str] = []
        for ids in self._window_ids(id_col, timestamp_col, start, end):
            for rid in ids.filter(np.isin(_text_hashes(ids), twice)).to_pylist():
                if rid in seen:
                    if rid not in dups:
                        dups.append(rid)
                        if len(dups) == limit:
                            return dups
                else:
                    seen.add(rid)
        return dups

    def _window_ids(
        self, id_col: str, timestamp_col: str, start: datetime, end: datetime
    ) -> Iterator[pa.Array]:
        """The window's ids as text, chunk by chunk: a window of typed instants with text ids
        straight from the dataset (the filter exact, no timestamp parsed), others as the read
        hands them on."""
        ds = self._dataset()
        self._require([id_col, timestamp_col])
        ts_type = ds.schema.field(timestamp_col).type
        text = ds.schema.field(id_col).type in (pa.string(), pa.large_string())
        if text and pa.types.is_timestamp(ts_type) and ts_type.tz is not None:
            window = (timestamp_col, start.astimezone(UTC), end.astimezone(UTC))
            flt = self._parquet_filter(ds, window)
            for batch in ds.scanner(
                columns=[id_col], filter=flt, batch_size=self.chunk_rows
            ).to_batches():
                yield pc.cast(batch.column(0), pa.large_string())
            return
        for chunk in self.iter_window(timestamp_col, start, end, [id_col, timestamp_col]):
            yield pa.array(chunk[id_col].astype(str), type=pa.large_string())
