"""Multivariate drift through the real wiring: reference_profile, feature_profile and
drift_report materialized by Dagster on a small Parquet world whose second day flips the
correlation of two features (marginals unchanged), the finding and the metrics in the store."""

from __future__ import annotations

from datetime import date, timedelta
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
    MlflowResource,
    MonitoringConfig,
    default_resources,
)
from assets.monitoring import drift_report, feature_profile, reference_profile
from tests.unit.signals.test_multivariate import CATEGORICAL, NUMERIC, correlation_flip_rows

pytestmark = pytest.mark.slow

CALM = date(2026, 3, 2)
FLIP = CALM + timedelta(days=1)
KEY = "acme.joint"
ROWS = 1500


def _day(rng: np.random.Generator, day: date, rho: float) -> pd.DataFrame:
    frame = correlation_flip_rows(rng, ROWS, rho=rho)
    seconds = np.sort(rng.uniform(0, 86_399, ROWS))
    return frame.assign(
        request_id=[f"{day:%m%d}-{i}" for i in range(ROWS)],
        timestamp=pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s"),
        model_version="1",
        latency_ms=rng.gamma(4.0, 10.0, ROWS),
        status="ok",
        prediction=(frame["x1"] > 50).astype(np.int64),
    )


def _world(home: Path) -> Path:
    rng = np.random.default_rng(11)
    correlation_flip_rows(rng, 8000).to_parquet(home / "reference.parquet")
    log = pd.concat([_day(rng, CALM, 0.8), _day(rng, FLIP, -0.8)], ignore_index=True)
    log.to_parquet(home / "predictions.parquet")
    config = {
        "start_date": CALM.isoformat(),
        "storage": {
            "store_url": f"sqlite:///{home / 'store.db'}",
            "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
            "artifacts_dir": str(home / "artifacts"),
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    {
                        "name": "joint",
                        "task": "binary_classification",
                        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
                        "predictions": {"parquet": str(home / "predictions.parquet")},
                        "reference": {"parquet": str(home / "reference.parquet")},
                    }
                ],
            }
        ],
    }
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_drift_report_stores_the_correlation_flip_and_no_feature_drift(tmp_path: Path) -> None:
    config_path = _world(tmp_path)
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(config_path)),
        "mlflow": MlflowResource(enabled=False),
    }
    meta = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [KEY])
        assert dg.materialize(
            ASSETS,
            selection=[reference_profile],
            partition_key=KEY,
            instance=instance,
            resources=resources,
        ).success
        for day in (CALM, FLIP):
            res = dg.materialize(
                ASSETS,
                selection=[feature_profile, drift_report],
                partition_key=partition_key(day.isoformat(), KEY),
                instance=instance,
                resources=resources,
            )
            assert res.success
            [mat] = res.asset_materializations_for_node("drift_report")
            meta[day] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    store = MonitoringStore(load_config(config_path).storage.store_url)
    findings = store.findings("acme", "joint")
    assert set(findings["signal"]) == {"multivariate_drift"}  # no single feature drifted
    [f] = findings.itertuples()
    assert f.partition == FLIP.isoformat() and f.asset == "drift_report"
    assert f.severity == "critical" and f.value > 0.7
    ev = f.evidence
    assert ev["n_day"] == ROWS and ev["n_reference"] == 2000  # the samples the profiles kept
    assert {c for c, _ in ev["domain_classifier"]["top_features"][:2]} == {"x1", "x2"}
    assert meta[CALM]["multivariate_status"] == "ok" and meta[CALM]["n_drifted"] == 0
    assert meta[FLIP]["multivariate_status"] == "critical" and meta[FLIP]["n_drifted"] == 0
    history = store.metric_history(
        "acme", "joint", metric=["domain_auc", "pca_error_ratio"], asset="drift_report"
    )
    auc = history[history["metric"] == "domain_auc"].set_index("partition")["value"]
    assert auc[CALM.isoformat()] < 0.55 < 0.7 < auc[FLIP.isoformat()]
    assert auc[FLIP.isoformat()] == pytest.approx(meta[FLIP]["domain_auc"])
    assert len(history[history["metric"] == "pca_error_ratio"]) == 2
