"""The verdict on a day's performance, decay persistence over days, and the findings.

The verdict of a day (`judge_day`)
----------------------------------
On the primary metric: "insufficient" below ``min_labels`` labels (or when the metric or its
reference is undefined). Otherwise the day is at warning/critical when the value breaches the
``floors`` level (a ceiling for lower-is-better metrics) or degrades by ``relative_drop`` from
the reference, **and** lies outside the sampling band reference +- band_sigma * unit_se /
sqrt(n) on the bad side; a day inside the band is "ok" whatever its value, because at its
number of labels that value is what noise alone produces.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aiops_pipelines.core.config import (
    Metric,
    ModelConfig,
    PerformancePolicy,
)
from aiops_pipelines.core.findings import LEVELS, Asset, Finding, Severity, Signal, jsonable
from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.signals.performance.reference import ReferencePerformance

_BAD = {"warning": 1, "critical": 2}


@dataclass
class DayJudgement:
    """How one day's primary metric compares with the reference, and why.

    `relative_change` is (value - reference) / |reference| (signed; for a lower-is-better
    metric a positive change is the bad direction). `warning_threshold` and
    `critical_threshold` are the values the metric had to cross to reach each level: the
    floor or relative-drop limit, whichever is less strict, pushed out to the sampling band.
    """

    metric: str
    value: float
    reference: float
    band_low: float
    band_high: float
    relative_change: float
    n_labelled: int
    level: str
    reasons: list[str] = field(default_factory=list)
    estimate: float | None = None
    higher_is_better: bool = True
    standard_error: float = math.nan
    warning_threshold: float = math.nan
    critical_threshold: float = math.nan
    coverage: float = math.nan
    source: Literal["realized", "estimated"] = "realized"

    def threshold_for(self, severity: str) -> float:
        return self.critical_threshold if severity == "critical" else self.warning_threshold

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _limit(ref: float, drop: float, floor: float | None, band: float, higher: bool) -> float:
    """The value beyond which a level is reached: both rules' looser limit, past the band."""
    rel = ref - drop * abs(ref) if higher else ref + drop * abs(ref)
    lim = rel if floor is None else (max(rel, floor) if higher else min(rel, floor))
    if math.isfinite(band):
        lim = min(lim, band) if higher else max(lim, band)
    return lim


def judge_day(
    model: ModelConfig,
    metrics: dict[Metric, float],
    n_labelled: int,
    ref: ReferencePerformance,
    *,
    metric: Metric | None = None,
    estimate: dict[Metric, float] | None = None,
    coverage: float | None = None,
    source: Literal["realized", "estimated"] = "realized",
) -> DayJudgement:
    """The day's level on the primary metric (module docstring, "The verdict of a day").

    A breach of the floor or of the relative drop counts only outside the sampling band on the
    bad side, so a day with few labels cannot alarm on noise; below `min_labels` the day is
    "insufficient" and does not count for persistence either way. `metric` overrides the
    primary metric (the estimate judges what it can estimate); `estimate` is carried along.
    """
    policy = model.performance
    m = Metric(metric or model.primary_metric)
    higher = m.higher_is_better
    value = float(metrics.get(m, math.nan))
    base = float(ref.metrics.get(m, math.nan))
    se = ref.se(m, n_labelled)
    width = policy.band_sigma * se
    lo, hi = base - width, base + width
    rel = (value - base) / abs(base) if math.isfinite(base) and base != 0 else math.nan
    worse = -rel if higher else rel
    floor_w, floor_c = policy.floors.get(m, (None, None))
    band_edge = lo if higher else hi
    warn_lim = _limit(base, policy.relative_drop[0], floor_w, band_edge, higher)
    crit_lim = _limit(base, policy.relative_drop[1], floor_c, band_edge, higher)
    est = None if estimate is None else estimate.get(m)
    reasons: list[str] = []
    level: str = "ok"
    if n_labelled < policy.min_labels:
        level = "insufficient"
        reasons.append(f"{n_labelled} labels < min_labels {policy.min_labels}")
    elif not math.isfinite(value):
        level = "insufficient"
        reasons.append(f"{m} is undefined on this day (e.g. a single class among the labels)")
    elif not math.isfinite(base):
        level = "insufficient"
        reasons.append(f"the reference has no {m} value")
    else:
        sev = 0
        word = "ceiling" if not higher else "floor"
        for rank, floor in ((1, floor_w), (2, floor_c)):
            if floor is not None and (value < floor if higher else value > floor):
                sev = max(sev, rank)
                reasons.append(f"{m} {value:.4g} beyond the {LEVELS[rank + 1]} {word} {floor:g}")
        for rank, drop in ((1, policy.relative_drop[0]), (2, policy.relative_drop[1])):
            if math.isfinite(worse) and worse >= drop:
                sev = max(sev, rank)
                reasons.append(
                    f"{m} {value:.4g} is {worse:.1%} worse than the reference {base:.4g} "
                    f"(>= {drop:.0%}, {LEVELS[rank + 1]})"
                )
        if sev:
            if not math.isfinite(se):
                reasons.append("no sampling error known for the reference: band not applied")
                outside = True
            else:
                outside = value < lo if higher else value > hi
            if outside:
                level = LEVELS[sev + 1]
                reasons.append(
                    f"outside the sampling band [{lo:.4g}, {hi:.4g}] "
                    f"({policy.band_sigma:g} SE at n={n_labelled})"
                )
            else:
                reasons.append(
                    f"within the sampling band [{lo:.4g}, {hi:.4g}] at n={n_labelled}: "
                    "noise cannot be ruled out, ok"
                )
    return DayJudgement(
        metric=str(m),
        value=value,
        reference=base,
        band_low=lo,
        band_high=hi,
        relative_change=rel,
        n_labelled=int(n_labelled),
        level=level,
        reasons=reasons,
        estimate=None if est is None else float(est),
        higher_is_better=higher,
        standard_error=se,
        warning_threshold=warn_lim,
        critical_threshold=crit_lim,
        coverage=math.nan if coverage is None else float(coverage),
        source=source,
    )


def judge_estimate(
    model: ModelConfig, estimate: dict[Metric, float], n_rows: int, ref: ReferencePerformance
) -> DayJudgement | None:
    """Judge the label-free estimate like a realized day, on all n_rows scored predictions.

    The primary metric when it can be estimated, else accuracy (multiclass estimates only
    that); None when nothing is estimated (regression, no score).
    """
    if not estimate:
        return None
    metric = model.primary_metric if model.primary_metric in estimate else Metric.ACCURACY
    if metric not in estimate:
        return None
    return judge_day(
        model, estimate, n_rows, ref, metric=metric, estimate=estimate, source="estimated"
    )


@dataclass
class DecayState:
    """Whether a decay finding fires on the last day of a model's history, and why.

    status: "ok", "pending" (bad labelled days, fewer than `persistence`), "firing", or
    "resolved" (cleared on the last day). `since` is the first partition of the firing run;
    `trigger_days` the labelled days that made it fire; `days` the labelled (partition, level)
    pairs the decision looked at (the episode while firing, else the recent ones).
    """

    status: str
    severity: str | None = None
    since: str | None = None
    consecutive_bad: int = 0
    consecutive_critical: int = 0
    consecutive_ok: int = 0
    trigger_days: list[str] = field(default_factory=list)
    days: list[tuple[str, str]] = field(default_factory=list)
    resolved_on: str | None = None

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def decay_state(levels: list[tuple[str, str]], policy: PerformancePolicy) -> DecayState:
    """Replay a model's daily levels (chronological, up to the day judged) through hysteresis.

    Only labelled days count ("insufficient" days are skipped, neither breaking nor extending
    a run). It fires at warning once the last `persistence` labelled days are all warning or
    critical, at critical once they are all critical; while firing, the severity follows the
    last `persistence` days when they agree and is kept otherwise; it resolves only after
    `clear_after` consecutive "ok" labelled days. So a day that flaps between ok and bad never
    starts a finding (persistence) and never ends one (hysteresis).
    """
    p, clear = policy.persistence, policy.clear_after
    labelled: list[tuple[str, str]] = []
    run: list[str] = []
    n_crit = n_ok = 0
    firing, severity, since = False, None, None
    trigger: list[str] = []
    resolved_on, episode_start = None, 0
    for partition, level in levels:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r} on {partition} (expected {LEVELS})")
        if level == "insufficient":
            continue
        labelled.append((partition, level))
        if level == "ok":
            n_ok += 1
            run, n_crit = [], 0
        else:
            n_ok = 0
            run.append(partition)
            n_crit = n_crit + 1 if level == "critical" else 0
        if firing:
            if n_ok >= clear:
                firing, resolved_on = False, partition
            elif n_crit >= p:
                severity = "critical"
            elif len(run) >= p:
                severity = "warning"
        elif len(run) >= p:
            firing, since, trigger = True, run[0], list(run)
            severity = "critical" if n_crit >= p else "warning"
            resolved_on, episode_start = None, len(labelled) - len(run)
    if firing:
        status = "firing"
        days = labelled[episode_start:]
    else:
        last = levels[-1][0] if levels else None
        status = (
            "resolved"
            if resolved_on is not None and resolved_on == last
            else ("pending" if run else "ok")
        )
        days = labelled[-max(p, clear) :]
    return DecayState(
        status=status,
        severity=severity if firing else None,
        since=since if firing or status == "resolved" else None,
        consecutive_bad=len(run),
        consecutive_critical=n_crit,
        consecutive_ok=n_ok,
        trigger_days=trigger if firing or status == "resolved" else [],
        days=days,
        resolved_on=resolved_on if status == "resolved" else None,
    )


def performance_findings(
    model: ModelConfig,
    partition: str,
    judgement: DayJudgement,
    state: DecayState,
    estimate_judgement: DayJudgement | None,
) -> list[Finding]:
    """The day's decay findings: realized decay while the state fires, and the estimate's.

    `performance_decay` carries the state's severity (it may act: retrain on critical); the
    `estimated_performance_decay` finding is at most a warning, because the estimate rests on
    calibration and no concept shift, which labels have not confirmed.
    """
    base = dict(
        tenant=model.tenant, model=model.name, partition=partition, asset=Asset.PERFORMANCE_REPORT
    )
    out: list[Finding] = []
    j = judgement
    if state.firing and state.severity:
        evidence = {
            "metric": j.metric,
            "value": j.value,
            "reference": j.reference,
            "band": [j.band_low, j.band_high],
            "band_sigma": model.performance.band_sigma,
            "standard_error": j.standard_error,
            "relative_change": j.relative_change,
            "n_labelled": j.n_labelled,
            "coverage": j.coverage,
            "level_today": j.level,
            "reasons": list(j.reasons),
            "since": state.since,
            "trigger_days": list(state.trigger_days),
            "days": [list(d) for d in state.days],
            "persistence": model.performance.persistence,
            "clear_after": model.performance.clear_after,
            "estimate": j.estimate,
        }
        out.append(
            Finding(
                **base,
                signal=Signal.PERFORMANCE_DECAY.value,
                severity=Severity(state.severity),
                value=j.value,
                threshold=j.threshold_for(state.severity),
                message=f"{j.metric} {fmt_number(j.value, '.4g')} vs reference "
                f"{fmt_number(j.reference, '.4g')} "
                f"({fmt_number(100 * j.relative_change, '.4g')}%) on {j.n_labelled} labels; "
                f"{state.severity} since {state.since} "
                f"({len(state.trigger_days)} labelled days in a row)",
                evidence=evidence,
            )
        )
    e = estimate_judgement
    if e is not None and model.performance.estimate_warning and e.level in _BAD:
        out.append(
            Finding(
                **base,
                signal=Signal.ESTIMATED_PERFORMANCE_DECAY.value,
                severity=Severity.WARNING,
                value=e.value,
                threshold=e.warning_threshold,
                message=f"estimated {e.metric} {fmt_number(e.value, '.4g')} vs reference "
                f"{fmt_number(e.reference, '.4g')} ({fmt_number(100 * e.relative_change, '.4g')}%) "
                f"on {e.n_labelled} "
                "unlabelled predictions (label-free estimate: a warning only)",
                evidence={
                    "metric": e.metric,
                    "estimate": e.value,
                    "reference": e.reference,
                    "band": [e.band_low, e.band_high],
                    "relative_change": e.relative_change,
                    "n_rows": e.n_labelled,
                    "estimated_level": e.level,
                    "reasons": list(e.reasons),
                    "realized_level": j.level,
                    "realized_value": j.value,
                    "decay_firing": state.firing,
                },
            )
        )
    return out
