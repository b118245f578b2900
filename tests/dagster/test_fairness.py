"""Fairness in performance_report: real Dagster materializations on a small generated world
(Parquet sources, SQLite store). The sensitive attribute is a column of the prediction log
that is no feature, read only for fairness; one day is biased against a group, and is judged
first before any of its labels arrive, then again once they are in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from aiops_pipelines.core.config import load_config
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.definitions import ASSETS
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    default_resources,
)
from assets.monitoring import feature_profile, reference_profile
from assets.performance import performance_report

FAIR_DAY, BIASED_DAY = date(2026, 3, 2), date(2026, 3, 3)
ROWS = 2000
LABEL_LAG_H = (30, 60)  # outcomes arrive 30-60 hours after the prediction
KEY = "bank.loans"
SIGNAL = "fairness_violation"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _rows(rng: np.random.Generator, day: date, n: int, biased: bool) -> pd.DataFrame:
    """A day of a binary model: approved (1) when its score passes 0.5. On a biased day, a
    broken feature pipeline lowers the score of group sex=0 by 0.35: its approval rate falls
    from ~0.5 to ~0.19 (disparate impact ~0.39), and its true positive rate with it."""
    ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.sort(rng.random(n)) * 86_400, unit="s")
    x = rng.normal(0.0, 1.0, n)
    sex = rng.choice(["0", "1"], n)
    p = 1 / (1 + np.exp(-2.0 * x))
    label = (rng.random(n) < p).astype(np.int64)
    score = np.clip(p - 0.35 * (biased & (sex == "0")), 0, 1)
    return pd.DataFrame(
        {
            "request_id": [f"p{day:%m%d}-{i}" for i in range(n)],
            "timestamp": ts,
            "model_version": "1",
            "x": x,
            "region": rng.choice(["north", "south"], n),
            "sex": sex,
            "prediction": (score >= 0.5).astype(np.int64),
            "score": score.round(4),
            "label": label,
        }
    )


@dataclass
class World:
    config_path: Path
    instance: dg.DagsterInstance

    def store(self) -> MonitoringStore:
        return MonitoringStore(load_config(self.config_path).storage.store_url)

    def findings(self) -> pd.DataFrame:
        return self.store().findings("bank", "loans", signal=SIGNAL)

    def run(self, day: date, as_of: datetime, *assets: dg.AssetsDefinition) -> dict:
        """Materialize `assets` (default: performance_report) for (day, model) at `as_of`:
        the performance_report's metadata and check results."""
        res = dg.materialize(
            ASSETS,
            selection=list(assets) or [performance_report],
            partition_key=partition_key(day.isoformat(), KEY),
            instance=self.instance,
            resources={
                **default_resources(),
                "monitoring_config": MonitoringConfig(config_path=str(self.config_path)),
                "mlflow": MlflowResource(enabled=False),
                "clock": Clock(now_iso=as_of.isoformat()),
            },
        )
        assert res.success
        [mat] = res.asset_materializations_for_node("performance_report")
        checks = {
            c.check_name: c
            for c in res.get_asset_check_evaluations()
            if c.asset_key == dg.AssetKey("performance_report")
        }
        return {
            "meta": {k: getattr(v, "value", v) for k, v in mat.metadata.items()},
            "checks": checks,
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("fairness")
    rng = np.random.default_rng(0)
    ref = _rows(rng, FAIR_DAY - timedelta(days=30), 3000, biased=False)
    ref.drop(columns=["request_id", "timestamp", "model_version"]).to_parquet(
        home / "reference.parquet"
    )
    log = pd.concat(
        [_rows(rng, d, ROWS, biased=d == BIASED_DAY) for d in (FAIR_DAY, BIASED_DAY)],
        ignore_index=True,
    )
    lag = pd.to_timedelta(rng.uniform(*LABEL_LAG_H, len(log)), unit="h")
    log[["request_id", "label"]].assign(observed_at=log["timestamp"] + lag).to_parquet(
        home / "outcomes.parquet"
    )
    log.drop(columns="label").to_parquet(home / "predictions.parquet")
    model = {
        "name": "loans",
        "task": "binary_classification",
        "features": {"numeric": ["x"], "categorical": ["region"]},
        "segments": ["region"],
        "columns": {"score": "score", "latency_ms": None, "status": None},
        "classes": ["0", "1"],
        "predictions": {"parquet": str(home / "predictions.parquet")},
        "outcomes": {"parquet": str(home / "outcomes.parquet")},
        "reference": {"parquet": str(home / "reference.parquet")},
        "fairness": {"attribute": "sex", "privileged": 1},
    }
    config = {
        "start_date": (FAIR_DAY - timedelta(days=7)).isoformat(),
        "storage": {
            "store_url": f"sqlite:///{home / 'store.db'}",
            "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
            "artifacts_dir": str(home / "artifacts"),
        },
        "tenants": [{"name": "bank", "models": [model]}],
    }
    config_path = home / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [KEY])
        w = World(config_path, instance)
        assert dg.materialize(
            ASSETS,
            selection=[reference_profile],
            partition_key=KEY,
            instance=instance,
            resources={
                **default_resources(),
                "monitoring_config": MonitoringConfig(config_path=str(config_path)),
                "mlflow": MlflowResource(enabled=False),
            },
        ).success
        yield w


def test_biased_day_is_found_before_its_labels_and_rejudged_as_they_arrive(world: World) -> None:
    before_labels = _midnight(BIASED_DAY) + timedelta(hours=25)  # no outcome observed yet
    early = world.run(BIASED_DAY, before_labels)
    assert early["meta"]["n_labelled"] == 0
    assert early["meta"]["disparate_impact_ratio_level"] == "critical"
    assert early["meta"]["equal_opportunity_difference_level"] == "insufficient"
    check = early["checks"]["fairness"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    found = world.findings()
    assert set(found["column"]) == {"demographic_parity_difference", "disparate_impact_ratio"}
    di = found[found["column"] == "disparate_impact_ratio"].iloc[0]
    assert di["partition"] == BIASED_DAY.isoformat() and di["asset"] == "performance_report"
    assert di["severity"] == "critical" and di["value"] < 0.6 and di["threshold"] == 0.6
    ev = di["evidence"]
    assert ev["group"] == "0" and ev["privileged"] == "1" and ev["attribute"] == "sex"
    assert ev["high"] < 0.6 and ev["groups"]["0"]["n"] + ev["groups"]["1"]["n"] == ROWS
    assert ev["groups"]["0"]["coverage"] == 0
    first_raised = ev["detected_at"]

    all_labels = _midnight(BIASED_DAY) + timedelta(days=4)
    late = world.run(BIASED_DAY, all_labels)
    assert late["meta"]["n_labelled"] == ROWS
    assert late["meta"]["equal_opportunity_difference_level"] in ("warning", "critical")
    found = world.findings()
    assert set(found["column"]) == {
        "demographic_parity_difference",
        "disparate_impact_ratio",
        "equal_opportunity_difference",
        "equalized_odds_difference",
    }
    assert len(found) == 4  # the partition's findings replaced, not added to
    eo = found[found["column"] == "equal_opportunity_difference"].iloc[0]["evidence"]
    assert eo["groups"]["0"]["coverage"] == 1 and eo["groups"]["0"]["positives"] >= 30
    di = found[found["column"] == "disparate_impact_ratio"].iloc[0]["evidence"]
    assert di["detected_at"] == first_raised  # the same problem, first raised before labels
    history = world.store().metric_history(
        "bank", "loans", metric="equal_opportunity_difference", column="sex"
    )
    assert list(history["partition"].astype(str)) == [BIASED_DAY.isoformat()]
    assert history["value"].iloc[0] == pytest.approx(eo["day_value"])


def test_fair_day_raises_nothing_and_stores_its_numbers(world: World) -> None:
    """feature_profile and performance_report in one run: the day's one shared read carries
    the attribute to performance_report too."""
    out = world.run(
        FAIR_DAY, _midnight(FAIR_DAY) + timedelta(days=4), feature_profile, performance_report
    )
    assert out["checks"]["fairness"].passed
    assert {out["meta"][f"{m}_level"] for m in ("demographic_parity_difference",)} == {"ok"}
    assert out["meta"]["disparate_impact_ratio"] > 0.8
    assert FAIR_DAY.isoformat() not in set(world.findings()["partition"].astype(str))
    rows = world.store().metric_history("bank", "loans", start=FAIR_DAY, end=FAIR_DAY)
    stored = set(zip(rows["metric"], rows["column"], strict=True))
    assert {
        ("demographic_parity_difference", "sex"),
        ("disparate_impact_ratio", "sex"),
        ("equal_opportunity_difference", "sex"),
        ("equalized_odds_difference", "sex"),
        ("selection_rate", "sex=0"),
        ("true_positive_rate", "sex=1"),
        ("coverage", "sex=0"),
    } <= stored
