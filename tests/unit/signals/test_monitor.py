"""Bad input on a day: a clear error naming model, partition and column, before any write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, parse_config
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io.labels import read_day_predictions
from aiops_pipelines.signals.drift.day import drift_for_day
from aiops_pipelines.signals.profile.day import profile_for_day, profile_reference

DAY = "2026-03-02"


def _frame(n: int, seed: int, day: str | None, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "income": rng.normal(50 + shift * 10, 10, n),
            "visits": rng.poisson(3, n).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    return served(df, rng, day)


def served(df: pd.DataFrame, rng: np.random.Generator, day: str | None) -> pd.DataFrame:
    """`df`'s features with the model's score and prediction on `income`, and, for a `day`,
    what serving logs beside them: request ids, timestamps through the day, version, latency
    and status (the reference has none of these)."""
    n = len(df)
    df["score"] = 1 / (1 + np.exp(-(df.income - 50) / 10))
    df["prediction"] = (df.score > 0.5).astype(int)
    if day is not None:
        secs = np.sort(rng.uniform(0, 86399, n))
        ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(secs, unit="s")
        df.insert(0, "request_id", [f"{day}-{i}" for i in range(n)])
        df.insert(1, "timestamp", ts.strftime("%Y-%m-%d %H:%M:%S.%f+00:00"))
        df.insert(2, "model_version", "1")
        df["latency_ms"] = rng.lognormal(3, 0.3, n)
        df["status"] = "ok"
    return df


def _model(tmp_path: Path, day_frame: pd.DataFrame) -> ModelConfig:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng = sa.create_engine(url)
    _frame(3000, 0, None).to_sql("ref", eng, index=False, if_exists="replace")
    day_frame.to_sql("preds", eng, index=False, if_exists="replace")
    eng.dispose()
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
                        "features": {"numeric": ["income", "visits"], "categorical": ["plan"]},
                        "columns": {"score": "score"},
                        "predictions": {"url": url, "table": "preds", "chunk_rows": 1000},
                        "reference": {"url": url, "table": "ref"},
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


def _day_error(tmp_path: Path, mutate: Callable[[pd.DataFrame], pd.DataFrame]) -> DataError:
    model = _model(tmp_path, mutate(_frame(2500, 1, DAY)))
    ref = profile_reference(model).profile
    with pytest.raises(DataError) as err:
        profile_for_day(model, DAY, ref)
    assert err.value.model == "acme.churn" and err.value.partition == DAY
    assert "model=acme.churn" in str(err.value) and f"partition={DAY}" in str(err.value)
    return err.value


def test_clean_day_profiles_in_chunks_and_shows_its_drift(tmp_path: Path) -> None:
    model = _model(tmp_path, _frame(2500, 1, DAY, shift=0.5))
    ref = profile_reference(model)
    assert ref.columns.predictions == ["prediction", "score"]
    day = profile_for_day(model, DAY, ref.profile, sample_rows=400)
    assert day.n_rows == 2500 and day.n_chunks == 3 and day.versions == {"1": 2500}
    assert len(day.sample) == 400 and not day.sample.duplicated().any()
    result = drift_for_day(model, DAY, ref.profile, day.profile)
    drifted = {c.column for c in result.report.features if c.drifted}
    assert drifted == {"income"}
    assert {f.signal for f in result.findings} >= {"feature_drift", "prediction_drift"}
    assert result.metrics[("n_drifted", "")] == 1.0


@pytest.mark.parametrize(
    ("mutate", "column", "text"),
    [
        (lambda d: d.drop(columns=["income"]), "income", "missing"),
        (lambda d: d.assign(income=d.income.astype(str) + "k"), "income", ""),
        (lambda d: d.assign(income=d.income.where(d.index != 7, np.inf)), "income", "inf"),
        (lambda d: d.assign(score=d.score.where(d.index != 3, np.nan)), "score", "NaN"),
        (
            lambda d: d.assign(prediction=d.prediction.astype(float).where(d.index != 5)),
            "prediction",
            "missing",
        ),
        (lambda d: d.assign(timestamp=d.timestamp.str.slice(0, 19)), "timestamp", "naive"),
        (lambda d: pd.concat([d, d.iloc[:2]]), "request_id", "duplicate"),
    ],
    ids=[
        "missing",
        "wrong-dtype",
        "inf",
        "nan-score",
        "null-prediction",
        "tz-naive",
        "duplicate-ids",
    ],
)
def test_bad_day_names_model_partition_and_column(
    tmp_path: Path, mutate: Callable, column: str, text: str
) -> None:
    err = _day_error(tmp_path, mutate)
    assert err.column == column
    assert text in str(err)


def test_failed_requests_may_log_no_prediction(tmp_path: Path) -> None:
    """A request that failed (status != ok) often has no prediction: it is an error in the
    operational signals, not a data error, and it is left out of drift."""
    frame = _frame(2500, 1, DAY)
    failed = frame.index % 10 == 0
    frame.loc[failed, "status"] = "error"
    frame["prediction"] = frame["prediction"].astype(float)
    frame.loc[failed, ["prediction", "score"]] = np.nan
    model = _model(tmp_path, frame)
    ref = profile_reference(model).profile
    day = profile_for_day(model, DAY, ref)
    assert day.n_rows == 2250 and day.n_errors == 250
    assert day.profile.columns["prediction"].null_rate == 0.0
    # and out of the performance join
    preds = read_day_predictions(model, DAY)
    assert len(preds) == 2250 and preds["prediction"].notna().all()
    # the same null prediction on a request that succeeded is still refused
    frame.loc[1, ["prediction", "score"]] = np.nan
    err = _day_error(tmp_path, lambda _: frame)
    assert err.column == "prediction" and "missing" in str(err)


def test_empty_day_is_an_error(tmp_path: Path) -> None:
    err = _day_error(
        tmp_path, lambda d: d.assign(timestamp=d.timestamp.str.replace(DAY, "2026-03-05"))
    )
    assert "empty partition" in str(err)


def test_missing_values_in_features_are_counted_not_refused(tmp_path: Path) -> None:
    frame = _frame(2500, 1, DAY)
    frame.loc[frame.index % 4 == 0, "income"] = np.nan
    model = _model(tmp_path, frame)
    ref = profile_reference(model).profile
    day = profile_for_day(model, DAY, ref)
    assert day.null_rates()["income"] == pytest.approx(0.25, abs=0.01)
    result = drift_for_day(model, DAY, ref, day.profile)
    assert any(f.signal == "null_rate_drift" and f.column == "income" for f in result.findings)
