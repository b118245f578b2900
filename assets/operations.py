"""Operational signals and their anomalies, per day and model
(`aiops_pipelines.signals.operations`)."""

import dagster as dg

from aiops_pipelines.core.findings import Asset
from aiops_pipelines.orchestration.partitions import RANGE_RUNS, date_x_model
from aiops_pipelines.orchestration.publish import ModelDay, for_each_day, publish
from aiops_pipelines.orchestration.resources import MlflowResource, MonitoringConfig, StoreResource
from aiops_pipelines.signals.operations.day import operations_for_day
from assets.monitoring import GROUP, OWNERS


@dg.asset(
    partitions_def=date_x_model,
    backfill_policy=RANGE_RUNS,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "throughput",
            asset="ops_report",
            description="no throughput drop or spike against the seasonal baseline",
        ),
        dg.AssetCheckSpec(
            "latency",
            asset="ops_report",
            description="no latency p95 regression against the seasonal baseline",
        ),
        dg.AssetCheckSpec(
            "error_rate",
            asset="ops_report",
            description="no error-rate jump against the seasonal baseline",
        ),
    ],
)
def ops_report(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Latency p50/p95/p99, throughput per hour and per day, error rate, per model and
    version, and cost per 1,000 predictions when the config gives a unit cost; hourly series
    tested against a robust hour-of-day x weekday baseline of the previous weeks."""

    def day(md: ModelDay) -> dg.MaterializeResult:
        res = operations_for_day(md.model, md.partition, md.store, read_token=md.read_token)
        return publish(
            md,
            Asset.OPS_REPORT,
            metrics=res.metrics,
            findings=res.findings,
            mlflow_metrics=res.mlflow_metrics,
            metadata=res.summary(),
            checks=res.checks(),
        )

    return for_each_day(context, monitoring_config, store, mlflow, day)
