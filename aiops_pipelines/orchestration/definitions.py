"""The one Definitions object: assets, checks, jobs, schedule, sensors and resources."""

from __future__ import annotations

import dagster as dg

from aiops_pipelines.orchestration.jobs import (
    alerts_job,
    daily_monitoring_job,
    daily_monitoring_schedule,
    overview_job,
    overview_schedule,
    performance_job,
    reference_job,
    retrain_job,
)
from aiops_pipelines.orchestration.resources import default_resources
from assets.alerts import alert_delivery_job, model_alerts, ops_overview
from assets.canary import canary_report
from assets.lifecycle import promote_canary, retrained_model, rollback_canary
from assets.monitoring import drift_report, feature_profile, reference_profile
from assets.operations import ops_report
from assets.performance import performance_report
from assets.slo import slo_report
from sensors.canary import canary_verdict_sensor
from sensors.delivery import alert_delivery_sensor
from sensors.failures import pipeline_failure_sensor
from sensors.labels import late_labels_sensor
from sensors.mlflow_outbox import mlflow_outbox_sensor, mlflow_replay_job
from sensors.models import model_partitions_sensor
from sensors.retrain import retrain_sensor

ASSETS = [
    reference_profile,
    feature_profile,
    drift_report,
    performance_report,
    canary_report,
    ops_report,
    slo_report,
    model_alerts,
    ops_overview,
    retrained_model,
]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[
        reference_job,
        daily_monitoring_job,
        performance_job,
        retrain_job,
        alerts_job,
        alert_delivery_job,
        mlflow_replay_job,
        overview_job,
        rollback_canary,
        promote_canary,
    ],
    schedules=[daily_monitoring_schedule, overview_schedule],
    sensors=[
        model_partitions_sensor,
        late_labels_sensor,
        retrain_sensor,
        canary_verdict_sensor,
        pipeline_failure_sensor,
        alert_delivery_sensor,
        mlflow_outbox_sensor,
    ],
    resources=default_resources(),
    # a run's steps in its own process, one after another: a model-day's assets read its rows
    # once (the day pass is kept for the run), and no process is started per step (a Python
    # with Dagster, pandas and MLflow imported takes seconds); runs still go side by side
    executor=dg.in_process_executor,
)
