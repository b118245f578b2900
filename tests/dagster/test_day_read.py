"""A daily Dagster run reads a model-day's predictions once for feature_profile, ops_report
and performance_report (`signals.day_pass`), and each asset publishes what its own read
gave it."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.sources import Source
from aiops_pipelines.orchestration.definitions import ASSETS
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import Clock, MonitoringConfig, default_resources
from aiops_pipelines.signals import day_pass
from assets.monitoring import feature_profile, reference_profile
from assets.operations import ops_report
from assets.performance import performance_report

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)
WORLD = dict(days=3, end_date=END, rows_per_day=1200, reference_rows=3000, register_models=False)
DAILY = [feature_profile, ops_report, performance_report]


def _materialize(world: DemoWorld, instance: dg.DagsterInstance, selection, key: str):
    res = dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=key,
        instance=instance,
        resources={
            **default_resources(),
            "monitoring_config": MonitoringConfig(config_path=str(world.config_path)),
            "clock": Clock(now_iso=f"{END.isoformat()}T12:00:00+00:00"),
        },
    )
    assert res.success
    return res


def _metadata(res: dg.ExecuteInProcessResult, assets) -> dict[str, dict]:
    """Each asset's materialization metadata, but for its timing and its MLflow run."""
    out = {}
    for asset in assets:
        name = asset.key.path[-1]
        [mat] = res.asset_materializations_for_node(name)
        out[name] = {
            k: v.value
            for k, v in mat.metadata.items()
            if k != "seconds" and not k.startswith("mlflow")
        }
    return out


def test_a_daily_run_reads_the_days_predictions_once(
    world: DemoWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = next(m for m in load_config(world.config_path).models if m.outcomes is not None)
    day = world.manifest["start"]
    predictions = Source(model.predictions).describe()
    reads: list[str] = []
    real = Source.iter_window

    def counted(self: Source, timestamp_col, start, end, columns=None):
        if self.describe() == predictions and start.date().isoformat() == day:
            reads.append(timestamp_col)
        yield from real(self, timestamp_col, start, end, columns)

    monkeypatch.setattr(Source, "iter_window", counted)
    day_pass.forget()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [model.key])
        _materialize(world, instance, [reference_profile], model.key)
        reads.clear()
        shared = _metadata(
            _materialize(world, instance, DAILY, partition_key(day, model.key)), DAILY
        )
        assert len(reads) == 1
        assert day_pass.kept_bytes() == 0  # every part was claimed by its asset
        # each asset in a run of its own (three tokens): a read each, the same metadata
        own = {}
        for asset in DAILY:
            res = _materialize(world, instance, [asset], partition_key(day, model.key))
            own |= _metadata(res, [asset])
        assert len(reads) == 4
    assert shared == own
