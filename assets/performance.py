"""Performance on late labels: realized metrics, the label-free estimate, decay, and the
residual anomalies of regression models (`aiops_pipelines.signals.performance`)."""

import dagster as dg
from pydantic import Field

from aiops_pipelines.core.findings import Asset
from aiops_pipelines.orchestration.partitions import RANGE_RUNS, date_x_model
from aiops_pipelines.orchestration.publish import ModelDay, for_each_day, publish
from aiops_pipelines.orchestration.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    StoreResource,
)
from aiops_pipelines.signals.performance.day import performance_for_day
from aiops_pipelines.views.markdown import judgement
from assets.monitoring import GROUP, OWNERS, reference_profile


class PerformanceConfig(dg.Config):
    as_of: str = Field(
        default="",
        description="judge with the outcomes observed up to this UTC time (ISO); empty: now",
    )


@dg.asset(
    partitions_def=date_x_model,
    backfill_policy=RANGE_RUNS,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "scikit-learn", "mlflow"},
    deps=[reference_profile],
    check_specs=[
        dg.AssetCheckSpec(
            "performance_decay",
            asset="performance_report",
            description="realized performance on the labels so far is not in (persistent) decay",
        ),
        dg.AssetCheckSpec(
            "label_coverage",
            asset="performance_report",
            description="enough labels arrived within the label window",
        ),
        dg.AssetCheckSpec(
            "fairness",
            asset="performance_report",
            description="no fairness metric across the configured sensitive attribute is past "
            "its threshold with its whole confidence interval (passes without `fairness`)",
        ),
    ],
)
def performance_report(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
    clock: Clock,
) -> dg.MaterializeResult:
    """The day's predictions joined with the outcomes observed so far (by request id):
    realized metrics with label coverage, per segment, against the reference performance with
    a sampling band; a label-free (CBPE-style) estimate for classifiers; and the decay state
    (persistence and hysteresis over labelled days). For regression models, the day's mean
    absolute residual (MAE) against a robust seasonal baseline of the previous labelled days: a
    `residual_anomaly` after 2 consecutive labelled days beyond `ops.z`. A `level_shift` while
    the primary metric (days with enough labels) or the label coverage (days whose label window
    has closed) stays at a worse level (change points over 90 days). With `fairness`
    configured, group fairness across its attribute: demographic parity difference and
    disparate impact ratio on every prediction, equal opportunity and equalized odds
    differences on the labelled ones, each with a confidence interval (`fairness_violation`
    findings, the `fairness` check). Re-materialized by
    late_labels_sensor as labels arrive: the partition is replaced, and each attempt stays in
    the MLflow run's metric history."""

    def day(md: ModelDay) -> dg.MaterializeResult:
        as_of = clock.for_day(md.partition).at(config.as_of)
        res = performance_for_day(md.model, md.partition, as_of, md.store, read_token=md.read_token)
        return publish(
            md,
            Asset.PERFORMANCE_REPORT,
            metrics=res.metrics,
            findings=res.findings,
            mlflow_metrics=res.mlflow_metrics,
            mlflow_tags=res.mlflow_tags,
            metadata={
                **res.summary(md.model),
                "judgement": dg.MetadataValue.md(judgement(res.judgement)),
            },
            checks=res.checks(md.model),
        )

    return for_each_day(context, monitoring_config, store, mlflow, day)
