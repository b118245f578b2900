"""A row belongs to the UTC day of its instant, whatever offset it was written with, and a
day is never judged on part of its rows without saying so.

Issue 11: a log stamped `-05:00` passed every check while SQLite compared the day's bounds with
the written text; 902 of 995 rows were profiled, exit code 0, no warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from aiops_pipelines.cli import main
from aiops_pipelines.core.config import ModelConfig, SourceConfig, parse_config
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io.contract import check_sources
from aiops_pipelines.io.labels import read_day_outcomes, read_day_predictions
from aiops_pipelines.io.sources import Source, WindowCount, check_window_count, day_window
from aiops_pipelines.signals.operations.day import stream_operations
from aiops_pipelines.signals.profile.day import profile_for_day, profile_reference

DAYS = ["2026-03-04", "2026-03-05", "2026-03-06"]
EST, JST = timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))

# (UTC instant, offset written): the rows whose written date is not their UTC date, at and
# next to the midnights around 2026-03-05
EDGES = [
    (datetime(2026, 3, 5, tzinfo=UTC), EST),  # '2026-03-04T19:00:00-05:00': day 03-05
    (datetime(2026, 3, 4, 23, 59, 59, 999999, tzinfo=UTC), JST),  # '2026-03-05T08:59...+09:00'
    (datetime(2026, 3, 6, tzinfo=UTC), JST),  # '2026-03-06T09:00:00+09:00': day 03-06
    (datetime(2026, 3, 5, 23, 59, 59, 999999, tzinfo=UTC), EST),  # SQLite rounds it to 03-06
    (datetime(2026, 3, 5, 23, 59, 59, 999600, tzinfo=UTC), EST),  # SQLite rounds it up too
    (datetime(2026, 3, 6, 4, 30, tzinfo=UTC), EST),  # '2026-03-05T23:30:00-05:00': day 03-06
    (datetime(2026, 3, 5, 23, 30, tzinfo=UTC), JST),  # '2026-03-06T08:30:00+09:00': day 03-05
]


def _written(instant: datetime, tz: timezone, sep: str) -> str:
    return instant.astimezone(tz).isoformat(sep=sep, timespec="microseconds")


def _log(n: int = 1500, seed: int = 11, *, edges: bool = True) -> pd.DataFrame:
    """Predictions over three UTC days and the two nights around them, each written at -05:00
    or +09:00 ('T' or ' ' between date and time), the `EDGES` among them; `utc` is the truth."""
    rng = np.random.default_rng(seed)
    first = datetime(2026, 3, 3, 12, tzinfo=UTC)
    instants = [first + timedelta(microseconds=int(u)) for u in rng.uniform(0, 4 * 86400e6, n)]
    zones = [EST if z else JST for z in rng.integers(0, 2, n)]
    if edges:
        instants += [i for i, _ in EDGES]
        zones += [z for _, z in EDGES]
    seps = rng.choice(["T", " "], len(instants))
    m = len(instants)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(m)],
            "timestamp": [_written(i, z, s) for i, z, s in zip(instants, zones, seps, strict=True)],
            "utc": pd.to_datetime(instants, utc=True),
            "model_version": "1",
            "income": rng.normal(50, 10, m),
            "plan": rng.choice(["basic", "plus", "pro"], m),
            "prediction": rng.integers(0, 2, m),
            "latency_ms": rng.lognormal(3, 0.3, m),
            "status": "ok",
        }
    )


def _expected_ids(log: pd.DataFrame, day: str) -> set[str]:
    """The day's rows, by an independent parse of the written text."""
    utc = pd.to_datetime(log["timestamp"], format="ISO8601", utc=True)
    assert (utc == log["utc"]).all()
    start, end = day_window(day)
    return set(log.loc[(utc >= start) & (utc < end), "request_id"])


def test_the_generated_log_puts_written_dates_and_utc_days_apart() -> None:
    log = _log()
    written_day = log["timestamp"].str.slice(0, 10)
    assert (written_day != log["utc"].dt.strftime("%Y-%m-%d")).mean() > 0.2
    assert "2026-03-05T23:30:00.000000-05:00" in set(log["timestamp"].str.replace(" ", "T"))
    assert all(len(_expected_ids(log, d)) > 300 for d in DAYS)


# ------------------------------------------------------------------ the sources, each kind


def _sqlite_table(tmp_path: Path, log: pd.DataFrame) -> SourceConfig:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    eng = sa.create_engine(url)
    log.drop(columns="utc").to_sql("preds", eng, index=False, if_exists="replace")
    with eng.begin() as conn:
        conn.execute(sa.text('CREATE INDEX ix_preds_ts ON preds ("timestamp")'))
    eng.dispose()
    return SourceConfig(url=url, table="preds", chunk_rows=1000)


def _sqlite_query(tmp_path: Path, log: pd.DataFrame) -> SourceConfig:
    url = _sqlite_table(tmp_path, log).url
    return SourceConfig(url=url, query="SELECT * FROM preds WHERE status = 'ok'")


def _parquet(tmp_path: Path, frame: pd.DataFrame) -> SourceConfig:
    folder = tmp_path / "pq"
    folder.mkdir(exist_ok=True)
    for i, lo in enumerate(range(0, len(frame), 400)):
        part = pa.Table.from_pandas(frame.iloc[lo : lo + 400], preserve_index=False)
        pq.write_table(part, folder / f"{i}.parquet")
    return SourceConfig(parquet=str(folder), chunk_rows=1000)


SOURCES: dict[str, Callable[..., SourceConfig]] = {
    "sqlite-text-table": lambda tmp, log, pg: _sqlite_table(tmp, log),
    "sqlite-text-query": lambda tmp, log, pg: _sqlite_query(tmp, log),
    "postgres-text": lambda tmp, log, pg: pg(log.drop(columns="utc")),
    "postgres-timestamptz": lambda tmp, log, pg: pg(
        log.drop(columns="timestamp").rename(columns={"utc": "timestamp"})
    ),
    "parquet-text": lambda tmp, log, pg: _parquet(tmp, log.drop(columns="utc")),
    "parquet-timestamp-at-offset": lambda tmp, log, pg: _parquet(
        tmp, log.drop(columns="timestamp").assign(timestamp=log["utc"].dt.tz_convert(EST))
    ),
}


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(k, marks=pytest.mark.postgres) if k.startswith("postgres") else k
        for k in SOURCES
    ],
)
def test_every_row_lands_in_the_utc_day_of_its_instant(
    kind: str, tmp_path: Path, pg_table: Callable[..., SourceConfig]
) -> None:
    log = _log()
    src = Source(SOURCES[kind](tmp_path, log, pg_table))
    for day in DAYS:
        start, end = day_window(day)
        chunks = list(src.iter_window("timestamp", start, end, ["request_id", "timestamp"]))
        got = pd.concat(chunks, ignore_index=True)
        assert len(got) == got["request_id"].nunique()
        assert set(got["request_id"]) == _expected_ids(log, day), day
        assert got["timestamp"].min() >= start and got["timestamp"].max() < end
        assert src.duplicate_ids("request_id", "timestamp", start, end) == []
        counted = src.count_window("timestamp", start, end)
        assert counted.admits(len(got))
        assert counted.high - counted.low <= len(EDGES)  # only rows at a midnight are unsure


# ------------------------------------------------------------------ a model's day, end to end


def _raw(predictions: SourceConfig, outcomes: SourceConfig, reference_url: str) -> dict:
    return {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": "artifacts",
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    {
                        "name": "churn",
                        "task": "binary_classification",
                        "features": {"numeric": ["income"], "categorical": ["plan"]},
                        "predictions": predictions.model_dump(),
                        "outcomes": outcomes.model_dump(),
                        "reference": {"url": reference_url, "table": "ref"},
                    }
                ],
            }
        ],
    }


def _model(predictions: SourceConfig, outcomes: SourceConfig, reference_url: str) -> ModelConfig:
    return parse_config(_raw(predictions, outcomes, reference_url)).models[0]


def _outcomes(log: pd.DataFrame) -> pd.DataFrame:
    """Every third request labelled 30 hours later, written at +09:00."""
    part = log.iloc[::3]
    return pd.DataFrame(
        {
            "request_id": part["request_id"],
            "label": part["prediction"],
            "observed_at": [
                _written(t.to_pydatetime() + timedelta(hours=30), JST, "T") for t in part["utc"]
            ],
        }
    )


def _world(
    backend: str, tmp_path: Path, pg_table: Callable[..., SourceConfig]
) -> tuple[pd.DataFrame, pd.DataFrame, SourceConfig, SourceConfig, str]:
    """(log, outcomes, predictions source, outcomes source, reference URL): `_log` and its
    `_outcomes` written to SQLite or PostgreSQL, a reference of 2,000 rows in SQLite."""
    log = _log()
    url = f"sqlite:///{tmp_path / 'ref.db'}"
    _log(2000, seed=1).drop(columns=["utc", "timestamp"]).to_sql("ref", sa.create_engine(url))
    outcomes = _outcomes(log)
    if backend == "sqlite":
        preds = _sqlite_table(tmp_path, log)
        outs = SourceConfig(url=preds.url, table="outs")
        outcomes.to_sql("outs", sa.create_engine(preds.url), index=False)
    else:
        preds = pg_table(log.drop(columns="utc"))
        outs = pg_table(outcomes, "observed_at")
    return log, outcomes, preds, outs, url


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_day_logged_at_minus_five_hours_is_profiled_whole(
    backend: str, tmp_path: Path, pg_table: Callable[..., SourceConfig]
) -> None:
    log, outcomes, preds, outs, url = _world(backend, tmp_path, pg_table)
    model = _model(preds, outs, url)
    ref = profile_reference(model).profile
    for day in DAYS:
        want = _expected_ids(log, day)
        assert profile_for_day(model, day, ref).n_rows == len(want), day
        assert set(read_day_predictions(model, day)["request_id"]) == want
        assert stream_operations(model, day).total.n == len(want)
        observed = pd.to_datetime(outcomes["observed_at"], format="ISO8601", utc=True)
        start = day_window(day)[0]
        until = start + timedelta(days=model.performance.label_window_days + 1)
        labelled = outcomes[(observed >= start) & (observed < until)]
        got = read_day_outcomes(model, day, as_of=until)
        assert sorted(got["request_id"]) == sorted(labelled["request_id"])


# ------------------------------------------------------------------ the cross-check


@pytest.mark.parametrize("reader", ["adbc", "sqlalchemy"])
def test_rows_lost_between_the_database_and_the_profile_fail_the_day_naming_both_counts(
    reader: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _log(edges=False)  # no row near a midnight: the database counts the day exactly
    url = f"sqlite:///{tmp_path / 'ref.db'}"
    _log(2000, seed=1).drop(columns=["utc", "timestamp"]).to_sql("ref", sa.create_engine(url))
    preds = _sqlite_table(tmp_path, log).model_copy(update={"reader": reader})
    model = _model(preds, SourceConfig(url=preds.url, table="preds"), url)
    ref = profile_reference(model).profile
    read_chunks = Source._sql_chunks

    def drops_the_last_chunk(*args: Any, **kwargs: Any) -> Iterator[pd.DataFrame]:
        *kept, _ = list(read_chunks(*args, **kwargs))
        yield from kept

    monkeypatch.setattr(Source, "_sql_chunks", drops_the_last_chunk)
    day = "2026-03-05"
    want = len(_expected_ids(log, day))
    read = want - (want % 100 or 100)
    with pytest.raises(DataError) as err:
        profile_for_day(model, day, ref, chunk_rows=100)
    message = str(err.value)
    assert err.value.model == "acme.churn" and err.value.partition == day
    assert err.value.column == "timestamp"
    assert Source(preds).describe() in message
    assert f"has {want:,} rows" in message and f"but {read:,} were read" in message


def test_the_lexical_window_of_issue_11_fails_the_day_instead_of_profiling_part_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count does not share the read's filter: put back the text comparison the issue
    found and the day fails, naming the rows it has and the rows the read got."""
    log = _log(edges=False)
    url = f"sqlite:///{tmp_path / 'ref.db'}"
    _log(2000, seed=1).drop(columns=["utc", "timestamp"]).to_sql("ref", sa.create_engine(url))
    preds = _sqlite_table(tmp_path, log)
    model = _model(preds, SourceConfig(url=preds.url, table="preds"), url)
    ref = profile_reference(model).profile

    def lexical(self: Source, eng: sa.Engine, window: tuple) -> tuple[str, dict]:
        _, start, end = window
        bounds = {"w_start": f"{start:%Y-%m-%d %H:%M:%S}", "w_end": f"{end:%Y-%m-%d %H:%M:%S}"}
        return '"timestamp" >= :w_start AND "timestamp" < :w_end', bounds

    monkeypatch.setattr(Source, "_window_where", lexical)
    day = "2026-03-05"
    want = _expected_ids(log, day)
    text = log["timestamp"]
    lexical = (text >= f"{day} 00:00:00") & (text < "2026-03-06 00:00:00")
    read = want & set(log.loc[lexical, "request_id"])
    assert 0 < len(read) < len(want)
    with pytest.raises(DataError) as err:
        profile_for_day(model, day, ref)
    assert err.value.model == "acme.churn" and err.value.partition == day
    assert f"has {len(want):,} rows" in str(err.value)
    assert f"but {len(read):,} were read" in str(err.value)


def test_the_count_allows_only_the_rows_the_database_cannot_place_exactly() -> None:
    start, end = day_window("2026-03-05")
    counted = WindowCount(low=994, high=995)
    for read in (994, 995):
        check_window_count("sqlite:///w.db table preds", "timestamp", start, end, counted, read)
    with pytest.raises(DataError, match=r"has 994 to 995 rows .* but 902 were read"):
        check_window_count("sqlite:///w.db table preds", "timestamp", start, end, counted, 902)


# ------------------------------------------------------------------ aiops validate


def test_validate_notes_offsets_and_refuses_naive_timestamps(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log = _log(300)
    url = f"sqlite:///{tmp_path / 'ref.db'}"
    log.drop(columns=["utc", "timestamp"]).to_sql("ref", sa.create_engine(url))
    preds = _sqlite_table(tmp_path, log)
    model = _model(preds, SourceConfig(url=preds.url, table="outs"), url)
    _outcomes(log).to_sql("outs", sa.create_engine(preds.url), index=False)
    found = {(p.source.split(" ")[0], p.blocking): p for p in check_sources(model)}
    assert set(found) == {("predictions", False), ("outcomes", False)}
    mixed = found[("predictions", False)].message
    assert "2 UTC offsets" in mixed and "-05:00" in mixed and "+09:00" in mixed
    assert "UTC+09:00" in found[("outcomes", False)].message
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_raw(preds, SourceConfig(url=preds.url, table="outs"), url)))
    assert main(["validate", "--config", str(config)]) == 0  # notes inform, they do not fail
    out = capsys.readouterr().out
    assert "2 note(s):" in out and "days are UTC days" in out and "keep the contract: OK" in out

    naive = log.assign(timestamp=log["utc"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    naive.loc[:9, "timestamp"] = log["timestamp"].iloc[:10]  # some rows with an offset
    naive.drop(columns="utc").to_sql("preds", sa.create_engine(preds.url), if_exists="replace")
    [problem] = [p for p in check_sources(model) if p.blocking]
    assert problem.column == "timestamp"
    assert f"{len(log) - 10} timestamps are timezone-naive" in problem.message
    assert main(["validate", "--config", str(config)]) == 1
    assert "timezone-naive" in capsys.readouterr().err
