"""A day whose monitoring run keeps failing is one alert, notified once, not one per re-run;
once the data is fixed, the day's re-run clears the failure. `aiops run` (run_range, with the
failure sensor in-process) over the demo world's bad batch, twice failing, then fixed (slow)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.runner import RangeOutcome, run_range

pytestmark = pytest.mark.slow

KEY = "acme.churn"
KEEP_FIRING_DAYS = 1


@dataclass
class Snapshot:
    """What the store and the alert route hold for the failure at one point of the story."""

    findings: pd.DataFrame
    alerts: pd.DataFrame
    events: pd.DataFrame
    notified: list[dict]


@dataclass
class Story:
    day: str
    failed_runs: list[str]
    """The failed runs' ids, oldest first."""
    failing: Snapshot
    fixed_run: RangeOutcome
    fixed: Snapshot


def _snapshot(store: MonitoringStore, alerts_file: Path) -> Snapshot:
    lines = alerts_file.read_text().splitlines() if alerts_file.exists() else []
    notified = [
        alert
        for message in map(json.loads, lines)
        for alert in message["alerts"]
        if alert["signal"] == "pipeline_failure"
    ]
    alerts = store.alerts("acme", "churn")
    events = store.alert_events("acme", "churn")
    return Snapshot(
        store.findings("acme", "churn", signal="pipeline_failure"),
        alerts[alerts["signal"] == "pipeline_failure"].reset_index(drop=True),
        events[events["signal"] == "pipeline_failure"].reset_index(drop=True),
        notified,
    )


def _fix_the_data(world: DemoWorld, column: str) -> None:
    """The upstream job re-writes the bad day: its text values become reference values."""
    tables = world.manifest["models"][KEY]["tables"]
    pred, ref = tables["predictions"], tables["reference"]
    with sqlite3.connect(world.world_db) as con:
        con.execute(
            f'UPDATE "{pred}" SET "{column}" = (SELECT "{column}" FROM "{ref}" AS r '
            f'WHERE r.rowid = 1 + "{pred}".rowid % (SELECT COUNT(*) FROM "{ref}")) '
            f"WHERE typeof(\"{column}\") = 'text'"
        )


@pytest.fixture(scope="module")
def story(
    make_world: Callable[..., DemoWorld], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    home = tmp_path_factory.mktemp("failure_episodes_home")
    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        # the module's own home: the per-test one (conftest) does not exist yet
        mp.setenv("AIOPS_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home))
        # the world ends yesterday: `aiops run` judges with the wall clock, and alert events
        # more than max_event_age_days old are not sent
        world = make_world("failure_episodes", days=14, rows_per_day=300, reference_rows=1000)
        (bad,) = [i for i in world.manifest["incidents"] if i["kind"] == "bad_batch"]
        assert bad["model"] == KEY
        day = date.fromisoformat(bad["start"])
        raw = yaml.safe_load(world.config_path.read_text())
        raw["alerting"]["keep_firing_days"] = KEEP_FIRING_DAYS
        raw["alerting"]["routes"] = [r for r in raw["alerting"]["routes"] if r["type"] == "file"]
        cfg = world.home / "failures.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        config = load_config(cfg)
        store = MonitoringStore(config.storage.store_url)
        alerts_file = Path(config.alerting.routes[0].path or "")

        def aiops_run(start: date, end: date) -> RangeOutcome:
            return run_range(
                cfg, start, end, models=[KEY], instance=instance, overview=False, render_html=False
            )

        for _ in range(2):
            failed = aiops_run(day, day)
            assert [o.partition for o in failed.failed] == [day.isoformat()]
        failing = _snapshot(store, alerts_file)
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        _fix_the_data(world, bad["columns"][0])
        fixed_run = aiops_run(day, day + timedelta(days=KEEP_FIRING_DAYS + 2))
        yield Story(
            day.isoformat(),
            [r.run_id for r in reversed(runs)],
            failing,
            fixed_run,
            _snapshot(store, alerts_file),
        )


def test_a_day_that_fails_twice_is_one_finding_naming_the_failed_asset(story: Story) -> None:
    assert len(story.failed_runs) == 2
    (row,) = story.failing.findings.to_dict("records")
    assert (row["partition"], row["column"], row["severity"]) == (
        story.day,
        "feature_profile",
        "critical",
    )
    # the latest failed run is the one to look at: its id and error are the evidence
    latest = story.failed_runs[-1]
    assert row["evidence"]["run_id"] == latest and latest in row["message"]
    assert "monthly_charges" in row["evidence"]["error"]


def test_a_day_that_fails_twice_is_one_alert_notified_once(story: Story) -> None:
    (alert,) = story.failing.alerts.to_dict("records")
    assert (alert["state"], alert["column"], alert["first_seen"]) == (
        "firing",
        "feature_profile",
        story.day,
    )
    assert list(story.failing.events["kind"]) == ["firing"]
    (sent,) = story.failing.notified
    assert (sent["kind"], sent["column"], sent["day"]) == ("firing", "feature_profile", story.day)


def test_rerunning_the_fixed_day_clears_its_failure(story: Story) -> None:
    assert not story.fixed_run.failed
    assert story.fixed.findings.empty
    # nothing fires for a failure that is gone, and nobody is paged about it again
    assert "firing" not in set(story.fixed.alerts["state"])
    assert [a["kind"] for a in story.fixed.notified if a["kind"] != "resolved"] == ["firing"]


def test_the_fixed_failure_alert_resolves_after_keep_firing_days(story: Story) -> None:
    resolved_on = (date.fromisoformat(story.day) + timedelta(days=KEEP_FIRING_DAYS + 1)).isoformat()
    (alert,) = story.fixed.alerts.to_dict("records")
    assert (alert["state"], alert["resolved_on"]) == ("resolved", resolved_on)
    assert list(story.fixed.events["kind"]) == ["firing", "resolved"]
    assert [a["kind"] for a in story.fixed.notified] == ["firing", "resolved"]
