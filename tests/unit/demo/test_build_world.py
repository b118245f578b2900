"""`build_world` itself: a rebuild wipes only what the demo wrote and gives the same data, and
a folder the demo did not write is never wiped."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from aiops_pipelines.demo.world import build_world

END = date(2026, 3, 1)


def test_rebuild_wipes_only_the_world_and_is_deterministic(tmp_path: Path) -> None:
    kw = {
        "days": 14,
        "end_date": END,
        "rows_per_day": 120,
        "reference_rows": 600,
        "register_models": False,
    }
    first = build_world(tmp_path, **kw)
    with sqlite3.connect(first.world_db) as con:
        before = pd.read_sql('SELECT * FROM "acme_churn_predictions"', con)
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "mlflow.db").write_text("stale")
    (tmp_path / "artifacts").mkdir()
    second = build_world(tmp_path, **kw)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "artifacts").exists()
    with sqlite3.connect(second.world_db) as con:
        after = pd.read_sql('SELECT * FROM "acme_churn_predictions"', con)
    pd.testing.assert_frame_equal(before, after)
    assert first.manifest == second.manifest
    assert not (tmp_path / "world.db.tmp").exists()


def test_refuses_to_wipe_a_folder_that_is_not_a_demo_world(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("tenants: []\n")
    with pytest.raises(ValueError, match="not written by the demo"):
        build_world(tmp_path, days=14, register_models=False)
    assert (tmp_path / "config.yaml").read_text() == "tenants: []\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "mlflow.db").write_text("someone's runs")
    with pytest.raises(ValueError, match="no demo world"):
        build_world(other, days=14, register_models=False)
    assert (other / "mlflow.db").exists()
