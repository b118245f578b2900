"""Daily monitoring assets: reference profile, daily feature baseline, drift report.

Thin by design: open the partition, call the engine (`aiops_pipelines.signals`), publish the
result (store, MLflow, numeric metadata plotted by the UI across partitions, and the engine's
checks as in-asset check results).
"""

import json

import dagster as dg

from aiops_pipelines.core.findings import Asset
from aiops_pipelines.io.store import REFERENCE_PARTITION
from aiops_pipelines.orchestration.partitions import RANGE_RUNS, date_x_model, model_partitions
from aiops_pipelines.orchestration.publish import (
    ModelDay,
    artifact_folder,
    for_each_day,
    model_day,
    publish,
)
from aiops_pipelines.orchestration.resources import (
    MlflowResource,
    MonitoringConfig,
    SourceSettings,
    StoreResource,
)
from aiops_pipelines.signals.drift.day import drift_for_stored_day
from aiops_pipelines.signals.drift.multivariate import multivariate_for_stored_day
from aiops_pipelines.signals.drift.segments import segment_drift_for_stored_day
from aiops_pipelines.signals.profile.day import profile_for_day, reference_for_model, sample_path
from aiops_pipelines.signals.profile.profiles import DatasetProfile
from aiops_pipelines.views.drift_report import drift_onset, write_drift_reports
from aiops_pipelines.views.markdown import drift_table

GROUP = "monitoring"
OWNERS = ["team:ml-platform"]


def _stored_profile(md: ModelDay, kind: str) -> dict:
    """The stored reference profile, or the day's feature profile, of the running partition."""
    reference = kind == "reference"
    payload = md.store.load_profile(
        md.model.tenant, md.model.name, kind, REFERENCE_PARTITION if reference else md.partition
    )
    if payload is None:
        raise dg.Failure(
            f"[model={md.model.key}, partition={md.partition}] "
            + (
                "no reference profile stored: materialize reference_profile for partition "
                f"'{md.model.key}' first (`aiops run` does it automatically)"
                if reference
                else "no feature profile stored: materialize feature_profile for this "
                "partition first"
            )
        )
    return payload


@dg.asset(
    partitions_def=model_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "reference_row_count",
            asset="reference_profile",
            description="the reference has enough rows to fix stable bins",
        )
    ],
)
def reference_profile(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    sources: SourceSettings,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Profile of the model's reference (training) data: the fixed quantile bins, category
    vocabulary, moments and null rates that every day is compared against, and the champion's
    reference performance. Also keeps a small uniform sample for the HTML drift report."""
    with model_day(context, monitoring_config, store, mlflow) as md:
        model = md.model
        res = reference_for_model(
            model, sample_rows=sources.sample_rows, samples_dir=md.config.artifacts_path
        )
        perf = res.performance.metrics if res.performance else {}
        return publish(
            md,
            Asset.REFERENCE_PROFILE,
            metrics=res.metrics,
            findings=res.findings,
            profile=("reference", res.payload, res.n_rows),
            mlflow_params={
                "source": model.reference.table or model.reference.query or "parquet",
                "n_features": len(res.columns.features),
            },
            mlflow_metrics=res.mlflow_metrics,
            metadata={
                "dagster/row_count": res.n_rows,
                "n_features": len(res.columns.features),
                "prediction_columns": ", ".join(res.columns.predictions) or "none",
                "reference_performance": json.dumps({str(m): round(v, 4) for m, v in perf.items()}),
                "sample": dg.MetadataValue.path(str(res.sample_path)),
                "seconds": res.seconds,
            },
            checks=res.checks(model),
        )


@dg.asset(
    partitions_def=date_x_model,
    backfill_policy=RANGE_RUNS,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql", "mlflow"},
    deps=[reference_profile],
    check_specs=[
        dg.AssetCheckSpec(
            "row_count",
            asset="feature_profile",
            blocking=True,
            description="enough predictions that day for the statistics to mean something",
        ),
        dg.AssetCheckSpec(
            "schema",
            asset="feature_profile",
            blocking=True,
            description="column types match the reference's; no column all null",
        ),
        dg.AssetCheckSpec(
            "null_rate",
            asset="feature_profile",
            description="no column's missing share rose past the threshold",
        ),
        dg.AssetCheckSpec(
            "unseen_categories",
            asset="feature_profile",
            description="categorical values the reference never had",
        ),
    ],
)
def feature_profile(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    sources: SourceSettings,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The day's feature baseline: one streamed pass over that day's predictions into a
    mergeable profile (counts, missing, moments, histogram on the reference's bins, category
    counts with an unseen bucket). Contract violations fail the partition with the model,
    partition and column named; nothing already stored is touched."""

    def day(md: ModelDay) -> dg.MaterializeResult:
        ref_payload = _stored_profile(md, "reference")
        ref = DatasetProfile.from_dict(ref_payload["profile"])
        res = profile_for_day(
            md.model,
            md.partition,
            ref,
            sample_rows=sources.sample_rows,
            chunk_rows=sources.chunk_rows or None,
            samples_dir=md.config.artifacts_path,
            read_token=md.read_token,
        )
        null_rates, unseen = res.null_rates(), res.unseen_share()
        return publish(
            md,
            Asset.FEATURE_PROFILE,
            metrics=res.metrics,
            findings=res.findings,
            profile=("daily", res.payload, res.n_rows),
            mlflow_metrics=res.mlflow_metrics,
            metadata={
                "dagster/row_count": res.n_rows,
                "rows": res.n_rows,
                "chunks": res.n_chunks,
                "seconds": res.seconds,
                "error_rate": res.error_rate,
                "max_null_rate": max(null_rates.values(), default=0.0),
                "max_unseen_share": max(unseen.values(), default=0.0),
                "versions": json.dumps(res.versions),
            },
            checks=res.checks(md.model, ref, ref_payload.get("dtypes", {})),
        )

    return for_each_day(context, monitoring_config, store, mlflow, day)


@dg.asset(
    partitions_def=date_x_model,
    backfill_policy=RANGE_RUNS,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "evidently", "mlflow"},
    deps=[feature_profile, reference_profile],
    check_specs=[
        dg.AssetCheckSpec(
            "feature_drift",
            asset="drift_report",
            description="no feature drifted (FDR-controlled, effect-size gated)",
        ),
        dg.AssetCheckSpec(
            "dataset_drift",
            asset="drift_report",
            description="share of drifted features below the warning level",
        ),
        dg.AssetCheckSpec(
            "prediction_drift",
            asset="drift_report",
            description="the model's outputs kept their reference distribution",
        ),
        dg.AssetCheckSpec(
            "segment_drift",
            asset="drift_report",
            description="no segment value drifted (`segment_drift`: BH over segments x "
            "features, effect-size gated; passes when off)",
        ),
    ],
)
def drift_report(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    sources: SourceSettings,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Data and prediction drift of the day against the reference, computed on the stored
    profiles (cost independent of row count): per-column tests with Benjamini-Hochberg control
    over the model's features, null-rate and unseen-category drift, the dataset drift share, and
    a `level_shift` while the drift share stays risen (change points over the last 90 days),
    and multivariate drift of the joint distribution on the profiles' samples (a domain
    classifier's AUC and the PCA reconstruction error, `multivariate_drift`).
    Findings carry their evidence; Evidently renders the HTML on bounded samples, for the days
    a drift begins or worsens (`sources.html_days`; any other day with `aiops report --html`)."""

    def day(md: ModelDay) -> dg.MaterializeResult:
        model, day, home = md.model, md.partition, md.config.artifacts_path
        ref_payload, day_payload = _stored_profile(md, "reference"), _stored_profile(md, "daily")
        result, ref, cur = drift_for_stored_day(md.store, model, day, ref_payload, day_payload)
        segments = segment_drift_for_stored_day(md.store, model, day, ref_payload, day_payload)
        joint = multivariate_for_stored_day(model, day, home)
        samples = (
            {
                "reference_sample": sample_path(home, model.key, REFERENCE_PARTITION),
                "day_sample": sample_path(home, model.key, day),
            }
            if sources.render_html
            and (
                sources.html_days == "all"
                or (sources.html_days == "drift" and result.findings)
                or drift_onset(md.store, model, day, result.findings)
            )
            else {}
        )
        with artifact_folder(md, home / "reports" / model.key) as folder:
            return publish(
                md,
                Asset.DRIFT_REPORT,
                metrics={**result.metrics, **segments.metrics, **joint.metrics},
                findings=[*result.findings, *segments.findings, *joint.findings],
                mlflow_metrics={
                    **result.mlflow_metrics,
                    **segments.mlflow_metrics,
                    **joint.mlflow_metrics,
                },
                artifacts=write_drift_reports(result, model, day, folder, **samples),
                metadata={
                    **result.summary(),
                    **joint.metadata,
                    "rows_reference": int(ref.n_rows),
                    "rows_current": int(cur.n_rows),
                    "drifted_columns": dg.MetadataValue.md(drift_table(result.drifted)),
                    **segments.summary(),
                },
                checks=[*result.checks(model), *segments.checks()],
            )

    return for_each_day(context, monitoring_config, store, mlflow, day)
