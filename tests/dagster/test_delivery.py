"""Alert delivery is a run of its own: a model's alert step never waits on a route, and
`alert_delivery_sensor` launches `alert_delivery_job` while notifications are due, not while
their only route is open (real Dagster runs, real HTTP servers on loopback, no world)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from aiops_pipelines.core.findings import Finding, Severity
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import Clock, MonitoringConfig, default_resources
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from assets.alerts import alert_delivery_job, model_alerts
from sensors.delivery import alert_delivery_sensor
from tests.servers import Silent
from tests.unit.alerting import test_alerts, test_route_isolation
from tests.unit.alerting.test_alerts import Receiver

receiver = test_alerts.receiver
silent = test_route_isolation.silent

DAY = "2026-03-14"
SOURCE = {"url": "sqlite:///unused.db", "table": "unused"}  # the alert step reads no data


def _config(tmp_path: Path, receiver: Receiver, silent: Silent) -> Path:
    raw: dict[str, Any] = {
        "storage": {
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifacts_dir": str(tmp_path / "artifacts"),
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    {
                        "name": "churn",
                        "task": "binary_classification",
                        "features": {"numeric": ["age"]},
                        "predictions": SOURCE,
                        "reference": SOURCE,
                    }
                ],
            }
        ],
        "alerting": {
            "routes": [
                {"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook"},
                {"name": "silent", "type": "webhook", "url": silent.url, "timeout_seconds": 2},
            ],
            "breaker_failures": 1,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _finding(day: str) -> Finding:
    return Finding(
        tenant="acme",
        model="churn",
        partition=day,
        asset="drift_report",
        signal="feature_drift",
        severity=Severity.CRITICAL,
        value=0.4,
        threshold=0.1,
        column="age",
        message=f"age drifted on {day}",
    )


def test_the_alert_step_never_waits_and_delivery_runs_on_its_own(
    tmp_path: Path, receiver: Receiver, silent: Silent
) -> None:
    config = _config(tmp_path, receiver, silent)
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(config)),
        "clock": Clock(now_iso=f"{DAY}T22:00:00+00:00"),  # the day's own evening: news
    }
    store = MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.replace_partition(
        "acme", "churn", DAY, "drift_report", metrics={}, findings=[_finding(DAY)]
    )

    def tick() -> dg.SensorResult:
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        return alert_delivery_sensor.evaluate_tick(ctx)

    def alert_step(day: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ALL_ASSETS,
            selection=[model_alerts],
            partition_key=partition_key(day, "acme.churn"),
            instance=instance,
            resources=resources,
        )

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, ["acme.churn"])
        started = time.monotonic()
        evaluated = alert_step(DAY)
        assert time.monotonic() - started < 30  # no network: Dagster's own overhead only
        assert silent.keys == [] and receiver.requests == []
        (check,) = evaluated.get_asset_check_evaluations()
        assert check.passed  # nothing has failed yet
        (mat,) = evaluated.asset_materializations_for_node("model_alerts")
        assert mat.metadata["notifications_pending"].value == 2  # one per route

        (request,) = tick().run_requests
        assert request.job_name == alert_delivery_job.name
        delivery = alert_delivery_job.execute_in_process(
            instance=instance, resources=resources, tags=request.tags
        )
        assert delivery.success  # a route failing is the check's business, not a failed run
        report = delivery.output_for_node("deliver_alerts")
        assert report["sent_per_route"] == {"hook": 1} and report["routes_open"] == 1
        assert len(receiver.accepted) == 1 and len(silent.keys) == 1

        # the silent route's breaker opened (breaker_failures: 1): no delivery run for it
        skipped = tick()
        assert skipped.run_requests == []
        assert "wait for route 'silent', open until" in (skipped.skip_message or "")
        # and the model's next alert step says its notification waits on the open route
        (check,) = alert_step("2026-03-15").get_asset_check_evaluations()
        assert not check.passed and "route 'silent' open until" in (check.description or "")
        assert len(silent.keys) == 1
