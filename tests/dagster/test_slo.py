"""slo_report materialized by real Dagster runs over three days of a small demo world: the
hourly counts and budgets stored, a latency burn injected on the last day paged from its first
hour, the quiet days quiet, and the checks and metadata reported."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta

import dagster as dg
import pytest
import yaml

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import WORLD_DB, DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import MonitoringConfig, default_resources
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from assets.operations import ops_report
from assets.slo import slo_report

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)
KEY = "acme.churn"
WORLD = dict(days=3, end_date=END, rows_per_day=1200, reference_rows=1000, register_models=False)

SLOS = [
    {"name": "fast", "kind": "latency", "objective": 0.99, "threshold_ms": 200},
    {"name": "up", "kind": "availability", "objective": 0.99},
    {
        "name": "fast-north",
        "kind": "latency",
        "objective": 0.99,
        "threshold_ms": 200,
        "segment": {"column": "region", "value": "north"},
    },
]


def declare_slos(world: DemoWorld, key: str, slos: list[dict]) -> None:
    """Add `slos` to model `key` in the world's config."""
    tenant, name = key.split(".")
    doc = yaml.safe_load(world.config_path.read_text())
    for t in doc["tenants"]:
        for m in t["models"]:
            if (t["name"], m["name"]) == (tenant, name):
                m["slos"] = slos
    header = world.config_path.read_text().split("\n", 3)[:3]  # the demo's own header kept
    world.config_path.write_text("\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=False))


def slow_down(
    world: DemoWorld, key: str, day: str, from_hour: int, to_hour: int = 24, ms: float = 450.0
) -> int:
    """The demo's "SLO burn" case: every other prediction of `key` from `from_hour` to
    `to_hour` (exclusive) of `day` takes `ms`, so a latency SLO of 99% under 200 ms burns at
    ~50x (a page from the first hour). Returns how many rows were changed."""
    table = key.replace(".", "_") + "_predictions"
    end = f"{day} {to_hour:02d}:00:00" if to_hour < 24 else f"{day} 23:59:59.999999+00:00"
    with sqlite3.connect(world.home / WORLD_DB) as con:
        cur = con.execute(
            f'UPDATE "{table}" SET latency_ms = ? WHERE timestamp >= ? AND timestamp < ? '
            "AND rowid % 2 = 0",
            (ms, f"{day} {from_hour:02d}:00:00", end),
        )
        return cur.rowcount


def test_slo_report_stores_budgets_and_pages_on_a_latency_burn(world: DemoWorld) -> None:
    declare_slos(world, KEY, SLOS)
    days = [(END - timedelta(days=i)).isoformat() for i in (2, 1, 0)]
    assert slow_down(world, KEY, days[-1], from_hour=10) > 100
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(world.config_path)),
    }
    checks, metadata = {}, {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [KEY])
        for day in days:
            res = dg.materialize(
                ALL_ASSETS,
                selection=[ops_report, slo_report],  # one run: the day read once for both
                partition_key=partition_key(day, KEY),
                instance=instance,
                resources=resources,
            )
            assert res.success
            checks[day] = {
                c.check_name: c.passed
                for c in res.get_asset_check_evaluations()
                if c.asset_key == dg.AssetKey("slo_report")
            }
            (mat,) = res.asset_materializations_for_node("slo_report")
            metadata[day] = {k: v.value for k, v in mat.metadata.items()}
    assert checks[days[0]] == {"slo_budget": True, "slo_burn": True}
    assert checks[days[1]] == {"slo_budget": True, "slo_burn": True}
    assert checks[days[2]] == {"slo_budget": False, "slo_burn": False}
    assert metadata[days[0]]["fast level"] == "ok"
    assert metadata[days[2]]["fast level"] == "exhausted"
    assert metadata[days[2]]["up level"] == "ok"

    store = MonitoringStore(load_config(world.config_path).storage.store_url)
    tenant, model = KEY.split(".")
    found = store.findings(tenant, model, signal="slo_burn")
    assert set(found["partition"]) == {days[2]}
    by_slo = found.set_index("column")
    assert set(by_slo.index) == {"fast", "fast-north"}
    fast = by_slo.loc["fast"]
    assert fast["severity"] == "critical"
    assert fast["evidence"]["rule"] == "page_1h"
    assert fast["evidence"]["first_hour"] == f"{days[2]}T10:00:00+00:00"
    assert store.findings(tenant, model, signal="slo_budget")["column"].tolist() == [
        "fast",
        "fast-north",
    ]
    stored = store.metric_history(tenant, model, asset="slo_report")
    hourly = stored[stored.metric == "slo_events_hour"]
    assert len(hourly) == 3 * 24 * 3
    # every prediction of the three days is an availability event, counted once
    up = hourly[hourly.column.str.startswith("up@")]["value"].sum()
    ops = store.metric_history(tenant, model, metric="throughput_day", column="")
    assert up == ops["value"].sum()
    last = stored[(stored.partition == days[2]) & (stored.column == "fast")]
    values = last.set_index("metric")["value"]
    assert values["slo_budget_remaining"] < 0
    assert values["slo_burn_rate_1h"] > 14.4
    assert values["slo_events_window"] == up


def test_a_model_without_slos_materializes_quietly_without_an_mlflow_run(world: DemoWorld) -> None:
    key = "acme.intent"
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(world.config_path)),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [key])
        res = dg.materialize(
            ALL_ASSETS,
            selection=[slo_report],
            partition_key=partition_key(END.isoformat(), key),
            instance=instance,
            resources=resources,
        )
    assert res.success
    (mat,) = res.asset_materializations_for_node("slo_report")
    assert mat.metadata["slos"].value == "none configured"
    assert mat.metadata["mlflow_run_id"].value == ""
    assert all(c.passed for c in res.get_asset_check_evaluations())
