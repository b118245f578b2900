"""A failed monitoring run becomes a critical finding with its run id and error."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import yaml

from aiops_pipelines.config import load_config
from aiops_pipelines.demo import build_world
from aiops_pipelines.partitions import MODELS, partition_key
from aiops_pipelines.resources import MonitoringConfig, default_resources
from aiops_pipelines.runner import ALL_ASSETS
from aiops_pipelines.store import MonitoringStore
from assets.monitoring import feature_profile, reference_profile
from sensors.failures import pipeline_failure_sensor


def test_failed_run_is_recorded_as_a_pipeline_failure_finding(tmp_path: Path) -> None:
    world = build_world(
        tmp_path / "demo",
        days=14,
        end_date=date(2026, 3, 14),
        rows_per_day=300,
        reference_rows=1000,
        register_models=False,
    )
    raw = yaml.safe_load(world.config_path.read_text())
    churn = raw["tenants"][0]["models"][0]
    churn["predictions"]["table"] = "acme_churn_predictions_gone"
    cfg = world.home / "broken.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    resources = {**default_resources(), "monitoring_config": MonitoringConfig(config_path=str(cfg))}
    day = world.manifest["start"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, ["acme.churn"])
        assert dg.materialize(
            ALL_ASSETS,
            selection=[reference_profile],
            partition_key="acme.churn",
            instance=instance,
            resources=resources,
        ).success
        failed = dg.materialize(
            ALL_ASSETS,
            selection=[feature_profile],
            partition_key=partition_key(day, "acme.churn"),
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        assert not failed.success
        ctx = dg.build_run_status_sensor_context(
            sensor_name="pipeline_failure_sensor",
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            dagster_event=failed.get_run_failure_event(),
            resources={
                "monitoring_config": MonitoringConfig(config_path=str(cfg)),
                "store": default_resources()["store"],
            },
        ).for_run_failure()
        pipeline_failure_sensor(ctx)
        pipeline_failure_sensor(ctx)  # a re-delivered event does not duplicate
    found = MonitoringStore(load_config(cfg).storage.store_url).findings(
        "acme", "churn", signal="pipeline_failure"
    )
    assert len(found) == 1
    row = found.iloc[0]
    assert row["severity"] == "critical" and row["partition"] == day
    assert row["column"] == failed.dagster_run.run_id
    assert "acme_churn_predictions_gone" in row["evidence"]["error"]
    assert "model=acme.churn" in row["evidence"]["error"]
