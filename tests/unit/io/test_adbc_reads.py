"""A SQL source read through ADBC gives the very chunks (and so the very profile) that the
SQLAlchemy read gives, on SQLite and PostgreSQL; where ADBC cannot, the read falls back and
says why, and never hands on other rows (issue 12).

Every equality below compares the chunks of the two readers one by one with
`assert_frame_equal` (dtypes included, values exactly), or whole profiles as dicts.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from aiops_pipelines.core.config import SourceConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io import arrow_sql
from aiops_pipelines.io.arrow_sql import (
    AdbcUnsupported,
    adbc_target,
    bind,
    literal_sql,
    prefetched,
    read_frames,
)
from aiops_pipelines.io.sources import Source, StringCap, day_window
from aiops_pipelines.signals.profile.day import profile_for_day, profile_reference
from tests.unit.io.test_timestamp_offsets import (
    DAYS,
    EST,
    JST,
    SOURCES,
    _log,
    _model,
    _world,
    _written,
)

START, END = day_window("2026-03-05")
READERS = ("adbc", "sqlalchemy")
postgres = pytest.mark.postgres


def _frame(n: int = 6000, seed: int = 3) -> pd.DataFrame:
    """Three days of rows written at -05:00 or +09:00, with NULLs: `income` (float) scattered,
    `age` (integer) only in the first 1,000 rows, `score` in every row of 1,000-1,999 (a
    chunk where the column is all NULL), `plan` (text) scattered; `utc` is the instant."""
    rng = np.random.default_rng(seed)
    first = datetime(2026, 3, 4, tzinfo=UTC)
    instants = sorted(first + timedelta(seconds=float(s)) for s in rng.uniform(0, 3 * 86400, n))
    zones = [EST if z else JST for z in rng.integers(0, 2, n)]
    income = rng.normal(50, 10, n)
    income[rng.random(n) < 0.05] = np.nan
    age = pd.array(rng.integers(18, 90, n), dtype="Int64")
    age[: min(n, 1000)][rng.random(min(n, 1000)) < 0.1] = pd.NA
    score = rng.random(n)
    score[1000:2000] = np.nan
    plan = rng.choice(["basic", "plus", "pro"], n).astype(object)
    plan[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "timestamp": [_written(i, z, "T") for i, z in zip(instants, zones, strict=True)],
            "utc": pd.to_datetime(instants, utc=True),
            "model_version": rng.choice(["1", "2"], n),
            "prediction": rng.integers(0, 2, n),
            "income": income,
            "age": age,
            "score": score,
            "plan": plan,
            "status": np.where(rng.random(n) < 0.95, "ok", "error"),
        }
    )


def _sqlite(tmp_path: Path, frame: pd.DataFrame, table: str = "preds") -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    eng = sa.create_engine(url)
    frame.drop(columns="utc", errors="ignore").to_sql(table, eng, index=False, if_exists="replace")
    eng.dispose()
    return url


def _postgres(url: str, frame: pd.DataFrame, table: str = "preds") -> None:
    eng = sa.create_engine(url)
    timestamptz = frame.drop(columns="timestamp").rename(columns={"utc": "timestamp"})
    timestamptz.to_sql(table, eng, index=False)
    eng.dispose()


def _read(config: SourceConfig, how: Callable[[Source], Iterator[pd.DataFrame]]) -> dict:
    """The chunks each reader gives (reader 'adbc' fails rather than falling back)."""
    return {r: list(how(Source(config.model_copy(update={"reader": r})))) for r in READERS}


def _assert_same(chunks: dict[str, list[pd.DataFrame]]) -> None:
    adbc, alchemy = chunks["adbc"], chunks["sqlalchemy"]
    assert len(adbc) == len(alchemy) and adbc
    for a, b in zip(adbc, alchemy, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def _window(src: Source) -> Iterator[pd.DataFrame]:
    return src.iter_window("timestamp", START, END)


def _all(src: Source) -> Iterator[pd.DataFrame]:
    return src.iter_all()


# ------------------------------------------------------------------ the same chunks


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=postgres)])
def test_both_readers_give_the_same_chunks_with_nulls_and_an_all_null_chunk(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    frame = _frame()
    if backend == "sqlite":
        url = _sqlite(tmp_path, frame)
    else:
        url = request.getfixturevalue("pg_url")
        _postgres(url, frame)
    config = SourceConfig(url=url, table="preds", chunk_rows=1000)
    for how in (_window, _all):
        chunks = _read(config, how)
        _assert_same(chunks)
    whole = chunks["adbc"]
    assert [str(c["score"].dtype) for c in whole[:3]] == ["float64", "object", "float64"]
    assert [str(c["age"].dtype) for c in whole[:2]] == ["float64", "int64"]
    assert whole[0]["plan"].isna().any() and whole[0]["income"].isna().any()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(k, marks=postgres) if k.startswith("postgres") else k
        for k in SOURCES
        if not k.startswith("parquet")
    ],
)
def test_the_offset_cases_read_the_same_through_adbc(
    kind: str, tmp_path: Path, pg_table: Callable[..., SourceConfig]
) -> None:
    """The window edge cases of issue 11 (rows written at other offsets, at and next to
    midnight, rounded by SQLite): the same rows, chunks and counts through either reader."""
    log = _log()
    config = SOURCES[kind](tmp_path, log, pg_table)
    for day in DAYS:
        start, end = day_window(day)
        chunks = _read(config, lambda s, a=start, b=end: s.iter_window("timestamp", a, b))
        _assert_same(chunks)
        counted = Source(config).count_window("timestamp", start, end)
        assert counted.admits(sum(map(len, chunks["adbc"])))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=postgres)])
def test_a_day_and_the_reference_profile_the_same_through_either_reader(
    backend: str, tmp_path: Path, pg_table: Callable[..., SourceConfig]
) -> None:
    _, _, preds, outs, url = _world(backend, tmp_path, pg_table)
    models = {
        r: _model(
            preds.model_copy(update={"reader": r}),
            outs,
            url,
        ).model_copy(
            update={"reference": SourceConfig(url=url, table="ref", reader=r)},
        )
        for r in READERS
    }
    refs = {r: profile_reference(m) for r, m in models.items()}
    assert refs["adbc"].profile.to_dict() == refs["sqlalchemy"].profile.to_dict()
    pd.testing.assert_frame_equal(refs["adbc"].sample, refs["sqlalchemy"].sample)
    reference = refs["sqlalchemy"].profile
    for day in DAYS:
        got = {r: profile_for_day(m, day, reference, chunk_rows=1000) for r, m in models.items()}
        a, b = got["adbc"], got["sqlalchemy"]
        assert a.profile.to_dict() == b.profile.to_dict()
        assert (a.n_rows, a.n_chunks, a.n_errors) == (b.n_rows, b.n_chunks, b.n_errors)
        assert (a.versions, a.dtypes, a.within_day) == (b.versions, b.dtypes, b.within_day)
        pd.testing.assert_frame_equal(a.sample, b.sample, check_exact=True)


def test_a_sqlite_query_with_its_window_parameters_reads_the_same(tmp_path: Path) -> None:
    url = _sqlite(tmp_path, _frame())
    query = (
        "SELECT * FROM preds WHERE (timestamp >= :start OR timestamp < :start) "
        "AND timestamp < :end AND plan LIKE '%s%'"
    )
    config = SourceConfig(url=url, query=query, chunk_rows=1000)
    _assert_same(_read(config, _window))


@postgres
def test_a_postgres_query_with_its_window_parameters_reads_the_same(pg_url: str) -> None:
    _postgres(pg_url, _frame())
    query = (
        "SELECT *, plan::text || '%' AS tagged FROM preds WHERE timestamp >= :start - "
        "interval '1 day' AND timestamp < :end AND (plan LIKE 'p%' OR plan IS NULL)"
    )
    config = SourceConfig(url=pg_url, query=query, chunk_rows=1000)
    chunks = _read(config, _window)
    _assert_same(chunks)
    assert set(pd.concat(chunks["adbc"])["plan"].dropna()) == {"plus", "pro"}


@postgres
def test_postgres_types_read_as_psycopg_gives_them(pg_url: str) -> None:
    """numeric (decimals coerced to float), real (its shortest decimal form), smallint, uuid,
    date, bytea, booleans with NULLs: the values `read_sql_query` builds."""
    _postgres(pg_url, _frame(3000))
    eng = sa.create_engine(pg_url)
    with eng.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE typed AS SELECT request_id, timestamp, income::numeric(12, 4) AS dec, "
            "income::real AS r, mod(age, 100)::smallint AS small, md5(request_id)::uuid AS u, "
            "timestamp::date AS d, convert_to(plan, 'UTF8') AS b, "
            "CASE WHEN plan IS NULL THEN NULL ELSE plan = 'pro' END AS flag, "
            "income::numeric AS n FROM preds"
        )
    eng.dispose()
    config = SourceConfig(url=pg_url, table="typed", chunk_rows=1000)
    chunks = _read(config, _window)
    _assert_same(chunks)
    first = chunks["adbc"][0]
    assert isinstance(first["u"].dropna().iloc[0], uuid.UUID)
    assert str(first["dec"].dtype) == "float64" and str(first["small"].dtype) == "int64"


@postgres
def test_a_postgres_type_adbc_leaves_to_sqlalchemy_is_read_by_it(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _postgres(pg_url, _frame(2000))
    with sa.create_engine(pg_url).begin() as conn:
        conn.exec_driver_sql("ALTER TABLE preds ADD COLUMN extra jsonb DEFAULT '{\"a\": 1}'")
    config = SourceConfig(url=pg_url, table="preds", chunk_rows=1000)
    with caplog.at_level(logging.INFO, logger="aiops_pipelines.io.sources"):
        auto = list(_window(Source(config)))
    assert "through SQLAlchemy" in caplog.text and "'extra'" in caplog.text
    alchemy = list(_window(Source(config.model_copy(update={"reader": "sqlalchemy"}))))
    for a, b in zip(auto, alchemy, strict=True):
        pd.testing.assert_frame_equal(a, b)
    with pytest.raises(DataError, match="through ADBC failed: column 'extra'"):
        list(_window(Source(config.model_copy(update={"reader": "adbc"}))))


# ------------------------------------------------------------------ PostgreSQL's plans


def _late_table(pg_url: str, n: int = 12000, seed: int = 5) -> SourceConfig:
    """Predictions written as they arrived over five days (the table's order), each stamped
    with its request's time, up to three days before it arrived; indexed on the stamp."""
    rng = np.random.default_rng(seed)
    arrived = datetime(2026, 3, 3, tzinfo=UTC) + np.arange(n) * (timedelta(days=5) / n)
    late = pd.to_timedelta(rng.uniform(0, 72 * 3600, n), unit="s")
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "timestamp": pd.to_datetime(arrived, utc=True) - late,
            "model_version": "1",
            "prediction": rng.integers(0, 2, n),
            "income": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    eng = sa.create_engine(pg_url)
    frame.to_sql("late", eng, index=False)
    with eng.begin() as conn:
        conn.exec_driver_sql('CREATE INDEX ix_late_ts ON late ("timestamp")')
        conn.exec_driver_sql("ANALYZE late")
    eng.dispose()
    return SourceConfig(url=pg_url, table="late", chunk_rows=1000)


@postgres
def test_rows_stamped_out_of_order_read_alike_and_resume_in_line(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL plans a cursor for its first rows unless told otherwise (here: an index scan,
    the day in time order) and COPY for all of them (a bitmap scan, the day in the order it
    arrived). Both readers get the plan for all rows: the same chunks, and a read that ADBC
    fails mid-way continues through SQLAlchemy where it stopped."""
    config = _late_table(pg_url)
    select = 'SELECT * FROM "late" WHERE "timestamp" >= :w_start AND "timestamp" < :w_end'
    eng = sa.create_engine(pg_url)
    for day in DAYS:
        start, end = day_window(day)
        chunks = _read(config, lambda s, a=start, b=end: s.iter_window("timestamp", a, b))
        _assert_same(chunks)
        read = pd.concat(chunks["adbc"])["request_id"].tolist()
        with eng.connect().execution_options(stream_results=True) as conn:
            rows = conn.execute(sa.text(select), {"w_start": start, "w_end": end})
            first_rows_plan = [r.request_id for r in rows]
        assert sorted(first_rows_plan) == sorted(read) and first_rows_plan != read
    eng.dispose()

    convert, converted = arrow_sql.frame, []

    def failing_third(table: pa.Table, conversions: list[str]) -> pd.DataFrame:
        converted.append(table.num_rows)
        if len(converted) == 3:
            raise pa.ArrowInvalid("a value the conversion cannot take")
        return convert(table, conversions)

    monkeypatch.setattr(arrow_sql, "frame", failing_third)
    with caplog.at_level(logging.INFO, logger="aiops_pipelines.io.sources"):
        resumed = list(_window(Source(config)))
    assert "ADBC failed after 2,000 rows" in caplog.text
    want = list(_window(Source(config.model_copy(update={"reader": "sqlalchemy"}))))
    _assert_same({"adbc": resumed, "sqlalchemy": want})


@postgres
def test_a_parallel_plan_on_offer_is_not_taken_by_the_adbc_read(pg_url: str) -> None:
    """PostgreSQL may run a COPY's query on parallel workers, whose rows reach the Gather in
    whatever order they come; a cursor never runs on them. Made free here, parallel plans are
    on offer, and the ADBC read still returns the rows in the SQLAlchemy read's order."""
    _postgres(pg_url, _frame(20000))
    u = sa.make_url(pg_url)
    free = "-cparallel_setup_cost=0 -cparallel_tuple_cost=0 -cmin_parallel_table_scan_size=0"
    options = f"{u.query['options']} {free} -cparallel_leader_participation=off"
    url = u.update_query_dict({"options": options}).render_as_string(hide_password=False)
    eng = sa.create_engine(url)
    with eng.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN SELECT * FROM preds").scalars().all()
    eng.dispose()
    assert plan[0].startswith("Gather")
    config = SourceConfig(url=url, table="preds", chunk_rows=1000)
    _assert_same(_read(config, _all))


@postgres
def test_a_quote_or_a_backslash_in_a_parameter_stays_inside_its_literal(pg_url: str) -> None:
    values = {
        "quote": "x' OR '1'='1",
        "escaped": "\\'; SELECT 1; --",
        "dollars": "$1 $$ $q$ %s %(a)s :end",
        "backslash_last": "it's \\",
        "at": datetime(2026, 3, 4, 19, 30, 0, 5, tzinfo=EST),
    }
    sql = ", ".join(f":{k} AS {k}" for k in values)
    target = adbc_target(pg_url)
    (got,) = read_frames(target, f"SELECT {sql}, pg_typeof(:at)::text AS t", values, chunk_rows=10)
    row = got.iloc[0].to_dict()
    assert row.pop("t") == "timestamp with time zone"
    assert row == {**values, "at": pd.Timestamp(values["at"]).tz_convert("UTC")}


@postgres
def test_a_server_reading_backslashes_as_escapes_is_left_to_sqlalchemy(pg_url: str) -> None:
    u = sa.make_url(pg_url)
    options = f"{u.query['options']} -cstandard_conforming_strings=off"
    url = u.update_query_dict({"options": options}).render_as_string(hide_password=False)
    with pytest.raises(AdbcUnsupported, match="standard_conforming_strings is off"):
        list(read_frames(adbc_target(url), "SELECT :v AS v", {"v": "a\\"}, chunk_rows=10))


# ------------------------------------------------------------------ strings and errors


def test_long_strings_are_cut_and_counted_alike(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[[5, 1500, 2500], "plan"] = ["x" * 300, "y" * 1000, "</script>" * 50]
    config = SourceConfig(url=_sqlite(tmp_path, frame), table="preds", chunk_rows=1000)
    caps = {r: StringCap(256, ("plan", "model_version")) for r in READERS}
    chunks = {
        r: list(
            Source(config.model_copy(update={"reader": r}), strings=caps[r]).iter_window(
                "timestamp", datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)
            )
        )
        for r in READERS
    }
    _assert_same(chunks)
    assert caps["adbc"].counts == caps["sqlalchemy"].counts == {"plan": 3}
    assert caps["adbc"].longest == caps["sqlalchemy"].longest == {"plan": 1000}


def test_a_missing_column_or_table_fails_alike(tmp_path: Path) -> None:
    url = _sqlite(tmp_path, _frame(500))
    columns, tables = {}, {}
    for reader in ("auto", *READERS):
        src = Source(SourceConfig(url=url, table="preds", reader=reader))
        with pytest.raises(DataError) as err:
            list(src.iter_window("timestamp", START, END, ["request_id", "timestamp", "nope"]))
        assert err.value.column == "nope"
        columns[reader] = str(err.value)
        with pytest.raises(DataError) as err:
            list(Source(SourceConfig(url=url, table="gone", reader=reader)).iter_all())
        tables[reader] = str(err.value)
    assert len(set(columns.values())) == 1 and "column missing from" in columns["auto"]
    assert tables["auto"] == tables["sqlalchemy"]  # auto: ADBC failed, SQLAlchemy says why
    assert "no such table: gone" in tables["auto"]
    assert "through ADBC failed" in tables["adbc"] and "no such table" in tables["adbc"]


# ------------------------------------------------------------------ SQLite's mixed types


def _mixed(tmp_path: Path) -> str:
    """A day whose `late` column is NULL in the first 1,500 rows and text after (the driver
    reads it as integers first), and whose untyped `mixed` column holds text first and
    numbers after (the driver would turn them into text)."""
    frame = _frame(3000)
    frame["late"] = [None] * 1500 + ["x"] * 1500
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    eng = sa.create_engine(url)
    frame.drop(columns="utc").to_sql("preds", eng, index=False)
    with eng.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE preds ADD COLUMN mixed")
        conn.exec_driver_sql("UPDATE preds SET mixed = IIF(rowid <= 2000, 'a', 1.0)")
    eng.dispose()
    return url


def test_a_column_changing_type_mid_stream_falls_back_where_adbc_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = SourceConfig(url=_mixed(tmp_path), table="preds", chunk_rows=1000)
    columns = ["request_id", "timestamp", "income", "late"]
    window = ("timestamp", datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC))
    with caplog.at_level(logging.INFO, logger="aiops_pipelines.io.sources"):
        auto = list(Source(config).iter_window(*window, columns))
    assert "ADBC failed after 1,000 rows" in caplog.text and "Type mismatch" in caplog.text
    alchemy = Source(config.model_copy(update={"reader": "sqlalchemy"}))
    want = list(alchemy.iter_window(*window, columns))
    assert len(auto) == len(want) == 3
    for a, b in zip(auto, want, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert auto[0]["late"].isna().all() and set(auto[2]["late"]) == {"x"}
    with pytest.raises(DataError, match=r"through ADBC failed: .*\(after 1,000 rows\)"):
        list(Source(config.model_copy(update={"reader": "adbc"})).iter_window(*window, columns))


def test_a_text_column_sqlite_may_hold_numbers_in_is_left_to_sqlalchemy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = SourceConfig(url=_mixed(tmp_path), table="preds", chunk_rows=1000)
    columns = ["request_id", "timestamp", "mixed"]
    with caplog.at_level(logging.INFO, logger="aiops_pipelines.io.sources"):
        auto = list(Source(config).iter_all(columns))
    assert "column 'mixed'" in caplog.text and "read as text" in caplog.text
    want = list(Source(config.model_copy(update={"reader": "sqlalchemy"})).iter_all(columns))
    for a, b in zip(auto, want, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert auto[-1]["mixed"].tolist()[-1] == 1.0  # a number, not the text '1.0'


def test_a_resumed_read_that_does_not_line_up_fails_instead_of_skipping_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SourceConfig(url=_mixed(tmp_path), table="preds", chunk_rows=1000)
    chunks = Source._sqlalchemy_chunks

    def reordered(self: Source, *args: Any) -> Iterator[pd.DataFrame]:
        for chunk in chunks(self, *args):
            yield chunk.iloc[::-1].reset_index(drop=True)

    monkeypatch.setattr(Source, "_sqlalchemy_chunks", reordered)
    with pytest.raises(DataError, match="does not return those rows in the same order"):
        list(Source(config).iter_all(["request_id", "late"]))


# ------------------------------------------------------------------ the pieces


def test_parameters_are_bound_as_sqlite_takes_them_and_rendered_as_postgres_literals() -> None:
    sql = "SELECT '%' || :a AS p, x::text FROM t WHERE y = :a AND z < :b AND c = 'a\\:b'"
    text, args = bind(sql, {"a": "it's", "b": 2.5})
    assert text.count("?") == 3 and args == ["it's", "it's", 2.5] and "'a:b'" in text
    at = datetime(2026, 3, 4, 19, tzinfo=EST)
    assert literal_sql(sql, {"a": "it's", "b": at}) == (
        "SELECT '%' || 'it''s' AS p, x::text FROM t WHERE y = 'it''s' AND "
        "z < CAST('2026-03-05 00:00:00+00:00' AS TIMESTAMP WITH TIME ZONE) AND c = 'a:b'"
    )
    naive = literal_sql("SELECT :b", {"b": datetime(2026, 3, 5, 1, 2, 3, 4)})
    assert naive == "SELECT CAST('2026-03-05 01:02:03.000004' AS TIMESTAMP WITHOUT TIME ZONE)"
    for odd, why in [(2.5, "float is not rendered"), ("a\x00b", "NUL"), (None, "NoneType")]:
        with pytest.raises(AdbcUnsupported, match=why):
            literal_sql("SELECT :b", {"b": odd})
    with pytest.raises(AdbcUnsupported, match="no value for the parameter :b"):
        literal_sql("SELECT :b", {})


def test_read_ahead_keeps_order_raises_in_place_and_stops_when_closed() -> None:
    closed = threading.Event()

    def items(fail_at: int | None) -> Iterator[int]:
        try:
            for i in range(100):
                if i == fail_at:
                    raise ValueError(f"failed at {i}")
                yield i
        finally:
            closed.set()

    got = []
    with pytest.raises(ValueError, match="failed at 3"):
        for x in prefetched(items(3)):
            got.append(x)
    assert got == [0, 1, 2]
    ahead = prefetched(items(None))
    closed.clear()
    assert [next(ahead), next(ahead)] == [0, 1]
    ahead.close()
    assert closed.is_set()
    assert not [t for t in threading.enumerate() if t.name == "aiops-read-ahead"]


def test_a_postgres_url_reaches_libpq_whole() -> None:
    url = "postgresql+psycopg://us%27er:p%40ss%5Cw@db:5433/logs?options=-csearch_path%3Dx%20-cfoo%3Dbar"
    assert adbc_target(url).uri == (
        "host='db' port='5433' dbname='logs' user='us\\'er' password='p@ss\\\\w' "
        "options='-csearch_path=x -cfoo=bar'"
    )


@postgres
def test_postgres_options_with_spaces_reach_the_server(pg_url: str) -> None:
    """Two options in the URL (a space between them): the search path still holds, so ADBC
    reads the table of the throwaway schema, in the order of a scan started at its start."""
    _postgres(pg_url, _frame(3000))
    u = sa.make_url(pg_url)
    options = f"{u.query['options']} -csynchronize_seqscans=off"
    url = u.update_query_dict({"options": options}).render_as_string(hide_password=False)
    config = SourceConfig(url=url, table="preds", chunk_rows=1000)
    _assert_same(_read(config, _all))


def test_the_reader_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="'reader' applies to a 'url' source"):
        SourceConfig(parquet=str(tmp_path), reader="adbc")
    memory = Source(SourceConfig(url="sqlite://", table="t", reader="adbc"))
    with pytest.raises(DataError, match="cannot be read through ADBC: an in-memory SQLite"):
        list(memory.iter_all())
    assert SourceConfig(url="sqlite://", table="t").reader == "auto"
