"""What a run killed mid-way left behind, recognised and released when the next run starts.

An in-process `aiops run` has no run worker for Dagster's run monitoring to watch: killed, its
Dagster run stays `STARTED` forever, the MLflow run of the attempt it was logging stays
`RUNNING`, and the notifications it had claimed stay `sending`. Each of them is stamped with
the process that started it (`core.process`); a process on this host that no longer exists
will never finish, so its leftovers are failed and released at once instead of waiting
forever (runs) or for `stale_after` (claims).

What the killed run had stored stays consistent: each asset replaces its partition's rows in
one transaction, so a day is either as the last finished asset left it or not there; the assets
it never reached show as "day incomplete" in `aiops status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from aiops_pipelines.core.config import AppConfig
from aiops_pipelines.core.process import Process
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import Tracker, down_reason

#: The Dagster run tag naming the process that executes the run in-process.
PROCESS_TAG = "aiops/process"

_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def process_tags() -> dict[str, str]:
    """The tags an in-process run carries so that a later run can tell if it died."""
    return {PROCESS_TAG: str(Process.current())}


@dataclass
class Debris:
    """What `clear_debris` found of runs that died, and failed or released."""

    dagster_runs: list[str] = field(default_factory=list)
    mlflow_runs: list[str] = field(default_factory=list)
    deliveries: int = 0

    def __bool__(self) -> bool:
        return bool(self.dagster_runs or self.mlflow_runs or self.deliveries)

    def summary(self) -> str:
        return (
            f"left by runs that died: {len(self.dagster_runs)} Dagster run(s) marked failed, "
            f"{len(self.mlflow_runs)} MLflow run(s) ended as FAILED, {self.deliveries} "
            "claimed notification(s) released"
        )


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the unfinished Dagster runs whose in-process executor died (on this host).
    Runs without the process tag (launched by the daemon or the UI) are Dagster's to monitor."""
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED)):
        stamp = Process.parse(run.tags.get(PROCESS_TAG))
        if stamp is not None and stamp.is_dead():
            instance.report_run_failed(
                run,
                message=f"the process executing this run ({stamp}) died before it finished "
                "(killed?); marked failed by the next aiops run",
            )
            failed.append(run.run_id)
    return failed


def clear_debris(instance: dg.DagsterInstance, config: AppConfig, store: MonitoringStore) -> Debris:
    """Fail the Dagster and MLflow runs of processes that died and release their claims.
    MLflow's are left for a later run while MLflow is known to be down (`probe` first)."""
    uri = config.storage.mlflow_tracking_uri
    mlflow_runs = []
    if down_reason(uri) is None:
        mlflow_runs = Tracker(uri, config.storage.artifacts_dir).end_dead_runs()
    return Debris(
        dagster_runs=fail_dead_runs(instance),
        mlflow_runs=mlflow_runs,
        deliveries=store.release_dead_claims(),
    )
