"""A day's drift: two stored profiles compared (so it costs the same for 1,000 or 10,000,000
rows), turned into metric history rows and findings with their evidence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal
from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals.daily_shifts import (
    DailyShift,
    daily_history,
    daily_shifts,
    shift_findings,
)
from aiops_pipelines.signals.drift.calibration import (
    RECENT_DAYS,
    ReferenceCalibration,
    design_effect,
)
from aiops_pipelines.signals.drift.compare import (
    ColumnDrift,
    DriftReport,
    combine_windows,
    compare_profiles,
)
from aiops_pipelines.signals.profile.day import profiled_columns, require_reference_columns
from aiops_pipelines.signals.profile.profiles import DatasetProfile


@dataclass
class DriftResult:
    """A day's drift report, its findings, and its rows of the store's metric history."""

    report: DriftReport
    findings: list[Finding]
    metrics: dict[tuple[str, str], float]
    shifts: list[DailyShift] = field(default_factory=list)
    """The lasting level shift of the drift share the day is in, if any (`daily_shifts`)."""

    @property
    def columns(self) -> list[ColumnDrift]:
        """Every tested column: the features, then the model's outputs."""
        return [*self.report.features, *self.report.predictions]

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        rep = self.report
        return {
            "drift_share": rep.drift_share,
            "n_drifted": float(rep.n_drifted),
            **{f"{c.method}.{c.column}": c.statistic for c in self.columns},
        }

    def summary(self) -> dict[str, float | int]:
        """The day in numbers: drift share, drifted count, largest statistic, every statistic."""
        rep = self.report
        out: dict[str, float | int] = {
            "drift_share": float(rep.drift_share),
            "n_drifted": int(rep.n_drifted),
            "max_statistic": float(max((c.statistic for c in rep.features), default=0.0)),
            "n_findings": len(self.findings),
            "level_shifts": ", ".join(
                f"{s.series} {s.shift.direction} since {s.onset_day}" for s in self.shifts
            )
            or "none",
        }
        out.update({f"{c.method}/{c.column}": float(c.statistic) for c in self.columns})
        return out

    def checks(self, model: ModelConfig) -> list[Check]:
        """Feature drift (an error when a drifted feature is critical), the dataset's drift
        share, and prediction drift (a warning: the outputs moving is a symptom, not a fault)."""
        rep = self.report
        features = [c for c in rep.features if c.drifted]
        preds = [c for c in rep.predictions if c.drifted]
        critical = any(c.severity == "critical" for c in features)
        return [
            Check(
                "feature_drift",
                not features,
                "error" if critical else "warn",
                {
                    "drifted": ", ".join(c.column for c in features),
                    "n_features": int(rep.n_features),
                },
            ),
            Check(
                "dataset_drift",
                rep.dataset_drift_severity == "none",
                "error" if rep.dataset_drift_severity == "critical" else "warn",
                {
                    "drift_share": float(rep.drift_share),
                    "threshold": model.thresholds.drift_share[0],
                },
            ),
            Check(
                "prediction_drift",
                not preds,
                "warn",
                {"drifted": ", ".join(c.column for c in preds)},
            ),
        ]


@dataclass(frozen=True)
class StoredDay:
    """A profiled day as the store keeps it: its profile and its within-day block statistics
    (column -> [chi-square, degrees of freedom], `calibration.DayBlocks`)."""

    partition: str
    profile: DatasetProfile
    within_day: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, partition: str, payload: Mapping[str, Any]) -> StoredDay:
        return cls(
            partition,
            DatasetProfile.from_dict(payload["profile"]),
            dict(payload.get("within_day", {})),
        )


def _window(today: StoredDay, history: Mapping[str, StoredDay], days: int) -> DatasetProfile | None:
    """Today's profile merged with the `days - 1` days before it, or None when one of them is
    missing or was profiled on other bins or columns (another reference or config)."""
    end = date.fromisoformat(today.partition)
    parts = [today.profile]
    for k in range(1, days):
        prev = history.get((end - timedelta(days=k)).isoformat())
        if prev is None:
            return None
        parts.append(prev.profile)
    try:
        return DatasetProfile.merge_all(parts)
    except ValueError:
        return None


def drift_for_day(
    model: ModelConfig,
    partition: str,
    reference: DatasetProfile,
    current: DatasetProfile | StoredDay,
    *,
    calibration: ReferenceCalibration | None = None,
    history: Sequence[StoredDay] = (),
    metric_history: pd.DataFrame | None = None,
) -> DriftResult:
    """Drift of a day's profile against the reference, with findings and metric history rows.

    Each window of `thresholds.windows` (the day alone, then the trailing 3 and 7 days by
    default) is tested when all its days are profiled on the reference's bins; every column's
    tests use its design effect at the window's size (`calibration` of the reference, and the
    within-day statistics of the last seven days in `history`). `fdr_alpha` is split evenly
    over the (window, family) pairs tested plus the null-rate family, so it bounds the chance
    of any drift finding on a model-day without change.

    `metric_history` (the store's drift_report rows of the days before, `daily_history`) adds
    the lasting level shift of the drift share (`signals.daily_shifts`) the day is in.

    A config whose features differ from the reference's is refused (`ConfigError`, see
    `require_reference_columns`), never judged on the columns the two happen to share.
    """
    require_reference_columns(model, reference)
    today = current if isinstance(current, StoredDay) else StoredDay(partition, current)
    cols = profiled_columns(model)
    present = set(reference.columns) & set(today.profile.columns)
    features = [f for f in cols.features if f in present]
    preds = [p for p in cols.predictions if p in present]
    th = model.thresholds
    by_day = {d.partition: d for d in history if d.partition < partition}
    end = date.fromisoformat(partition)
    recent = [today.within_day] + [
        by_day[k].within_day
        for k in ((end - timedelta(days=i)).isoformat() for i in range(1, RECENT_DAYS))
        if k in by_day
    ]
    windows = [(w, p) for w in th.windows if (p := _window(today, by_day, w))]
    families = len(windows) * (1 + bool(preds)) + 1
    alpha = th.fdr_alpha / families
    reports = []
    for w, pooled in windows:
        deffs, sources = {}, {}
        for c in [*features, *preds]:
            deffs[c], sources[c] = design_effect(c, pooled.columns[c].count, calibration, recent)
        rep = compare_profiles(
            reference,
            pooled,
            th,
            features=features,
            prediction_columns=preds,
            design_effects=deffs,
            alpha=alpha,
            window_days=w,
        )
        for cd in [*rep.features, *rep.predictions]:
            cd.evidence["design_effect_reference"] = sources[cd.column]["reference"]
            cd.evidence["design_effect_within_day"] = sources[cd.column]["within_day"]
        reports.append(rep)
    report = combine_windows(reports, th)
    findings = report_findings(report, tenant=model.tenant, model=model.name, partition=partition)
    metrics: dict[tuple[str, str], float] = {
        ("drift_share", ""): report.drift_share,
        ("n_drifted", ""): float(report.n_drifted),
        ("n_features", ""): float(report.n_features),
    }
    for cd in [*reports[0].features, *reports[0].predictions]:
        metrics[(f"drift_{cd.method}", cd.column)] = float(cd.statistic)
        metrics[("design_effect", cd.column)] = float(cd.design_effect)
        if cd.p_value is not None:
            metrics[("p_value", cd.column)] = float(cd.p_value)
    shifts = (
        daily_shifts(model, partition, metric_history, asset=Asset.DRIFT_REPORT, today=metrics)
        if metric_history is not None
        else []
    )
    findings += shift_findings(model, partition, shifts)
    return DriftResult(report, findings, metrics, shifts)


_METHOD_NAMES = {
    "ks": "KS",
    "wasserstein": "normed Wasserstein",
    "psi": "PSI",
    "jensenshannon": "Jensen-Shannon",
    "chisquare": "chi-square",
}


_TEST_NAMES = {
    "ks": "KS",
    "ks+rank": "KS/rank",
    "chisquare": "chi-square",
    "chisquare+share": "chi-square/share",
}


def _column_finding(c: ColumnDrift, signal: Signal, base: dict[str, str]) -> Finding:
    name = _METHOD_NAMES.get(c.method, c.method)
    level = c.critical_threshold if c.severity == "critical" else c.threshold
    sig = c.evidence.get("significance_test", "")
    span = "today" if c.window_days == 1 else f"last {c.window_days} days"
    why = (
        f"{name} {fmt_number(c.statistic)} >= {fmt_number(level)}, "
        f"{_TEST_NAMES.get(sig, sig)} q={fmt_number(c.q_value)} < {fmt_number(c.alpha)} "
        f"on {c.n_current:,} rows {span} (design effect {c.design_effect:.2g}: "
        f"{c.n_effective:,.0f} effective)"
    )
    evidence = {
        "method": c.method,
        "statistic": c.statistic,
        "threshold": c.threshold,
        "critical_threshold": c.critical_threshold,
        "p_value": c.p_value,
        "q_value": c.q_value,
        "alpha": c.alpha,
        "window_days": c.window_days,
        "n_reference": c.n_reference,
        "n_current": c.n_current,
        **c.evidence,
    }
    return Finding(
        **base,
        signal=signal.value,
        severity=Severity(c.severity),
        value=float(c.value),
        threshold=float(level),
        column=c.column,
        message=f"{c.role} '{c.column}' drifted: {why}",
        evidence=evidence,
    )


def report_findings(
    report: DriftReport, *, tenant: str, model: str, partition: str, asset: str = Asset.DRIFT_REPORT
) -> list[Finding]:
    """One finding per problem: drifted feature or prediction column, dataset drift, null-rate
    increase, unseen categories. Each carries the value, the threshold it crossed (the
    critical one when critical), a message and the evidence behind it."""
    base = dict(tenant=tenant, model=model, partition=partition, asset=asset)
    out = [_column_finding(c, Signal.FEATURE_DRIFT, base) for c in report.features if c.drifted]
    out += [
        _column_finding(c, Signal.PREDICTION_DRIFT, base) for c in report.predictions if c.drifted
    ]
    if report.dataset_drift_severity != "none":
        warn, crit = report.drift_share_thresholds
        level = crit if report.dataset_drift_severity == "critical" else warn
        drifted = [c.column for c in report.features if c.drifted]
        out.append(
            Finding(
                **base,
                signal=Signal.DATASET_DRIFT.value,
                severity=Severity(report.dataset_drift_severity),
                value=report.drift_share,
                threshold=level,
                message=f"{report.n_drifted} of {report.n_features} features drifted "
                f"({report.drift_share:.0%} >= {level:.0%}): {', '.join(drifted)}",
                evidence={
                    "n_features": report.n_features,
                    "n_drifted": report.n_drifted,
                    "drift_share": report.drift_share,
                    "threshold": warn,
                    "critical_threshold": crit,
                    "drifted_features": drifted,
                    "fdr_alpha": report.fdr_alpha,
                },
            )
        )
    for r in report.null_rates:
        if r.drifted:
            level = r.critical_threshold if r.severity == "critical" else r.threshold
            out.append(
                Finding(
                    **base,
                    signal=Signal.NULL_RATE_DRIFT.value,
                    severity=Severity(r.severity),
                    value=r.increase,
                    threshold=level,
                    column=r.column,
                    message=f"{r.role} '{r.column}' missing share rose from "
                    f"{r.reference_rate:.1%} to {r.current_rate:.1%} "
                    f"(+{r.increase:.1%} >= {level:.1%}, q={fmt_number(r.q_value)}, "
                    f"design effect {r.design_effect:.2g})",
                    evidence=asdict(r),
                )
            )
    for u in report.unseen:
        if u.drifted:
            level = u.critical_threshold if u.severity == "critical" else u.threshold
            shown = ", ".join(f"{v!r} ({n})" for v, n in u.top[:5])
            out.append(
                Finding(
                    **base,
                    signal=Signal.UNSEEN_CATEGORY.value,
                    severity=Severity(u.severity),
                    value=u.share,
                    threshold=level,
                    column=u.column,
                    message=f"{u.role} '{u.column}': {u.share:.1%} of values are categories the "
                    f"reference never had (>= {level:.1%}): {shown}",
                    evidence=asdict(u),
                )
            )
    return out


def drift_for_stored_day(
    store: MonitoringStore,
    model: ModelConfig,
    day: str,
    reference_payload: Mapping[str, Any],
    day_payload: Mapping[str, Any],
) -> tuple[DriftResult, DatasetProfile, DatasetProfile]:
    """`drift_for_day` on what the store holds: the reference's and the day's stored profiles
    (as `load_profile` returns them), the days before for the windows and the within-day
    variance, and the drift share's history. Returns the result with the two profiles."""
    ref = DatasetProfile.from_dict(reference_payload["profile"])
    today = StoredDay.from_payload(day, dict(day_payload))
    first = date.fromisoformat(day) - timedelta(days=max(model.thresholds.windows + [RECENT_DAYS]))
    history = [
        StoredDay.from_payload(p, payload)
        for p, payload in store.load_profiles(
            model.tenant, model.name, "daily", start=first, end=date.fromisoformat(day)
        ).items()
        if p < day
    ]
    result = drift_for_day(
        model,
        day,
        ref,
        today,
        calibration=ReferenceCalibration.from_dict(reference_payload.get("calibration")),
        history=history,
        metric_history=daily_history(store, model, day, Asset.DRIFT_REPORT),
    )
    return result, ref, today.profile
