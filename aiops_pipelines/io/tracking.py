"""MLflow: an experiment per model, one run per (asset, partition), registry aliases.

Runs are idempotent per partition: the run for ("drift_report", "2026-01-05") is found by its
tags and updated in place on a re-run, so MLflow never piles up duplicates. Each re-run logs its
metrics at the next step, so the history of a value that changes (e.g. coverage as late labels
arrive) stays visible in the run's metric charts.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

from aiops_pipelines.core.process import Process
from aiops_pipelines.io.locks import file_lock, lock_folder, sqlite_file

log = logging.getLogger(__name__)

TAG_TENANT = "aiops.tenant"
TAG_MODEL = "aiops.model"
TAG_ASSET = "aiops.asset"
TAG_PARTITION = "aiops.partition"
TAG_ATTEMPT = "aiops.attempt"
#: The process logging the run's current attempt (`core.process`): a run left RUNNING by a
#: process that died is ended as FAILED by the next `aiops run`.
TAG_PROCESS = "aiops.process"


#: How long a process waits for another to create or migrate the MLflow database.
PREPARE_TIMEOUT_SECONDS = 600.0
_prepared: set[str] = set()
_relocated: set[str] = set()


def prepare_tracking_store(
    tracking_uri: str, artifacts_dir: str | os.PathLike[str] | None = None
) -> None:
    """Create (or migrate) the MLflow database of `tracking_uri` once, before anything else
    uses it, holding a lock beside a SQLite file while doing so.

    MLflow creates its tables on first use by running its migrations, unguarded: two runs that
    start at once on a new SQLite store both migrate it and one fails ("table
    _alembic_tmp_metrics already exists", "duplicate column name: step"), or leaves it half
    migrated for every run after. The second process waits here, then finds it ready.

    Given the config's `artifacts_dir`, a world folder that was moved or copied also gets its
    MLflow artifact locations pointed at its own artifacts (`relocate.relocate_artifacts`).
    """
    if tracking_uri in _prepared and (artifacts_dir is None or tracking_uri in _relocated):
        return
    db = sqlite_file(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    guard = (
        file_lock(lock_folder(db) / "prepare.lock", timeout=PREPARE_TIMEOUT_SECONDS)
        if db is not None
        else nullcontext()
    )
    with guard:
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
        if artifacts_dir is not None:
            from aiops_pipelines.io.relocate import relocate_artifacts

            relocate_artifacts(tracking_uri, artifacts_dir)
            _relocated.add(tracking_uri)
    _prepared.add(tracking_uri)


def experiment_name(model_key: str) -> str:
    return f"aiops/{model_key}"


def artifact_root(artifacts_dir: str | os.PathLike[str], model_key: str) -> str:
    """Every MLflow artifact lives under the home folder, never in the cwd's ./mlruns."""
    path = Path(artifacts_dir) / "mlflow" / model_key
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve().as_uri()


def ensure_experiment(
    client: MlflowClient, model_key: str, artifacts_dir: str | os.PathLike[str]
) -> str:
    """The id of the model's experiment, created with its artifacts under `artifacts_dir`."""
    name = experiment_name(model_key)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    tenant, _, model = model_key.partition(".")
    return client.create_experiment(
        name,
        artifact_location=artifact_root(artifacts_dir, model_key),
        tags={TAG_TENANT: tenant, TAG_MODEL: model},
    )


def _finite(metrics: Mapping[str, float | None]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out[k] = f
    return out


class Tracker:
    """Thin, idempotent wrapper over MlflowClient for monitoring results."""

    def __init__(self, tracking_uri: str, artifacts_dir: str | os.PathLike[str]) -> None:
        self.tracking_uri = tracking_uri
        self.artifacts_dir = str(artifacts_dir)
        prepare_tracking_store(tracking_uri, artifacts_dir)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def find_run(self, model_key: str, asset: str, partition: str) -> Any | None:
        exp_id = ensure_experiment(self.client, model_key, self.artifacts_dir)
        runs = self.client.search_runs(
            [exp_id],
            filter_string=(
                f"tags.`{TAG_ASSET}` = '{asset}' and tags.`{TAG_PARTITION}` = '{partition}'"
            ),
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=10,
            order_by=["attributes.start_time ASC"],
        )
        if not runs:
            return None
        for extra in runs[1:]:  # heal duplicates left by an interrupted older run
            self.client.delete_run(extra.info.run_id)
        return runs[0]

    @contextmanager
    def partition_run(
        self, model_key: str, asset: str, partition: str, *, params: Mapping[str, Any] | None = None
    ) -> Iterator[PartitionRun]:
        """Open the (asset, partition) run, creating it once and reusing it on re-runs."""
        tenant, _, model = model_key.partition(".")
        existing = self.find_run(model_key, asset, partition)
        if existing is None:
            exp_id = ensure_experiment(self.client, model_key, self.artifacts_dir)
            run = self.client.create_run(
                exp_id,
                run_name=f"{asset}:{partition}",
                tags={
                    TAG_TENANT: tenant,
                    TAG_MODEL: model,
                    TAG_ASSET: asset,
                    TAG_PARTITION: partition,
                    "date": partition,
                },
            )
            attempt = 0
        else:
            run = existing
            attempt = int(run.data.tags.get(TAG_ATTEMPT, "0")) + 1
            self.client.update_run(run.info.run_id, status="RUNNING")
        handle = PartitionRun(self.client, run.info.run_id, attempt)
        handle.set_tags({TAG_ATTEMPT: str(attempt), TAG_PROCESS: str(Process.current())})
        if params:
            handle.log_params(params)
        try:
            yield handle
        except BaseException:
            self.client.set_terminated(run.info.run_id, status="FAILED")
            raise
        self.client.set_terminated(run.info.run_id, status="FINISHED")

    def end_dead_runs(self) -> list[str]:
        """End as FAILED the monitoring runs left RUNNING by a process on this host that died
        (killed mid-attempt: `partition_run` never got to end them). Returns their ids."""
        experiments = self.client.search_experiments(filter_string="name LIKE 'aiops/%'")
        if not experiments:
            return []
        ended = []
        for run in self.client.search_runs(
            [e.experiment_id for e in experiments],
            filter_string="attributes.status = 'RUNNING'",
            max_results=10_000,
        ):
            stamp = Process.parse(run.data.tags.get(TAG_PROCESS))
            if stamp is not None and stamp.is_dead():
                self.client.set_tag(
                    run.info.run_id, "aiops.failed_because", f"process {stamp} died mid-attempt"
                )
                self.client.set_terminated(run.info.run_id, status="FAILED")
                ended.append(run.info.run_id)
        return ended

    def record(
        self,
        model_key: str,
        asset: str,
        partition: str,
        *,
        metrics: Mapping[str, float | None] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        artifacts: Mapping[str, Path] | None = None,
    ) -> LoggedRun:
        """Log one attempt of an (asset, partition) in its run: metrics, params, tags and files.

        Returns the run id and, per artifact name, the URI of the uploaded file.
        """
        with self.partition_run(model_key, asset, partition, params=params) as run:
            if metrics:
                run.log_metrics(metrics)
            if tags:
                run.set_tags(tags)
            uris = {name: run.log_artifact(path) for name, path in (artifacts or {}).items()}
        return LoggedRun(run.run_id, uris)


@dataclass(frozen=True)
class LoggedRun:
    """What `Tracker.record` logged: the run, and where each artifact went."""

    run_id: str
    artifacts: dict[str, str]


class PartitionRun:
    """What an asset logs into its partition's run."""

    def __init__(self, client: MlflowClient, run_id: str, attempt: int) -> None:
        self.client = client
        self.run_id = run_id
        self.attempt = attempt

    def log_metrics(self, metrics: Mapping[str, float | None]) -> None:
        import time

        ts = int(time.time() * 1000)
        batch = [Metric(k, v, ts, self.attempt) for k, v in _finite(metrics).items()]
        for i in range(0, len(batch), 900):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 900])

    def log_params(self, params: Mapping[str, Any]) -> None:
        run = self.client.get_run(self.run_id)
        known = run.data.params
        fresh = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in known]
        changed = {k: str(v) for k, v in params.items() if k in known and known[k] != str(v)}
        if fresh:
            self.client.log_batch(self.run_id, params=fresh)
        if changed:  # MLflow params are immutable: keep the latest as a tag instead
            self.set_tags({f"param.{k}": v for k, v in changed.items()})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> str:
        """Upload a file (replacing the previous attempt's copy) and return its artifact URI."""
        self.client.log_artifact(self.run_id, str(path), artifact_path)
        run = self.client.get_run(self.run_id)
        name = Path(path).name
        sub = f"{artifact_path}/{name}" if artifact_path else name
        return f"{run.info.artifact_uri}/{sub}"


@contextmanager
def fluent_uri(uri: str) -> Iterator[None]:
    """Point MLflow's global tracking and registry URI at `uri`, then restore what was there.

    `mlflow.sklearn.log_model` and `models:/` URIs only work through the global (fluent) state;
    restoring it keeps a caller's own MLflow setup (and environment variables) untouched.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as reg_utils
    from mlflow.tracking._tracking_service import utils as trk_utils

    prepare_tracking_store(uri)
    env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    prev_trk = getattr(trk_utils, "_tracking_uri", None)
    prev_reg = getattr(reg_utils, "_registry_uri", None)
    outer = mlflow.active_run()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # a run left open by an exception inside is ours; a caller's own run is not
        while (run := mlflow.active_run()) is not None and (
            outer is None or run.info.run_id != outer.info.run_id
        ):
            mlflow.end_run("FAILED")
        mlflow.set_tracking_uri(prev_trk)  # type: ignore[arg-type]  # None means "unset"
        reg_utils._registry_uri = prev_reg
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load `model` back: we built it, so all of them."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
