"""The Definitions load, every job, schedule, sensor, asset and check resolves, and the daily
schedule asks for yesterday of every model (no run, no world)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from aiops_pipelines.orchestration.definitions import defs
from aiops_pipelines.orchestration.partitions import (
    FALLBACK_YEARS,
    MODELS,
    TENANT_TAG,
    first_day,
)
from aiops_pipelines.orchestration.resources import MonitoringConfig
from sensors.models import model_partitions_sensor

END = date(2026, 3, 14)


def test_definitions_load_and_every_job_schedule_sensor_resolves() -> None:
    dg.Definitions.validate_loadable(defs)
    for job in (
        "daily_monitoring_job",
        "reference_job",
        "performance_job",
        "retrain_job",
        "alerts_job",
        "alert_delivery_job",
        "overview_job",
        "rollback_canary",
        "promote_canary",
    ):
        assert defs.resolve_job_def(job)
    assert defs.resolve_schedule_def("daily_monitoring_schedule")
    assert defs.resolve_schedule_def("overview_schedule")
    for sensor in (
        "model_partitions_sensor",
        "late_labels_sensor",
        "retrain_sensor",
        "canary_verdict_sensor",
        "pipeline_failure_sensor",
        "alert_delivery_sensor",
        "mlflow_outbox_sensor",
    ):
        assert defs.resolve_sensor_def(sensor)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "reference_profile",
        "feature_profile",
        "drift_report",
        "performance_report",
        "canary_report",
        "ops_report",
        "slo_report",
        "model_alerts",
        "ops_overview",
        "retrained_model",
    }
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("reference_profile", "reference_row_count"),
        ("feature_profile", "row_count"),
        ("feature_profile", "schema"),
        ("feature_profile", "null_rate"),
        ("feature_profile", "unseen_categories"),
        ("drift_report", "feature_drift"),
        ("drift_report", "dataset_drift"),
        ("drift_report", "prediction_drift"),
        ("drift_report", "segment_drift"),
        ("performance_report", "performance_decay"),
        ("performance_report", "label_coverage"),
        ("performance_report", "fairness"),
        ("canary_report", "canary_verdict"),
        ("ops_report", "throughput"),
        ("ops_report", "latency"),
        ("ops_report", "error_rate"),
        ("slo_report", "slo_budget"),
        ("slo_report", "slo_burn"),
        ("model_alerts", "alerts_delivered"),
    }


def test_runs_execute_their_steps_in_one_process_and_backfill_one_run_per_range() -> None:
    """A run's assets share its process (a model-day's rows read once, no process per step);
    a backfill of the daily assets launches one run per range of partitions."""
    for name in ("daily_monitoring_job", "performance_job", "retrain_job"):
        assert defs.resolve_job_def(name).executor_def.name == "in_process"
    graph = defs.resolve_asset_graph()
    for key in ("feature_profile", "drift_report", "performance_report", "model_alerts"):
        policy = graph.get(dg.AssetKey(key)).backfill_policy
        assert policy is not None and policy.max_partitions_per_run is None  # single run


def test_schedule_requests_yesterday_for_every_model() -> None:
    schedule = defs.resolve_schedule_def("daily_monitoring_schedule")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, ["acme.churn", "globex.eta"])
        now = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 3, 15, 2, 0),
            repository_def=defs.get_repository_def(),  # as the daemon evaluates it
        )
        requests = schedule.evaluate_tick(now).run_requests
    yesterday = END.isoformat()
    assert sorted(r.partition_key for r in requests) == [
        f"{yesterday}|acme.churn",
        f"{yesterday}|globex.eta",
    ]
    # the run key is the partition key, as Dagster's partitioned schedule sets it (a tick
    # evaluated twice launches each run once), and each run carries its model's tenant, which
    # the production instance's per-tenant run limit counts
    assert sorted((r.run_key, r.tags[TENANT_TAG]) for r in requests) == [
        (f"{yesterday}|acme.churn", "acme"),
        (f"{yesterday}|globex.eta", "globex"),
    ]
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"


def test_schedule_skips_before_any_model_is_a_partition() -> None:
    schedule = defs.resolve_schedule_def("daily_monitoring_schedule")
    with dg.instance_for_test() as instance:
        now = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 3, 15, 2, 0)
        )
        result = schedule.evaluate_tick(now)
    assert not result.run_requests and "no model partitions" in result.skip_message


def test_model_partitions_sensor_tags_each_reference_run_with_its_tenant(tmp_path) -> None:
    cfg = tmp_path / "config.yaml"
    model = {
        "task": "binary_classification",
        "features": {"numeric": ["age"], "categorical": []},
        "columns": {"score": "score"},
        "predictions": {"url": "sqlite:///world.db", "table": "preds"},
        "reference": {"parquet": "ref/*.parquet"},
    }
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": str(tmp_path),
        },
        "tenants": [
            {"name": "acme", "models": [{"name": "churn", **model}, {"name": "intent", **model}]},
            {"name": "globex", "models": [{"name": "eta", **model}]},
        ],
    }
    cfg.write_text(yaml.safe_dump(raw))
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(
            instance=instance,
            resources={"monitoring_config": MonitoringConfig(config_path=str(cfg))},
        )
        result = model_partitions_sensor(ctx)
    assert sorted((r.partition_key, r.tags[TENANT_TAG]) for r in result.run_requests) == [
        ("acme.churn", "acme"),
        ("acme.intent", "acme"),
        ("globex.eta", "globex"),
    ]


ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run(
        [str(exe), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_code_location_loads_the_way_dagster_dev_and_dg_load_it() -> None:
    # workspace.yaml is what `make ui` (dagster dev -w workspace.yaml) loads; [tool.dg] is dg's
    validate = _cli("dagster", "definitions", "validate", "-w", "workspace.yaml")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "All code locations passed validation" in validate.stdout + validate.stderr
    check = _cli("dg", "check", "defs")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully" in check.stdout + check.stderr


def test_daily_partitions_start_at_the_configs_start_date(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "c.yaml"
    storage = {"store_url": "sqlite://", "mlflow_tracking_uri": "sqlite://"}
    raw = {"storage": {**storage, "artifacts_dir": str(tmp_path)}, "tenants": []}
    cfg.write_text(yaml.safe_dump({**raw, "start_date": "2021-06-01"}))
    monkeypatch.setenv("AIOPS_CONFIG", str(cfg))
    assert first_day() == "2021-06-01"
    cfg.write_text(yaml.safe_dump(raw))  # no start_date: a rolling default, no fixed year
    assert first_day() == f"{datetime.now(UTC).year - FALLBACK_YEARS}-01-01"
    monkeypatch.setenv("AIOPS_CONFIG", str(tmp_path / "missing.yaml"))
    assert first_day() == f"{datetime.now(UTC).year - FALLBACK_YEARS}-01-01"
