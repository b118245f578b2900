"""Range runs: `aiops run` runs each model's days as one Dagster run per chunk (cut where the
late-labels sensor ticks), and stores exactly what one run per (day, model) stores.

The same days of one model are run on two copies of a small demo world, once with
`--day-runs` (the old path) and once with range runs, each as a real `aiops run` process. The
range includes acme.churn's injected failure (2026-03-07, a numeric column served as text): its
chunk fails as one run, is run again day by day, and the failure lands on its day as a daily
run records it. A late-labels tick in the middle re-judges the labelled days in one run.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.orchestration.partitions import RANGE_START_TAG
from tests.e2e.test_overlap import _aiops, _finish, _mlflow_runs, _store_content

pytestmark = pytest.mark.slow

WORLD = dict(
    days=10,
    end_date=date(2026, 3, 14),
    rows_per_day=600,
    reference_rows=2000,
    register_models=False,
)
MODEL = "acme.churn"
FAILING_DAY = "2026-03-07"
#: nine days: the late-labels sensor ticks after the 7th (one chunk 03-05..03-11 with the
#: failing day, one 03-12..03-13)
RANGE = ["--start", "2026-03-05", "--end", "2026-03-13", "--model", MODEL, "--no-html"]
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _copy(world: DemoWorld, to: Path) -> DemoWorld:
    shutil.copytree(world.home.parent, to)
    home = to / world.home.name
    return DemoWorld(home, home / world.config_path.name, world.manifest, world.models)


def _runs(world: DemoWorld) -> tuple[Counter, dict[tuple[str, str], int]]:
    """(the model's runs per kind: `labels` (late labels), `range` or `day`, materializations
    per (asset, partition))."""

    def kind(tags) -> str:
        if tags.get("aiops/trigger") == "late_labels":
            return "labels"
        return "range" if RANGE_START_TAG in tags else "day"

    with dg.DagsterInstance.from_config(str(world.home.parent / "dagster")) as instance:
        kinds = Counter(
            kind(r.tags)
            for r in instance.get_runs()
            if MODEL in r.tags.get("dagster/partition", "")
            or MODEL in r.tags.get(RANGE_START_TAG, "")
        )
        mats: Counter = Counter()
        for key in ("feature_profile", "drift_report", "performance_report", "model_alerts"):
            for rec in instance.fetch_materializations(dg.AssetKey(key), limit=10_000).records:
                mats[(key, rec.partition_key or "")] += 1
    return kinds, dict(mats)


def _plain(content: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """Store rows with run ids blanked (a failure finding names the run that failed)."""
    return {
        table: sorted(
            (
                tuple(RUN_ID.sub("<run>", v) if isinstance(v, str) else v for v in row)
                for row in rows
            ),
            key=repr,
        )
        for table, rows in content.items()
    }


def test_range_runs_store_what_day_runs_store_with_fewer_runs(
    make_world: Callable[..., DemoWorld], tmp_path: Path
) -> None:
    world = make_world("ranges", **WORLD)
    by_day = _copy(world, tmp_path / "by_day")
    ranged = _copy(world, tmp_path / "ranged")
    (by_day.home.parent / "dagster").mkdir(exist_ok=True)
    code, out, err = _finish(_aiops(by_day, *RANGE, "--day-runs"))
    assert code == 1 and "8 partitions succeeded, 1 failed" in out, err[-3000:]
    code, out, err = _finish(_aiops(ranged, *RANGE))
    assert code == 1 and "8 partitions succeeded, 1 failed" in out, err[-3000:]
    assert f"FAILED {MODEL} {FAILING_DAY}" in err

    day_store = _plain(_store_content(load_config(by_day.config_path).storage.store_url))
    range_store = _plain(_store_content(load_config(ranged.config_path).storage.store_url))
    assert day_store == range_store
    assert any(FAILING_DAY in str(row) for row in day_store["findings"])
    assert _mlflow_runs(by_day) == _mlflow_runs(ranged)

    day_kinds, day_mats = _runs(by_day)
    range_kinds, range_mats = _runs(ranged)
    # every (asset, day) materialized on both paths (a failed chunk's days, and the late
    # labels' days, more than once)
    assert day_mats.keys() == range_mats.keys()
    # the late labels of each tick re-judged in one run, on both paths
    assert day_kinds["labels"] == range_kinds["labels"] == 2
    # the reference, nine daily runs and the failure's alert run; or the reference, two chunks,
    # the failing chunk's seven days run again one by one and the alert run
    assert (day_kinds["range"], day_kinds["day"]) == (0, 1 + 9 + 1)
    assert (range_kinds["range"], range_kinds["day"]) == (2, 1 + 7 + 1)
