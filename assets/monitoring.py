"""Daily monitoring assets: reference profile, daily feature baseline, drift report.

Thin by design: read the partition and the config, call the engine (`aiops_pipelines.monitor`),
write the store and MLflow, and return numeric metadata (plotted by the UI across partitions)
plus in-asset check results (per partition, no reload of other partitions).
"""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from aiops_pipelines.core.config import AppConfig, ModelConfig
from aiops_pipelines.io.labels import read_reference_labelled
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.orchestration.partitions import date_x_model, model_partitions, split_key
from aiops_pipelines.orchestration.resources import (
    MlflowResource,
    MonitoringConfig,
    SourceSettings,
    StoreResource,
)
from aiops_pipelines.signals.drift.day import drift_for_day
from aiops_pipelines.signals.performance.reference import reference_performance
from aiops_pipelines.signals.profile.day import (
    dtype_families,
    profile_day,
    profile_reference,
    profiled_columns,
    save_sample,
    unseen_shares,
)
from aiops_pipelines.signals.profile.profiles import DatasetProfile

GROUP = "monitoring"
OWNERS = ["team:ml-platform"]


def _sample_path(cfg: AppConfig, model: ModelConfig, partition: str) -> Path:
    return cfg.artifacts_path / "samples" / model.key / f"{partition}.parquet"


def _load_reference(store: MonitoringStore, model: ModelConfig, partition: str) -> dict[str, Any]:
    payload = store.load_profile(model.tenant, model.name, "reference", REFERENCE_PARTITION)
    if payload is None:
        raise dg.Failure(
            f"[model={model.key}, partition={partition}] no reference profile stored: "
            f"materialize reference_profile for partition '{model.key}' first "
            "(`aiops run` does it automatically)"
        )
    return payload


def _same_family(a: str, b: str) -> bool:
    number = {"integer", "float"}
    return a == b or (a in number and b in number)


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
    vocabulary, moments and null rates that every day is compared against. Also keeps a small
    uniform sample for the HTML drift report."""
    cfg = monitoring_config.load()
    model = cfg.model(context.partition_key)
    res = profile_reference(model, sample_rows=sources.sample_rows)
    sample_path = save_sample(res.sample, _sample_path(cfg, model, REFERENCE_PARTITION))
    payload: dict[str, Any] = {
        "profile": res.profile.to_dict(),
        "dtypes": dtype_families(res.sample),
    }
    labelled = read_reference_labelled(model)
    perf = reference_performance(model, labelled) if labelled is not None else None
    if perf is not None:
        payload["performance"] = perf.to_dict()
    null_rates = {name: c.null_rate for name, c in res.profile.columns.items()}
    metrics = {("rows", ""): float(res.profile.n_rows)}
    metrics.update({("null_rate", c): v for c, v in null_rates.items()})
    store.open(cfg).replace_partition(
        model.tenant,
        model.name,
        REFERENCE_PARTITION,
        "reference_profile",
        metrics=metrics,
        findings=[],
        profile=("reference", payload, res.profile.n_rows),
    )
    run_id = None
    tracker = mlflow.tracker(cfg)
    if tracker:
        with tracker.partition_run(
            model.key,
            "reference_profile",
            REFERENCE_PARTITION,
            params={
                "source": model.reference.table or model.reference.query or "parquet",
                "n_features": len(res.columns.features),
            },
        ) as run:
            run.log_metrics(
                {
                    "rows": res.profile.n_rows,
                    "seconds": res.seconds,
                    **{f"null_rate.{c}": v for c, v in null_rates.items()},
                    **({f"reference.{m}": v for m, v in perf.metrics.items()} if perf else {}),
                }
            )
            run_id = run.run_id
    min_rows = 10 * model.thresholds.min_rows
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": res.profile.n_rows,
            "n_features": len(res.columns.features),
            "prediction_columns": ", ".join(res.columns.predictions) or "none",
            "reference_performance": json.dumps(
                {str(m): round(v, 4) for m, v in perf.metrics.items()} if perf else {}
            ),
            "sample": dg.MetadataValue.path(str(sample_path)),
            "seconds": res.seconds,
            "mlflow_run_id": run_id or "",
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="reference_row_count",
                passed=res.profile.n_rows >= min_rows,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"rows": res.profile.n_rows, "threshold": min_rows},
            )
        ],
    )


def _feature_checks(
    model: ModelConfig,
    day_rows: int,
    day: DatasetProfile,
    ref: DatasetProfile,
    day_dtypes: dict[str, str],
    ref_dtypes: dict[str, str],
) -> list[dg.AssetCheckResult]:
    th = model.thresholds
    changed = {
        c: f"{ref_dtypes[c]} -> {t}"
        for c, t in day_dtypes.items()
        if c in ref_dtypes and not _same_family(ref_dtypes[c], t)
    }
    all_null = [c for c, p in day.columns.items() if p.n_rows and p.n_missing == p.n_rows]
    null_jumps = {
        c: round(p.null_rate - ref.columns[c].null_rate, 4)
        for c, p in day.columns.items()
        if c in ref.columns and p.null_rate - ref.columns[c].null_rate >= th.null_rate_increase[0]
    }
    unseen = {
        c: {"share": round(share, 4), "top": list(day.columns[c].unseen)[:5]}
        for c, share in unseen_shares(day).items()
        if share >= th.unseen_share[0]
    }
    return [
        dg.AssetCheckResult(
            check_name="row_count",
            passed=day_rows >= th.min_rows,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": day_rows, "threshold": th.min_rows},
        ),
        dg.AssetCheckResult(
            check_name="schema",
            passed=not changed and not all_null,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "dtype_changes": json.dumps(changed),
                "all_null_columns": ", ".join(all_null),
            },
        ),
        dg.AssetCheckResult(
            check_name="null_rate",
            passed=not null_jumps,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"increases": json.dumps(null_jumps), "threshold": th.null_rate_increase[0]},
        ),
        dg.AssetCheckResult(
            check_name="unseen_categories",
            passed=not unseen,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unseen": json.dumps(unseen), "threshold": th.unseen_share[0]},
        ),
    ]


@dg.asset(
    partitions_def=date_x_model,
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
    day, key = split_key(context)
    cfg = monitoring_config.load()
    model = cfg.model(key)
    db = store.open(cfg)
    ref_payload = _load_reference(db, model, day)
    ref = DatasetProfile.from_dict(ref_payload["profile"])
    res = profile_day(
        model, day, ref, sample_rows=sources.sample_rows, chunk_rows=sources.chunk_rows or None
    )
    save_sample(res.sample, _sample_path(cfg, model, day))
    null_rates = res.null_rates()
    unseen = res.unseen_share()
    error_rate = res.n_errors / res.n_rows
    metrics: dict[tuple[str, str], float] = {
        ("rows", ""): float(res.n_rows),
        ("error_rate", ""): error_rate,
        **{("null_rate", c): v for c, v in null_rates.items()},
        **{("unseen_share", c): v for c, v in unseen.items()},
        **{("version_rows", v): float(n) for v, n in res.versions.items()},
    }
    payload = {"profile": res.profile.to_dict(), "dtypes": res.dtypes, "versions": res.versions}
    db.replace_partition(
        model.tenant,
        model.name,
        day,
        "feature_profile",
        metrics=metrics,
        findings=[],
        profile=("daily", payload, res.n_rows),
    )
    run_id = ""
    tracker = mlflow.tracker(cfg)
    if tracker:
        with tracker.partition_run(model.key, "feature_profile", day) as run:
            run.log_metrics(
                {
                    "rows": res.n_rows,
                    "error_rate": error_rate,
                    "seconds": res.seconds,
                    **{f"null_rate.{c}": v for c, v in null_rates.items()},
                }
            )
            run_id = run.run_id
    checks = _feature_checks(
        model, res.n_rows, res.profile, ref, res.dtypes, ref_payload.get("dtypes", {})
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": res.n_rows,
            "rows": res.n_rows,
            "chunks": res.n_chunks,
            "seconds": res.seconds,
            "error_rate": error_rate,
            "max_null_rate": max(null_rates.values(), default=0.0),
            "max_unseen_share": max(unseen.values(), default=0.0),
            "versions": json.dumps(res.versions),
            "mlflow_run_id": run_id,
        },
        check_results=checks,
    )


def _drift_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No column drifted."
    lines = [
        "| column | role | method | statistic | threshold | q-value | severity |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        q = "" if r["q_value"] is None else f"{r['q_value']:.2g}"
        lines.append(
            f"| {r['column']} | {r['role']} | {r['method']} | {r['statistic']:.4f} | "
            f"{r['threshold']:g} | {q} | {r['severity']} |"
        )
    return "\n".join(lines)


@dg.asset(
    partitions_def=date_x_model,
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
    over the model's features, null-rate and unseen-category drift, the dataset drift share.
    Findings carry their evidence; Evidently renders the HTML on bounded samples."""
    day, key = split_key(context)
    cfg = monitoring_config.load()
    model = cfg.model(key)
    db = store.open(cfg)
    ref = DatasetProfile.from_dict(_load_reference(db, model, day)["profile"])
    cur_payload = db.load_profile(model.tenant, model.name, "daily", day)
    if cur_payload is None:
        raise dg.Failure(
            f"[model={model.key}, partition={day}] no feature profile stored: "
            "materialize feature_profile for this partition first"
        )
    cur = DatasetProfile.from_dict(cur_payload["profile"])
    result = drift_for_day(model, day, ref, cur)
    rep = result.report
    db.replace_partition(
        model.tenant,
        model.name,
        day,
        "drift_report",
        metrics=result.metrics,
        findings=result.findings,
    )

    reports_dir = cfg.artifacts_path / "reports" / model.key
    reports_dir.mkdir(parents=True, exist_ok=True)
    report_json = reports_dir / f"drift_{day}.json"
    report_json.write_text(json.dumps(rep.to_dict(), default=str, indent=1))
    html_path = None
    if sources.render_html:
        cols = profiled_columns(model)
        ref_sample = _read_sample(_sample_path(cfg, model, REFERENCE_PARTITION))
        cur_sample = _read_sample(_sample_path(cfg, model, day))
        if ref_sample is not None and cur_sample is not None:
            from aiops_pipelines.views.drift_report import render_drift_html

            html_path = render_drift_html(
                ref_sample,
                cur_sample,
                numeric=cols.numeric,
                categorical=cols.categorical,
                path=reports_dir / f"drift_{day}.html",
                methods={c.column: c.method for c in [*rep.features, *rep.predictions]},
                title=f"{model.key} {day}",
            )
    report_uri = str(html_path) if html_path else ""
    run_id = ""
    tracker = mlflow.tracker(cfg)
    if tracker:
        with tracker.partition_run(model.key, "drift_report", day) as run:
            run.log_metrics(
                {
                    "drift_share": rep.drift_share,
                    "n_drifted": rep.n_drifted,
                    **{
                        f"{c.method}.{c.column}": c.statistic
                        for c in [*rep.features, *rep.predictions]
                    },
                }
            )
            run.log_artifact(report_json)
            if html_path:
                report_uri = run.log_artifact(html_path)
            run_id = run.run_id
        # one copy of each report: the MLflow artifact under the home folder
        report_json.unlink()
        if html_path:
            html_path.unlink()

    drifted = [c for c in rep.features if c.drifted]
    drifted_preds = [c for c in rep.predictions if c.drifted]
    stats = [c.statistic for c in rep.features]
    rows = [
        {
            "column": c.column,
            "role": c.role,
            "method": c.method,
            "statistic": c.statistic,
            "threshold": c.threshold,
            "q_value": c.q_value,
            "severity": c.severity,
        }
        for c in [*drifted, *drifted_preds]
    ]
    sev = dg.AssetCheckSeverity
    metadata: dict[str, Any] = {
        "drift_share": float(rep.drift_share),
        "n_drifted": int(rep.n_drifted),
        "max_statistic": float(max(stats, default=0.0)),
        "n_findings": len(result.findings),
        "rows_reference": int(ref.n_rows),
        "rows_current": int(cur.n_rows),
        "drifted_columns": dg.MetadataValue.md(_drift_table(rows)),
        "mlflow_run_id": run_id,
    }
    if report_uri:
        metadata["report"] = (
            dg.MetadataValue.url(report_uri)
            if "://" in report_uri
            else dg.MetadataValue.path(report_uri)
        )
    for c in [*rep.features, *rep.predictions]:
        metadata[f"{c.method}/{c.column}"] = float(c.statistic)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="feature_drift",
                passed=not drifted,
                severity=sev.ERROR if any(c.severity == "critical" for c in drifted) else sev.WARN,
                metadata={
                    "drifted": ", ".join(c.column for c in drifted),
                    "n_features": int(rep.n_features),
                },
            ),
            dg.AssetCheckResult(
                check_name="dataset_drift",
                passed=rep.dataset_drift_severity == "none",
                severity=sev.ERROR if rep.dataset_drift_severity == "critical" else sev.WARN,
                metadata={
                    "drift_share": float(rep.drift_share),
                    "threshold": model.thresholds.drift_share[0],
                },
            ),
            dg.AssetCheckResult(
                check_name="prediction_drift",
                passed=not drifted_preds,
                severity=sev.WARN,
                metadata={"drifted": ", ".join(c.column for c in drifted_preds)},
            ),
        ],
    )


def _read_sample(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


daily_assets = [feature_profile, drift_report]
