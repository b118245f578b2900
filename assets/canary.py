"""Canary vs champion: a daily verdict from a test that stays valid under daily looks
(`aiops_pipelines.signals.canary`)."""

import dagster as dg

from aiops_pipelines.core.findings import Asset
from aiops_pipelines.lifecycle.registry import live_canary_or_snapshot
from aiops_pipelines.orchestration.partitions import RANGE_RUNS, date_x_model
from aiops_pipelines.orchestration.publish import ModelDay, check_result, for_some_days, publish
from aiops_pipelines.orchestration.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    StoreResource,
)
from aiops_pipelines.signals.canary.day import canary_for_day, no_canary_check
from assets.monitoring import OWNERS, reference_profile
from assets.performance import PerformanceConfig


@dg.asset(
    partitions_def=date_x_model,
    backfill_policy=RANGE_RUNS,
    group_name="model_lifecycle",
    owners=OWNERS,
    kinds={"python", "mlflow"},
    deps=[reference_profile],
    output_required=False,
    check_specs=[
        dg.AssetCheckSpec(
            "canary_verdict",
            asset="canary_report",
            description="the canary is not credibly worse than the champion (nor breaches a "
            "guardrail); passes with 'no canary' when none is live",
        )
    ],
)
def canary_report(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
    clock: Clock,
):
    """Champion vs canary (MLflow aliases), on the predictions each version served since the
    canary started: traffic share, error rate, latency p95 and per-prediction performance on
    the labels observed so far, cumulated and tested with an anytime-valid confidence sequence
    plus guardrails. Verdict fail / pass / inconclusive with its evidence. Materialized only
    while a canary exists; the check then says 'no canary'."""
    no_canary: list[dg.AssetCheckResult] = []

    def on(md: ModelDay) -> dg.MaterializeResult | None:
        model, day = md.model, md.partition
        live, registry_note = live_canary_or_snapshot(
            md.config.storage.mlflow_tracking_uri, model.registry_name, md.store
        )
        if registry_note:
            context.log.warning(registry_note)
        start = live.window_start(day) if model.canary.enabled else None
        if start is None or live.canary is None or live.champion is None:
            no_canary[:] = [check_result(no_canary_check(live.aliases, registry_note))]
            return None
        as_of = clock.for_day(day).at(config.as_of)
        res = canary_for_day(
            model, day, as_of, canary=live.canary, champion=live.champion, start=start
        )
        return publish(
            md,
            Asset.CANARY_REPORT,
            metrics=res.metrics,
            findings=res.findings,
            mlflow_metrics=res.mlflow_metrics,
            mlflow_tags=res.mlflow_tags,
            metadata={
                **res.summary(model),
                **({"registry": registry_note} if registry_note else {}),
            },
            checks=res.checks(),
        )

    res = for_some_days(context, monitoring_config, store, mlflow, on)
    if res is None:  # no canary on any day: no materialization, the check says why
        yield from no_canary
    else:
        yield res
