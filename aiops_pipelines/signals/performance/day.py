"""A day's performance on the labels observed so far: the entry point of the signal.

`performance_for_day` joins the day's predictions with the outcomes observed up to `as_of`,
scores the labelled rows (overall and per segment), estimates the metrics without labels for
classifiers, judges the primary metric against the reference's sampling band, replays the
stored daily levels through the decay's persistence and hysteresis, and, for regression
models, holds the day's residuals against the model's own recent past. With `fairness`
configured, it judges the day's group fairness on the same joined rows (`signals.fairness`).
Re-judging a day as more labels arrive replaces its result; a finding keeps the time it was
first raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import LEVEL_CODES, Asset, Finding, jsonable, level_name
from aiops_pipelines.io.labels import read_day_outcomes, read_day_predictions
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.signals.daily_shifts import (
    DailyShift,
    daily_history,
    daily_shifts,
    shift_findings,
)
from aiops_pipelines.signals.day_pass import day_predictions
from aiops_pipelines.signals.fairness import FairnessDay, fairness_for_day
from aiops_pipelines.signals.performance.estimate import estimate_performance
from aiops_pipelines.signals.performance.join import LabelledDay, join_outcomes
from aiops_pipelines.signals.performance.metrics import realized_metrics, segment_metrics
from aiops_pipelines.signals.performance.reference import ReferencePerformance
from aiops_pipelines.signals.performance.residuals import ResidualVerdict, residual_verdict
from aiops_pipelines.signals.performance.verdict import (
    DayJudgement,
    DecayState,
    decay_state,
    judge_day,
    judge_estimate,
    performance_findings,
)


def decay_levels(store: MonitoringStore, model: ModelConfig) -> list[tuple[str, str]]:
    """The model's (partition, level) history, as last judged by performance_report."""
    hist = store.metric_history(
        model.tenant, model.name, metric="decay_level", asset=Asset.PERFORMANCE_REPORT
    )
    return [
        (str(p), level_name(float(v)))
        for p, v in zip(hist["partition"], hist["value"], strict=True)
    ]


def stored_reference_performance(
    store: MonitoringStore, model: ModelConfig, partition: str
) -> ReferencePerformance:
    """The reference performance stored with the model's reference profile."""
    payload = store.load_profile(model.tenant, model.name, "reference", REFERENCE_PARTITION)
    if not payload or not payload.get("performance"):
        raise DataError(
            "no reference performance stored: the reference needs labels and the champion's "
            "predictions; re-materialize reference_profile",
            model=model.key,
            partition=partition,
        )
    return ReferencePerformance.from_dict(payload["performance"])


@dataclass
class PerformanceDay:
    """One day's performance verdict with its evidence, findings and stored numbers."""

    partition: str
    as_of: datetime
    labelled: LabelledDay
    realized: dict[str, float]
    estimate: dict[str, float]
    judgement: DayJudgement
    estimate_judgement: DayJudgement | None
    state: DecayState
    residual: ResidualVerdict
    segments: dict[str, dict[str, dict]]
    findings: list[Finding]
    shifts: list[DailyShift] = field(default_factory=list)
    """Lasting level shifts of the primary metric and label coverage (`daily_shifts`)."""
    fairness: FairnessDay | None = None
    """Group fairness across the configured attribute (None: no `fairness` configured)."""

    @property
    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows of the store's metric history (per segment in the column `seg=value`)."""
        lab = self.labelled
        out: dict[tuple[str, str], float] = {
            ("coverage", ""): lab.coverage,
            ("n_labelled", ""): float(lab.n_labelled),
            ("n_predictions", ""): float(lab.n_predictions),
            ("decay_level", ""): LEVEL_CODES[self.judgement.level],
            **{(m, ""): v for m, v in self.realized.items()},
            **{(f"estimated_{m}", ""): v for m, v in self.estimate.items()},
        }
        for seg_col, values in self.segments.items():
            for value, row in values.items():
                for m, v in row.items():
                    if m != "insufficient" and isinstance(v, int | float):
                        out[(str(m), f"{seg_col}={value}")] = float(v)
        if self.fairness is not None:
            out.update(self.fairness.metrics)
        return out

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        return {
            "coverage": self.labelled.coverage,
            "n_labelled": float(self.labelled.n_labelled),
            **self.realized,
            **{f"estimated_{m}": v for m, v in self.estimate.items()},
            **(self.fairness.mlflow_metrics if self.fairness is not None else {}),
        }

    @property
    def mlflow_tags(self) -> dict[str, str]:
        return {"as_of": self.as_of.isoformat(), "decay_status": self.state.status}

    def summary(self, model: ModelConfig) -> dict[str, Any]:
        """The day in numbers and words: coverage, level, decay status, the primary metric
        (realized when judged, and its estimate), the residual verdict, per-segment metrics."""
        lab, j = self.labelled, self.judgement
        out: dict[str, Any] = {
            "coverage": lab.coverage,
            "n_labelled": lab.n_labelled,
            "n_predictions": lab.n_predictions,
            "n_duplicate_outcomes": lab.n_duplicate_outcomes,
            "as_of": self.as_of.isoformat(),
            "level": j.level,
            "decay_status": self.state.status,
            "segments": jsonable(self.segments),
        }
        primary = str(model.primary_metric)
        if j.level != "insufficient" and primary in self.realized:
            out[primary] = self.realized[primary]
        if primary in self.estimate:
            out[f"estimated_{primary}"] = self.estimate[primary]
        if self.residual.status:
            out["residual_status"] = self.residual.status
        if math.isfinite(self.residual.z):
            out["residual_z"] = self.residual.z
        out["level_shifts"] = (
            ", ".join(f"{s.series} {s.shift.direction} since {s.onset_day}" for s in self.shifts)
            or "none"
        )
        if self.fairness is not None:
            out.update(self.fairness.summary())
        return out

    def checks(self, model: ModelConfig) -> list[Check]:
        """Decay (an error while a critical decay fires), label coverage (a warning when
        the label window is over and the day still has too few labels to judge) and fairness
        (`FairnessDay.check`; passed without a `fairness` config)."""
        j, state = self.judgement, self.state
        window_over = (
            self.as_of.date() - date.fromisoformat(self.partition)
        ).days > model.performance.label_window_days
        return [
            Check(
                "performance_decay",
                state.status != "firing",
                "error" if state.severity == "critical" else "warn",
                {
                    "status": state.status,
                    "severity": str(state.severity),
                    "since": str(state.since),
                    "value": j.value,
                    "reference": j.reference,
                    "n_labelled": j.n_labelled,
                },
            ),
            Check(
                "label_coverage",
                not (window_over and j.level == "insufficient"),
                "warn",
                {
                    "coverage": self.labelled.coverage,
                    "n_labelled": self.labelled.n_labelled,
                    "min_labels": model.performance.min_labels,
                    "label_window_over": window_over,
                },
            ),
            self.fairness.check()
            if self.fairness is not None
            else Check("fairness", True, metadata={"configured": False}),
        ]


def _realized(model: ModelConfig, labelled: LabelledDay) -> dict[str, float]:
    c, rows = model.columns, labelled.labelled
    if rows.empty:
        return {}
    metrics = realized_metrics(
        model.task,
        rows[c.label],
        rows[c.prediction],
        rows[c.score] if c.score else None,
        model.classes,
    )
    return {str(k): float(v) for k, v in metrics.items()}


def _first_raised(store: MonitoringStore, model: ModelConfig, day: str) -> dict[tuple, Any]:
    """When each of the day's findings was first raised, from what earlier runs stored."""
    before = store.findings(model.tenant, model.name, start=day, end=day)
    return {
        (sig, col): ev.get("detected_at")
        for sig, col, ev in zip(
            before.get("signal", []),
            before.get("column", []),
            before.get("evidence", []),
            strict=True,
        )
        if isinstance(ev, dict)
    }


def performance_for_day(
    model: ModelConfig,
    day: str,
    as_of: datetime,
    store: MonitoringStore,
    *,
    read_token: str | None = None,
) -> PerformanceDay:
    """Judge the day's performance with the outcomes observed up to `as_of`.

    With a `read_token` (a Dagster run's id), the day's predictions come from the day's one
    read for every daily signal (`signals.day_pass`); without one, they are read here.

    The store gives what earlier runs decided: the reference performance, the daily levels
    (for the decay's persistence), the residual history, the daily series of the primary metric
    and label coverage (for their lasting level shifts, `signals.daily_shifts`) and when
    findings were first raised.
    """
    ref = stored_reference_performance(store, model, day)
    if model.outcomes is None:
        raise DataError("no outcomes source configured", model=model.key)
    predictions = (
        read_day_predictions(model, day)
        if read_token is None
        else day_predictions(model, day, read_token=read_token)
    )
    labelled = join_outcomes(predictions, read_day_outcomes(model, day, as_of), model, day)
    realized = _realized(model, labelled)
    estimate_raw = estimate_performance(model, labelled.frame, ref)
    judgement = judge_day(model, realized, labelled.n_labelled, ref)
    est_judgement = (
        judge_estimate(model, estimate_raw, labelled.n_predictions, ref)
        if model.performance.estimate_warning
        else None
    )
    history = [(p, lvl) for p, lvl in decay_levels(store, model) if p < day]
    state = decay_state([*history, (day, judgement.level)], model.performance)
    findings = performance_findings(model, day, judgement, state, est_judgement)
    residual = residual_verdict(store, model, day, realized, labelled.n_labelled)
    findings.extend(residual.findings)
    result = PerformanceDay(
        partition=day,
        as_of=as_of,
        labelled=labelled,
        realized=realized,
        estimate={str(k): float(v) for k, v in estimate_raw.items()},
        judgement=judgement,
        estimate_judgement=est_judgement,
        state=state,
        residual=residual,
        segments=segment_metrics(model, labelled.labelled),
        findings=findings,
    )
    if model.fairness is not None:
        result.fairness = fairness_for_day(model, day, labelled.frame)
        findings.extend(result.fairness.findings)
    result.shifts = daily_shifts(
        model,
        day,
        daily_history(store, model, day, Asset.PERFORMANCE_REPORT),
        asset=Asset.PERFORMANCE_REPORT,
        today=result.metrics,
        as_of=as_of,
    )
    findings.extend(shift_findings(model, day, result.shifts))
    first_raised = _first_raised(store, model, day)
    for f in findings:
        f.evidence["detected_at"] = first_raised.get((f.signal, f.column)) or as_of.isoformat()
    return result
