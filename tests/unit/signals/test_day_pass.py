"""One read of a model-day for the profile, the operations and the performance join
(`signals.day_pass`): each gets exactly what its own read gives it, from SQLite, PostgreSQL
and Parquet, the day is read once per token, and a failure stays the failing signal's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, SourceConfig, parse_config
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io.labels import read_day_predictions
from aiops_pipelines.io.sources import Source
from aiops_pipelines.signals import day_pass
from aiops_pipelines.signals.operations.day import OpsDay, stream_operations
from aiops_pipelines.signals.operations.latency import latency_histogram
from aiops_pipelines.signals.profile.day import ProfileDay, profile_for_day, profile_reference

DAY = "2026-03-02"


def _day(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    """A day with its neighbours' edges, two versions, failed requests without a
    prediction, a segment, and a few category values too long to keep whole."""
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.uniform(-3600, 86400 + 3600, n))
    ts = pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(secs, unit="s")
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]).astype(object)
    plan[rng.random(n) < 0.01] = "x" * 300
    df = pd.DataFrame(
        {
            "request_id": [f"r-{i}" for i in range(n)],
            "timestamp": ts,
            "model_version": rng.choice(["1", "2"], n),
            "income": np.where(rng.random(n) < 0.02, np.nan, rng.normal(50, 10, n)),
            "visits": rng.poisson(3, n).astype(float),
            "plan": plan,
            "region": rng.choice(["eu", "us"], n),
            "latency_ms": rng.lognormal(3, 0.5, n),
            "status": np.where(rng.random(n) < 0.05, "error", "ok"),
        }
    )
    df["score"] = 1 / (1 + np.exp(-(df.income.fillna(50) - 50) / 10))
    df["prediction"] = (df.score > 0.5).astype(float)
    failed = (df.status != "ok").to_numpy() & (rng.random(n) < 0.5)
    df.loc[failed, ["prediction", "score"]] = np.nan
    return df


def _reference(n: int = 3000) -> pd.DataFrame:
    return _day(n, seed=7).drop(columns=["request_id", "timestamp"]).dropna()


def _sqlite(tmp_path: Path, frame: pd.DataFrame, ref: pd.DataFrame) -> dict:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng = sa.create_engine(url)
    text = frame.assign(timestamp=frame.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"))
    text.to_sql("preds", eng, index=False)
    ref.to_sql("ref", eng, index=False)
    eng.dispose()
    return {"url": url, "table": "preds", "chunk_rows": 1000}


def _parquet(tmp_path: Path, frame: pd.DataFrame, ref: pd.DataFrame) -> dict:
    folder = tmp_path / "preds"
    folder.mkdir()
    frame.iloc[: len(frame) // 2].to_parquet(folder / "a.parquet", index=False)
    frame.iloc[len(frame) // 2 :].to_parquet(folder / "b.parquet", index=False)
    ref.to_sql("ref", sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}"), index=False)
    return {"parquet": str(folder), "chunk_rows": 1000}


def _model(tmp_path: Path, predictions: dict) -> ModelConfig:
    ref_url = f"sqlite:///{tmp_path / 'w.db'}"
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": str(tmp_path),
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    {
                        "name": "churn",
                        "task": "binary_classification",
                        "features": {
                            "numeric": ["income", "visits"],
                            "categorical": ["plan", "region"],
                        },
                        "columns": {"score": "score"},
                        "segments": ["region"],
                        "max_string_length": 100,
                        "predictions": predictions,
                        "outcomes": predictions,  # only configured: performance reads none here
                        "reference": {"url": ref_url, "table": "ref"},
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


def _source(kind: str, tmp_path: Path, pg: Callable[..., SourceConfig], frame: pd.DataFrame):
    ref = _reference()
    if kind == "sqlite":
        return _model(tmp_path, _sqlite(tmp_path, frame, ref))
    if kind == "parquet":
        return _model(tmp_path, _parquet(tmp_path, frame, ref))
    ref.to_sql("ref", sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}"), index=False)
    return _model(tmp_path, pg(frame).model_dump())


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every window read of a source, by the real `Source.iter_window` (its source named)."""
    day_pass.forget()
    calls: list[str] = []
    real = Source.iter_window

    def counted(self: Source, *args, **kwargs):
        calls.append(self.describe())
        yield from real(self, *args, **kwargs)

    monkeypatch.setattr(Source, "iter_window", counted)
    yield calls
    day_pass.forget()


def _same_profile(a: ProfileDay, b: ProfileDay) -> None:
    assert a.profile.to_dict() == b.profile.to_dict()
    pd.testing.assert_frame_equal(a.sample, b.sample)
    assert (a.n_rows, a.n_chunks, a.n_errors) == (b.n_rows, b.n_chunks, b.n_errors)
    assert (a.versions, a.dtypes, a.within_day) == (b.versions, b.dtypes, b.within_day)
    assert [f.message for f in a.findings] == [f.message for f in b.findings]
    assert a.payload == b.payload and a.metrics == b.metrics


def _same_ops(a: OpsDay, b: OpsDay) -> None:
    assert a.metrics() == b.metrics() or (
        pd.Series(a.metrics()).equals(pd.Series(b.metrics()))  # NaN hours compare equal
    )
    assert list(a.versions) == list(b.versions)
    for v in a.versions:
        assert a.versions[v].n == b.versions[v].n
        assert a.versions[v].n_errors == b.versions[v].n_errors
        assert a.versions[v].latency_hist.tolist() == b.versions[v].latency_hist.tolist()
    assert [h.tolist() for h in a.hourly_latency] == [h.tolist() for h in b.hourly_latency]
    assert a.hourly_requests.tolist() == b.hourly_requests.tolist()
    assert a.hourly_errors.tolist() == b.hourly_errors.tolist()


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "parquet"]
)
def test_one_read_gives_each_signal_what_its_own_read_gives(
    kind: str, tmp_path: Path, pg_table, reads: list[str]
) -> None:
    model = _source(kind, tmp_path, pg_table, _day())
    ref = profile_reference(model).profile
    reads.clear()
    own = (
        profile_for_day(model, DAY, ref, sample_rows=300),
        stream_operations(model, DAY),
        read_day_predictions(model, DAY),
    )
    assert len(reads) == 3
    reads.clear()
    shared = (
        profile_for_day(model, DAY, ref, sample_rows=300, read_token="run-1"),
        stream_operations(model, DAY, read_token="run-1"),
        day_pass.day_predictions(model, DAY, read_token="run-1"),
    )
    assert reads == [Source(model.predictions).describe()]
    _same_profile(own[0], shared[0])
    assert own[0].findings and own[0].n_errors > 0  # the long values were cut and reported
    _same_ops(own[1], shared[1])
    pd.testing.assert_frame_equal(own[2], shared[2])


def test_operations_count_what_a_plain_loop_over_hours_and_versions_counts(
    tmp_path: Path, pg_table
) -> None:
    model = _source("sqlite", tmp_path, pg_table, _day())
    ops = stream_operations(model, DAY)
    frame = _day()
    frame = frame[(frame.timestamp >= DAY) & (frame.timestamp < "2026-03-03")]
    hour = frame.timestamp.dt.hour.to_numpy()
    for h in range(24):
        want = latency_histogram(frame.latency_ms.to_numpy()[hour == h])
        assert ops.hourly_latency[h].tolist() == want.tolist()
    assert list(ops.versions) == sorted(frame.model_version.unique())
    for v, rows in frame.groupby("model_version"):
        assert ops.versions[v].n == len(rows)
        assert ops.versions[v].n_errors == int((rows.status != "ok").sum())
        assert ops.versions[v].latency_hist.tolist() == latency_histogram(rows.latency_ms).tolist()


def test_a_bad_feature_fails_the_profile_alone(tmp_path: Path, pg_table, reads) -> None:
    frame = _day()
    frame.loc[1500, "income"] = np.inf
    model = _source("sqlite", tmp_path, pg_table, frame)
    ref = profile_reference(model).profile
    with pytest.raises(DataError) as own:
        profile_for_day(model, DAY, ref)
    reads.clear()
    with pytest.raises(DataError) as shared:
        profile_for_day(model, DAY, ref, read_token="run-2")
    assert str(shared.value) == str(own.value) and shared.value.column == "income"
    _same_ops(stream_operations(model, DAY), stream_operations(model, DAY, read_token="run-2"))
    preds = day_pass.day_predictions(model, DAY, read_token="run-2")
    pd.testing.assert_frame_equal(preds, read_day_predictions(model, DAY))
    assert reads.count(Source(model.predictions).describe()) == 3  # 1 shared + 2 own


def test_a_missing_column_makes_each_signal_read_on_its_own(
    tmp_path: Path, pg_table, reads
) -> None:
    model = _source("sqlite", tmp_path, pg_table, _day().drop(columns=["visits"]))
    ref = profile_reference(model).profile  # the reference still has the column
    with pytest.raises(DataError) as own:
        profile_for_day(model, DAY, ref)
    with pytest.raises(DataError) as shared:
        profile_for_day(model, DAY, ref, read_token="run-3")
    assert str(shared.value) == str(own.value) and shared.value.column == "visits"
    _same_ops(stream_operations(model, DAY), stream_operations(model, DAY, read_token="run-3"))


def test_a_part_is_handed_out_once_and_another_token_reads_again(
    tmp_path: Path, pg_table, reads
) -> None:
    model = _source("sqlite", tmp_path, pg_table, _day())
    reads.clear()
    first = stream_operations(model, DAY, read_token="run-4")
    day_pass.day_predictions(model, DAY, read_token="run-4")
    assert len(reads) == 1  # the predictions came with the operations' read
    again = stream_operations(model, DAY, read_token="run-4")  # a retried step
    other = stream_operations(model, DAY, read_token="run-5")
    assert len(reads) == 3 and again is not first
    _same_ops(first, other)
    assert day_pass.kept_bytes() > 0  # run-5's predictions wait for its performance step
    day_pass.day_predictions(model, DAY, read_token="run-5")
    assert day_pass.kept_bytes() == 0
