"""Jobs and the daily schedule over the monitoring assets."""

from __future__ import annotations

import dagster as dg

from aiops_pipelines.orchestration.partitions import (
    MODELS,
    daily_partitions,
    partition_key,
    tenant_tags,
)
from assets.alerts import model_alerts, ops_overview
from assets.canary import canary_report
from assets.lifecycle import retrained_model
from assets.monitoring import drift_report, feature_profile, reference_profile
from assets.operations import ops_report
from assets.performance import performance_report
from assets.slo import slo_report

reference_job = dg.define_asset_job(
    "reference_job",
    selection=[reference_profile],
    description="Profile a model's reference data (run once per model, and when it changes).",
)

daily_monitoring_job = dg.define_asset_job(
    "daily_monitoring_job",
    selection=[
        feature_profile,
        drift_report,
        performance_report,
        canary_report,
        ops_report,
        slo_report,
        model_alerts,
    ],
    description="Profile a day of predictions, its drift, performance so far, canary, "
    "operations and SLOs, then evaluate the model's alerts (alert_delivery_sensor sends them).",
)

alerts_job = dg.define_asset_job(
    "alerts_job",
    selection=[model_alerts],
    description="Evaluate one model's alerts for a day (launched by the failure sensor when a "
    "monitoring run fails; alert_delivery_sensor sends them).",
)

overview_job = dg.define_asset_job(
    "overview_job",
    selection=[ops_overview],
    description="Write the day's AI-Ops overview page (every tenant and model).",
)

performance_job = dg.define_asset_job(
    "performance_job",
    selection=[performance_report],
    description="Re-judge a day's performance as its late labels arrive.",
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=[retrained_model],
    description="Train a candidate on recent labelled data; challenger only if it wins.",
)


@dg.schedule(
    job=daily_monitoring_job,
    # what build_schedule_from_partitioned_job(hour_of_day=2) would build, with the requests
    # written out below so that each carries its model's tenant
    cron_schedule=daily_partitions.get_cron_schedule(minute_of_hour=0, hour_of_day=2),
    execution_timezone=daily_partitions.timezone,
    name="daily_monitoring_schedule",
    description="At 02:00 UTC, monitor yesterday for every model (one run per model, tagged "
    "with its tenant).",
)
def daily_monitoring_schedule(
    context: dg.ScheduleEvaluationContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    """One run per model for the last closed day, as Dagster's partitioned schedule asks for
    it (run key: the partition key), each tagged with its tenant (`TENANT_TAG`): a production
    instance limits the runs of one tenant in progress at once."""
    with dg.partition_loading_context(
        effective_dt=context.scheduled_execution_time, dynamic_partitions_store=context.instance
    ):
        day = daily_partitions.get_last_partition_key()
    if day is None:
        return dg.SkipReason("no closed daily partition yet")
    models = context.instance.get_dynamic_partitions(MODELS)
    if not models:
        return dg.SkipReason("no model partitions yet (model_partitions_sensor adds them)")
    return [
        dg.RunRequest(
            partition_key=partition_key(day, m),
            run_key=str(partition_key(day, m)),
            tags=tenant_tags(m),
        )
        for m in models
    ]


overview_schedule = dg.build_schedule_from_partitioned_job(
    overview_job,
    hour_of_day=4,
    minute_of_hour=0,
    name="overview_schedule",
    description="At 04:00 UTC, after the daily monitoring, write yesterday's overview page.",
)
