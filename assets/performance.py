"""Performance on late labels: realized metrics, the label-free estimate, decay, and the
residual anomalies of regression models."""

import json
import math
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from aiops_pipelines.core.config import Metric, ModelConfig, TaskType
from aiops_pipelines.core.findings import LEVEL_CODES, Finding
from aiops_pipelines.io.labels import read_day_outcomes, read_day_predictions
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.lifecycle.retrain_policy import decay_levels
from aiops_pipelines.orchestration.partitions import date_x_model, split_key
from aiops_pipelines.orchestration.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    StoreResource,
    parse_utc,
)
from aiops_pipelines.signals.anomaly import anomaly_findings, detect_last_day
from aiops_pipelines.signals.performance.estimate import estimate_performance
from aiops_pipelines.signals.performance.join import join_outcomes
from aiops_pipelines.signals.performance.metrics import realized_metrics, segment_metrics
from aiops_pipelines.signals.performance.reference import ReferencePerformance
from aiops_pipelines.signals.performance.verdict import (
    DayJudgement,
    decay_state,
    judge_day,
    judge_estimate,
    performance_findings,
)
from assets.monitoring import GROUP, OWNERS, reference_profile

RESIDUAL_PERSISTENCE_DAYS = 2
"""Consecutive labelled days beyond z before a residual anomaly. Not `ops.persistence`: that
one counts hours. Two days is the anomaly module's documented default for the daily series."""

RESIDUAL_MIN_HISTORY_DAYS = 7
"""Labelled days of history before residuals are judged: the baseline is warming up before."""

RESIDUAL_LOOKBACK_WEEKS = 8
"""Weeks of history behind the residual baseline (the anomaly module's default)."""


class PerformanceConfig(dg.Config):
    as_of: str = Field(
        default="",
        description="judge with the outcomes observed up to this UTC time (ISO); empty: now",
    )


def _metrics_of(model: ModelConfig, labelled: Any) -> dict[str, float]:
    c = model.columns
    if labelled.empty:
        return {}
    return {
        str(k): float(v)
        for k, v in realized_metrics(
            model.task,
            labelled[c.label],
            labelled[c.prediction],
            labelled[c.score] if c.score else None,
            model.classes,
        ).items()
    }


def _residual_verdict(
    db: MonitoringStore, model: ModelConfig, day: str, realized: dict[str, float], n_labelled: int
) -> tuple[str, float, list[Finding]]:
    """A regression model's mean absolute residual (the realized MAE) of the day against the
    labelled days before it: (status, z of the day, findings ending on the day).

    A day is used only with `min_labels` labels, today included: with fewer there is no
    verdict. The history is what earlier runs stored, so a re-run with more labels judges the
    day against the same days, and never against itself.
    """
    if model.task is not TaskType.REGRESSION:
        return "", math.nan, []
    mae = realized.get(Metric.MAE.value, math.nan)
    min_labels = model.performance.min_labels
    if n_labelled < min_labels or not math.isfinite(mae):
        return f"insufficient labels ({n_labelled} < {min_labels})", math.nan, []
    today = date.fromisoformat(day)
    since = today - timedelta(weeks=RESIDUAL_LOOKBACK_WEEKS, days=RESIDUAL_PERSISTENCE_DAYS)

    def stored(metric: str) -> pd.Series:
        h = db.metric_history(
            model.tenant,
            model.name,
            metric=metric,
            column="",
            asset="performance_report",
            start=since,
            end=today - timedelta(days=1),
        )
        return pd.Series(h["value"].to_numpy(), index=h["partition"].to_numpy(), dtype=float)

    n = stored("n_labelled")
    past = stored(Metric.MAE.value)
    past = past[past.index.isin(n.index[n >= min_labels])]
    daily = pd.concat([past, pd.Series([mae], index=[day])])
    daily.index = pd.to_datetime(daily.index, utc=True)
    z, anomalies = detect_last_day(
        daily,
        kind="residual",
        z=model.ops.z,
        persistence=RESIDUAL_PERSISTENCE_DAYS,
        min_history=RESIDUAL_MIN_HISTORY_DAYS,
        lookback_weeks=RESIDUAL_LOOKBACK_WEEKS,
    )
    findings = anomaly_findings(
        anomalies, tenant=model.tenant, model=model.name, partition=day, asset="performance_report"
    )
    for f in findings:
        f.evidence.update(metric=Metric.MAE.value, n_labelled=n_labelled, min_labels=min_labels)
    if math.isfinite(z):
        return ("anomaly" if findings else "ok"), z, findings
    window_start = pd.Timestamp(today - timedelta(days=RESIDUAL_PERSISTENCE_DAYS - 1), tz="UTC")
    n_history = int((daily.index < window_start).sum())
    return f"warming up ({n_history} of {RESIDUAL_MIN_HISTORY_DAYS} days)", z, findings


def _judgement_md(j: DayJudgement) -> str:
    band = f"[{j.band_low:.4g}, {j.band_high:.4g}]" if j.band_low is not None else "n/a"
    value = "n/a" if j.value is None else f"{j.value:.4g}"
    return (
        f"**{j.metric}** {value} vs reference {j.reference:.4g} (band {band}, "
        f"n={j.n_labelled}): **{j.level}**"
        + ("".join(f"\n- {r}" for r in j.reasons) if j.reasons else "")
    )


@dg.asset(
    partitions_def=date_x_model,
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
    `residual_anomaly` after 2 consecutive labelled days beyond `ops.z`. Re-materialized by
    late_labels_sensor as labels arrive: the partition is replaced, and each attempt stays in
    the MLflow run's metric history."""
    day, key = split_key(context)
    cfg = monitoring_config.load()
    model = cfg.model(key)
    as_of = parse_utc(config.as_of) if config.as_of else clock.now()
    db = store.open(cfg)
    ref_payload = db.load_profile(model.tenant, model.name, "reference", REFERENCE_PARTITION)
    if not ref_payload or not ref_payload.get("performance"):
        raise dg.Failure(
            f"[model={key}, partition={day}] no reference performance stored: the reference "
            "needs labels and the champion's predictions; re-materialize reference_profile"
        )
    ref = ReferencePerformance.from_dict(ref_payload["performance"])
    if model.outcomes is None:
        raise dg.Failure(f"[model={key}] no outcomes source configured")
    labelled_day = join_outcomes(
        read_day_predictions(model, day), read_day_outcomes(model, day, as_of), model, day
    )
    realized = _metrics_of(model, labelled_day.labelled)
    estimate_raw = estimate_performance(model, labelled_day.frame, ref)
    estimate = {str(k): float(v) for k, v in estimate_raw.items()}
    judgement = judge_day(model, realized, labelled_day.n_labelled, ref)
    est_judgement = (
        judge_estimate(model, estimate_raw, labelled_day.n_predictions, ref)
        if model.performance.estimate_warning
        else None
    )
    history = [(p, lvl) for p, lvl in decay_levels(db, model) if p < day]
    state = decay_state([*history, (day, judgement.level)], model.performance)
    findings = performance_findings(model, day, judgement, state, est_judgement)
    residual_status, residual_z, residual_findings = _residual_verdict(
        db, model, day, realized, labelled_day.n_labelled
    )
    findings.extend(residual_findings)
    # a re-run with more labels keeps the time the finding was first raised
    before = db.findings(model.tenant, model.name, start=day, end=day)
    first_raised = {
        (sig, col): ev.get("detected_at")
        for sig, col, ev in zip(
            before.get("signal", []),
            before.get("column", []),
            before.get("evidence", []),
            strict=True,
        )
        if isinstance(ev, dict)
    }
    for f in findings:
        f.evidence["detected_at"] = first_raised.get((f.signal, f.column)) or as_of.isoformat()
    segments = segment_metrics(model, labelled_day.labelled)

    metrics: dict[tuple[str, str], float] = {
        ("coverage", ""): labelled_day.coverage,
        ("n_labelled", ""): float(labelled_day.n_labelled),
        ("n_predictions", ""): float(labelled_day.n_predictions),
        ("decay_level", ""): LEVEL_CODES[judgement.level],
        **{(m, ""): v for m, v in realized.items()},
        **{(f"estimated_{m}", ""): v for m, v in estimate.items()},
    }
    for seg_col, values in segments.items():
        for value, row in values.items():
            for m, v in row.items():
                if m != "insufficient" and isinstance(v, int | float):
                    metrics[(str(m), f"{seg_col}={value}")] = float(v)
    db.replace_partition(
        model.tenant, model.name, day, "performance_report", metrics=metrics, findings=findings
    )

    run_id = ""
    tracker = mlflow.tracker(cfg)
    if tracker:
        with tracker.partition_run(model.key, "performance_report", day) as run:
            run.log_metrics(
                {
                    "coverage": labelled_day.coverage,
                    "n_labelled": labelled_day.n_labelled,
                    **realized,
                    **{f"estimated_{m}": v for m, v in estimate.items()},
                }
            )
            run.set_tags({"as_of": as_of.isoformat(), "decay_status": state.status})
            run_id = run.run_id

    primary = str(model.primary_metric)
    metadata: dict[str, Any] = {
        "coverage": labelled_day.coverage,
        "n_labelled": labelled_day.n_labelled,
        "n_predictions": labelled_day.n_predictions,
        "n_duplicate_outcomes": labelled_day.n_duplicate_outcomes,
        "as_of": as_of.isoformat(),
        "level": judgement.level,
        "decay_status": state.status,
        "judgement": dg.MetadataValue.md(_judgement_md(judgement)),
        "segments": dg.MetadataValue.json(json.loads(json.dumps(segments, default=str))),
        "mlflow_run_id": run_id,
    }
    if judgement.level != "insufficient" and primary in realized:
        metadata[primary] = realized[primary]
    if primary in estimate:
        metadata[f"estimated_{primary}"] = estimate[primary]
    if residual_status:
        metadata["residual_status"] = residual_status
    if math.isfinite(residual_z):
        metadata["residual_z"] = residual_z
    window_over = (as_of.date() - parse_utc(day).date()).days > model.performance.label_window_days
    sev = dg.AssetCheckSeverity
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="performance_decay",
                passed=state.status != "firing",
                severity=sev.ERROR if state.severity == "critical" else sev.WARN,
                metadata={
                    "status": state.status,
                    "severity": str(state.severity),
                    "since": str(state.since),
                    "value": judgement.value,
                    "reference": judgement.reference,
                    "n_labelled": judgement.n_labelled,
                },
            ),
            dg.AssetCheckResult(
                check_name="label_coverage",
                passed=not (window_over and judgement.level == "insufficient"),
                severity=sev.WARN,
                metadata={
                    "coverage": labelled_day.coverage,
                    "n_labelled": labelled_day.n_labelled,
                    "min_labels": model.performance.min_labels,
                    "label_window_over": window_over,
                },
            ),
        ],
    )
