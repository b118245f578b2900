"""A day profiled by the database (`profile: pushdown`) is the day the streamed read profiles:
the same counts exactly, the same sums and moments to the last few bits, the same bookkeeping
and the same errors, on SQLite (text timestamps written at offsets, around midnight) and on
PostgreSQL (timestamptz and text, NaN and inf), (issue 12).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, parse_config
from aiops_pipelines.core.errors import ConfigError, DataError
from aiops_pipelines.signals.profile.day import ProfileDay, profile_for_day, profile_reference
from aiops_pipelines.signals.profile.profiles import DatasetProfile
from tests.unit.io.test_timestamp_offsets import EDGES, EST, JST, _written

DAY = "2026-03-05"
MAX_LENGTH = 16
SOURCES = [
    "sqlite-text",
    pytest.param("postgres-timestamptz", marks=pytest.mark.postgres),
    pytest.param("postgres-text", marks=pytest.mark.postgres),
]


def _reference_rows(n: int = 4000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "age": rng.integers(18, 60, n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
            "prediction": rng.integers(0, 2, n),
            "score": rng.random(n),
        }
    )


def _log(reference: DatasetProfile, n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Three days around DAY written at -05:00 or +09:00 with the timestamp-offset tests'
    midnight rows, and in the day: NULLs, values on the reference's edges, below the first and
    above the last, unseen categories, text over the cap, failed requests without a
    prediction."""
    rng = np.random.default_rng(seed)
    first = datetime(2026, 3, 4, tzinfo=UTC)
    instants = [first + timedelta(microseconds=int(u)) for u in rng.uniform(0, 3 * 86400e6, n)]
    zones = [EST if z else JST for z in rng.integers(0, 2, n)]
    instants += [i for i, _ in EDGES]
    zones += [z for _, z in EDGES]
    m = len(instants)
    edges = reference.spec.numeric["income"]
    income = rng.normal(52, 11, m)
    income[rng.random(m) < 0.05] = np.nan
    on_edge = rng.choice(m, 60, replace=False)
    income[on_edge] = rng.choice([*edges[:3], edges[500], *edges[-3:]], 60)
    income[rng.choice(m, 10, replace=False)] = edges[0] - 5.0
    income[rng.choice(m, 10, replace=False)] = edges[-1] + 5.0
    age = pd.array(rng.integers(10, 70, m), dtype="Int64")  # beyond the reference's 18-59
    age[rng.random(m) < 0.05] = pd.NA
    plan = rng.choice(["basic", "plus", "pro", "enterprise", "trial"], m).astype(object)
    plan[rng.random(m) < 0.05] = None
    plan[rng.choice(m, 20, replace=False)] = "x" * 40  # cut to 15 characters and "…"
    plan[rng.choice(m, 5, replace=False)] = "x" * 30 + "y"  # the same value once cut
    status = np.where(rng.random(m) < 0.9, "ok", "error")
    prediction = pd.array(rng.integers(0, 2, m), dtype="Int64")
    failed = np.flatnonzero(status == "error")
    prediction[failed[: len(failed) // 2]] = pd.NA  # failed requests log no prediction
    version = rng.choice(["1", "2", "v" * 20], m, p=[0.6, 0.39, 0.01])
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(m)],
            "timestamp": [_written(i, z, "T") for i, z in zip(instants, zones, strict=True)],
            "utc": pd.to_datetime(instants, utc=True),
            "model_version": version,
            "prediction": prediction,
            "score": rng.random(m),
            "income": income,
            "age": age,
            "plan": plan,
            "latency_ms": rng.lognormal(3, 0.3, m),
            "status": status,
        }
    )


def _config(predictions: dict[str, Any], reference_url: str) -> dict[str, Any]:
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
                        "features": {"numeric": ["income", "age"], "categorical": ["plan"]},
                        "columns": {"score": "score"},
                        "predictions": predictions,
                        "reference": {"url": reference_url, "table": "ref"},
                        "max_string_length": MAX_LENGTH,
                    }
                ],
            }
        ],
    }


class World:
    """A reference, and a log written to the source under test."""

    def __init__(self, tmp_path: Path, kind: str, pg: str | None) -> None:
        self.kind = kind
        self.ref_url = f"sqlite:///{tmp_path / 'ref.db'}"
        eng = sa.create_engine(self.ref_url)
        _reference_rows().to_sql("ref", eng, index=False)
        eng.dispose()
        self.url = f"sqlite:///{tmp_path / 'log.db'}" if kind.startswith("sqlite") else pg
        assert self.url
        self.reference = profile_reference(self.model("stream")).profile

    def model(self, profile: str) -> ModelConfig:
        predictions = {"url": self.url, "table": "preds", "profile": profile, "chunk_rows": 1000}
        return parse_config(_config(predictions, self.ref_url)).models[0]

    def write(self, log: pd.DataFrame, *, nan_ids: list[str] = ()) -> None:
        if self.kind == "postgres-timestamptz":
            log = log.drop(columns="timestamp").rename(columns={"utc": "timestamp"})
        else:
            log = log.drop(columns="utc")
        eng = sa.create_engine(self.url)
        log.to_sql("preds", eng, index=False, if_exists="replace")
        if nan_ids:  # pandas writes NaN as NULL: PostgreSQL's own NaN, written by hand
            with eng.begin() as conn:
                conn.execute(
                    sa.text("UPDATE preds SET income = 'NaN' WHERE request_id = ANY(:ids)"),
                    {"ids": list(nan_ids)},
                )
        eng.dispose()

    def both(self, day: str = DAY, **kwargs: Any) -> tuple[ProfileDay, ProfileDay]:
        stream = profile_for_day(self.model("stream"), day, self.reference, **kwargs)
        push = profile_for_day(self.model("pushdown"), day, self.reference, **kwargs)
        return push, stream

    def errors(self, day: str = DAY) -> tuple[str, str]:
        out = []
        for how in ("pushdown", "stream"):
            with pytest.raises(DataError) as exc:
                profile_for_day(self.model(how), day, self.reference)
            out.append(str(exc.value))
        return out[0], out[1]


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    kind = request.param
    pg = request.getfixturevalue("pg_url") if kind.startswith("postgres") else None
    return World(tmp_path, kind, pg)


def _close(a: float, b: float, scale: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(abs(b), scale, 1e-300)


def assert_same_day(push: ProfileDay, stream: ProfileDay) -> None:
    """Counts exactly; sums, moments and tails within 1e-9 of the streamed ones (summed in
    another order); the rest of the day exactly."""
    assert (push.partition, push.n_rows, push.n_errors) == (
        stream.partition,
        stream.n_rows,
        stream.n_errors,
    )
    assert push.versions == stream.versions
    assert push.within_day == stream.within_day
    assert [f.message for f in push.findings] == [f.message for f in stream.findings]
    assert push.dtypes == stream.dtypes
    assert list(push.profile.columns) == list(stream.profile.columns)
    assert push.profile.spec == stream.profile.spec
    assert push.profile.n_rows == stream.profile.n_rows
    for name, s in stream.profile.columns.items():
        p = push.profile.columns[name]
        if s.kind == "categorical":
            assert p == s, name
            continue
        assert (p.n_rows, p.n_missing, p.count) == (s.n_rows, s.n_missing, s.count), name
        assert np.array_equal(p.counts, s.counts), name
        assert np.array_equal(p.atoms, s.atoms), name
        assert (p.min, p.max) == (s.min, s.max), name
        scale = float(np.abs(s.sums).max())
        assert all(_close(a, b, scale) for a, b in zip(p.sums, s.sums, strict=True)), name
        for attr in ("mean", "m2", "tail_low", "tail_high"):
            assert _close(getattr(p, attr), getattr(s, attr), scale), (name, attr)


@pytest.mark.parametrize("world", SOURCES, indirect=True)
def test_pushdown_profile_equals_the_streamed_one(world: World, tmp_path: Path) -> None:
    log = _log(world.reference)
    nan_ids = list(log["request_id"].iloc[5:200:7]) if world.kind.startswith("postgres") else []
    world.write(log, nan_ids=nan_ids)
    push, stream = world.both(samples_dir=tmp_path / "samples")
    assert_same_day(push, stream)
    income = stream.profile.columns["income"]
    assert income.atoms.sum() > 0 and income.counts[0] > 0 and income.counts[-1] > 0
    assert stream.profile.columns["plan"].unseen and stream.findings  # cut, and unseen
    assert len(push.sample) == len(stream.sample) == 5000 or len(push.sample) == push.n_rows
    assert list(push.sample.columns) == list(stream.sample.columns)
    assert push.sample_path is not None and push.sample_path.exists()


@pytest.mark.parametrize("world", SOURCES, indirect=True)
def test_every_day_around_midnight_rows_is_the_same(world: World) -> None:
    world.write(_log(world.reference))
    for day in ("2026-03-04", "2026-03-06"):
        assert_same_day(*world.both(day))


@pytest.mark.parametrize("world", SOURCES, indirect=True)
def test_an_empty_day_fails_as_the_streamed_one_does(world: World) -> None:
    world.write(_log(world.reference))
    push, stream = world.errors("2026-03-09")
    assert push == stream
    assert "empty partition" in push


@pytest.mark.parametrize("world", SOURCES, indirect=True)
def test_duplicate_ids_fail_as_the_streamed_one_does(world: World) -> None:
    log = _log(world.reference)
    in_day = np.flatnonzero(log["utc"].dt.strftime("%Y-%m-%d") == DAY)
    log.loc[in_day[10], "request_id"] = log.loc[in_day[3], "request_id"]
    world.write(log)
    push, stream = world.errors()
    assert push == stream
    assert "duplicate request ids" in push


@pytest.mark.parametrize(
    "world",
    [pytest.param("postgres-timestamptz", marks=pytest.mark.postgres), "sqlite-text"],
    indirect=True,
)
def test_inf_in_a_feature_fails_naming_the_column(world: World) -> None:
    log = _log(world.reference)
    in_day = np.flatnonzero(log["utc"].dt.strftime("%Y-%m-%d") == DAY)
    log.loc[in_day[4], "income"] = math.inf
    world.write(log)
    push, stream = world.errors()
    for message in (push, stream):
        assert "column=income" in message.replace(": ", "=") or "income" in message
        assert "infinite value(s)" in message


def test_a_timestamp_sqlite_cannot_parse_is_refused_with_the_way_out(tmp_path: Path) -> None:
    world = World(tmp_path, "sqlite-text", None)
    log = _log(world.reference)
    log.loc[5, "timestamp"] = "2026-03-05T10:00:00+0500"  # no colon: SQLite does not parse it
    world.write(log)
    with pytest.raises(DataError, match="profile: stream"):
        profile_for_day(world.model("pushdown"), DAY, world.reference)


def test_pushdown_on_parquet_is_a_config_error_naming_the_model() -> None:
    raw = _config({"parquet": "day.parquet", "profile": "pushdown"}, "sqlite:///ref.db")
    with pytest.raises(ConfigError, match="pushdown") as exc:
        parse_config(raw)
    assert "churn" in str(exc.value) and "predictions" in str(exc.value)


def test_a_query_source_is_profiled_the_same(tmp_path: Path) -> None:
    world = World(tmp_path, "sqlite-text", None)
    world.write(_log(world.reference))
    days = []
    for how in ("pushdown", "stream"):
        raw = _config(
            {
                "url": world.url,
                "query": "SELECT * FROM preds WHERE status IS NOT NULL",
                "profile": how,
            },
            world.ref_url,
        )
        days.append(profile_for_day(parse_config(raw).models[0], DAY, world.reference))
    assert_same_day(*days)
