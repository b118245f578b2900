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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from opentelemetry.trace import INVALID_SPAN, Span

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import AppConfig, ModelConfig
from aiops_pipelines.core.findings import Finding, Signal
from aiops_pipelines.io.mlflow_outbox import Logged, log_or_queue
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.io.tracking import Tracker
from aiops_pipelines.orchestration.partitions import split_key
from aiops_pipelines.orchestration.resources import MlflowResource, MonitoringConfig, StoreResource
from aiops_pipelines.views.telemetry import asset_span

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
    span: Span = INVALID_SPAN
    """The block's span in the run's trace (non-recording when telemetry is off)."""


@contextmanager
def model_day(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource | None = None,
    *,
    partition: str | None = None,
) -> Iterator[ModelDay]:
    """The running partition (or `partition`, one of a range run's), (date, model) for daily
    assets, the model for reference ones, locked for the block (`partition_locked`)."""
    key = str(context.partition_key) if partition is None else partition
    if "|" in key:
        day, model = split_key(key)
    else:
        day, model = REFERENCE_PARTITION, key
    cfg = monitoring_config.load()
    mc, run_id = cfg.model(model), run_token(context)
    with asset_span(
        cfg.telemetry,
        run_id=run_id,
        asset=context.asset_key.to_user_string(),
        tenant=mc.tenant,
        model=mc.name,
        partition=day,
    ) as span:
        md = ModelDay(
            cfg,
            mc,
            day,
            store.open(cfg),
            mlflow.tracker(cfg) if mlflow else None,
            lock_key(context, key),
            run_id,
            span,
        )
        with md.store.partition_lock(md.lock_key, timeout=store.lock_timeout_seconds):
            yield md


def run_token(context: dg.AssetExecutionContext) -> str | None:
    """The running Dagster run's id; None when the asset is invoked directly (without a run,
    every invocation is its own)."""
    try:
        return context.run.run_id
    except dg.DagsterError:  # invoked directly: "the dagster_run property is not set"
        return None


def lock_key(context: dg.AssetExecutionContext, partition: str | None = None) -> str:
    """The (asset, partition) lock name of the running partition, or of `partition`. Held
    while the asset runs for it: another run of the same partition (the same range run twice
    at once, a re-run beside the daily run) waits until this one has stored and logged
    everything, then redoes it from there."""
    key = context.partition_key if partition is None else partition
    return f"{context.asset_key.to_user_string()}:{key}"


def run_partitions(context: dg.AssetExecutionContext) -> list[str]:
    """The partitions of the running step, in day order: one, or a range run's (a backfill, or
    the late labels of many days of one model)."""
    if not context.has_partition_key_range:
        return [str(context.partition_key)]
    return sorted((str(k) for k in context.partition_keys), key=lambda k: k.split("|"))


def for_each_day(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource | None,
    body: Callable[[ModelDay], dg.MaterializeResult],
) -> dg.MaterializeResult:
    """`for_some_days` for an asset that materializes every day."""
    res = for_some_days(context, monitoring_config, store, mlflow, body)
    assert res is not None  # noqa: S101 - body never returns None
    return res


def for_some_days(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource | None,
    body: Callable[[ModelDay], dg.MaterializeResult | None],
) -> dg.MaterializeResult | None:
    """Run `body` for each partition of the step, day after day (each one's history is the
    days before it, stored by then), each under its partition's lock, and report to Dagster.

    One partition: `body`'s result as it is. A range run: one materialization per partition
    with that day's own metadata, and each check once for the range (`merged_checks`: it
    fails when a day failed, naming the days). `body` returning None (a canary asset on a day
    without a canary) stores nothing that day; all None: no materialization at all."""
    keys = run_partitions(context)
    if len(keys) == 1 and not context.has_partition_key_range:
        with model_day(context, monitoring_config, store, mlflow) as md:
            return body(md)
    done: list[tuple[str, dg.MaterializeResult]] = []
    for n, key in enumerate(keys, start=1):
        try:
            with model_day(context, monitoring_config, store, mlflow, partition=key) as md:
                res = body(md)
        except Exception as exc:
            # the days before it are stored; the failure names the day (`sensors.failures`)
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()} failed on {key}, day "
                f"{n} of the {len(keys)} of this run: {exc}",
                metadata={"partition": key},
            ) from exc
        if res is not None:
            done.append((md.partition, res))
        context.add_asset_metadata(
            dict(res.metadata or {}) if res is not None else {"stored": "nothing this day"},
            partition_key=key,
        )
    if not done:
        return None
    return dg.MaterializeResult(check_results=merged_checks(done))


def merged_checks(days: Sequence[tuple[str, dg.MaterializeResult]]) -> list[dg.AssetCheckResult]:
    """Each check once for a range run's days (Dagster keeps one result per check and run): it
    passes when it passed on every day; else it fails with the worst severity of its failures,
    the first failure's explanation and every failed day in its metadata."""
    by_name: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for day, res in days:
        for c in res.check_results or ():
            by_name.setdefault(str(c.check_name), []).append((day, c))
    out = []
    for name, results in by_name.items():
        failed = [(d, c) for d, c in results if not c.passed]
        if not failed:
            out.append(
                dg.AssetCheckResult(
                    check_name=name,
                    passed=True,
                    metadata={"days": len(results), "first_day": results[0][0]},
                    description=f"passed on all {len(results)} days, "
                    f"{results[0][0]} to {results[-1][0]}",
                )
            )
            continue
        errors = [c for _, c in failed if c.severity == dg.AssetCheckSeverity.ERROR]
        first_day, first = failed[0]
        out.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
                metadata={
                    "days": len(results),
                    "failed_days": ", ".join(d for d, _ in failed),
                    **{f"{first_day} {k}": v for k, v in first.metadata.items()},
                },
                description=f"failed on {len(failed)} of {len(results)} days "
                f"({', '.join(d for d, _ in failed[:5])}{', ...' if len(failed) > 5 else ''}); "
                f"{first_day}: {first.description or 'failed'}",
            )
        )
    return out


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
    findings = list(findings)
    md.span.set_attribute("aiops.findings", len(findings))
    rows = _rows_read(metadata, profile)
    if rows is not None:
        md.span.set_attribute("aiops.rows", rows)
    md.store.replace_partition(
        m.tenant,
        m.name,
        md.partition,
        asset,
        metrics=dict(metrics),
        findings=findings,
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


#: Where an asset's metadata says how many rows it read, in order of preference.
_ROW_KEYS = ("dagster/row_count", "rows_current", "n_predictions", "throughput_day")


def _rows_read(
    metadata: Mapping[str, Any], profile: tuple[str, dict[str, Any], int] | None
) -> int | None:
    for key in _ROW_KEYS:
        value = metadata.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return profile[2] if profile is not None else None


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
