"""Residual anomalies of a regression model, found by performance_report once labels arrive:
real materializations on a small generated world (Parquet sources, SQLite store), over three
weeks of days, so slow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from aiops_pipelines.core.config import TaskType, load_config
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.definitions import ASSETS
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    default_resources,
)
from aiops_pipelines.signals.performance.residuals import (
    RESIDUAL_MIN_HISTORY_DAYS,
    RESIDUAL_PERSISTENCE_DAYS,
)
from assets.monitoring import reference_profile
from assets.performance import PerformanceConfig, performance_report

pytestmark = pytest.mark.slow

START = date(2026, 2, 2)  # a Monday
JUMP = START + timedelta(days=21)  # three stable weeks, then the predictions are off
LAST = JUMP + timedelta(days=1)
ROWS = 300  # labelled rows a day: above the default min_labels (200)
BIAS = 1.0  # the model is off by this from JUMP on; residual noise is N(0, 1): MAE +45%
LABEL_LAG_H = (30, 60)  # outcomes arrive 30-60 hours after the prediction
ETA, STEADY, CHURN = "acme.eta", "acme.steady", "acme.churn"
RESIDUAL = "residual_anomaly"


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _rows(rng: np.random.Generator, day: date, n: int, prefix: str) -> pd.DataFrame:
    ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.sort(rng.random(n)) * 86_400, unit="s")
    return pd.DataFrame(
        {
            "request_id": [f"{prefix}{day:%m%d}-{i}" for i in range(n)],
            "timestamp": ts,
            "model_version": "1",
            "x": rng.normal(0.0, 1.0, n),
            "region": rng.choice(["north", "south"], n),
        }
    )


def _regression(rng: np.random.Generator, frame: pd.DataFrame, bias: float) -> pd.DataFrame:
    y = 30 + 5 * frame["x"].to_numpy() + rng.gamma(2.0, 2.0, len(frame))
    return frame.assign(prediction=y + bias + rng.normal(0.0, 1.0, len(frame)), label=y)


def _binary(rng: np.random.Generator, frame: pd.DataFrame, flipped: bool) -> pd.DataFrame:
    p = 1 / (1 + np.exp(-2.0 * frame["x"].to_numpy()))
    label = (rng.random(len(frame)) < p).astype(np.int64)
    return frame.assign(
        prediction=(p >= 0.5).astype(np.int64),
        score=p.round(4),
        label=1 - label if flipped else label,
    )


def _write_model(folder: Path, name: str, seed: int) -> dict:
    """Reference, prediction log and outcomes of one model; its config entry."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    regression = name != "churn"

    def make(frame: pd.DataFrame, shifted: bool) -> pd.DataFrame:
        if regression:
            return _regression(rng, frame, BIAS if shifted and name == "eta" else 0.0)
        return _binary(rng, frame, shifted)

    make(_rows(rng, START - timedelta(days=30), 2_000, "r"), False).drop(
        columns=["request_id", "timestamp", "model_version"]
    ).to_parquet(folder / "reference.parquet")
    log = pd.concat(
        [make(_rows(rng, d, ROWS, "p"), d >= JUMP) for d in _days(START, LAST)], ignore_index=True
    )
    lag = pd.to_timedelta(rng.uniform(*LABEL_LAG_H, len(log)), unit="h")
    log[["request_id", "label"]].assign(observed_at=log["timestamp"] + lag).to_parquet(
        folder / "outcomes.parquet"
    )
    log.drop(columns="label").to_parquet(folder / "predictions.parquet")
    entry = {
        "name": name,
        "task": (TaskType.REGRESSION if regression else TaskType.BINARY).value,
        "features": {"numeric": ["x"], "categorical": ["region"]},
        "segments": ["region"],  # per-segment MAE rows in the store must not enter the series
        "predictions": {"parquet": str(folder / "predictions.parquet")},
        "outcomes": {"parquet": str(folder / "outcomes.parquet")},
        "reference": {"parquet": str(folder / "reference.parquet")},
    }
    if not regression:
        entry.update(columns={"score": "score"}, classes=["0", "1"])
    return entry


@dataclass
class World:
    config_path: Path
    instance: dg.DagsterInstance
    metadata: dict[tuple[str, str], dict] = field(default_factory=dict)

    def store(self) -> MonitoringStore:
        return MonitoringStore(load_config(self.config_path).storage.store_url)

    def residual_findings(self, key: str) -> pd.DataFrame:
        tenant, model = key.split(".")
        return self.store().findings(tenant, model, signal=RESIDUAL)

    def resources(self, now: datetime) -> dict:
        return {
            **default_resources(),
            "monitoring_config": MonitoringConfig(config_path=str(self.config_path)),
            "mlflow": MlflowResource(enabled=False),
            "clock": Clock(now_iso=now.isoformat()),
        }

    def performance(
        self, day: date, key: str, *, as_of: datetime | None = None, run: bool = True
    ) -> dict:
        """performance_report of (day, model), judged with the outcomes observed by `as_of`
        (default: once every label of the day is in). `run=False` calls the asset in-process
        without a Dagster run (same code, store and resources, 10x faster): for history days."""
        now = as_of or _midnight(day) + timedelta(days=4)
        pkey = partition_key(day.isoformat(), key)
        if run:
            res = dg.materialize(
                ASSETS,
                selection=[performance_report],
                partition_key=pkey,
                instance=self.instance,
                resources=self.resources(now),
            )
            assert res.success
            [mat] = res.asset_materializations_for_node("performance_report")
            raw = mat.metadata
        else:
            wanted = ("monitoring_config", "store", "mlflow", "clock")
            result = performance_report(
                context=dg.build_asset_context(partition_key=pkey, instance=self.instance),
                config=PerformanceConfig(),
                **{k: v for k, v in self.resources(now).items() if k in wanted},
            )
            raw = result.metadata or {}
        meta = {k: getattr(v, "value", v) for k, v in raw.items()}
        self.metadata[(day.isoformat(), key)] = meta
        return meta


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Every day of the two regression models and the last days of the classifier, in order,
    each judged once all of its labels are in; the days around the jump as real runs."""
    home = tmp_path_factory.mktemp("residuals")
    models = [_write_model(home / n, n, seed) for seed, n in enumerate(("eta", "steady", "churn"))]
    config = {
        "start_date": START.isoformat(),
        "storage": {
            "store_url": f"sqlite:///{home / 'store.db'}",
            "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
            "artifacts_dir": str(home / "artifacts"),
        },
        "tenants": [{"name": "acme", "models": models}],
    }
    config_path = home / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with dg.instance_for_test() as instance:
        w = World(config_path, instance)
        keys = [ETA, STEADY, CHURN]
        instance.add_dynamic_partitions(MODELS, keys)
        for key in keys:
            assert dg.materialize(
                ASSETS,
                selection=[reference_profile],
                partition_key=key,
                instance=instance,
                resources=w.resources(_midnight(LAST)),
            ).success
        for day in _days(START, LAST):
            w.performance(day, ETA, run=day >= JUMP)
            w.performance(day, STEADY, run=False)
        for day in _days(JUMP - timedelta(days=1), LAST):
            w.performance(day, CHURN, run=day == LAST)
        yield w


def test_residual_jump_is_found_on_its_second_day_not_before(world: World) -> None:
    found = world.residual_findings(ETA)
    assert list(found["partition"]) == [LAST.isoformat()]  # persistence: 2 labelled days
    f = found.iloc[0]
    ev = f["evidence"]
    assert f["asset"] == "performance_report" and f["severity"] == "warning"  # 4 <= z < 8
    assert ev["start"][:10] == JUMP.isoformat() and ev["end"][:10] == LAST.isoformat()
    assert ev["metric"] == "mae" and ev["n_labelled"] == ROWS
    assert ev["expected"] == pytest.approx(0.8, rel=0.1)  # E|N(0, 1)| = 0.80
    assert ev["ratio"] == pytest.approx(1.45, abs=0.1)  # E|1 + N(0, 1)| = 1.17
    assert ev["n_history"] == (JUMP - START).days
    jump_day = world.metadata[(JUMP.isoformat(), ETA)]
    assert jump_day["residual_z"] > 4 and jump_day["residual_status"] == "ok"  # one day only
    assert world.metadata[(LAST.isoformat(), ETA)]["residual_status"] == "anomaly"


def test_stable_residuals_raise_nothing(world: World) -> None:
    assert world.residual_findings(STEADY).empty
    statuses = [
        world.metadata[(d.isoformat(), STEADY)]["residual_status"] for d in _days(START, LAST)
    ]
    warm = RESIDUAL_MIN_HISTORY_DAYS + RESIDUAL_PERSISTENCE_DAYS - 1  # history before the window
    assert all(s.startswith("warming up") for s in statuses[:warm])
    assert statuses[warm:] == ["ok"] * (len(statuses) - warm)
    for key in (STEADY, ETA):
        zs = [
            world.metadata[(d.isoformat(), key)]["residual_z"]
            for d in _days(START + timedelta(days=warm), JUMP - timedelta(days=1))
        ]
        assert max(zs) < 4, key


def test_classifier_never_gets_a_residual_verdict(world: World) -> None:
    assert world.residual_findings(CHURN).empty
    for day in _days(JUMP - timedelta(days=1), LAST):
        meta = world.metadata[(day.isoformat(), CHURN)]
        assert "residual_z" not in meta and "residual_status" not in meta
    # its flipped labels are a decay, which performance_report does report
    assert world.metadata[(LAST.isoformat(), CHURN)]["decay_status"] == "firing"


def test_rerun_as_labels_arrive_replaces_the_finding(world: World) -> None:
    before = world.residual_findings(ETA).iloc[0]
    z = world.metadata[(LAST.isoformat(), ETA)]["residual_z"]
    early = _midnight(LAST) + timedelta(hours=LABEL_LAG_H[0])  # no outcome observed yet
    few = world.performance(LAST, ETA, as_of=early)
    assert few["n_labelled"] < 200 and few["residual_status"].startswith("insufficient labels")
    assert world.residual_findings(ETA).empty
    for _ in range(2):
        again = world.performance(LAST, ETA)
        found = world.residual_findings(ETA)
        assert len(found) == 1 and found.iloc[0]["partition"] == LAST.isoformat()
        # the history stops the day before: the same z however often the day is judged
        assert again["residual_z"] == pytest.approx(z)
        assert found.iloc[0]["value"] == pytest.approx(before["value"])
