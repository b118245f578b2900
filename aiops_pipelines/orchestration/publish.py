"""What every monitoring asset does around the engine: open its partition, then store the
result, log it to MLflow and report it to Dagster, the same way for every signal.

An asset is then three steps inside `with model_day(...)` (which model and day, the config,
the store and the tracker; the partition locked while the block runs, so a second run of it
waits): one call into the engine, and `publish` (the store's rows for the partition replaced
in one transaction, a failure of the asset recorded for that partition cleared, the MLflow run
of the (asset, partition) updated, the MaterializeResult with numeric metadata and the
engine's checks).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import AppConfig, ModelConfig
from aiops_pipelines.core.findings import Finding, Signal
from aiops_pipelines.io.mlflow_outbox import Logged, log_or_queue
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.io.tracking import Tracker
from aiops_pipelines.orchestration.partitions import split_key
from aiops_pipelines.orchestration.resources import MlflowResource, MonitoringConfig, StoreResource

#: The `asset` of a failed run's finding (`sensors.failures`): no asset produced it; its
#: `column` names the asset (step) that failed.
PIPELINE_ASSET = "pipeline"


@dataclass(frozen=True)
class ModelDay:
    """The partition an asset runs for, with everything it reads and writes through."""

    config: AppConfig
    model: ModelConfig
    partition: str
    """The date, or `REFERENCE_PARTITION` for the per-model reference assets."""
    store: MonitoringStore
    tracker: Tracker | None
    lock_key: str = ""
    """The (asset, partition) lock held while the asset runs (`partition_locked`)."""
    read_token: str | None = None
    """The Dagster run's id: the daily assets of one run share one read of the day
    (`signals.day_pass`); None for an asset invoked without a run."""


@contextmanager
def model_day(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource | None = None,
) -> Iterator[ModelDay]:
    """The running partition, (date, model) for daily assets, the model for reference ones,
    locked for the block (`partition_locked`)."""
    if isinstance(context.partition_key, dg.MultiPartitionKey):
        day, key = split_key(context)
    else:
        day, key = REFERENCE_PARTITION, context.partition_key
    cfg = monitoring_config.load()
    md = ModelDay(
        cfg,
        cfg.model(key),
        day,
        store.open(cfg),
        mlflow.tracker(cfg) if mlflow else None,
        lock_key(context),
        run_token(context),
    )
    with partition_locked(context, md.store, store):
        yield md


def run_token(context: dg.AssetExecutionContext) -> str | None:
    """The running Dagster run's id; None when the asset is invoked directly (without a run,
    every invocation is its own)."""
    try:
        return context.run.run_id
    except dg.DagsterError:  # invoked directly: "the dagster_run property is not set"
        return None


def lock_key(context: dg.AssetExecutionContext) -> str:
    """The running (asset, partition)'s lock name."""
    return f"{context.asset_key.to_user_string()}:{context.partition_key}"


@contextmanager
def partition_locked(
    context: dg.AssetExecutionContext, db: MonitoringStore, store: StoreResource
) -> Iterator[None]:
    """Hold the running (asset, partition)'s lock in the store for the block: another run of
    the same partition (the same range run twice at once, a re-run beside the daily run)
    waits until this one has stored and logged everything, then redoes it from there."""
    with db.partition_lock(lock_key(context), timeout=store.lock_timeout_seconds):
        yield


@contextmanager
def artifact_folder(md: ModelDay, keep_in: Path) -> Iterator[Path]:
    """Where this run writes the files `publish` logs to MLflow: a folder of its own under
    `keep_in`, removed when the block ends, so a second run of the same partition at the same
    time never overwrites, logs or deletes this run's files. Without MLflow the files are the
    only copy: they are written to `keep_in` itself (each replaced atomically)."""
    keep_in.mkdir(parents=True, exist_ok=True)
    if md.tracker is None:
        yield keep_in
        return
    folder = Path(tempfile.mkdtemp(prefix=".run-", dir=keep_in))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_result(check: Check) -> dg.AssetCheckResult:
    severity = (
        dg.AssetCheckSeverity.ERROR if check.severity == "error" else dg.AssetCheckSeverity.WARN
    )
    return dg.AssetCheckResult(
        check_name=check.name,
        passed=check.passed,
        severity=severity,
        metadata=check.metadata,
        description=check.message or None,
    )


def publish(
    md: ModelDay,
    asset: str,
    *,
    metrics: Mapping[tuple[str, str], float],
    findings: Iterable[Finding] = (),
    profile: tuple[str, dict[str, Any], int] | None = None,
    mlflow_metrics: Mapping[str, float | None] | None = None,
    mlflow_params: Mapping[str, Any] | None = None,
    mlflow_tags: Mapping[str, str] | None = None,
    artifacts: Mapping[str, Path] | None = None,
    metadata: Mapping[str, Any],
    checks: Sequence[Check] = (),
) -> dg.MaterializeResult:
    """Store the partition's rows (replacing a previous run's), clear the partition's
    `pipeline_failure` finding of this asset (the run that failed on it is fixed), log the MLflow
    run, and build the MaterializeResult.

    Each artifact is uploaded to the run (written in an `artifact_folder`, which removes the
    local copy: one copy, the MLflow artifact under the home folder); the metadata entry of the
    same name links to it. Without MLflow the file stays where it is and the entry is its path.
    """
    m = md.model
    md.store.replace_partition(
        m.tenant,
        m.name,
        md.partition,
        asset,
        metrics=dict(metrics),
        findings=list(findings),
        profile=profile,
    )
    # the failure sensor keys a failed run's finding by the asset that failed: this success
    # fixes that one, and a failure of another asset in the partition stays
    md.store.clear_findings(
        m.tenant,
        m.name,
        md.partition,
        asset=PIPELINE_ASSET,
        signal=Signal.PIPELINE_FAILURE.value,
        column=asset,
    )
    out = dict(metadata)
    if md.tracker is None:  # the files stay where they are: link their paths
        out["mlflow_run_id"] = ""
        out.update({n: dg.MetadataValue.path(str(p)) for n, p in (artifacts or {}).items()})
    else:
        logged = log_or_queue(
            md.tracker,
            md.store,
            m.key,
            asset,
            md.partition,
            lock_key=md.lock_key,
            metrics=mlflow_metrics,
            params=mlflow_params,
            tags=mlflow_tags,
            artifacts=artifacts,
        )
        out.update(mlflow_metadata(logged))
    return dg.MaterializeResult(metadata=out, check_results=[check_result(c) for c in checks])


def mlflow_metadata(logged: Logged) -> dict[str, Any]:
    """The metadata saying what `log_or_queue` did: `mlflow_run_id` and a link per artifact,
    or `mlflow_queued` (MLflow unreachable: the asset succeeds, its results being in the store)
    with the reason and the paths of the kept files."""
    out: dict[str, Any] = {"mlflow_run_id": logged.run_id}
    if logged.queued is not None:
        out["mlflow_queued"] = f"MLflow unreachable, logged when it answers: {logged.queued}"
    for name, uri in logged.artifacts.items():
        out[name] = dg.MetadataValue.url(uri) if "://" in uri else dg.MetadataValue.path(uri)
    return out
