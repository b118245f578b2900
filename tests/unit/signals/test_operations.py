"""Operational signals on a demo world's prediction log: exact counts, and percentiles from
the mergeable histogram within one bin of numpy's. A four-week world: slow."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.signals.operations.day import stream_operations

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)


#: the module's demo world, built once by the `world` fixture (tests/conftest.py)
#: four weeks: the drop (day 10 of 28) has more than the 7 days of history a baseline needs
WORLD = dict(days=28, end_date=END, rows_per_day=1200, reference_rows=3000, register_models=False)


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
