"""A failed monitoring run becomes a critical finding with its run id and error, and its alert
reaches a real webhook through the delivery run: failure to alert delivery end to end, on a
two-week world (slow)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date

import dagster as dg
import pytest
import yaml

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.receiver import AlertReceiver
from aiops_pipelines.demo.world import DEMO_WEBHOOK_ENV, DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, TENANT_TAG, partition_key
from aiops_pipelines.orchestration.resources import Clock, MonitoringConfig, default_resources
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from assets.alerts import alert_delivery_job, model_alerts
from assets.monitoring import feature_profile, reference_profile
from sensors.failures import pipeline_failure_sensor

pytestmark = pytest.mark.slow


def test_failed_run_is_recorded_as_a_pipeline_failure_finding(
    make_world: Callable[..., DemoWorld],
) -> None:
    world = make_world(
        "failures",
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
    day = world.manifest["start"]
    # it is the evening of that day: the failure is news, not a backfill of the past
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(cfg)),
        "clock": Clock(now_iso=f"{day}T22:00:00+00:00"),
    }
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
        request = pipeline_failure_sensor(ctx)
        again = pipeline_failure_sensor(ctx)  # a re-delivered event does not duplicate
        # ... and asks for the same alert run, which the daemon launches once (run key)
        assert isinstance(request, dg.RunRequest) and again.run_key == request.run_key
        assert request.run_key == f"failure-alerts:{failed.dagster_run.run_id}"
        assert request.partition_key == partition_key(day, "acme.churn")
        assert request.tags[TENANT_TAG] == "acme"  # the instance's per-tenant run limit
        with AlertReceiver() as receiver:
            os.environ[DEMO_WEBHOOK_ENV] = receiver.url("/acme")
            try:
                alerted = dg.materialize(
                    ALL_ASSETS,
                    selection=[model_alerts],
                    partition_key=request.partition_key,
                    instance=instance,
                    resources=resources,
                    tags=request.tags,
                )
                assert receiver.received == {}  # evaluated and queued; the delivery run sends
                assert alert_delivery_job.execute_in_process(
                    instance=instance, resources=resources
                ).success
            finally:
                del os.environ[DEMO_WEBHOOK_ENV]
        assert alerted.success
        ((body,),) = receiver.received.values()
        (alert,) = body["alerts"]
        assert alert["signal"] == "pipeline_failure" and alert["kind"] == "firing"
        assert alert["column"] == "feature_profile"  # what failed, the same on a re-run
        assert body["summary"].startswith("[CRITICAL] acme/churn")
        (check,) = alerted.get_asset_check_evaluations()
        assert check.passed
    found = MonitoringStore(load_config(cfg).storage.store_url).findings(
        "acme", "churn", signal="pipeline_failure"
    )
    assert len(found) == 1
    row = found.iloc[0]
    assert row["severity"] == "critical" and row["partition"] == day
    assert row["column"] == "feature_profile"
    assert row["evidence"]["run_id"] == failed.dagster_run.run_id
    assert "acme_churn_predictions_gone" in row["evidence"]["error"]
    assert "model=acme.churn" in row["evidence"]["error"]
