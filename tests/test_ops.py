"""Operational signals: exact counts, percentiles from the mergeable histogram, and the
throughput drop of a demo world found by ops_report against its own history."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld, build_world
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import MonitoringConfig, default_resources
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from aiops_pipelines.signals.operations.day import stream_operations
from assets.ops import ops_report

END = date(2026, 3, 14)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    # four weeks: the drop (day 10 of 28) has more than the 7 days of history a baseline needs
    return build_world(
        tmp_path_factory.mktemp("ops") / "demo",
        days=28,
        end_date=END,
        rows_per_day=1200,
        reference_rows=3000,
        register_models=False,
    )


def test_day_numbers_match_the_log(world: DemoWorld) -> None:
    model = load_config(world.config_path).model("acme.churn")
    day = world.manifest["start"]
    ops = stream_operations(model, day)
    log = pd.read_sql_query(
        "SELECT timestamp, model_version, latency_ms, status FROM acme_churn_predictions "
        "WHERE timestamp >= :a AND timestamp < :b",
        sa.create_engine(f"sqlite:///{world.home / 'world.db'}"),
        params={"a": day, "b": (date.fromisoformat(day) + timedelta(days=1)).isoformat()},
    )
    assert ops.total.n == len(log)
    assert ops.total.n_errors == int((log.status != "ok").sum())
    hours = pd.to_datetime(log.timestamp, format="ISO8601", utc=True).dt.hour
    assert ops.hourly_requests.tolist() == np.bincount(hours, minlength=24).tolist()
    exact = np.percentile(log.latency_ms, 95)
    assert ops.total.latency(0.95) == pytest.approx(exact, rel=0.04)  # one log-spaced bin
    metrics = ops.metrics()
    assert metrics[("throughput_day", "")] == len(log)
    assert sum(v for (m, _), v in metrics.items() if m == "throughput_hour") == len(log)


def test_throughput_drop_is_found_on_its_day_only(world: DemoWorld) -> None:
    drop = next(i for i in world.manifest["incidents"] if i["kind"] == "throughput_drop")
    key = drop["model"]
    start = date.fromisoformat(world.manifest["start"])
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(world.config_path)),
    }
    checks = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [key])
        day = start
        while day <= date.fromisoformat(drop["end"]) + timedelta(days=1):
            res = dg.materialize(
                ALL_ASSETS,
                selection=[ops_report],
                partition_key=partition_key(day.isoformat(), key),
                instance=instance,
                resources=resources,
            )
            assert res.success
            checks[day.isoformat()] = {
                c.check_name: c.passed for c in res.get_asset_check_evaluations()
            }
            day += timedelta(days=1)
    assert checks[drop["start"]]["throughput"] is False
    quiet = [d for d in checks if d < drop["start"]]  # the first 7 are the warm-up
    assert quiet and all(checks[d]["throughput"] for d in quiet)
    tenant, model = key.split(".")
    found = MonitoringStore(load_config(world.config_path).storage.store_url).findings(
        tenant, model, signal="throughput_anomaly"
    )
    assert drop["start"] in set(found["partition"])
    assert found[found.partition == drop["start"]].iloc[0]["evidence"]["direction"] == "drop"
