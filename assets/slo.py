"""Service level objectives and their error budgets, per day and model
(`aiops_pipelines.signals.slo`)."""

from dataclasses import replace

import dagster as dg

from aiops_pipelines.core.findings import Asset
from aiops_pipelines.orchestration.partitions import RANGE_RUNS, date_x_model
from aiops_pipelines.orchestration.publish import ModelDay, for_each_day, publish
from aiops_pipelines.orchestration.resources import MlflowResource, MonitoringConfig, StoreResource
from aiops_pipelines.signals.slo import slo_for_day
from assets.monitoring import GROUP, OWNERS
from assets.performance import performance_report


@dg.asset(
    partitions_def=date_x_model,
    backfill_policy=RANGE_RUNS,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql", "mlflow"},
    # a metric SLO reads the realized metrics the run's performance_report stored
    deps=[performance_report],
    check_specs=[
        dg.AssetCheckSpec(
            "slo_budget",
            asset="slo_report",
            description="no SLO of the model has exhausted its error budget over its window",
        ),
        dg.AssetCheckSpec(
            "slo_burn",
            asset="slo_report",
            description="no SLO burns its budget fast enough to page or ticket (the SRE "
            "workbook's multi-window, multi-burn-rate rules on hourly counts)",
        ),
    ],
)
def slo_report(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The model's SLOs (`slos:` in its config): the day's exact good/total counts per hour
    (latency under a threshold, ok status), the error budget left over each SLO's window, the
    burn rates over 1 h, 6 h and 3 days, and `slo_burn` / `slo_budget` findings."""

    def day(md: ModelDay) -> dg.MaterializeResult:
        res = slo_for_day(md.model, md.partition, md.store, read_token=md.read_token)
        # a model without SLOs still materializes (model_alerts runs after this asset), but
        # opens no MLflow run a day for nothing
        return publish(
            md if md.model.slos else replace(md, tracker=None),
            Asset.SLO_REPORT,
            metrics=res.metrics,
            findings=res.findings,
            mlflow_metrics=res.mlflow_metrics,
            metadata=res.summary(),
            checks=res.checks(),
        )

    return for_each_day(context, monitoring_config, store, mlflow, day)
