"""Performance on late labels: realized metrics, the label-free estimate, and decay."""

import json
from typing import Any

import dagster as dg
from pydantic import Field

from aiops_pipelines.config import ModelConfig
from aiops_pipelines.labels import read_day_outcomes, read_day_predictions
from aiops_pipelines.monitor import REFERENCE_PARTITION
from aiops_pipelines.partitions import date_x_model, split_key
from aiops_pipelines.performance import (
    DayJudgement,
    ReferencePerformance,
    decay_state,
    estimate_performance,
    join_outcomes,
    judge_day,
    judge_estimate,
    performance_findings,
    realized_metrics,
    segment_metrics,
)
from aiops_pipelines.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    StoreResource,
    parse_utc,
)
from aiops_pipelines.retrain_policy import LEVEL_CODES, decay_levels
from assets.monitoring import GROUP, OWNERS, reference_profile


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
    (persistence and hysteresis over labelled days). Re-materialized by late_labels_sensor as
    labels arrive: the partition is replaced, and each attempt stays in the MLflow run's
    metric history."""
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
