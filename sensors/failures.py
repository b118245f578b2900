"""Failed monitoring runs become findings: a broken pipeline is an incident too."""

from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg

from aiops_pipelines.core.findings import Finding, Severity, Signal
from aiops_pipelines.orchestration.jobs import alerts_job
from aiops_pipelines.orchestration.partitions import partition_key
from aiops_pipelines.orchestration.resources import MonitoringConfig, StoreResource


def root_error(events: Iterable[dg.DagsterEvent]) -> str | None:
    """The user-facing cause of the first failed step (not Dagster's wrapper around it)."""
    for event in events:
        if not event.is_step_failure or not event.step_failure_data:
            continue
        err = event.step_failure_data.error
        while err is not None and err.cause is not None:
            err = err.cause
        if err is not None:
            return f"{event.step_key}: {err.message.strip()}"
    return None


@dg.run_failure_sensor(
    name="pipeline_failure_sensor",
    minimum_interval_seconds=60,
    description="Turns every failed run of this code location into a critical "
    "'pipeline_failure' finding of the model and day it was for, with the run id and error, "
    "and launches that model's alert evaluation so the failure reaches the alert routes.",
    request_job=alerts_job,
)
def pipeline_failure_sensor(
    context: dg.RunFailureSensorContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    tags = run.tags
    partition = tags.get("dagster/partition", "")
    day, _, model_key = partition.partition("|") if "|" in partition else ("", "", partition)
    config = monitoring_config.load()
    known = {m.key: m for m in config.models}
    model = known.get(model_key or tags.get("dagster/partition/model", ""))
    tenant, name = (model.tenant, model.name) if model else ("", "pipeline")
    day = day or tags.get("dagster/partition/date") or datetime.now(UTC).date().isoformat()
    error = root_error(context.get_step_failure_events()) or (
        context.failure_event.message or "run failed"
    )
    store.open(config).record_finding(
        Finding(
            tenant=tenant,
            model=name,
            partition=day,
            asset="pipeline",
            signal=Signal.PIPELINE_FAILURE.value,
            severity=Severity.CRITICAL,
            value=1.0,
            threshold=0.0,
            column=run.run_id,
            message=f"run {run.run_id} of {run.job_name} failed: {error}"[:2000],
            evidence={
                "run_id": run.run_id,
                "job": run.job_name,
                "partition": partition,
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
        tags={"aiops/failed_run": run.run_id},
    )
