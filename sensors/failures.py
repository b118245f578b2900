"""Failed monitoring runs become findings: a broken pipeline is an incident too."""

from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg

from aiops_pipelines.core.findings import Finding, Severity, Signal
from aiops_pipelines.orchestration.jobs import alerts_job
from aiops_pipelines.orchestration.partitions import partition_key, range_of, tenant_tags
from aiops_pipelines.orchestration.publish import PIPELINE_ASSET
from aiops_pipelines.orchestration.resources import MonitoringConfig, StoreResource


def first_failure(events: Iterable[dg.DagsterEvent]) -> tuple[str, str] | None:
    """(step key, user-facing cause) of the first failed step: the asset that failed (or the
    op) and the innermost error, not Dagster's wrapper around it."""
    for event in events:
        if not event.is_step_failure or not event.step_failure_data or not event.step_key:
            continue
        err = event.step_failure_data.error
        while err is not None and err.cause is not None:
            err = err.cause
        if err is not None:
            return event.step_key, err.message.strip()
    return None


def failed_partition(events: Iterable[dg.DagsterEvent]) -> str:
    """The partition a range run's first failed step failed on (`publish.for_some_days` names
    it in the failure's metadata), else ''."""
    for event in events:
        data = event.step_failure_data if event.is_step_failure else None
        if data is not None and data.user_failure_data is not None:
            value = data.user_failure_data.metadata.get("partition")
            if value is not None:
                return str(value.value)
    return ""


def root_error(events: Iterable[dg.DagsterEvent]) -> str | None:
    """The user-facing cause of the first failed step, prefixed with the step."""
    failure = first_failure(events)
    return None if failure is None else f"{failure[0]}: {failure[1]}"


def fixed_since(instance: dg.DagsterInstance, run_id: str, step: str, partition: str) -> bool:
    """Was `step`'s asset materialized for `partition` after the run failed? (The daemon can
    process a failure after a re-run already fixed it.)"""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.end_time is None or not partition:
        return False
    later = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(step),
            asset_partitions=[partition],
            after_timestamp=record.end_time,
        ),
        limit=1,
    )
    return bool(later.records)


@dg.run_failure_sensor(
    name="pipeline_failure_sensor",
    minimum_interval_seconds=60,
    description="Turns every failed run of this code location into a critical "
    "'pipeline_failure' finding of the model and day it was for, its column the asset that "
    "failed (the run id and error in its evidence), and launches that model's alert evaluation "
    "so the failure reaches the alert routes. A re-run that fails again replaces the finding; "
    "one that materializes the failed asset clears it.",
    request_job=alerts_job,
)
def pipeline_failure_sensor(
    context: dg.RunFailureSensorContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    tags = run.tags
    steps = context.get_step_failure_events()
    partition = tags.get("dagster/partition", "") or failed_partition(steps)
    day, _, model_key = partition.partition("|") if "|" in partition else ("", "", partition)
    ranged = range_of(tags)
    if not partition and ranged is not None:  # a range run that failed outside a day
        model_key, day = ranged[0], ranged[1]
        partition = str(partition_key(day, model_key))
    config = monitoring_config.load()
    known = {m.key: m for m in config.models}
    model = known.get(model_key or tags.get("dagster/partition/model", ""))
    tenant, name = (model.tenant, model.name) if model else ("", "pipeline")
    day = day or tags.get("dagster/partition/date") or datetime.now(UTC).date().isoformat()
    failure = first_failure(steps)
    # what failed, not which run: a re-run of the failing partition replaces the finding and
    # stays the same alert, and the asset's next success in the partition clears it (`publish`)
    step = failure[0] if failure else run.job_name
    if failure and fixed_since(context.instance, run.run_id, step, partition):
        return dg.SkipReason(f"run {run.run_id} failed on {step}, since fixed by a later run")
    error = root_error(steps) or context.failure_event.message or "run failed"
    store.open(config).record_finding(
        Finding(
            tenant=tenant,
            model=name,
            partition=day,
            asset=PIPELINE_ASSET,
            signal=Signal.PIPELINE_FAILURE.value,
            severity=Severity.CRITICAL,
            value=1.0,
            threshold=0.0,
            column=step,
            message=f"run {run.run_id} of {run.job_name} failed: {error}"[:2000],
            evidence={
                "run_id": run.run_id,
                "job": run.job_name,
                "partition": partition,
                "step": step,
                "error": error[:4000],
            },
        )
    )
    if model is None:
        return dg.SkipReason(f"run {run.run_id} was for no configured model: finding only")
    if run.job_name == alerts_job.name:
        # the alert run itself failed: launching another one could loop; the finding stays
        return dg.SkipReason(f"alert run {run.run_id} failed: not re-launched")
    return dg.RunRequest(
        run_key=f"failure-alerts:{run.run_id}",
        partition_key=partition_key(day, model.key),
        tags={"aiops/failed_run": run.run_id, **tenant_tags(model.key)},
    )
