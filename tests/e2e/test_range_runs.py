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
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.receiver import AlertReceiver
from aiops_pipelines.demo.world import DEMO_SLACK_ENV, DEMO_WEBHOOK_ENV, DemoWorld
from aiops_pipelines.orchestration.partitions import RANGE_START_TAG
from tests.e2e.test_overlap import _aiops, _env, _finish, _mlflow_runs, _store_content

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
#: a Dagster run id, or an MLflow one (a retrain's audit names its run)
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def _copy(world: DemoWorld, to: Path) -> DemoWorld:
    shutil.copytree(world.home.parent, to)
    home = to / world.home.name
    return DemoWorld(home, home / world.config_path.name, world.manifest, world.models)


def _runs(world: DemoWorld, model: str = MODEL) -> tuple[Counter, dict[tuple[str, str], int]]:
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
            if model in r.tags.get("dagster/partition", "")
            or model in r.tags.get(RANGE_START_TAG, "")
        )
        mats: Counter = Counter()
        for key in ("feature_profile", "drift_report", "performance_report", "model_alerts"):
            for rec in instance.fetch_materializations(dg.AssetKey(key), limit=10_000).records:
                mats[(key, rec.partition_key or "")] += 1
    return kinds, dict(mats)


def _plain(content: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """Store rows with run ids blanked (a failure finding names the run that failed, a
    retrain's audit the MLflow run that trained it)."""
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
    # the same MLflow runs, but for the overview pages: every day's with day runs, each
    # chunk's last day's with range runs
    day_runs, range_runs = _mlflow_runs(by_day), _mlflow_runs(ranged)
    overview = [r for r in range_runs if r[0] == "ops_overview"]
    assert [r for r in day_runs if r[0] != "ops_overview"] == [
        r for r in range_runs if r not in overview
    ]
    assert [p for _, p, _ in overview] == ["2026-03-11", "2026-03-13"]

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


#: the demo's life: two weeks of globex.eta, with a null-rate incident (day 4) and a
#: throughput drop (day 6) in its first week, each alerting on its day, and a concept shift
#: (day 9) that its late labels reveal
LIFE = dict(days=14, end_date=date(2026, 3, 14), rows_per_day=600, reference_rows=2000)
LIFE_MODEL = "globex.eta"
LIVE_RUN = """
import sys
from datetime import date
from aiops_pipelines.cli import _run
sys.exit(_run(sys.argv[1], date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3]),
              [sys.argv[4]], False, live=True, runs=sys.argv[5]))
"""


def _live(world: DemoWorld, runs: str, receiver: AlertReceiver) -> list[dict]:
    """The demo's life (`aiops demo`'s `live=True`) of LIFE_MODEL over the world's days, in its
    own process; returns what the webhook route posted."""
    start, end = world.manifest["start"], world.manifest["end"]
    (world.home.parent / "dagster").mkdir(exist_ok=True)
    env = {**_env(world), DEMO_WEBHOOK_ENV: receiver.url(f"/{runs}")}
    env[DEMO_SLACK_ENV] = receiver.url(f"/{runs}-slack")
    args = [str(world.config_path), start, end, LIFE_MODEL, runs]
    out = subprocess.run(
        [sys.executable, "-c", LIVE_RUN, *args], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return receiver.received.get(f"/{runs}-slack", [])  # globex's route is Slack-shaped


def test_the_demo_life_in_range_runs_is_the_life_of_day_runs(
    make_world: Callable[..., DemoWorld], tmp_path: Path
) -> None:
    world = make_world("life", **LIFE, incident_scale=0.25)
    by_day = _copy(world, tmp_path / "by_day")
    ranged = _copy(world, tmp_path / "ranged")
    with AlertReceiver() as receiver:
        day_posts = _live(by_day, "day", receiver)
        range_posts = _live(ranged, "range", receiver)

    day_store = _plain(_store_content(load_config(by_day.config_path).storage.store_url))
    range_store = _plain(_store_content(load_config(ranged.config_path).storage.store_url))
    assert day_store == range_store  # the same findings, alerts, deliveries and actions
    # what on-call was sent: the same messages, each day's as the daemon sent them that day
    # (the range's days ran first; their notifications go out as of each day, not at once)
    assert len(day_posts) >= 2 and len(range_posts) == len(day_posts)
    assert [p["blocks"][:2] for p in range_posts] == [p["blocks"][:2] for p in day_posts]
    day_kinds, day_mats = _runs(by_day, LIFE_MODEL)
    range_kinds, range_mats = _runs(ranged, LIFE_MODEL)
    assert day_mats.keys() == range_mats.keys()
    assert day_kinds["range"] == 0 and range_kinds["range"] >= 1
    assert range_kinds["day"] < day_kinds["day"]
