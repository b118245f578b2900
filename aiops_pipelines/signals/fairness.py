"""Group fairness across a sensitive attribute: the entry point of the signal.

`fairness_for_day` compares every group (a value of `fairness.attribute`) with the privileged
group on one day: the selection rate (share of predictions of the positive class) on all of the
day's predictions, which needs no label (demographic parity difference, disparate impact
ratio), and the true and false positive rates on the rows labelled so far (equal opportunity
and equalized odds differences). It runs inside performance_report on the day's predictions
joined with the outcomes observed so far, so a day is re-judged, like its performance, each
time more of its labels arrive.

A metric's day value is its worst group's, as fairlearn reports it on two groups: differences
are absolute (either direction is unfair), the disparate impact ratio is the lower rate over
the higher (0.8 flags 0.8 and 1.25 alike). With more than two groups every group is compared
with the privileged one, not with each other (fairlearn's "between_groups" max - min).

A finding needs more than a point value past the threshold: the whole confidence interval at
the day's sample sizes must be past it (Newcombe's hybrid score interval for a difference of
proportions, Katz's log interval for a ratio), each interval one-sided at `alpha` over the
number of (metric, group) tests that day (Bonferroni; equalized odds counts its two rates).
So on a day whose true disparities are all within the warning thresholds, the chance of any
finding is at most `alpha`, however small the day; and a group with too few rows or labels
for a rate is "insufficient", never a pass or a fail. Rows that arrive in runs (one
customer's repeated requests) carry less information than their number: every count is
divided by the day's design effect (`DayCells.design_effect`), as drift's tests are.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy.stats import norm

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import FairnessMetric, FairnessPolicy, ModelConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import Asset, Finding, Level, Severity, Signal, jsonable
from aiops_pipelines.core.values import category_label, fmt_number
from aiops_pipelines.io.sources import parse_timestamps
from aiops_pipelines.signals.drift.calibration import DAY_BLOCK_MINUTES, MIN_DAY_DOF
from aiops_pipelines.signals.performance.metrics import class_labels, require_columns

#: Where a rate of a group lives in `Group` (and which counts are behind it).
_RATES: dict[str, tuple[str, str]] = {
    "selection_rate": ("selected", "n"),
    "true_positive_rate": ("true_positives", "positives"),
    "false_positive_rate": ("false_positives", "negatives"),
}


def positive_class(model: ModelConfig) -> str:
    """The class whose rate is compared: `fairness.positive_class`, else the binary model's
    positive class (`classes[1]`, else "1")."""
    f = model.fairness
    if f is not None and f.positive_class is not None:
        return f.positive_class
    return category_label(model.classes[1]) if model.classes else "1"


# --- intervals ---------------------------------------------------------------------------


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of the proportion x / n (two-sided, z standard errors)."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = x / n, z * z
    center = (x + z2 / 2) / (n + z2)
    half = z * math.sqrt(p * (1 - p) * n + z2 / 4) / (n + z2)
    return max(0.0, center - half), min(1.0, center + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) of p1 - p2, from the two Wilson
    intervals: good coverage at small n and rates near 0 or 1, where the Wald interval fails."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def katz(x1: int, n1: int, x2: int, n2: int, z: float) -> tuple[float, float]:
    """Katz's log interval of the ratio (x1 / n1) / (x2 / n2). A zero count takes 0.5 more
    success and failure (Haldane-Anscombe) in the interval only, where the log is undefined."""
    if min(x1, x2) == 0:
        x1, n1, x2, n2 = x1 + 0.5, n1 + 1, x2 + 0.5, n2 + 1  # type: ignore[assignment]
    log_r = math.log((x1 / n1) / (x2 / n2))
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    return math.exp(log_r - z * se), math.exp(log_r + z * se)


def _abs_interval(lo: float, hi: float) -> tuple[float, float]:
    """The interval of |d| from one of d."""
    if lo > 0:
        return lo, hi
    if hi < 0:
        return -hi, -lo
    return 0.0, max(-lo, hi)


def _symmetric_ratio_interval(lo: float, hi: float) -> tuple[float, float]:
    """The interval of min(r, 1 / r) (the lower rate over the higher) from one of r."""
    if hi < 1:
        return lo, hi
    if lo > 1:
        return 1 / hi, 1 / lo
    return min(lo, 1 / hi), 1.0


# --- the day -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One value of the attribute on the day: the counts behind each of its rates, and the
    rates as fairlearn's MetricFrame computes them (NaN where a rate has no rows)."""

    n: int
    selected: int
    n_labelled: int
    positives: int
    true_positives: int
    negatives: int
    false_positives: int
    selection_rate: float
    true_positive_rate: float
    false_positive_rate: float

    @classmethod
    def from_counts(
        cls,
        n: int,
        selected: int,
        positives: int,
        true_positives: int,
        negatives: int,
        false_positives: int,
    ) -> Group:
        """A group from its counts alone, its rates their ratios (what fairlearn computes from
        the rows; NaN without rows)."""

        def rate(x: int, of: int) -> float:
            return x / of if of else math.nan

        return cls(
            n,
            selected,
            positives + negatives,
            positives,
            true_positives,
            negatives,
            false_positives,
            rate(selected, n),
            rate(true_positives, positives),
            rate(false_positives, negatives),
        )

    @property
    def coverage(self) -> float:
        return self.n_labelled / self.n if self.n else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "selection_rate": self.selection_rate,
            "n_labelled": self.n_labelled,
            "coverage": self.coverage,
            "positives": self.positives,
            "true_positive_rate": self.true_positive_rate,
            "negatives": self.negatives,
            "false_positive_rate": self.false_positive_rate,
        }


@dataclass(frozen=True)
class Comparison:
    """One group against the privileged group on one metric: the point value and its
    interval (of |difference|, or of the lower rate over the higher), and the signed rate
    differences behind it (group - privileged)."""

    group: str
    value: float
    low: float
    high: float
    differences: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            **self.differences,
        }


@dataclass
class FairnessVerdict:
    """One metric's verdict on the day, with its evidence."""

    metric: FairnessMetric
    level: Level
    value: float
    """The worst group's point value (NaN when insufficient)."""
    warning: float
    critical: float
    confidence: float
    """Two-sided level of each interval (its one tail is alpha over the day's tests)."""
    comparisons: list[Comparison] = field(default_factory=list)
    insufficient_groups: list[str] = field(default_factory=list)
    reason: str = ""

    def past(self, c: Comparison, threshold: float) -> bool:
        """The whole interval of `c` is on the unfair side of `threshold`."""
        return c.high < threshold if self.metric.is_ratio else c.low > threshold

    @property
    def decisive(self) -> Comparison | None:
        """The comparison the verdict is about: the one most surely unfair (by its interval's
        bound), else the worst point value."""
        if not self.comparisons:
            return None
        if self.metric.is_ratio:
            bad = [c for c in self.comparisons if self.past(c, self.warning)]
            return min(bad or self.comparisons, key=lambda c: c.high if bad else c.value)
        bad = [c for c in self.comparisons if self.past(c, self.warning)]
        return max(bad or self.comparisons, key=lambda c: c.low if bad else c.value)


@dataclass
class FairnessDay:
    """A day's fairness across one attribute: the groups, one verdict per metric, findings."""

    partition: str
    attribute: str
    privileged: str
    positive_class: str
    groups: dict[str, Group]
    n_missing: int
    """Rows without a value of the attribute: in no group."""
    design_effect: DesignEffect
    """The day's within-day design effect: every rate's counts are divided by it."""
    verdicts: dict[str, FairnessVerdict]
    findings: list[Finding]

    @property
    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows of the store's metric history: each metric's day value (column: the
        attribute), and each group's rates and label coverage (column `attribute=value`)."""
        out: dict[tuple[str, str], float] = {
            (name, self.attribute): v.value
            for name, v in self.verdicts.items()
            if math.isfinite(v.value)
        }
        for g, grp in self.groups.items():
            col = f"{self.attribute}={g}"
            for rate in (*_RATES, "coverage"):
                value = float(getattr(grp, rate))
                if math.isfinite(value):
                    out[(rate, col)] = value
        return out

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        """Each metric's day value, by its name."""
        return {n: v.value for n, v in self.verdicts.items() if math.isfinite(v.value)}

    def summary(self) -> dict[str, Any]:
        """The day in numbers for the asset's metadata: each metric's value and level."""
        out: dict[str, Any] = {"fairness_attribute": self.attribute}
        for name, v in self.verdicts.items():
            out[f"{name}_level"] = v.level
            if math.isfinite(v.value):
                out[name] = v.value
        return out

    def check(self) -> Check:
        """Fails (an error when critical) while a metric is past its threshold with its
        interval; insufficient metrics pass (no verdict is not a failure)."""
        worst = [v for v in self.verdicts.values() if v.level in ("warning", "critical")]
        critical = any(v.level == "critical" for v in worst)
        return Check(
            "fairness",
            not worst,
            "error" if critical else "warn",
            {
                "attribute": self.attribute,
                "privileged": self.privileged,
                **{f"{n}_level": v.level for n, v in self.verdicts.items()},
                **{n: v.value for n, v in self.verdicts.items() if math.isfinite(v.value)},
            },
            "; ".join(f.message for f in self.findings),
        )


#: The cells each row of a day falls in, per group and 10-minute block: labelled rows by
#: (label, prediction), unlabelled ones by prediction.
CELLS = ("tp", "fn", "fp", "tn", "selected_unlabelled", "unselected_unlabelled")
_TP, _FN, _FP, _TN, _SU, _UU = range(len(CELLS))
#: Per rate: the cells of its "yes" rows and of its "no" rows.
_RATE_CELLS: dict[str, tuple[list[int], list[int]]] = {
    "selection_rate": ([_TP, _FP, _SU], [_FN, _TN, _UU]),
    "true_positive_rate": ([_TP], [_FN]),
    "false_positive_rate": ([_FP], [_TN]),
}
_PER_HOUR = 60 // DAY_BLOCK_MINUTES
N_BLOCKS = 24 * _PER_HOUR
"""10-minute blocks of a UTC day, as the drift's within-day design effect cuts it."""


@dataclass(frozen=True)
class DayCells:
    """A day's rows counted per group, 10-minute block and cell (`CELLS`): everything the
    day's rates, intervals and design effects are computed from."""

    names: list[str]
    counts: np.ndarray
    """int64 [group, block, cell]."""
    n_missing: int
    """Rows without a value of the attribute: in no group."""

    def totals(self) -> dict[str, dict[str, int]]:
        t = self.counts.sum(axis=1)
        return {
            name: {
                "n": int(t[i].sum()),
                "selected": int(t[i, [_TP, _FP, _SU]].sum()),
                "positives": int(t[i, [_TP, _FN]].sum()),
                "true_positives": int(t[i, _TP]),
                "negatives": int(t[i, [_FP, _TN]].sum()),
                "false_positives": int(t[i, _FP]),
            }
            for i, name in enumerate(self.names)
        }

    def groups(self) -> dict[str, Group]:
        """The groups from their counts alone (rates: the ratios)."""
        return {name: Group.from_counts(**c) for name, c in self.totals().items()}

    def design_effect(self) -> DesignEffect:
        """How much more the day's rates vary between its 10-minute blocks than independent
        rows would make them vary: Pearson's chi-square of each rate's blocks x {yes, no}
        table over its degrees of freedom (1 in expectation for independent rows; ~m for
        runs of m identical rows, such as one customer's repeated requests), as
        `signals.drift.calibration` measures it for drift. Compared within each (group,
        hour), so that a rate moving with the hour of day is no correlation; on a day too
        small for that, between the blocks of the whole day (more conservative).

        The correlation comes from how the rows arrive, which every rate of the same rows
        shares: the rates' statistics and degrees of freedom are pooled into one effect (a
        rate with few rows, such as the true positive rate of a small group, seldom has the
        degrees of freedom to measure its own). A day too small for either (fewer than
        `MIN_DAY_DOF` degrees of freedom) takes the most its blocks allow: every (group,
        block) one cluster of identical rows, sum(n_b^2) / sum(n_b), the design effect of
        clusters with an intra-class correlation of 1; about 1 for a small day of independent
        rows, whose blocks hold a row or two each."""
        tables = self._rate_tables()
        for width, method in ((_PER_HOUR, "within_hour"), (N_BLOCKS, "whole_day")):
            parts = [_homogeneity(counts, width) for counts in tables]
            chi2, dof = sum(c for c, _ in parts), sum(d for _, d in parts)
            if dof >= MIN_DAY_DOF:
                return DesignEffect(max(1.0, chi2 / dof), method, chi2, dof)
        rows = self.counts.sum(axis=2).astype(np.float64)
        bound = float((rows**2).sum() / rows.sum()) if rows.sum() else 1.0
        return DesignEffect(max(1.0, bound), "block_bound")

    def _rate_tables(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per rate, (yes, trials) counts [group, block]."""
        out = []
        for yes_cells, no_cells in _RATE_CELLS.values():
            yes = self.counts[:, :, yes_cells].sum(axis=2)
            out.append((yes, yes + self.counts[:, :, no_cells].sum(axis=2)))
        return out


def _homogeneity(counts: tuple[np.ndarray, np.ndarray], width: int) -> tuple[float, int]:
    """Chi-square of homogeneity of the blocks' shares within each run of `width` blocks of
    each group, summed, with its degrees of freedom (tables with fewer than two filled
    blocks, or a share of 0 or 1, hold no information and count nothing)."""
    yes, n = (c.reshape(c.shape[0], -1, width) for c in counts)
    share = yes.sum(axis=2, keepdims=True) / np.maximum(n.sum(axis=2, keepdims=True), 1)
    spread = share * (1 - share)
    filled = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(filled & (spread > 0), (yes - n * share) ** 2 / (n * spread), 0.0)
    usable = (spread[..., 0] > 0) & (filled.sum(axis=2) >= 2)
    dof = int(np.where(usable, filled.sum(axis=2) - 1, 0).sum())
    return float(terms.sum(axis=2)[usable].sum()), dof


@dataclass(frozen=True)
class DesignEffect:
    """The day's design effect (at least 1: rows never carry more than independent ones)
    and how it was found: "within_hour" or "whole_day" (chi-square over its degrees of
    freedom), or "block_bound" (a day too small to measure it)."""

    value: float
    method: str
    chi2: float = math.nan
    dof: int = 0


def day_cells(model: ModelConfig, frame: pd.DataFrame, partition: str) -> DayCells:
    """Count the day's rows per group, 10-minute block and cell (`DayCells`)."""
    f = model.fairness
    assert f is not None
    c = model.columns
    require_columns(
        frame,
        [f.attribute, c.prediction, c.label, c.timestamp],
        model,
        partition,
        "fairness: predictions",
    )
    positive = positive_class(model)
    values = class_labels(frame[f.attribute])
    has_value = pd.notna(values)
    codes = np.full(len(frame), -1, dtype=np.int64)
    found, uniques = pd.factorize(values[has_value], sort=True)
    codes[has_value] = found
    names = [str(u) for u in uniques]
    predicted = class_labels(frame[c.prediction]) == positive
    labels = class_labels(frame[c.label])
    labelled = pd.notna(labels)
    actual = labels == positive
    cell = np.select(
        [
            labelled & actual & predicted,
            labelled & actual,
            labelled & predicted,
            labelled,
            predicted,
        ],
        [_TP, _FN, _FP, _TN, _SU],
        _UU,
    )
    try:
        ts = parse_timestamps(frame[c.timestamp], column=c.timestamp)
    except DataError as exc:
        raise exc.located(model=model.key, partition=partition) from None
    minutes = (ts.dt.hour * 60 + ts.dt.minute).to_numpy(dtype=np.int64)
    block = minutes // DAY_BLOCK_MINUTES
    keep = codes >= 0
    flat = (codes[keep] * N_BLOCKS + block[keep]) * len(CELLS) + cell[keep]
    counts = np.bincount(flat, minlength=len(names) * N_BLOCKS * len(CELLS))
    return DayCells(
        names, counts.reshape(len(names), N_BLOCKS, len(CELLS)), int((~has_value).sum())
    )


def _fairlearn_groups(cells: DayCells) -> dict[str, Group]:
    """The groups with each rate from fairlearn's MetricFrame (NaN without rows).

    fairlearn gets the day's contingency table (one row per group, label and prediction
    that occur, weighted by its count), not the rows: the same rates, as the counts are
    sufficient statistics, but in milliseconds where MetricFrame takes ~30 s for 1M rows
    (it splits each group's rows in Python)."""
    totals = cells.counts.sum(axis=1)  # [group, cell]
    names = np.asarray(cells.names, dtype=object)
    group, cell = np.nonzero(totals)
    weight = totals[group, cell]
    predicted = np.isin(cell, [_TP, _FP, _SU]).astype(np.int64)
    actual = np.isin(cell, [_TP, _FN]).astype(np.int64)
    lab = cell < _SU
    rates: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():  # a group with one class only: its other rate is 0/0
        warnings.simplefilter("ignore")
        sel = MetricFrame(
            metrics={"selection_rate": selection_rate},
            y_true=predicted,
            y_pred=predicted,
            sensitive_features=names[group],
            sample_params={"selection_rate": {"sample_weight": weight}},
        )
        rates["selection_rate"] = sel.by_group["selection_rate"].astype(float).to_dict()
        if lab.any():
            w = {"sample_weight": weight[lab]}
            by_group = MetricFrame(
                metrics={
                    "true_positive_rate": true_positive_rate,
                    "false_positive_rate": false_positive_rate,
                },
                y_true=actual[lab],
                y_pred=predicted[lab],
                sensitive_features=names[group[lab]],
                sample_params={"true_positive_rate": w, "false_positive_rate": w},
            ).by_group
            for r in ("true_positive_rate", "false_positive_rate"):
                rates[r] = by_group[r].astype(float).to_dict()
    out = {}
    for name, c in cells.totals().items():
        g = Group.from_counts(**c)
        # fairlearn's value where the rate has rows (without, scikit-learn says 0: unknown)
        fair = {
            r: rates.get(r, {}).get(name, math.nan) if math.isfinite(getattr(g, r)) else math.nan
            for r in _RATES
        }
        out[name] = replace(g, **fair)
    return out


def _enough(metric: FairnessMetric, g: Group, f: FairnessPolicy) -> bool:
    if metric is FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE:
        return g.positives >= f.min_group_labels
    if metric is FairnessMetric.EQUALIZED_ODDS_DIFFERENCE:
        return min(g.positives, g.negatives) >= f.min_group_labels
    return g.n >= f.min_group_size


def _effective(g: Group, rate: str, deff: float) -> tuple[float, float]:
    """The rate's (successes, trials) as independent rows: each divided by the design
    effect (Rao and Scott's correction for clustered samples)."""
    x, n = _RATES[rate]
    return getattr(g, x) / deff, getattr(g, n) / deff


def _difference(
    g: Group, p: Group, rate: str, z: float, deff: float
) -> tuple[float, tuple[float, float], float]:
    """|rate(g) - rate(p)| (fairlearn's rates), its interval, and the signed difference."""
    signed = getattr(g, rate) - getattr(p, rate)
    lo, hi = newcombe(*_effective(g, rate, deff), *_effective(p, rate, deff), z)
    return abs(signed), _abs_interval(lo, hi), signed


def _compare(
    metric: FairnessMetric, name: str, g: Group, p: Group, z: float, deff: float
) -> Comparison:
    if metric is FairnessMetric.DISPARATE_IMPACT_RATIO:
        r = g.selection_rate / p.selection_rate if p.selection_rate else math.inf
        low, high = sorted((g.selection_rate, p.selection_rate))
        value = low / high if high else math.nan  # fairlearn's min / max
        lo, hi = _symmetric_ratio_interval(
            *katz(*_effective(g, "selection_rate", deff), *_effective(p, "selection_rate", deff), z)
        )
        return Comparison(name, value, lo, hi, {"selection_rate_ratio": r})
    rates = (
        ["selection_rate"]
        if metric is FairnessMetric.DEMOGRAPHIC_PARITY_DIFFERENCE
        else ["true_positive_rate"]
        if metric is FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE
        else ["true_positive_rate", "false_positive_rate"]
    )
    parts = [_difference(g, p, rate, z, deff) for rate in rates]
    # equalized odds: the larger of the two differences, with Bonferroni-simultaneous
    # intervals (both counted in the day's tests), so the max's bounds are the max of bounds
    return Comparison(
        name,
        max(v for v, _, _ in parts),
        max(iv[0] for _, iv, _ in parts),
        max(iv[1] for _, iv, _ in parts),
        {f"{rate}_difference": s for rate, (_, _, s) in zip(rates, parts, strict=True)},
    )


def _level(v: FairnessVerdict) -> Level:
    if any(v.past(c, v.critical) for c in v.comparisons):
        return "critical"
    if any(v.past(c, v.warning) for c in v.comparisons):
        return "warning"
    return "ok"


def _tests(metric: FairnessMetric) -> int:
    """One-sided tests a compared group costs the metric (equalized odds: two rates)."""
    return 2 if metric is FairnessMetric.EQUALIZED_ODDS_DIFFERENCE else 1


def judge_groups(
    f: FairnessPolicy, groups: dict[str, Group], deff: float = 1.0
) -> dict[str, FairnessVerdict]:
    """Each configured metric's verdict on the day's groups: the groups with enough rows
    (or labels) compared with the privileged one, at one z for every (metric, group) test,
    the counts divided by the day's design effect (`deff`, 1: independent rows)."""
    privileged = groups.get(f.privileged)
    plan: dict[FairnessMetric, tuple[list[str], list[str], str]] = {}
    for metric in f.metrics:
        others = [g for g in groups if g != f.privileged]
        ok = [g for g in others if _enough(metric, groups[g], f)]
        short = [g for g in others if g not in ok]
        reason = ""
        if privileged is None or not _enough(metric, privileged, f):
            reason = f"privileged group {f.attribute}={f.privileged} has too few rows"
            short, ok = [*short, f.privileged], []
        elif not ok:
            reason = "no other group has enough rows" if others else "no other group"
        plan[metric] = (ok, short, reason)
    n_tests = sum(_tests(m) * len(ok) for m, (ok, _, _) in plan.items())
    one_tail = f.alpha / max(n_tests, 1)
    z = float(norm.isf(one_tail))
    out: dict[str, FairnessVerdict] = {}
    for metric, (ok, short, reason) in plan.items():
        warn, crit = f.threshold(metric)
        v = FairnessVerdict(metric, "insufficient", math.nan, warn, crit, 1 - 2 * one_tail)
        v.insufficient_groups, v.reason = short, reason
        if ok:
            assert privileged is not None
            v.comparisons = [_compare(metric, g, groups[g], privileged, z, deff) for g in ok]
            values = [c.value for c in v.comparisons if math.isfinite(c.value)]
            if values:
                v.value = min(values) if metric.is_ratio else max(values)
                v.level = _level(v)
            else:
                v.reason = "no positive prediction in any group: the ratio is undefined"
        out[str(metric)] = v
    return out


def _message(day: FairnessDay, v: FairnessVerdict, c: Comparison, threshold: float) -> str:
    attr, g, p = day.attribute, day.groups[c.group], day.groups[day.privileged]

    def pair(name: str, a: float, b: float) -> str:
        return f"{name} {fmt_number(a)} vs {fmt_number(b)}"

    if v.metric.needs_labels:
        parts = [
            pair("true positive rates", g.true_positive_rate, p.true_positive_rate),
            f"labelled positives {g.positives} vs {p.positives}",
        ]
        if v.metric is FairnessMetric.EQUALIZED_ODDS_DIFFERENCE:
            parts[1:1] = [
                pair("false positive rates", g.false_positive_rate, p.false_positive_rate)
            ]
            parts.append(f"negatives {g.negatives} vs {p.negatives}")
    else:
        parts = [pair("selection rates", g.selection_rate, p.selection_rate), f"n={g.n} vs {p.n}"]
    deff = day.design_effect.value
    if deff > 1:
        parts.append(f"design effect {deff:.2g}")
    side = "below" if v.metric.is_ratio else "above"
    return (
        f"{v.metric.value} {fmt_number(c.value)} for {attr}={c.group} against "
        f"{attr}={day.privileged} ({', '.join(parts)}; {v.confidence:.1%} interval "
        f"{fmt_number(c.low)}-{fmt_number(c.high)}): {side} {fmt_number(threshold)} with the "
        "whole interval"
    )


def _findings(model: ModelConfig, day: FairnessDay) -> list[Finding]:
    out = []
    for name, v in day.verdicts.items():
        c = v.decisive
        if v.level not in ("warning", "critical") or c is None:
            continue
        threshold = v.critical if v.level == "critical" else v.warning
        out.append(
            Finding(
                tenant=model.tenant,
                model=model.name,
                partition=day.partition,
                asset=Asset.PERFORMANCE_REPORT.value,
                signal=Signal.FAIRNESS_VIOLATION.value,
                severity=Severity(v.level),
                value=c.value,
                threshold=threshold,
                column=name,
                message=_message(day, v, c, threshold),
                evidence=jsonable(
                    {
                        "metric": name,
                        "attribute": day.attribute,
                        "privileged": day.privileged,
                        "positive_class": day.positive_class,
                        "group": c.group,
                        "value": c.value,
                        "day_value": v.value,
                        "low": c.low,
                        "high": c.high,
                        "confidence": v.confidence,
                        "warning": v.warning,
                        "critical": v.critical,
                        "comparisons": [x.to_dict() for x in v.comparisons],
                        "insufficient_groups": v.insufficient_groups,
                        "groups": {g: grp.to_dict() for g, grp in day.groups.items()},
                        "n_missing_attribute": day.n_missing,
                        "design_effect": day.design_effect.value,
                        "design_effect_method": day.design_effect.method,
                    }
                ),
            )
        )
    return out


def fairness_for_day(model: ModelConfig, partition: str, frame: pd.DataFrame) -> FairnessDay:
    """Judge the day's fairness across `model.fairness.attribute`.

    `frame` holds every prediction of the day with the label observed so far (NaN where none
    has arrived): `performance.join.LabelledDay.frame`. Raises `DataError` when the model has
    no fairness config or the frame lacks the attribute, the timestamp, the prediction or the
    label column.
    """
    f = model.fairness
    if f is None:
        raise DataError("no `fairness` configured", model=model.key, partition=partition)
    cells = day_cells(model, frame, partition)
    groups = _fairlearn_groups(cells)
    deff = cells.design_effect()
    day = FairnessDay(
        partition=partition,
        attribute=f.attribute,
        privileged=f.privileged,
        positive_class=positive_class(model),
        groups=groups,
        n_missing=cells.n_missing,
        design_effect=deff,
        verdicts=judge_groups(f, groups, deff.value),
        findings=[],
    )
    day.findings = _findings(model, day)
    return day
