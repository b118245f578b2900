"""canary_report, canary_verdict_sensor and the rollback/promotion jobs on a real instance,
a real MLflow registry (sqlite) and a demo world with a worse and an as-good canary: the
canary pipeline end to end over a nine-week world, so slow. The CLI's canary commands, a
removed model's verdict and the demo's alias summary are checked on the same world."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.grading import actions_summary
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.lifecycle.registry import TAG_CANARY_START, aliases
from aiops_pipelines.orchestration.definitions import defs
from aiops_pipelines.orchestration.partitions import MODELS, TENANT_TAG, partition_key
from aiops_pipelines.orchestration.resources import Clock, MonitoringConfig, default_resources
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from assets.canary import canary_report
from assets.monitoring import reference_profile
from sensors.canary import canary_verdict_sensor

pytestmark = pytest.mark.slow

END = date(2026, 3, 31)


#: the module's demo world, built once by the `world` fixture (tests/conftest.py)
WORLD = dict(days=64, end_date=END, rows_per_day=1200, reference_rows=3000, register_models=True)


def _copy(world: DemoWorld, name: str, **canary: object) -> Path:
    """The world's config with its own store and MLflow copy, and the given canary policy."""
    raw = yaml.safe_load(world.config_path.read_text())
    raw["storage"]["store_url"] = "sqlite:///${CONFIG_DIR}/" + f"{name}.db"
    mlflow_db = world.home / f"{name}_mlflow.db"
    # SQLite's own copy: the file alone may lack what its write-ahead log holds
    with (
        closing(sqlite3.connect(world.home / "mlflow.db")) as source,
        closing(sqlite3.connect(mlflow_db)) as target,
    ):
        source.backup(target)
    raw["storage"]["mlflow_tracking_uri"] = "sqlite:///${CONFIG_DIR}/" + mlflow_db.name
    for tenant in raw["tenants"]:
        for model in tenant["models"]:
            model["canary"] = {**model.get("canary", {}), **canary}
    path = world.home / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _resources(cfg: Path, day: date) -> dict:
    end_of_day = f"{(day + timedelta(days=1)).isoformat()}T00:00:00+00:00"
    return {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(cfg)),
        "clock": Clock(now_iso=end_of_day),
    }


def _canary_day(instance, cfg: Path, key: str, day: date):
    res = dg.materialize(
        ALL_ASSETS,
        selection=[canary_report],
        partition_key=partition_key(day.isoformat(), key),
        instance=instance,
        resources=_resources(cfg, day),
    )
    assert res.success
    [check] = res.get_asset_check_evaluations()
    mats = res.asset_materializations_for_node("canary_report")
    return (mats[0].metadata if mats else None), check


def _tick(instance, cfg: Path, day: date, cursor: str | None = None):
    ctx = dg.build_sensor_context(
        definitions=defs, instance=instance, cursor=cursor, resources=_resources(cfg, day)
    )
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return canary_verdict_sensor.evaluate_tick(ctx)


def _start(world: DemoWorld, kind: str) -> tuple[str, date]:
    inc = next(i for i in world.manifest["incidents"] if i["kind"] == kind)
    return inc["model"], date.fromisoformat(inc["start"])


def _prepare(instance, cfg: Path, key: str, day: date) -> None:
    instance.add_dynamic_partitions(MODELS, [key])
    assert dg.materialize(
        ALL_ASSETS,
        selection=[reference_profile],
        partition_key=key,
        instance=instance,
        resources=_resources(cfg, day),
    ).success


def _run(instance, cfg: Path, req, day: date):
    job = defs.resolve_job_def(req.job_name)
    return job.execute_in_process(
        run_config=req.run_config,
        instance=instance,
        resources=_resources(cfg, day),
        tags={"dagster/run_key": req.run_key},
    )


def test_worse_canary_is_rolled_back_once(world: DemoWorld) -> None:
    cfg = _copy(world, "rollback")
    key, start = _start(world, "canary")
    uri = load_config(cfg).storage.mlflow_tracking_uri
    with dg.instance_for_test() as instance:
        _prepare(instance, cfg, key, start)
        first, check = _canary_day(instance, cfg, key, start)
        # day one: no labels yet, so no verdict either way
        assert first["verdict"].value == "inconclusive" and check.passed
        assert _tick(instance, cfg, start).run_requests == []
        verdict, day = "inconclusive", start
        cursor = None
        for i in range(1, 8):
            day = start + timedelta(days=i)
            meta, check = _canary_day(instance, cfg, key, day)
            verdict = meta["verdict"].value
            if verdict == "fail":
                assert not check.passed
                assert meta["upper"].value < -meta["margin"].value or "guardrail" in str(
                    meta["evidence"].value
                )
                break
        assert verdict == "fail", "the 25-point worse canary must fail within a week"
        tick = _tick(instance, cfg, day, cursor)
        [req] = tick.run_requests
        assert req.job_name == "rollback_canary" and req.run_key == f"rollback:{key}:2"
        assert req.tags[TENANT_TAG] == key.split(".")[0]  # the instance's per-tenant run limit
        assert _run(instance, cfg, req, day).success
        assert "canary" not in aliases(uri, key) and aliases(uri, key)["champion"] == "1"
        # a reset cursor re-reads the fail verdict: nothing more to do
        assert _tick(instance, cfg, day).run_requests == []
        # the canary is gone: the next day has no canary report, only a passing check
        meta, check = _canary_day(instance, cfg, key, day + timedelta(days=1))
        assert meta is None and check.metadata["status"].value == "no canary"
    store = MonitoringStore(load_config(cfg).storage.store_url)
    tenant, model = key.split(".")
    acts = store.actions(tenant, model)
    assert list(acts["action"]) == ["rollback_canary"]
    fails = store.findings(tenant, model, signal="canary_fail")
    assert len(fails) == 1 and fails.iloc[0]["severity"] == "critical"


def test_as_good_canary_is_promoted_once_after_the_minimum_duration(world: DemoWorld) -> None:
    cfg = _copy(world, "promote", min_days=5, margin=0.08)
    key, start = _start(world, "canary_good")
    uri = load_config(cfg).storage.mlflow_tracking_uri
    with dg.instance_for_test() as instance:
        _prepare(instance, cfg, key, start)
        verdicts = []
        for i in range(0, 12):
            day = start + timedelta(days=i)
            meta, _ = _canary_day(instance, cfg, key, day)
            verdicts.append(meta["verdict"].value)
            if verdicts[-1] == "pass":
                break
        assert verdicts[-1] == "pass" and "fail" not in verdicts
        assert len(verdicts) >= 5  # never before the minimum duration
        [req] = _tick(instance, cfg, day).run_requests
        assert req.job_name == "promote_canary" and req.run_key == f"promote:{key}:2"
        assert _run(instance, cfg, req, day).success
        after = aliases(uri, key)
        assert after["champion"] == "2" and after["previous_champion"] == "1"
        assert "canary" not in after
        assert _tick(instance, cfg, day).run_requests == []


def test_inconclusive_and_dry_run_change_nothing(world: DemoWorld) -> None:
    cfg = _copy(world, "dry", dry_run=True)
    key, start = _start(world, "canary")
    uri = load_config(cfg).storage.mlflow_tracking_uri
    before = aliases(uri, key)
    with dg.instance_for_test() as instance:
        _prepare(instance, cfg, key, start)
        meta, _ = _canary_day(instance, cfg, key, start)
        assert meta["verdict"].value == "inconclusive"
        assert _tick(instance, cfg, start).run_requests == []
        for i in range(1, 8):
            meta, _ = _canary_day(instance, cfg, key, start + timedelta(days=i))
            if meta["verdict"].value == "fail":
                break
        [req] = _tick(instance, cfg, start + timedelta(days=i)).run_requests
        assert _run(instance, cfg, req, start + timedelta(days=i)).success
    assert aliases(uri, key) == before
    tenant, model = key.split(".")
    acts = MonitoringStore(load_config(cfg).storage.store_url).actions(tenant, model)
    assert list(acts["action"]) == ["rollback_canary_dry_run"]


def test_canary_command_shows_starts_and_refuses_clearly(world: DemoWorld, capsys) -> None:
    from aiops_pipelines.cli import main

    cfg = str(_copy(world, "cli"))
    assert main(["canary", "show", "--config", cfg, "--model", "acme.churn"]) == 0
    assert '"canary": "2"' in capsys.readouterr().out
    # no retrained challenger to start for eta: a clear refusal, nothing changed
    assert main(["canary", "start", "--config", cfg, "--model", "globex.eta"]) == 2
    assert "challenger" in capsys.readouterr().err
    # starting the live canary again is a no-op that keeps its start day
    uri = load_config(cfg).storage.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    start_before = client.get_model_version("acme.churn", "2").tags[TAG_CANARY_START]
    aliases_before = aliases(uri, "acme.churn")
    assert (
        main(["canary", "start", "--config", cfg, "--model", "acme.churn", "--version", "2"]) == 0
    )
    assert "canary" in capsys.readouterr().out
    assert client.get_model_version("acme.churn", "2").tags[TAG_CANARY_START] == start_before
    assert aliases(uri, "acme.churn") == aliases_before
    assert main(["canary", "restore", "--config", cfg, "--model", "acme.churn"]) == 2
    assert "previous_champion" in capsys.readouterr().err


def test_a_verdict_for_a_model_removed_from_the_config_is_ignored(world: DemoWorld) -> None:
    """Partitions of a removed model stay; its old verdicts must not break every tick."""
    cfg = _copy(world, "removed")
    day = END - timedelta(days=3)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, ["acme.gone"])
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=canary_report.key,
                partition=partition_key(day.isoformat(), "acme.gone"),
                metadata={"verdict": "fail", "canary_version": "2", "evidence": {}},
            )
        )
        result = _tick(instance, cfg, day)
    assert not result.run_requests
    assert result.cursor  # moved past the verdict, so the next tick does not trip on it again


def test_demo_actions_summary_lists_the_registry_aliases(world: DemoWorld) -> None:
    cfg = load_config(world.config_path)
    with MonitoringStore(cfg.storage.store_url) as store:
        text = actions_summary(world.home, store, cfg.storage.mlflow_tracking_uri)
    aliases = text.split("Registry aliases:\n")[1].splitlines()
    assert aliases == [
        "  acme.churn    canary=v2, champion=v1",
        "  acme.intent   canary=v2, champion=v1",
        "  globex.eta    champion=v1",
    ]
