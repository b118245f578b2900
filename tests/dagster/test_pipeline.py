"""The Dagster wiring on a small demo world: real runs, real store, real MLflow (a two-week
world and a Dagster run per day and asset: slow)."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import experiment_name
from aiops_pipelines.orchestration.definitions import ASSETS
from aiops_pipelines.orchestration.partitions import MODELS, TENANT_TAG, partition_key
from aiops_pipelines.orchestration.resources import MonitoringConfig, default_resources
from assets.monitoring import drift_report, feature_profile, reference_profile
from sensors.models import model_partitions_sensor

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)
ALL = ASSETS  # every declared asset, so any selection resolves


#: the module's demo world, built once by the `world` fixture (tests/conftest.py)
#: > 1000 rows a day: the effect-size rules apply, as in production-sized days
WORLD = dict(days=14, end_date=END, rows_per_day=1200, reference_rows=4000, register_models=False)


def _incident(world: DemoWorld, kind: str) -> dict:
    return next(i for i in world.manifest["incidents"] if i["kind"] == kind)


def _resources(world: DemoWorld) -> dict:
    return {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(world.config_path)),
    }


def _run_day(world: DemoWorld, instance: dg.DagsterInstance, day: str, key: str, **kw):
    return dg.materialize(
        ALL,
        selection=[feature_profile, drift_report],
        partition_key=partition_key(day, key),
        instance=instance,
        resources=_resources(world),
        **kw,
    )


def _prepare(world: DemoWorld, instance: dg.DagsterInstance, key: str) -> None:
    instance.add_dynamic_partitions(MODELS, [key])
    res = dg.materialize(
        ALL,
        selection=[reference_profile],
        partition_key=key,
        instance=instance,
        resources=_resources(world),
    )
    assert res.success


def test_covariate_drift_partition_fails_the_drift_check_with_evidence(world: DemoWorld) -> None:
    inc = _incident(world, "covariate_drift")
    key, day = inc["model"], inc["start"]
    with dg.instance_for_test() as instance:
        _prepare(world, instance, key)
        res = _run_day(world, instance, day, key)
        assert res.success
        checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
        assert checks["row_count"].passed and checks["schema"].passed
        assert not checks["feature_drift"].passed
        drifted = checks["feature_drift"].metadata["drifted"].value
        assert set(inc["columns"]) <= set(drifted.split(", "))
        [mat] = res.asset_materializations_for_node("drift_report")
        assert mat.metadata["n_drifted"].value >= len(inc["columns"])
        assert 0 < mat.metadata["drift_share"].value <= 1
        assert mat.metadata["wasserstein/tenure_months"].value >= 0.1
        report = Path(mat.metadata["report"].value.removeprefix("file://"))
        assert report.exists() and "<html" in report.read_text()[:2000].lower()
        # the drift lasts: the next day has its verdicts' JSON, Evidently's page stays the
        # onset's (any day's on demand with `aiops report --html`)
        after = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        res = _run_day(world, instance, after, key)
        [mat] = res.asset_materializations_for_node("drift_report")
        assert mat.metadata["n_drifted"].value >= len(inc["columns"])
        assert "report_json" in mat.metadata and "report" not in mat.metadata

    config = load_config(world.config_path)
    tenant, model = key.split(".")
    store = MonitoringStore(config.storage.store_url)
    found = store.findings(tenant, model, start=day, end=day)
    drift = found[found.signal == "feature_drift"]
    assert set(inc["columns"]) <= set(drift.column)
    evidence = drift.iloc[0].evidence
    assert {"statistic", "threshold", "p_value", "q_value", "n_reference", "n_current"} <= set(
        evidence
    )
    client = MlflowClient(config.storage.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(experiment_name(key))
    [run] = client.search_runs(
        [exp.experiment_id],
        f"tags.`aiops.asset` = 'drift_report' and tags.`aiops.partition` = '{day}'",
    )
    assert run.data.metrics["drift_share"] == pytest.approx(mat.metadata["drift_share"].value)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [
        f"drift_{day}.html",
        f"drift_{day}.json",
    ]


def test_quiet_days_raise_no_drift(world: DemoWorld) -> None:
    key = "globex.eta"
    first = world.manifest["start"]
    with dg.instance_for_test() as instance:
        _prepare(world, instance, key)
        res = _run_day(world, instance, first, key)
    assert res.success
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    drift_checks = {"feature_drift", "dataset_drift", "prediction_drift", "null_rate"}
    assert drift_checks <= checks.keys(), checks  # the checks ran ...
    assert checks == dict.fromkeys(checks, True), checks  # ... and all passed
    store = MonitoringStore(load_config(world.config_path).storage.store_url)
    found = store.findings("globex", "eta", start=first, end=first, min_severity="warning")
    assert not any("drift" in s for s in found["signal"]), found[["signal", "column"]]
    # no drift finding: the verdicts' JSON, not Evidently's 4 MB page (on demand with
    # `aiops report --html`)
    [mat] = res.asset_materializations_for_node("drift_report")
    assert "report_json" in mat.metadata and "report" not in mat.metadata


def test_rerunning_a_partition_replaces_store_rows_and_reuses_the_mlflow_run(
    world: DemoWorld,
) -> None:
    inc = _incident(world, "unseen_category")
    key, day = inc["model"], inc["start"]
    tenant, model = key.split(".")
    config = load_config(world.config_path)
    store = MonitoringStore(config.storage.store_url)
    with dg.instance_for_test() as instance:
        _prepare(world, instance, key)
        assert _run_day(world, instance, day, key).success
        metrics_1 = store.metric_history(tenant, model, start=day, end=day)
        findings_1 = store.findings(tenant, model, start=day, end=day)
        assert "unseen_category" in set(findings_1.signal)
        assert _run_day(world, instance, day, key).success
    metrics_2 = store.metric_history(tenant, model, start=day, end=day)
    findings_2 = store.findings(tenant, model, start=day, end=day)
    assert len(metrics_2) == len(metrics_1) and len(findings_2) == len(findings_1)
    assert not metrics_2.duplicated(["asset", "metric", "column"]).any()
    client = MlflowClient(config.storage.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(experiment_name(key))
    runs = client.search_runs([exp.experiment_id], f"tags.`aiops.partition` = '{day}'")
    assert sorted(r.data.tags["aiops.asset"] for r in runs) == ["drift_report", "feature_profile"]
    assert all(r.data.tags["aiops.attempt"] == "1" for r in runs)


def test_bad_day_fails_naming_model_partition_column_and_keeps_stored_rows(
    world: DemoWorld, tmp_path: Path
) -> None:
    key, day = "acme.intent", world.manifest["start"]
    tenant, model = key.split(".")
    config = load_config(world.config_path)
    store = MonitoringStore(config.storage.store_url)
    table = f"{tenant}_{model}_predictions"
    with dg.instance_for_test() as instance:
        _prepare(world, instance, key)
        assert _run_day(world, instance, day, key).success
        before = store.metric_history(tenant, model, start=day, end=day)
        profile_before = store.load_profile(tenant, model, "daily", day)
        db = sqlite3.connect(world.home / "world.db")
        rowid = db.execute(
            f"SELECT rowid FROM {table} WHERE timestamp >= ? ORDER BY timestamp LIMIT 1", (day,)
        ).fetchone()[0]
        [(old,)] = db.execute(f"SELECT prediction FROM {table} WHERE rowid = ?", (rowid,))
        db.execute(f"UPDATE {table} SET prediction = NULL WHERE rowid = ?", (rowid,))
        db.commit()
        try:
            res = _run_day(world, instance, day, key, raise_on_error=False)
        finally:
            db.execute(f"UPDATE {table} SET prediction = ? WHERE rowid = ?", (old, rowid))
            db.commit()
            db.close()
    assert not res.success
    [failure] = [e for e in res.all_events if e.is_step_failure]
    err = failure.step_failure_data.error
    while err.cause is not None:
        err = err.cause
    assert f"model={key}" in err.message
    assert f"partition={day}" in err.message
    assert "column=prediction" in err.message
    after = store.metric_history(tenant, model, start=day, end=day)
    assert after.equals(before)
    assert store.load_profile(tenant, model, "daily", day) == profile_before


def test_model_partitions_sensor_adds_configured_models_once(world: DemoWorld) -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, ["acme.churn"])
        ctx = dg.build_sensor_context(
            instance=instance,
            resources={"monitoring_config": MonitoringConfig(config_path=str(world.config_path))},
        )
        result = model_partitions_sensor(ctx)
        [add] = result.dynamic_partitions_requests
        assert sorted(add.partition_keys) == ["acme.intent", "globex.eta"]
        assert sorted((r.partition_key, r.tags[TENANT_TAG]) for r in result.run_requests) == [
            ("acme.intent", "acme"),
            ("globex.eta", "globex"),
        ]
        instance.add_dynamic_partitions(MODELS, list(add.partition_keys))
        again = model_partitions_sensor(ctx)
        assert isinstance(again, dg.SkipReason)
