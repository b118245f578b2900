"""A failed run's finding names what failed, not which run: a day that fails again replaces it,
and the day's re-run that succeeds once the data is fixed clears it (real Dagster runs over the
demo world's bad batch, without MLflow)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import pytest

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, partition_key, partition_range_tags
from aiops_pipelines.orchestration.resources import (
    MlflowResource,
    MonitoringConfig,
    default_resources,
)
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from assets.monitoring import feature_profile, reference_profile
from sensors.failures import pipeline_failure_sensor

KEY = "acme.churn"


@dataclass
class BadDay:
    """The demo world's bad batch: a day of acme.churn whose numeric column holds text."""

    world: DemoWorld
    instance: dg.DagsterInstance
    day: str
    column: str

    @property
    def resources(self) -> dict:
        return {
            **default_resources(),
            "monitoring_config": MonitoringConfig(config_path=str(self.world.config_path)),
            "mlflow": MlflowResource(enabled=False),
        }

    @property
    def store(self) -> MonitoringStore:
        return MonitoringStore(load_config(self.world.config_path).storage.store_url)

    def profile(self) -> dg.ExecuteInProcessResult:
        """The day's feature_profile run, as a re-run of the day launches it."""
        return dg.materialize(
            ALL_ASSETS,
            selection=[feature_profile],
            partition_key=partition_key(self.day, KEY),
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
        )

    def profile_range(self, first: str, last: str) -> dg.ExecuteInProcessResult:
        """One run of feature_profile over the days `first`..`last` (a backfill's range run)."""
        with dg.partition_loading_context(dynamic_partitions_store=self.instance):
            return dg.materialize(
                ALL_ASSETS,
                selection=[feature_profile],
                instance=self.instance,
                resources=self.resources,
                raise_on_error=False,
                tags=partition_range_tags(KEY, first, last),
            )

    def failure_sensor(self, failed: dg.ExecuteInProcessResult):
        """The daemon's pipeline_failure_sensor on that failed run."""
        ctx = dg.build_run_status_sensor_context(
            sensor_name=pipeline_failure_sensor.name,
            dagster_instance=self.instance,
            dagster_run=failed.dagster_run,
            dagster_event=failed.get_run_failure_event(),
            resources={k: self.resources[k] for k in ("monitoring_config", "store")},
        ).for_run_failure()
        return pipeline_failure_sensor(ctx)

    def fix_the_data(self) -> None:
        """The upstream job re-writes the day: the text values become reference values."""
        tables = self.world.manifest["models"][KEY]["tables"]
        pred, ref, col = tables["predictions"], tables["reference"], self.column
        with sqlite3.connect(self.world.world_db) as con:
            con.execute(
                f'UPDATE "{pred}" SET "{col}" = (SELECT "{col}" FROM "{ref}" AS r '
                f'WHERE r.rowid = 1 + "{pred}".rowid % (SELECT COUNT(*) FROM "{ref}")) '
                f"WHERE typeof(\"{col}\") = 'text'"
            )


@pytest.fixture
def bad_day(make_world: Callable[..., DemoWorld]) -> Iterator[BadDay]:
    world = make_world(
        "failure_findings",
        days=14,
        end_date=date(2026, 3, 14),
        rows_per_day=200,
        reference_rows=500,
        register_models=False,
    )
    (bad,) = [i for i in world.manifest["incidents"] if i["kind"] == "bad_batch"]
    assert bad["model"] == KEY
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MODELS, [KEY])
        case = BadDay(world, instance, bad["start"], bad["columns"][0])
        assert dg.materialize(
            ALL_ASSETS,
            selection=[reference_profile],
            partition_key=KEY,
            instance=instance,
            resources=case.resources,
        ).success
        yield case


def _failures(store: MonitoringStore):
    return store.findings("acme", "churn", signal="pipeline_failure")


def test_a_day_that_fails_again_keeps_one_finding_naming_the_failed_asset(
    bad_day: BadDay,
) -> None:
    first = bad_day.profile()
    second = bad_day.profile()
    assert not first.success and not second.success
    requests = [bad_day.failure_sensor(first), bad_day.failure_sensor(second)]
    # each failed run still asks for the model's alert evaluation of the day
    assert all(isinstance(r, dg.RunRequest) for r in requests)
    assert {r.partition_key for r in requests} == {partition_key(bad_day.day, KEY)}

    (row,) = _failures(bad_day.store).to_dict("records")
    assert (row["partition"], row["asset"], row["column"]) == (
        bad_day.day,
        "pipeline",
        "feature_profile",
    )
    assert row["severity"] == "critical"
    run_id = second.dagster_run.run_id
    assert row["evidence"]["run_id"] == run_id and row["evidence"]["step"] == "feature_profile"
    assert row["evidence"]["partition"] == f"{bad_day.day}|{KEY}"
    assert row["message"].startswith(f"run {run_id} of ")
    assert bad_day.column in row["evidence"]["error"]


def test_rerunning_the_day_once_the_data_is_fixed_clears_its_failure(bad_day: BadDay) -> None:
    failed = bad_day.profile()
    assert isinstance(bad_day.failure_sensor(failed), dg.RunRequest)
    assert len(_failures(bad_day.store)) == 1

    bad_day.fix_the_data()
    assert bad_day.profile().success
    assert _failures(bad_day.store).empty
    # the day's profile is stored as any other day's
    store = bad_day.store
    assert store.load_profile("acme", "churn", "daily", bad_day.day) is not None


def test_a_failure_seen_only_after_the_fixed_rerun_is_not_recorded(bad_day: BadDay) -> None:
    failed = bad_day.profile()
    bad_day.fix_the_data()
    assert bad_day.profile().success
    # the daemon gets to the failed run late, after the re-run fixed the day
    skipped = bad_day.failure_sensor(failed)
    assert isinstance(skipped, dg.SkipReason)
    assert "fixed by a later run" in (skipped.skip_message or "")
    assert _failures(bad_day.store).empty


def test_a_range_run_failing_on_one_day_keeps_the_days_before_and_names_its_day(
    bad_day: BadDay,
) -> None:
    bad = date.fromisoformat(bad_day.day)
    before, after = (bad - timedelta(days=2)).isoformat(), (bad + timedelta(days=1)).isoformat()
    failed = bad_day.profile_range(before, after)
    assert not failed.success
    store = bad_day.store
    # the days before the bad one were profiled and stored; the bad one and those after not
    stored = {
        d: store.load_profile("acme", "churn", "daily", d) is not None
        for d in ((bad + timedelta(days=i)).isoformat() for i in range(-2, 2))
    }
    assert stored == {before: True, (bad - timedelta(days=1)).isoformat(): True,
                      bad_day.day: False, after: False}  # fmt: skip
    # the daemon's failure sensor puts the finding on the day the range failed on
    request = bad_day.failure_sensor(failed)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == partition_key(bad_day.day, KEY)
    (row,) = _failures(store).to_dict("records")
    assert (row["partition"], row["column"]) == (bad_day.day, "feature_profile")
    assert bad_day.column in row["evidence"]["error"]
