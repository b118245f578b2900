"""Alert notifications go out in a run of their own, off every model's critical path."""

import dagster as dg

from aiops_pipelines.alerting.outbox import outbox_state
from aiops_pipelines.orchestration.resources import MonitoringConfig, StoreResource
from assets.alerts import alert_delivery_job

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def run_in_progress(context: dg.SensorEvaluationContext, job_name: str) -> str | None:
    """The id of a run of `job_name` queued or running now, if any (one at a time)."""
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS), limit=1
    )
    return runs[0].run_id if runs else None


@dg.sensor(
    job=alert_delivery_job,
    minimum_interval_seconds=30,
    # Delivery used to happen inside every model_alerts step: left STOPPED like the other
    # sensors, a deployment that upgrades would silently stop paging anyone.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches alert_delivery_job when notifications wait on a route that can take "
    "them (closed, or its cool-down over) or a summary of held-back ones was asked for; one "
    "delivery run at a time. Routes whose circuit breaker is open are left alone until then.",
)
def alert_delivery_sensor(
    context: dg.SensorEvaluationContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
) -> dg.RunRequest | dg.SkipReason:
    config = monitoring_config.load()
    state = outbox_state(store.open(config), config.alerting)
    if not state.due:
        return dg.SkipReason(state.describe())
    if running := run_in_progress(context, alert_delivery_job.name):
        return dg.SkipReason(f"delivery run {running} in progress; {state.describe()}")
    return dg.RunRequest(
        job_name=alert_delivery_job.name,
        tags={"aiops/trigger": "alerts_due", "aiops/due": str(sum(state.due.values()))},
    )
