"""Reading a model's rows: any SQLAlchemy URL (table or query) or Parquet files, streamed.

Rows always arrive as bounded chunks (`SourceConfig.chunk_rows`), so the memory needed to
profile a day does not grow with the day's size. Timestamps must carry their time zone: a
tz-naive timestamp is ambiguous (is it UTC? the server's local time?) and is refused with a
`DataError` naming the column.

SQLite stores timestamps as text. They must be ISO-8601 in UTC with an explicit offset
('2026-03-01 13:45:12.123+00:00'): the day window is then selected with an index-friendly
string comparison and re-checked exactly after parsing.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, SourceConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.values import cap_strings, quoted

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_HAS_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)\s*$"
_ENGINES: dict[str, sa.Engine] = {}


def served(chunk: pd.DataFrame, prediction: str, status: str | None) -> pd.DataFrame:
    """The rows that carry a served prediction: a failed request (status other than "ok") may
    log no prediction; it counts as an error in the operational signals and is left out of
    drift and performance. Without a status column every row must carry a prediction."""
    if not status or status not in chunk.columns or prediction not in chunk.columns:
        return chunk
    failed_empty = chunk[prediction].isna() & (chunk[status].astype(str) != "ok")
    return chunk[~failed_empty] if failed_empty.any() else chunk


def day_window(day: date | str) -> tuple[datetime, datetime]:
    """The UTC window [start, end) of a daily partition."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


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
    try:
        return pd.to_datetime(text, format="ISO8601", utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"unparseable timestamps: {exc}", column=column) from None


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
            self._parquet_chunks(columns, None)
            if self.config.parquet
            else self._sql_chunks(columns, None)
        )
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
        window = (timestamp_col, start, end)
        chunks = (
            self._parquet_chunks(columns, window)
            if self.config.parquet
            else self._sql_chunks(columns, window)
        )
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
    def _bounds(self, eng: sa.Engine, start: datetime, end: datetime) -> tuple[object, object]:
        if eng.dialect.name == "sqlite":
            # ISO text compares lexicographically; 'YYYY-MM-DD HH:MM:SS' prefixes sort correctly
            return start.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S")
        return start, end

    def _sql_select(
        self,
        eng: sa.Engine,
        columns: Sequence[str] | None,
        window: tuple[str, datetime, datetime] | None,
    ) -> tuple[str, dict[str, object]]:
        cols = ", ".join(_quote(eng, c, "column") for c in columns) if columns else "*"
        params: dict[str, object] = {}
        if self.config.table:
            table = _quote(eng, self.config.table, "table")
            sql = f"SELECT {cols} FROM {table}"
            if window:
                ts, start, end = window
                qts = _quote(eng, ts, "column")
                sql += f" WHERE {qts} >= :start AND {qts} < :end"
                params["start"], params["end"] = self._bounds(eng, start, end)
            return sql, params
        query = (self.config.query or "").strip().rstrip(";")
        sql = f"SELECT {cols} FROM ({query}) AS q"
        if window:
            params["start"], params["end"] = self._bounds(eng, window[1], window[2])
            if ":start" not in query:  # the query does not window itself: the database does
                sql += f" WHERE {_quote(eng, window[0], 'column')} >= :start"
                sql += f" AND {_quote(eng, window[0], 'column')} < :end"
        return sql, params

    def _sql_chunks(
        self, columns: Sequence[str] | None, window: tuple[str, datetime, datetime] | None
    ) -> Iterator[pd.DataFrame]:
        eng = engine_for(self.config.url or "")
        if columns:
            self._require(columns)
        sql, params = self._sql_select(eng, columns, window)
        with eng.connect().execution_options(stream_results=True) as conn:
            try:
                yield from pd.read_sql_query(
                    sa.text(sql), conn, params=params, chunksize=self.chunk_rows
                )
            except sa.exc.SQLAlchemyError as exc:
                raise DataError(f"reading {self.describe()} failed: {exc.orig or exc}") from None

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

    def _parquet_filter(
        self, ds: pads.Dataset, window: tuple[str, datetime, datetime] | None
    ) -> pads.Expression | None:
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
            return (pads.field(ts) >= pa.scalar(start, type=typ)) & (
                pads.field(ts) < pa.scalar(end, type=typ)
            )
        return None  # text timestamps: filtered exactly after parsing

    def _parquet_chunks(
        self, columns: Sequence[str] | None, window: tuple[str, datetime, datetime] | None
    ) -> Iterator[pd.DataFrame]:
        ds = self._dataset()
        if columns:
            self._require(columns)
        scanner = ds.scanner(
            columns=list(columns) if columns else None,
            filter=self._parquet_filter(ds, window),
            batch_size=self.chunk_rows,
        )
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield batch.to_pandas()

    def _parquet_duplicates(
        self, id_col: str, timestamp_col: str, start: datetime, end: datetime, limit: int
    ) -> list[str]:
        seen: dict[str, int] = {}
        dups: list[str] = []
        for chunk in self.iter_window(timestamp_col, start, end, [id_col, timestamp_col]):
            for rid in chunk[id_col].astype(str):
                if rid in seen:
                    if len(dups) < limit and rid not in dups:
                        dups.append(rid)
                else:
                    seen[rid] = 1
        return dups
