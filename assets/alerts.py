"""Alerts per day and model, their delivery, and the daily AI-Ops overview page."""

from datetime import timedelta

import dagster as dg

from aiops_pipelines.alerting.day import alerts_for_day
from aiops_pipelines.alerting.outbox import deliver
from aiops_pipelines.core.findings import Asset
from aiops_pipelines.io.mlflow_outbox import log_or_queue
from aiops_pipelines.orchestration.partitions import RANGE_RUNS, daily_partitions, date_x_model
from aiops_pipelines.orchestration.publish import (
    ModelDay,
    check_result,
    for_each_day,
    lock_key,
    mlflow_metadata,
    run_partitions,
)
from aiops_pipelines.orchestration.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    StoreResource,
)
from aiops_pipelines.views.markdown import alerts_table
from assets.monitoring import GROUP, OWNERS, drift_report
from assets.operations import ops_report
from assets.performance import performance_report
from assets.slo import slo_report

#: The overview's MLflow experiment (it covers every tenant and model).
OVERVIEW_KEY = "all.overview"
#: Days of feed, drift heat map and trends on each page.
OVERVIEW_DAYS = 14


@dg.asset(
    partitions_def=date_x_model,
    backfill_policy=RANGE_RUNS,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql"},
    # Not canary_report: it materializes only while a canary is live, and Dagster skips the
    # downstream steps of an optional output that did not materialize. Canary findings are read
    # from the store like every other (a canary report of the same run that finishes after this
    # step is evaluated with the next day).
    deps=[drift_report, performance_report, ops_report, slo_report],
    check_specs=[
        dg.AssetCheckSpec(
            "alerts_delivered",
            asset="model_alerts",
            description="no notification of this model waits on a route that is failing, "
            "open (its circuit breaker) or no longer configured",
        )
    ],
)
def model_alerts(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    clock: Clock,
) -> dg.MaterializeResult:
    """The alert rules replayed over the model's findings up to this day (persistence,
    keep-firing, repeat, inhibition, silences from the config), the alert states stored and
    new notifications queued per route (held back, with one summary line per route, when older
    than `max_event_age_days`). Nothing is sent here: `alert_delivery_job` (launched by
    `alert_delivery_sensor`) delivers, so a dead route never slows a model's run. The check
    turns yellow when this model's notifications wait on a failing or open route."""

    def day(md: ModelDay) -> dg.MaterializeResult:
        # notifications are aged from the wall clock, or (the demo) the end of the replayed day
        today = (clock.for_day(md.partition).alerts_now() - timedelta(seconds=1)).date().isoformat()
        res = alerts_for_day(
            md.store, md.config.alerting, md.model.tenant, md.model.name, md.partition, today=today
        )
        for route, why in res.waiting_on().items():
            context.log.warning(f"alert route '{route}': {why}")
        return dg.MaterializeResult(
            metadata={
                **res.summary(),
                "alerts": dg.MetadataValue.md(alerts_table(res.firing)),
            },
            check_results=[check_result(c) for c in res.checks()],
        )

    return for_each_day(context, monitoring_config, store, None, day)


@dg.op(
    description="Send every pending alert notification, and the summaries of held-back ones "
    "asked for, each route on its own worker within alerting.delivery_budget_seconds; a route "
    "whose circuit breaker is open is skipped until its cool-down ends.",
)
def deliver_alerts(
    context: dg.OpExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    clock: Clock,
) -> dg.Output[dict]:
    cfg = monitoring_config.load()
    report = deliver(store.open(cfg), cfg.alerting, until_partition=clock.replayed_day())
    for route, error in sorted(report.errors.items()):
        context.log.warning(f"alert route '{route}' failed, its notifications wait: {error}")
    for route, until in sorted(report.open.items()):
        waiting = report.failed.get(route, 0) + report.deferred.get(route, 0)
        context.log.warning(
            f"alert route '{route}' is open until {until.isoformat(timespec='seconds')}: "
            f"{waiting} notification(s) wait for it"
        )
    summary = report.metadata()
    return dg.Output(summary, metadata=summary)


@dg.job(
    description="Deliver the pending alert notifications of every model (launched by "
    "alert_delivery_sensor; routes delivered concurrently, each behind its circuit breaker).",
)
def alert_delivery_job() -> None:
    deliver_alerts()


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=RANGE_RUNS,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "html", "mlflow"},
    # each day depends on every model's alerts of that day (Dagster maps the date dimension)
    deps=[model_alerts],
)
def ops_overview(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """One self-contained HTML page for the day: health per tenant and model, drift heat map,
    performance trend with thresholds, canary status, the anomaly feed, alerts and deliveries,
    recent actions. Written under the artifacts folder and logged to MLflow."""
    from aiops_pipelines.views.page import write_overview

    cfg = monitoring_config.load()
    db = store.open(cfg)
    tracker = mlflow.tracker(cfg)
    days = run_partitions(context)
    for day in days:  # one day, or a range run's days (each page as of its day)
        with db.partition_lock(lock_key(context, day), timeout=store.lock_timeout_seconds):
            page = write_overview(db, cfg, day, window_days=OVERVIEW_DAYS)
            logged: dict = {}
            if tracker:
                logged = mlflow_metadata(
                    log_or_queue(
                        tracker,
                        db,
                        OVERVIEW_KEY,
                        Asset.OPS_OVERVIEW,
                        day,
                        lock_key=lock_key(context, day),
                        metrics=page.tracked_metrics,
                        artifacts={"mlflow_artifact": page.path},
                    )
                )
        metadata = {
            "overview": dg.MetadataValue.url(page.path.resolve().as_uri()),
            "path": dg.MetadataValue.path(str(page.path)),
            **logged,
            **page.summary(day),
        }
        if context.has_partition_key_range:
            context.add_asset_metadata(metadata, partition_key=day)
    return dg.MaterializeResult(metadata=None if context.has_partition_key_range else metadata)
