"""Drift per segment value: each value of the model's `segments` (`signals.profile.segments`)
tested against its own rows of the reference, so a drift confined to one segment (new
sign-ups, one region) is a finding of its own while the whole model's drift stays quiet.

The same rule as the whole model's (`signals.drift.compare`), per (segment value, feature):
the calibrated significance test (KS and the rank test, or chi-square and the share test) on
n / deff effective rows, then the effect-size gate (W1/std, Jensen-Shannon, PSI at
`thresholds`). The design effect of a (value, column) at the value's n rows is the largest of
1, the value's own reference blocks at n (`SegmentReference.calibration`) and the model's
recent within-day design effect (measured on the whole day's 10-minute blocks: rows of one
group share their segment value, so the group's correlation is the same inside the segment,
and fewer rows per block only make the whole day's estimate conservative for a segment).

False-discovery control: one Benjamini-Hochberg family per model-day and window over every
tested (segment value, feature), at `segment_drift.fdr_alpha` (default: half of
`thresholds.fdr_alpha`) split evenly over the windows tested, so the chance of any
segment_drift finding on a model-day without change is bounded by it. It is a family of its
own, beside the whole model's (whose budget `drift_for_day` splits over its own families): on
an unchanged day the chance of any drift finding of either kind is at most the sum of the two
levels. Half, because small segment values pass the effect-size minimum by chance far more
often than whole days do, so this family relies on its level more than the whole model's.
Measured (`benchmarks/bench_segments.py`): 0.7-1.0% of unchanged model-days, the same days at
either level: their p-values come from the tails of the mean and share tests' normal
approximations on a few hundred rows (3x nominal at p < 1e-4), which `min_rows` bounds.

A value with fewer than `segment_drift.min_rows` rows that day (or none in the reference) is
`insufficient`: not tested, and not in the family.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.errors import ConfigError
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal
from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals.drift.calibration import RECENT_DAYS, design_effect
from aiops_pipelines.signals.drift.compare import _RANK, ColumnDrift, _assess, _decide
from aiops_pipelines.signals.drift.day import _METHOD_NAMES, _TEST_NAMES
from aiops_pipelines.signals.profile.profiles import DatasetProfile, ProfileSpec
from aiops_pipelines.signals.profile.segments import (
    SegmentProfiles,
    SegmentReference,
    segment_label,
)

Status = Literal["tested", "insufficient"]
_MLFLOW_UNSAFE = re.compile(r"[^\w\-. :/]")


@dataclass
class SegmentVerdict:
    """One segment value's drift: its features' verdicts (the most severe window each)."""

    segment: str
    value: str
    n_reference: int
    n_current: int
    status: Status
    columns: list[ColumnDrift] = field(default_factory=list)

    @property
    def label(self) -> str:
        return segment_label(self.segment, self.value)

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def severity(self) -> str:
        return max((c.severity for c in self.columns), key=_RANK.__getitem__, default="none")


@dataclass
class SegmentDriftResult:
    """A model-day's segment drift: every segment value's verdict, the findings (one per
    drifted value) and the metric history rows."""

    verdicts: list[SegmentVerdict]
    findings: list[Finding]
    metrics: dict[tuple[str, str], float]
    alpha: float = math.nan
    """The family's level per window (`fdr_alpha` / windows tested)."""
    n_tests: int = 0
    """(segment value, feature, window) tests in the day's families."""
    enabled: bool = True

    @property
    def drifted(self) -> list[SegmentVerdict]:
        return [v for v in self.verdicts if v.drifted]

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        """The drift share of every tested value (`segment_drift_share.region:north`: MLflow
        takes letters, digits and `_-. :/` in a name, a segment value may hold anything)."""
        if not self.enabled:
            return {}
        return {
            f"segment_drift_share.{_MLFLOW_UNSAFE.sub('_', f'{v.segment}:{v.value}')}": (
                v.drift_share
            )
            for v in self.verdicts
            if v.status == "tested"
        } | {"segments_drifted": float(len(self.drifted))}

    def summary(self) -> dict[str, Any]:
        """The day's numbers for the asset's metadata (nothing when segment drift is off)."""
        if not self.enabled:
            return {}
        return {
            "segments_drifted": ", ".join(v.label for v in self.drifted) or "none",
            "segments_insufficient": ", ".join(
                v.label for v in self.verdicts if v.status == "insufficient"
            )
            or "none",
            "segment_tests": self.n_tests,
        }

    def checks(self) -> list[Check]:
        """`segment_drift`: no segment value drifted (an error when one is critical)."""
        critical = any(v.severity == "critical" for v in self.drifted)
        return [
            Check(
                "segment_drift",
                not self.drifted,
                "error" if critical else "warn",
                {
                    "enabled": self.enabled,
                    "drifted": ", ".join(v.label for v in self.drifted),
                    "insufficient": ", ".join(
                        v.label for v in self.verdicts if v.status == "insufficient"
                    ),
                    "n_tests": self.n_tests,
                    "alpha": self.alpha if math.isfinite(self.alpha) else 0.0,
                },
            )
        ]


DISABLED = SegmentDriftResult([], [], {}, enabled=False)
"""The result of a model without `segment_drift.enabled`."""


def _pooled(
    today: SegmentProfiles,
    by_day: Mapping[str, SegmentProfiles],
    partition: str,
    days: int,
    seg: str,
    value: str,
) -> DatasetProfile | None:
    """The value's profile over today and the `days - 1` days before, or None when a day is
    missing or was profiled on another plan or bins."""
    end = date.fromisoformat(partition)
    parts = [today.profiles[seg][value]]
    for k in range(1, days):
        prev = by_day.get((end - timedelta(days=k)).isoformat())
        if prev is None or prev.plan != today.plan or value not in prev.profiles.get(seg, {}):
            return None
        parts.append(prev.profiles[seg][value])
    try:
        return DatasetProfile.merge_all(parts)
    except ValueError:
        return None


def segment_drift_for_day(
    model: ModelConfig,
    partition: str,
    reference: SegmentReference,
    today: SegmentProfiles,
    *,
    recent: Sequence[Mapping[str, Sequence[float]]] = (),
    history: Mapping[str, SegmentProfiles] | None = None,
) -> SegmentDriftResult:
    """Drift of every segment value's profile of the day against its reference profile.

    `recent`: the within-day block statistics of the day and the days before (as `drift_for_day`
    uses them); `history`: the segment profiles of the days before, by partition, for the
    trailing windows of `thresholds.windows`. Raises `ConfigError` when the day was profiled
    on another plan (segments, top_k or reference) than the stored reference's.
    """
    th, pol = model.thresholds, model.segment_drift
    ref = reference.profiles
    if ref.plan != today.plan:
        raise ConfigError(
            f"the day's segment profiles ({today.plan.to_dict()}) are not on the stored "
            f"reference's segment plan ({ref.plan.to_dict()}): re-materialize feature_profile "
            "for this day, or rebuild the reference with `aiops run ... --refresh-reference` "
            "after changing `segments` or `segment_drift.top_k`",
            where=f"model '{model.key}', partition {partition}",
            field="segment_drift",
        )
    by_day = dict(history or {})
    verdicts: list[SegmentVerdict] = []
    tested: list[tuple[SegmentVerdict, DatasetProfile]] = []
    for seg in ref.plan.values:
        for value in ref.plan.slots(seg):
            rp, cp = ref.profiles[seg][value], today.profiles[seg][value]
            ok = cp.n_rows >= pol.min_rows and rp.n_rows >= pol.min_rows
            v = SegmentVerdict(seg, value, rp.n_rows, cp.n_rows, "tested" if ok else "insufficient")
            verdicts.append(v)
            if ok:
                tested.append((v, rp))
    windows = [
        (w, pooled)
        for w in th.windows
        if (
            pooled := {
                (v.segment, v.value): p
                for v, _ in tested
                if (p := _pooled(today, by_day, partition, w, v.segment, v.value)) is not None
            }
        )
        and len(pooled) == len(tested)
    ]
    level = pol.level(th)
    alpha = level / max(len(windows), 1)
    per_window: list[dict[tuple[str, str], list[ColumnDrift]]] = []
    n_tests = 0
    for w, pooled in windows:
        family: dict[tuple[str, str], list[ColumnDrift]] = {}
        for v, rp in tested:
            cur = pooled[(v.segment, v.value)]
            calibration = reference.calibration.get(v.segment, {}).get(v.value)
            cols = []
            for c in rp.columns:
                deff, sources = design_effect(c, cur.columns[c].count, calibration, recent)
                cd = _assess(rp.columns[c], cur.columns[c], "feature", th, deff)
                cd.window_days = w
                cd.evidence["design_effect_reference"] = sources["reference"]
                cd.evidence["design_effect_within_day"] = sources["within_day"]
                cols.append(cd)
            family[(v.segment, v.value)] = cols
        every = [cd for cols in family.values() for cd in cols]
        _decide(every, alpha)
        n_tests += sum(cd.p_value is not None for cd in every)
        per_window.append(family)
    for v, _ in tested:
        key = (v.segment, v.value)
        if not per_window:
            continue
        best = list(per_window[0][key])
        for family in per_window[1:]:
            for i, other in enumerate(family[key]):
                if _RANK[other.severity] > _RANK[best[i].severity]:
                    best[i] = other
        v.columns = best
    findings = [
        _finding(model, partition, v, alpha=alpha, fdr_alpha=level, n_tests=n_tests)
        for v in verdicts
        if v.drifted
    ]
    metrics: dict[tuple[str, str], float] = {("segments_drifted", ""): float(len(findings))}
    for v in verdicts:
        metrics[("segment_rows", v.label)] = float(v.n_current)
        if v.status == "tested" and v.columns:
            metrics[("segment_drift_share", v.label)] = v.drift_share
    return SegmentDriftResult(verdicts, findings, metrics, alpha, n_tests)


def _finding(
    model: ModelConfig,
    partition: str,
    v: SegmentVerdict,
    *,
    alpha: float,
    fdr_alpha: float,
    n_tests: int,
) -> Finding:
    drifted = v.drifted
    worst = max(drifted, key=lambda c: (_RANK[c.severity], c.statistic / c.threshold))
    level = worst.critical_threshold if worst.severity == "critical" else worst.threshold

    def why(c: ColumnDrift) -> str:
        sig = c.evidence.get("significance_test", "")
        span = "today" if c.window_days == 1 else f"last {c.window_days} days"
        return (
            f"{c.column} ({_METHOD_NAMES.get(c.method, c.method)} {fmt_number(c.statistic)} >= "
            f"{fmt_number(c.critical_threshold if c.severity == 'critical' else c.threshold)}, "
            f"{_TEST_NAMES.get(sig, sig)} q={fmt_number(c.q_value)} < {fmt_number(c.alpha)} on "
            f"{c.n_current:,} rows {span}, design effect {c.design_effect:.2g})"
        )

    return Finding(
        tenant=model.tenant,
        model=model.name,
        partition=partition,
        asset=Asset.DRIFT_REPORT.value,
        signal=Signal.SEGMENT_DRIFT.value,
        severity=Severity(v.severity),
        value=float(worst.statistic),
        threshold=float(level),
        column=v.label,
        message=f"segment {v.label} ({v.n_current:,} rows today, {v.n_reference:,} in the "
        f"reference): {len(drifted)} of {len(v.columns)} features drifted: "
        + "; ".join(why(c) for c in drifted),
        evidence={
            "segment": v.segment,
            "value": v.value,
            "n_reference": v.n_reference,
            "n_current": v.n_current,
            "n_features": len(v.columns),
            "n_drifted": len(drifted),
            "drift_share": v.drift_share,
            "alpha": alpha,
            "fdr_alpha": fdr_alpha,
            "family_tests": n_tests,
            "features": [
                {
                    "column": c.column,
                    "method": c.method,
                    "statistic": c.statistic,
                    "threshold": c.threshold,
                    "critical_threshold": c.critical_threshold,
                    "severity": c.severity,
                    "p_value": c.p_value,
                    "q_value": c.q_value,
                    "window_days": c.window_days,
                    "n_reference": c.n_reference,
                    "n_current": c.n_current,
                    **c.evidence,
                }
                for c in drifted
            ],
        },
    )


def _segments_of(payload: Mapping[str, Any]) -> SegmentProfiles | None:
    """A stored day's segment profiles, on the spec of its own whole profile (a day profiled
    on another reference's bins then fails to merge with today's, as in `drift.day`)."""
    d = payload.get("segments")
    return (
        SegmentProfiles.from_dict(d, ProfileSpec.from_dict(payload["profile"]["spec"]))
        if d
        else None
    )


def segment_drift_for_stored_day(
    store: MonitoringStore,
    model: ModelConfig,
    day: str,
    reference_payload: Mapping[str, Any],
    day_payload: Mapping[str, Any],
) -> SegmentDriftResult:
    """`segment_drift_for_day` on what the store holds (the reference's and the day's stored
    profiles, the days before for the windows and the within-day design effects); `DISABLED`
    for a model without `segment_drift.enabled`. Raises `ConfigError` when the stored reference
    or day was profiled without segments."""
    if not model.segment_drift.enabled:
        return DISABLED
    where = f"model '{model.key}', partition {day}"
    spec = ProfileSpec.from_dict(reference_payload["profile"]["spec"])
    if not reference_payload.get("segments"):
        raise ConfigError(
            "segment_drift is enabled but the stored reference profile has no segment "
            "profiles: rebuild the reference with `aiops run --config FILE --start DAY --end "
            f"DAY --model {model.key} --refresh-reference` (or materialize reference_profile "
            f"for partition '{model.key}')",
            where=where,
            field="segment_drift.enabled",
        )
    reference = SegmentReference.from_dict(reference_payload["segments"], spec)
    today = _segments_of(day_payload)
    if today is None:
        raise ConfigError(
            "segment_drift is enabled but this day's stored feature profile has no segment "
            "profiles: re-materialize feature_profile for this partition",
            where=where,
            field="segment_drift.enabled",
        )
    first = date.fromisoformat(day) - timedelta(days=max(model.thresholds.windows + [RECENT_DAYS]))
    stored = {
        p: payload
        for p, payload in store.load_profiles(
            model.tenant, model.name, "daily", start=first, end=date.fromisoformat(day)
        ).items()
        if p < day
    }
    end = date.fromisoformat(day)
    recent = [dict(day_payload.get("within_day", {}))] + [
        dict(stored[k].get("within_day", {}))
        for k in ((end - timedelta(days=i)).isoformat() for i in range(1, RECENT_DAYS))
        if k in stored
    ]
    history = {}
    for p, payload in stored.items():
        try:
            seg = _segments_of(payload)
        except (KeyError, ValueError):  # a day of an older format: no window through it
            seg = None
        if seg is not None:
            history[p] = seg
    return segment_drift_for_day(model, day, reference, today, recent=recent, history=history)
