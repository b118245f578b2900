"""Sources stream a day's rows from SQL tables, queries and Parquet, and refuse bad timestamps."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import SourceConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io.sources import Source, _text_hashes, day_window, parse_timestamps

START, END = day_window("2026-03-02")


def _rows(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # three days: the partition's day is the middle one
    ts = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(
        rng.uniform(0, 3 * 86400, n), unit="s"
    )
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "timestamp": ts,
            "x": rng.normal(size=n),
            "plan": rng.choice(["a", "b"], n),
        }
    )


def _in_day(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df.timestamp >= START) & (df.timestamp < END)]


def _sqlite(tmp_path: Path, df: pd.DataFrame, table: str = "preds") -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    text = df.assign(timestamp=df.timestamp.dt.strftime("%Y-%m-%d %H:%M:%S.%f+00:00"))
    text.to_sql(table, sa.create_engine(url), index=False, if_exists="replace")
    return url


def test_sqlite_table_window_is_streamed_in_bounded_chunks(tmp_path: Path) -> None:
    df = _rows()
    src = Source(SourceConfig(url=_sqlite(tmp_path, df), table="preds", chunk_rows=1000))
    chunks = list(src.iter_window("timestamp", START, END, ["request_id", "timestamp", "x"]))
    assert max(len(c) for c in chunks) <= 1000 and len(chunks) >= 2
    got = pd.concat(chunks)
    want = _in_day(df)
    assert sorted(got.request_id) == sorted(want.request_id)
    assert str(got.timestamp.dtype) == "datetime64[ns, UTC]" or "UTC" in str(got.timestamp.dtype)
    assert np.isclose(got.x.sum(), want.x.sum())


def test_query_source_binds_the_partition_window(tmp_path: Path) -> None:
    df = _rows()
    url = _sqlite(tmp_path, df)
    q = "SELECT * FROM preds WHERE timestamp >= :start AND timestamp < :end AND plan = 'a'"
    src = Source(SourceConfig(url=url, query=q))
    got = pd.concat(src.iter_window("timestamp", START, END))
    want = _in_day(df)
    assert sorted(got.request_id) == sorted(want[want.plan == "a"].request_id)


def test_query_source_without_window_parameters_is_windowed_by_the_database(
    tmp_path: Path,
) -> None:
    """A query that does not use :start/:end still reads one day, and a request id repeated
    on another day is not a duplicate of this one."""
    df = _rows()
    outside = df[df.timestamp >= END].iloc[0]
    inside = _in_day(df).iloc[0]
    df.loc[outside.name, "request_id"] = inside.request_id  # the same id, the next day
    src = Source(SourceConfig(url=_sqlite(tmp_path, df), query="SELECT * FROM preds"))
    sql, params = src._sql_select(sa.create_engine(src.config.url), None, ("timestamp", START, END))
    assert "WHERE" in sql and params  # filtered in SQL, not pandas
    got = pd.concat(src.iter_window("timestamp", START, END))
    assert sorted(got.request_id) == sorted(_in_day(df).request_id)
    assert src.duplicate_ids("request_id", "timestamp", START, END) == []


def test_parquet_folder_with_tz_aware_timestamps(tmp_path: Path) -> None:
    df = _rows()
    folder = tmp_path / "pq"
    folder.mkdir()
    for i, lo in enumerate(range(0, len(df), 1700)):
        part = df.iloc[lo : lo + 1700]
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / f"{i}.parquet")
    src = Source(SourceConfig(parquet=str(folder), chunk_rows=1000))
    got = pd.concat(src.iter_window("timestamp", START, END))
    assert sorted(got.request_id) == sorted(_in_day(df).request_id)
    glob_src = Source(SourceConfig(parquet=str(folder / "*.parquet")))
    assert sum(len(c) for c in glob_src.iter_all()) == len(df)


def test_tz_naive_timestamps_are_refused_naming_the_column(tmp_path: Path) -> None:
    df = _rows(200)
    naive = df.assign(timestamp=df.timestamp.dt.strftime("%Y-%m-%d %H:%M:%S"))
    url = f"sqlite:///{tmp_path / 'n.db'}"
    naive.to_sql("preds", sa.create_engine(url), index=False)
    with pytest.raises(DataError, match="timezone-naive") as err:
        list(Source(SourceConfig(url=url, table="preds")).iter_window("timestamp", START, END))
    assert err.value.column == "timestamp"
    path = tmp_path / "naive.parquet"
    pq.write_table(
        pa.Table.from_pandas(df.assign(timestamp=df.timestamp.dt.tz_localize(None))), path
    )
    with pytest.raises(DataError, match="timezone-naive"):
        list(Source(SourceConfig(parquet=str(path))).iter_window("timestamp", START, END))


def test_missing_column_is_named(tmp_path: Path) -> None:
    src = Source(SourceConfig(url=_sqlite(tmp_path, _rows(100)), table="preds"))
    with pytest.raises(DataError) as err:
        list(src.iter_window("timestamp", START, END, ["request_id", "timestamp", "income"]))
    assert err.value.column == "income"


def test_duplicate_request_ids_found_by_the_database(tmp_path: Path) -> None:
    df = _rows(2000)
    day = _in_day(df)
    dup = pd.concat([df, day.iloc[:3]])
    src = Source(SourceConfig(url=_sqlite(tmp_path, dup), table="preds"))
    assert sorted(src.duplicate_ids("request_id", "timestamp", START, END)) == sorted(
        day.request_id.iloc[:3]
    )
    clean = Source(SourceConfig(url=_sqlite(tmp_path, df, "clean"), table="clean"))
    assert clean.duplicate_ids("request_id", "timestamp", START, END) == []


@pytest.mark.postgres
def test_postgres_timestamptz_table() -> None:
    url = os.environ.get("AIOPS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("AIOPS_TEST_POSTGRES_URL is not set (PostgreSQL source test)")
    table = f"preds_{uuid.uuid4().hex[:8]}"
    df = _rows(3000)
    eng = sa.create_engine(url)
    df.to_sql(table, eng, index=False)
    try:
        src = Source(SourceConfig(url=url, table=table, chunk_rows=1000))
        got = pd.concat(src.iter_window("timestamp", START, END))
        assert sorted(got.request_id) == sorted(_in_day(df).request_id)
        assert got.timestamp.min() >= datetime(2026, 3, 2, tzinfo=UTC)
        assert src.duplicate_ids("request_id", "timestamp", START, END) == []
    finally:
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE "{table}"'))


def test_arrow_parses_iso_text_to_the_instants_pandas_gives() -> None:
    forms = [
        "2026-03-05T01:02:03.123456-05:00",
        "2026-03-05 01:02:03Z",
        "2026-03-05T01:02+0530",
        "2026-03-05T01+09:00",
        "2026-03-05 23:59:59.999999+14:00",
        "1969-12-31T23:59:59.5-23:59",
    ]
    for batch in [[f] for f in forms] + [forms]:
        text = pd.Series(batch, index=range(7, 7 + len(batch)), name="ts", dtype="str")
        want = pd.to_datetime(text, format="ISO8601", utc=True)
        pd.testing.assert_series_equal(parse_timestamps(text, column="ts"), want)
    nanos = pd.Series(["2026-03-05T01:02:03.123456789+00:00", forms[0]], dtype="str")
    got = parse_timestamps(nanos, column="ts")  # beyond Arrow's microseconds: pandas parses
    pd.testing.assert_series_equal(got, pd.to_datetime(nanos, format="ISO8601", utc=True))
    assert str(got.dtype) == "datetime64[ns, UTC]"
    empty = pd.Series([], dtype="str")
    pd.testing.assert_series_equal(
        parse_timestamps(empty, column="ts"), pd.to_datetime(empty, format="ISO8601", utc=True)
    )


@pytest.mark.parametrize("timestamps", ["text", "typed"])
def test_parquet_duplicates_are_found_in_the_order_they_repeat(
    tmp_path: Path, timestamps: str
) -> None:
    ids = ["a", "b", "c", "b", "d", "a", "e", "b", "f", "c", "g", "h", "g"]
    ts = [f"2026-03-05T{h:02d}:00:00+00:00" for h in range(len(ids))]
    stamps = pa.array(ts) if timestamps == "text" else pa.array(pd.to_datetime(ts, utc=True))
    pq.write_table(pa.table({"request_id": ids, "timestamp": stamps}), tmp_path / "d.parquet")
    src = Source(SourceConfig(parquet=str(tmp_path / "d.parquet"), chunk_rows=1000), chunk_rows=4)
    start, end = day_window("2026-03-05")
    assert src.duplicate_ids("request_id", "timestamp", start, end) == ["b", "a", "c", "g"]
    assert src.duplicate_ids("request_id", "timestamp", start, end, limit=2) == ["b", "a"]
    assert src.duplicate_ids("request_id", "timestamp", start, start + timedelta(hours=3)) == []


def _scanned(src: Source, columns: list[str] | None, window: tuple | None) -> list[pd.DataFrame]:
    """The chunks as the dataset's scanner gave them (before reading a batch at a time)."""
    ds = src._dataset()
    flt = src._parquet_filter(ds, window)
    scanner = ds.scanner(columns=columns, filter=flt, batch_size=src.chunk_rows)
    return [b.to_pandas() for b in scanner.to_batches() if b.num_rows]


@pytest.mark.parametrize("timestamps", ["typed", "text"])
def test_parquet_row_groups_read_a_batch_at_a_time_give_the_scanners_chunks(
    tmp_path: Path, timestamps: str
) -> None:
    df = _rows(9000)
    if timestamps == "text":
        df = df.assign(timestamp=df.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"))
    folder = tmp_path / "pq"
    folder.mkdir()
    for i, lo in enumerate(range(0, len(df), 4000)):
        part = pa.Table.from_pandas(df.iloc[lo : lo + 4000], preserve_index=False)
        pq.write_table(part, folder / f"{i}.parquet", row_group_size=1500)
    src = Source(SourceConfig(parquet=str(folder), chunk_rows=1000))
    for columns in (None, ["request_id", "timestamp", "x"]):
        for window in (None, ("timestamp", START, END)):
            got = list(src._parquet_chunks(columns, window))
            want = _scanned(src, columns, window)
            assert len(got) == len(want) > 3
            for a, b in zip(got, want, strict=True):
                pd.testing.assert_frame_equal(a, b, check_exact=True)
    # a file of other types than the dataset's: the scanner casts it, as it did
    odd = df.iloc[:500].assign(x=np.arange(500))
    pq.write_table(pa.Table.from_pandas(odd, preserve_index=False), folder / "9.parquet")
    got = pd.concat(src._parquet_chunks(None, None), ignore_index=True)
    want = pd.concat(_scanned(src, None, None), ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert str(got.x.dtype) == "float64"


def test_parquet_duplicates_match_a_plain_loop_over_the_ids(tmp_path: Path) -> None:
    """Ids hashed to 64 bits, the repeats found exactly: the ids a loop over every id finds,
    in its order (unicode, empty and NULL ids, repeats across chunks and files)."""
    rng = np.random.default_rng(4)
    pool = np.array(["", "é", "日本", "a-1", "a-10", "a-100", *(f"r{i}" for i in range(5000))])
    ids = pool[rng.integers(0, len(pool), 6000)].astype(object)
    ids[rng.random(6000) < 0.01] = None
    ts = pd.Timestamp("2026-03-05", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 86399, 6000)), "s"
    )
    folder = tmp_path / "pq"
    folder.mkdir()
    for i, lo in enumerate(range(0, 6000, 2500)):
        part = pa.table({"request_id": ids[lo : lo + 2500], "timestamp": ts[lo : lo + 2500]})
        pq.write_table(part, folder / f"{i}.parquet")
    start, end = day_window("2026-03-05")
    src = Source(SourceConfig(parquet=str(folder), chunk_rows=1000))
    seen: set[object] = set()
    want: list[object] = []
    for rid in ids.tolist():
        if rid in seen and rid not in want:
            want.append(rid)
        seen.add(rid)
    assert len(want) > 5
    assert src.duplicate_ids("request_id", "timestamp", start, end, limit=len(want)) == want
    assert src.duplicate_ids("request_id", "timestamp", start, end) == want[:5]


def test_equal_ids_hash_alike_however_arrow_holds_them() -> None:
    """A text id hashes the same in any Arrow layout (string or binary, 32- or 64-bit offsets,
    a slice, chunks), NULL as the empty text; ids differing in one byte, or only in length,
    across 8-byte words, all hash apart."""
    base = "request-0123456789-abcdef"
    ids = [base[:n] for n in range(len(base) + 1)]
    ids += [base[:i] + "x" + base[i + 1 :] for i in range(len(base))]
    ids += [base + "\0", "é" * 9, "日本" * 5, None]
    hashes = _text_hashes(pa.array(ids, pa.string()))
    distinct = {rid or "": h for rid, h in zip(ids, hashes.tolist(), strict=True)}
    assert len(set(distinct.values())) == len(distinct) == len(ids) - 1
    assert hashes[-1] == hashes[0]  # NULL, as ""
    for layout in (
        pa.array(ids, pa.large_string()),
        pa.array([None if i is None else i.encode() for i in ids], pa.binary()),
        pa.chunked_array([pa.array(ids[:7]), pa.array(ids[7:])]),
    ):
        assert _text_hashes(layout).tolist() == hashes.tolist()
    assert _text_hashes(pa.array(ids).slice(3, 20)).tolist() == hashes[3:23].tolist()
