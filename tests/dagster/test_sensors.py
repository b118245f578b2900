"""Late-label and retrain sensors against a real Dagster instance with real materializations
(a two-week world with MLflow, a retrain and many runs: slow)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import experiment_name
from aiops_pipelines.orchestration.definitions import ASSETS, defs
from aiops_pipelines.orchestration.partitions import MODELS, TENANT_TAG, partition_key, range_of
from aiops_pipelines.orchestration.resources import Clock, MonitoringConfig, default_resources
from assets.lifecycle import retrained_model
from assets.monitoring import reference_profile
from assets.performance import performance_report
from sensors.labels import late_labels_sensor
from sensors.retrain import retrain_sensor

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)
ALL = ASSETS  # every declared asset, so any selection resolves
KEY = "globex.eta"


#: the module's demo world, built once by the `world` fixture (tests/conftest.py)
WORLD = dict(days=14, end_date=END, rows_per_day=1500, reference_rows=4000, register_models=True)


def _tick(sensor: dg.SensorDefinition, **kwargs):
    """One sensor tick as the daemon runs it: dynamic partitions resolved on the instance."""
    ctx = dg.build_sensor_context(definitions=defs, **kwargs)
    with dg.partition_loading_context(dynamic_partitions_store=kwargs["instance"]):
        return sensor.evaluate_tick(ctx)


def _noon(day: date) -> str:
    return f"{day.isoformat()}T12:00:00+00:00"


def _resources(config_path: Path, now: str) -> dict:
    return {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(config_path)),
        "clock": Clock(now_iso=now),
    }


def _perf(instance, config_path: Path, day: str, now: str, key: str = KEY):
    res = dg.materialize(
        ALL,
        selection=[performance_report],
        partition_key=partition_key(day, key),
        instance=instance,
        resources=_resources(config_path, now),
    )
    assert res.success
    [mat] = res.asset_materializations_for_node("performance_report")
    return mat.metadata


def _config_copy(world: DemoWorld, name: str, **retrain: object) -> Path:
    """The world's config with its own store and the given retrain policy for globex.eta."""
    raw = yaml.safe_load(world.config_path.read_text())
    raw["storage"]["store_url"] = "sqlite:///${CONFIG_DIR}/" + f"{name}.db"
    for tenant in raw["tenants"]:
        for model in tenant["models"]:
            if f"{tenant['name']}.{model['name']}" == KEY:
                model["retrain"] = retrain
    path = world.home / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _prepare(instance, config_path: Path, now: str) -> None:
    instance.add_dynamic_partitions(MODELS, [KEY])
    assert dg.materialize(
        ALL,
        selection=[reference_profile],
        partition_key=KEY,
        instance=instance,
        resources=_resources(config_path, now),
    ).success


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _run_request(instance, req: dg.RunRequest, resources: dict) -> dg.ExecuteInProcessResult:
    """Run a range request (a late-labels run) as the daemon would: its tags, its config."""
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        res = dg.materialize(
            ALL,
            selection=[performance_report],
            instance=instance,
            resources=resources,
            run_config=req.run_config,
            tags=req.tags,
        )
    assert res.success
    return res


def test_late_labels_rematerialize_past_partitions_with_rising_coverage(world: DemoWorld) -> None:
    cfg_path = _config_copy(world, "labels_store")
    day = (END - timedelta(days=6)).isoformat()
    first_now = _noon(END - timedelta(days=4))
    later_now = _noon(END + timedelta(days=1))
    with dg.instance_for_test() as instance:
        _prepare(instance, cfg_path, first_now)
        tick = _tick(
            late_labels_sensor, instance=instance, resources=_resources(cfg_path, first_now)
        )
        # one run for the model, over every day that received labels
        [req] = [r for r in tick.run_requests if range_of(r.tags)[0] == KEY]
        _, first, last = range_of(req.tags)
        labelled = req.tags["aiops/labelled_days"].split(",")
        assert req.partition_key is None and day in labelled
        assert (first, last) == (labelled[0], labelled[-1])
        # run what the sensor asked for, with its own run config (as_of = its now)
        res = _run_request(instance, req, _resources(cfg_path, first_now))
        mats = {m.partition: m for m in res.asset_materializations_for_node("performance_report")}
        assert sorted(mats) == [
            f"{d}|{KEY}" for d in _days(date.fromisoformat(first), date.fromisoformat(last))
        ]
        early = mats[f"{day}|{KEY}"].metadata["coverage"].value

        tick2 = _tick(
            late_labels_sensor,
            instance=instance,
            cursor=tick.cursor,
            resources=_resources(cfg_path, later_now),
        )
        # only days that really received labels in between, one run per model
        assert all(r.run_key.startswith("labels:") for r in tick2.run_requests)
        assert all(
            r.tags[TENANT_TAG] == range_of(r.tags)[0].split(".")[0] for r in tick2.run_requests
        )
        assert len({range_of(r.tags)[0] for r in tick2.run_requests}) == len(tick2.run_requests)
        [req2] = [r for r in tick2.run_requests if range_of(r.tags)[0] == KEY]
        assert day in req2.tags["aiops/labelled_days"].split(",")
        assert range_of(req2.tags)[1] > (END - timedelta(days=20)).isoformat()
        res2 = _run_request(instance, req2, _resources(cfg_path, later_now))
        [mat2] = [
            m
            for m in res2.asset_materializations_for_node("performance_report")
            if m.partition == f"{day}|{KEY}"
        ]
        assert mat2.metadata["coverage"].value > early

        nothing_new = _tick(
            late_labels_sensor,
            instance=instance,
            cursor=tick2.cursor,
            resources=_resources(cfg_path, later_now),
        )
        assert nothing_new.run_requests == []

    config = load_config(cfg_path)
    store = MonitoringStore(config.storage.store_url)
    hist = store.metric_history("globex", "eta", metric="coverage", start=day, end=day)
    assert len(hist) == 1 and hist.iloc[0]["value"] == pytest.approx(
        mat2.metadata["coverage"].value
    )
    client = MlflowClient(config.storage.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(experiment_name(KEY))
    [run] = client.search_runs(
        [exp.experiment_id],
        f"tags.`aiops.asset` = 'performance_report' and tags.`aiops.partition` = '{day}'",
    )
    steps = client.get_metric_history(run.info.run_id, "coverage")
    assert [round(m.value, 6) for m in sorted(steps, key=lambda m: m.step)] == [
        round(early, 6),
        round(mat2.metadata["coverage"].value, 6),
    ]


def _decay_days(world: DemoWorld) -> list[str]:
    shift = next(i for i in world.manifest["incidents"] if i["kind"] == "concept_shift")
    start = date.fromisoformat(shift["start"])
    return [(start + timedelta(days=i)).isoformat() for i in range(4)]


def test_retrain_sensor_requests_one_retrain_per_cooldown_window(world: DemoWorld) -> None:
    cfg_path = _config_copy(world, "retrain_store", cooldown_days=7)
    now = _noon(END + timedelta(days=1))
    days = _decay_days(world)
    with dg.instance_for_test() as instance:
        _prepare(instance, cfg_path, now)
        for day in days[:3]:
            _perf(instance, cfg_path, day, now)
        tick = _tick(retrain_sensor, instance=instance, resources=_resources(cfg_path, now))
        [req] = tick.run_requests
        assert req.partition_key == KEY and req.run_key.startswith(f"retrain:{KEY}:")
        assert req.tags[TENANT_TAG] == "globex"  # the instance's per-tenant run limit
        op_config = req.run_config["ops"]["retrained_model"]["config"]
        assert op_config["reason"] == "performance_decay"
        assert json.loads(op_config["evidence"])["severity"] == "critical"

        # the requested run really trains and registers a challenger
        res = dg.materialize(
            ALL,
            selection=[retrained_model],
            partition_key=KEY,
            instance=instance,
            resources=_resources(cfg_path, now),
            run_config=req.run_config,
            tags={"dagster/run_key": req.run_key},
        )
        assert res.success
        [mat] = res.asset_materializations_for_node("retrained_model")
        assert mat.metadata["beats_champion"].value is True

        # a later day keeps the decay firing: still inside the cooldown window, no new request
        _perf(instance, cfg_path, days[3], now)
        again = _tick(
            retrain_sensor,
            instance=instance,
            cursor=tick.cursor,
            resources=_resources(cfg_path, now),
        )
        assert again.run_requests == []
        # a reset cursor re-reads everything and still requests nothing new
        reset = _tick(retrain_sensor, instance=instance, resources=_resources(cfg_path, now))
        assert reset.run_requests == []

    store = MonitoringStore(load_config(cfg_path).storage.store_url)
    acts = store.actions("globex", "eta")
    assert list(acts["action"]).count("retrain_requested") == 1
    assert list(acts["action"]).count("retrain") == 1
    client = MlflowClient(load_config(cfg_path).storage.mlflow_tracking_uri)
    challenger = client.get_model_version_by_alias(KEY, "challenger")
    assert str(challenger.version) == str(mat.metadata["version"].value)
    assert str(client.get_model_version_by_alias(KEY, "champion").version) == "1"


def test_retrain_sensor_dry_run_launches_nothing_and_records_it(world: DemoWorld) -> None:
    cfg_path = _config_copy(world, "dry_store", dry_run=True)
    now = _noon(END + timedelta(days=1))
    with dg.instance_for_test() as instance:
        _prepare(instance, cfg_path, now)
        for day in _decay_days(world)[:3]:
            _perf(instance, cfg_path, day, now)
        tick = _tick(retrain_sensor, instance=instance, resources=_resources(cfg_path, now))
        assert tick.run_requests == []
        again = _tick(retrain_sensor, instance=instance, resources=_resources(cfg_path, now))
        assert again.run_requests == []
    acts = MonitoringStore(load_config(cfg_path).storage.store_url).actions("globex", "eta")
    assert list(acts["action"]) == ["retrain_dry_run"]
    assert acts.iloc[0]["details"]["reason"] == "performance_decay"


def test_quiet_model_gets_no_retrain(world: DemoWorld) -> None:
    cfg_path = _config_copy(world, "quiet_store")
    now = _noon(END + timedelta(days=1))
    first = date.fromisoformat(world.manifest["start"])
    with dg.instance_for_test() as instance:
        _prepare(instance, cfg_path, now)
        for i in range(3):
            meta = _perf(instance, cfg_path, (first + timedelta(days=i)).isoformat(), now)
            assert meta["level"].value == "ok"
        tick = _tick(retrain_sensor, instance=instance, resources=_resources(cfg_path, now))
        assert tick.run_requests == []
