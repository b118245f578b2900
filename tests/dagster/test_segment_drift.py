"""Segment drift through real Dagster runs on a small demo world: acme.churn with
`segment_drift` on its `region` segment, one day's `monthly_charges` moved by 0.3 reference
standard deviations in region=west only (20% of its traffic): drift_report's `segment_drift`
check fails on that value, its finding and metrics land in the store, and the whole model's
drift checks stay quiet (the demo's "segment-only drift" case, `shift_one_segment`)."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest
import yaml

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.definitions import ASSETS
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import MonitoringConfig, default_resources
from assets.monitoring import drift_report, feature_profile, reference_profile

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)
WORLD = dict(days=3, end_date=END, rows_per_day=2500, reference_rows=8000, register_models=False)
KEY = "acme.churn"


def enable_segment_drift(world: DemoWorld, key: str = KEY) -> None:
    """The world's config with `segment_drift: {enabled: true}` on the model `key`."""
    tenant, name = key.split(".")
    doc = yaml.safe_load(world.config_path.read_text())
    for t in doc["tenants"]:
        for m in t["models"]:
            if t["name"] == tenant and m["name"] == name:
                m["segment_drift"] = {"enabled": True}
    world.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))


def shift_one_segment(
    world: DemoWorld,
    day: str,
    *,
    table: str = "acme_churn_predictions",
    column: str = "monthly_charges",
    segment: str = "region",
    value: str = "west",
    shift_std: float = 0.3,
) -> float:
    """Move `column` by `shift_std` of its reference standard deviation in the day's rows of
    `segment` = `value` only (the demo's "segment-only drift"); returns the shift applied."""
    reference = table.replace("_predictions", "_reference")
    with sqlite3.connect(world.world_db) as con:
        std = float(pd.read_sql(f'SELECT "{column}" FROM "{reference}"', con)[column].std(ddof=0))
        nxt = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        con.execute(
            f'UPDATE "{table}" SET "{column}" = "{column}" + ? '
            f'WHERE "{segment}" = ? AND timestamp >= ? AND timestamp < ?',
            (shift_std * std, value, day, nxt),
        )
    return shift_std * std


def test_segment_only_drift_is_found_by_a_real_drift_report_run(world: DemoWorld) -> None:
    day = world.manifest["start"]
    assert not [
        i for i in world.manifest["incidents"] if i["model"] == KEY and i["start"] <= day
    ]  # the day is quiet but for the shift below
    enable_segment_drift(world)
    shift_one_segment(world, day)
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(world.config_path)),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [KEY])
        ref = dg.materialize(
            ASSETS,
            selection=[reference_profile],
            partition_key=KEY,
            instance=instance,
            resources=resources,
        )
        assert ref.success
        res = dg.materialize(
            ASSETS,
            selection=[feature_profile, drift_report],
            partition_key=partition_key(day, KEY),
            instance=instance,
            resources=resources,
        )
    assert res.success
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert not checks["segment_drift"].passed
    assert checks["segment_drift"].metadata["drifted"].value == "region=west"
    assert all(checks[c].passed for c in ("feature_drift", "dataset_drift", "prediction_drift"))
    [mat] = res.asset_materializations_for_node("drift_report")
    assert mat.metadata["segments_drifted"].value == "region=west"
    store = MonitoringStore(load_config(world.config_path).storage.store_url)
    found = store.findings("acme", "churn", start=day, end=day, min_severity="warning")
    seg = found[found["signal"] == "segment_drift"]
    assert list(seg["column"]) == ["region=west"]
    assert "monthly_charges" in seg["message"].iloc[0]
    assert not (found["signal"] == "feature_drift").any(), found[["signal", "column"]]
    shares = store.metric_history(
        "acme", "churn", metric="segment_drift_share", start=day, end=day
    ).set_index("column")["value"]
    assert shares["region=west"] > 0 and shares["region=north"] == 0.0
