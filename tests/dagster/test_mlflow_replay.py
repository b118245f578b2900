"""MLflow loggings queued while MLflow was down: `mlflow_outbox_sensor` waits while MLflow
does not answer, then launches `mlflow_replay_job`, whose run logs them (real Dagster runs, a
real MLflow SQLite store as MLflow "back", a refused loopback port as MLflow down)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from aiops_pipelines.core.config import load_config
from aiops_pipelines.io import tracking
from aiops_pipelines.io.mlflow_outbox import log_or_queue
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import Tracker
from aiops_pipelines.orchestration.resources import (
    MlflowResource,
    MonitoringConfig,
    default_resources,
)
from sensors.mlflow_outbox import mlflow_outbox_sensor, mlflow_replay_job
from tests.servers import free_port

SOURCE = {"url": "sqlite:///unused.db", "table": "unused"}


def test_the_sensor_waits_for_mlflow_then_its_run_logs_what_was_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "_down", {})
    down, back = f"http://127.0.0.1:{free_port()}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    raw = {
        "storage": {
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "mlflow_tracking_uri": back,
            "artifacts_dir": str(tmp_path / "artifacts"),
            "mlflow_retries": 0,
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
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    load_config(config)  # bounds MLflow's requests in this process (mlflow_retries: 0)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}")
    queued = log_or_queue(
        Tracker(down, tmp_path / "artifacts"),
        store,
        "acme.churn",
        "drift_report",
        "2026-03-14",
        lock_key="drift_report:2026-03-14|acme.churn",
        metrics={"drift_share": 0.25},
    )
    assert queued.queued

    def tick(uri: str) -> dg.SensorResult:
        resources = {
            **default_resources(),
            "monitoring_config": MonitoringConfig(config_path=str(config)),
            "mlflow": MlflowResource(tracking_uri=uri),
        }
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        return mlflow_outbox_sensor.evaluate_tick(ctx)

    with dg.instance_for_test() as instance:
        waiting = tick(down)
        assert waiting.run_requests == []
        assert "1 MLflow logging(s) queued since" in (waiting.skip_message or "")
        assert f"MLflow at {down} unreachable" in (waiting.skip_message or "")

        (request,) = tick(back).run_requests
        assert request.job_name == mlflow_replay_job.name
        run = mlflow_replay_job.execute_in_process(
            instance=instance,
            resources={
                **default_resources(),
                "monitoring_config": MonitoringConfig(config_path=str(config)),
            },
            tags=request.tags,
        )
        assert run.success
        assert run.output_for_node("replay_mlflow_outbox")["logged"] == 1
        assert tick(back).skip_message == "no MLflow logging waits"

    assert store.queued_tracking() == []
    client = MlflowClient(back)
    [logged] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert logged.data.metrics == {"drift_share": 0.25}
    store.close()
