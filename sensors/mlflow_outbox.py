"""MLflow loggings queued while MLflow was down are replayed, in a run of their own, once it
answers again."""

import dagster as dg

from aiops_pipelines.io.mlflow_outbox import ReplayReport, replay
from aiops_pipelines.io.tracking import down_reason, probe
from aiops_pipelines.orchestration.resources import (
    MlflowResource,
    MonitoringConfig,
    StoreResource,
)
from sensors.delivery import run_in_progress


@dg.op(
    description="Log to MLflow what was queued while it could not be reached, oldest first, "
    "each under its partition's lock; stops at the first row MLflow does not answer for.",
)
def replay_mlflow_outbox(
    context: dg.OpExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.Output[dict]:
    cfg = monitoring_config.load()
    tracker = mlflow.tracker(cfg)
    report = replay(tracker, store.open(cfg)) if tracker else ReplayReport()
    if report.unreachable:
        context.log.warning(
            f"MLflow still unreachable ({report.unreachable}): {report.left} logging(s) wait"
        )
    for error in report.errors:
        context.log.error(f"MLflow refused a queued logging, kept with its error: {error}")
    summary = report.metadata()
    return dg.Output(summary, metadata=summary)


@dg.job(
    description="Replay the MLflow loggings queued while MLflow was unreachable (launched by "
    "mlflow_outbox_sensor).",
)
def mlflow_replay_job() -> None:
    replay_mlflow_outbox()


@dg.sensor(
    job=mlflow_replay_job,
    minimum_interval_seconds=60,
    # the queue fills only when MLflow is down: left STOPPED, a deployment would keep its
    # results out of MLflow for good after the first outage
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches mlflow_replay_job when MLflow loggings are queued (MLflow was "
    "unreachable when a day's assets ran) and MLflow answers a probe; one replay at a time.",
)
def mlflow_outbox_sensor(
    context: dg.SensorEvaluationContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.RunRequest | dg.SkipReason:
    config = monitoring_config.load()
    queued, since, _ = store.open(config).tracking_backlog()
    if not queued or not mlflow.enabled:
        return dg.SkipReason("no MLflow logging waits")
    uri = mlflow.tracking_uri or config.storage.mlflow_tracking_uri
    reason = down_reason(uri) or probe(uri)
    if reason is not None:
        return dg.SkipReason(
            f"{queued} MLflow logging(s) queued since {since:%Y-%m-%d %H:%M} UTC wait: MLflow "
            f"at {uri} unreachable ({reason})"
        )
    if running := run_in_progress(context, mlflow_replay_job.name):
        return dg.SkipReason(f"replay run {running} in progress; {queued} queued")
    return dg.RunRequest(
        job_name=mlflow_replay_job.name,
        tags={"aiops/trigger": "mlflow_back", "aiops/queued": str(queued)},
    )
