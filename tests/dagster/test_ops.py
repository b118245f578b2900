"""The throughput drop of a demo world found by ops_report against its own history: one
Dagster run a day over four weeks' data, so slow."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import MonitoringConfig, default_resources
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from assets.operations import ops_report

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)


#: the module's demo world, built once by the `world` fixture (tests/conftest.py)
#: four weeks: the drop (day 10 of 28) has more than the 7 days of history a baseline needs
WORLD = dict(days=28, end_date=END, rows_per_day=1200, reference_rows=3000, register_models=False)


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
