"""Per-column drift verdicts and the dataset drift share, from two profiles.

How a column's drift test is chosen (``DriftThresholds.method = auto``)
------------------------------------------------------------------------
The rule mirrors Evidently's default choice, so verdicts can be compared with an Evidently
report, and adds false-discovery-rate control, which Evidently lacks.

* **Numeric column with more than 5 distinct reference values**

  - small sample, ``min(n_reference, n_current) <= small_sample`` (1000): **Kolmogorov-Smirnov**.
    Drifted when its Benjamini-Hochberg q-value is below ``fdr_alpha``.
  - otherwise **normed Wasserstein** (W1 divided by the reference's standard deviation, floored
    at 0.001, exactly Evidently's "wasserstein"). Drifted when W1/std >= the warning threshold
    (0.1) **and** the KS q-value is below ``fdr_alpha``.

* **Categorical column, or numeric column with at most 5 distinct reference values** (each
  value is then a category)

  - small sample: **chi-square** test of homogeneity. Drifted when its q-value < ``fdr_alpha``.
  - otherwise **Jensen-Shannon distance** (natural log, Evidently's "jensenshannon"). Drifted
    when JS >= the warning threshold (0.1) **and** the chi-square q-value < ``fdr_alpha``.

* **Severity**: "critical" when the statistic reaches the critical threshold (W1/std 0.2,
  JS 0.2, PSI 0.25), or, for the p-value tests, when q < fdr_alpha / 10; "warning" otherwise.

* **Why both an effect size and significance at large n**: with a million rows any shift is
  "significant" (the KS critical D at 1M vs 1M is ~0.002), so the effect size decides whether
  the shift matters; the significance gate stops small noisy days from crossing an effect-size
  threshold by chance. With few rows the effect sizes are too noisy to threshold, so the
  p-value tests decide.

* **Multiple testing**: the q-values are Benjamini-Hochberg adjusted over the model's features
  (one family per model and day); prediction columns form their own family. Testing 20
  undrifted features at p < 0.05 each flags at least one of them on 64% of days (Evidently's
  small-sample behaviour); with FDR control the chance of any false flag is about
  ``fdr_alpha``.

* **Overrides**: ``method`` (all columns) or ``per_column_method`` (one column) force a test:
  ``ks``, ``wasserstein``, ``psi``, ``jensenshannon`` or ``chisquare``. KS and Wasserstein
  need an ordered numeric column: set globally, they fall back to chi-square and Jensen-Shannon
  on categorical columns; set for a categorical column, they raise `ConfigError`. PSI uses the
  ``psi`` thresholds (0.1, 0.25) and the same significance gate as the other distances.

Differences from Evidently worth knowing: Evidently counts distinct values over reference and
current together (we use the reference, which is what the stored profile knows); Evidently's
small-sample rule looks at the reference size only; Evidently uses a two-proportion z-test for
binary columns, our chi-square without Yates correction is the same test (chi2 = z^2); and
Evidently's chi-square is a goodness-of-fit test against the reference shares (the reference's
own sampling noise ignored), ours is the homogeneity test on the 2 x k table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from aiops_pipelines.core.config import DriftMethod, DriftThresholds
from aiops_pipelines.core.errors import ConfigError
from aiops_pipelines.core.findings import jsonable
from aiops_pipelines.signals.drift.statistics import (
    SMALL_DISTINCT,
    benjamini_hochberg,
    categorical_bins,
    chisquare,
    jensenshannon,
    ks_from_profiles,
    numeric_bins,
    psi,
    reference_distinct,
    wasserstein_normed,
)
from aiops_pipelines.signals.profile.profiles import OTHER, ColumnProfile, DatasetProfile

SeverityName = Literal["none", "warning", "critical"]
Role = Literal["feature", "prediction"]

_NUMERIC_ONLY = {
    DriftMethod.KS: DriftMethod.CHISQUARE,
    DriftMethod.WASSERSTEIN: DriftMethod.JENSENSHANNON,
}

_P_METHODS = {DriftMethod.KS, DriftMethod.CHISQUARE}


@dataclass
class NullRateResult:
    """Increase of a column's missing share, with a one-sided two-proportion z-test."""

    column: str
    role: Role
    reference_rate: float
    current_rate: float
    increase: float
    z: float
    p_value: float
    n_reference: int
    n_current: int
    threshold: float = math.nan
    critical_threshold: float = math.nan
    drifted: bool = False
    severity: SeverityName = "none"


def null_rate_drift(
    ref: ColumnProfile,
    cur: ColumnProfile,
    thresholds: DriftThresholds | None = None,
    *,
    role: Role = "feature",
) -> NullRateResult:
    """Absolute increase of the missing share and the p-value of "current rate > reference".

    Evidently drops missing values before testing drift, so a feature going 40% null is
    invisible to its drift tests; this is the check that catches it. The z-test uses the pooled
    proportion (as statsmodels' `proportions_ztest`); one-sided because only an increase is a
    finding. With `thresholds`, `drifted` is set when the increase >= null_rate_increase[0] and
    p < fdr_alpha.
    """
    n1, n2 = ref.n_rows, cur.n_rows
    r1, r2 = ref.null_rate, cur.null_rate
    increase = r2 - r1
    z, p = 0.0, 1.0
    if n1 and n2:
        pooled = (ref.n_missing + cur.n_missing) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        if se > 0:
            z = increase / se
            p = float(stats.norm.sf(z))
    res = NullRateResult(ref.name, role, r1, r2, increase, z, p, n1, n2)
    if thresholds is not None:
        warn, crit = thresholds.null_rate_increase
        res.threshold, res.critical_threshold = warn, crit
        res.drifted = increase >= warn and p < thresholds.fdr_alpha
        res.severity = ("critical" if increase >= crit else "warning") if res.drifted else "none"
    return res


@dataclass
class UnseenResult:
    """Share of current values in categories the reference never had."""

    column: str
    role: Role
    share: float
    n_unseen: int
    n_current: int
    top: list[tuple[str, int]] = field(default_factory=list)
    vocabulary_capped: bool = False
    threshold: float = math.nan
    critical_threshold: float = math.nan
    drifted: bool = False
    severity: SeverityName = "none"


def unseen_categories(
    ref: ColumnProfile,
    cur: ColumnProfile,
    thresholds: DriftThresholds | None = None,
    *,
    role: Role = "feature",
) -> UnseenResult:
    """Share of current non-missing values outside the reference, and the top such values.

    Values outside the vocabulary that the reference profile itself recorded by name (when the
    reference is e.g. last month's merged profiles) are not new and are not counted. A column
    whose reference vocabulary was capped (`__other__`) cannot tell new values from rare known
    ones, so it reports no unseen values (`vocabulary_capped`). With `thresholds`, `drifted`
    is set when the share >= unseen_share[0].
    """
    if ref.kind != "categorical" or cur.kind != "categorical":
        raise ValueError(f"column '{ref.name}': categorical profiles expected")
    known = set(ref.unseen)
    named = {k: v for k, v in cur.unseen.items() if k not in known}
    n_unseen = sum(named.values()) + cur.unseen_other
    share = n_unseen / cur.count if cur.count else 0.0
    top = sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    res = UnseenResult(
        ref.name, role, share, int(n_unseen), cur.count, top, vocabulary_capped=OTHER in ref.counts
    )
    if thresholds is not None:
        warn, crit = thresholds.unseen_share
        res.threshold, res.critical_threshold = warn, crit
        res.drifted = n_unseen > 0 and share >= warn
        res.severity = ("critical" if share >= crit else "warning") if res.drifted else "none"
    return res


@dataclass
class ColumnDrift:
    """The drift verdict of one column, with every statistic that was computed as evidence.

    `statistic` is the chosen method's statistic (KS D, chi-square, W1/std, JS or PSI).
    `decided_on` says what `threshold`/`critical_threshold` apply to: "statistic" for the
    distances (drift when statistic >= threshold and q < fdr_alpha), "q_value" for the
    p-value tests KS and chi-square (drift when q < threshold = fdr_alpha; critical when
    q < fdr_alpha / 10).
    """

    column: str
    kind: str
    role: Role
    method: str
    statistic: float
    threshold: float
    critical_threshold: float
    p_value: float | None
    q_value: float | None
    drifted: bool
    severity: SeverityName
    n_reference: int
    n_current: int
    decided_on: Literal["statistic", "q_value"] = "statistic"
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The number held against `threshold` (the statistic, or the q-value)."""
        if self.decided_on == "q_value":
            return math.nan if self.q_value is None else self.q_value
        return self.statistic


def _method_for(
    col: str, kind: str, binned: bool, small: bool, thresholds: DriftThresholds
) -> tuple[DriftMethod, str]:
    """The method for one column and a note when an override had to be adapted."""
    explicit = col in thresholds.per_column_method
    method = DriftMethod(thresholds.per_column_method.get(col, thresholds.method))
    if method is DriftMethod.AUTO:
        if binned:
            return (DriftMethod.CHISQUARE if small else DriftMethod.JENSENSHANNON), ""
        return (DriftMethod.KS if small else DriftMethod.WASSERSTEIN), ""
    if kind == "categorical" and method in _NUMERIC_ONLY:
        if explicit:
            raise ConfigError(
                f"method '{method.value}' needs an ordered numeric column, '{col}' is categorical",
                field=f"thresholds.per_column_method.{col}",
            )
        alt = _NUMERIC_ONLY[method]
        return alt, f"'{method.value}' does not apply to a categorical column: used '{alt.value}'"
    return method, ""


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _assess(
    ref: ColumnProfile, cur: ColumnProfile, role: Role, thresholds: DriftThresholds
) -> ColumnDrift:
    """Compute every statistic of one column and pick the method; verdicts come after BH."""
    n_ref, n_cur = ref.count, cur.count
    evidence: dict[str, Any] = {}
    distinct = reference_distinct(ref)
    evidence["n_distinct_reference"] = distinct
    small = min(n_ref, n_cur) <= thresholds.small_sample
    binned = ref.kind == "categorical" or (distinct is not None and distinct <= SMALL_DISTINCT)
    method, note = _method_for(ref.name, ref.kind, binned, small, thresholds)
    if note:
        evidence["method_note"] = note
    testable = n_ref > 0 and n_cur > 0
    stat: dict[str, float] = {}
    if not testable:
        evidence["note"] = "no non-missing values on one side: drift not testable"
    elif ref.kind == "numeric":
        ks = ks_from_profiles(ref, cur)
        r, c, how = numeric_bins(ref, cur)
        chi = chisquare(r, c)
        stat = {
            "ks": ks.statistic,
            "wasserstein": wasserstein_normed(ref, cur),
            "psi": psi(r, c),
            "jensenshannon": jensenshannon(r, c),
            "chisquare": chi.statistic,
        }
        evidence.update(
            ks_d=ks.statistic,
            ks_d_upper=ks.statistic_upper_bound,
            ks_p=ks.p_value,
            wasserstein_normed=stat["wasserstein"],
            psi=stat["psi"],
            jensenshannon=stat["jensenshannon"],
            chi2=chi.statistic,
            chi2_p=chi.p_value,
            chi2_dof=chi.dof,
            bins=how,
            reference_mean=ref.mean,
            current_mean=cur.mean,
            reference_std=ref.std,
            current_std=cur.std,
        )
        p_ks, p_chi = ks.p_value, chi.p_value
    else:
        r, c = categorical_bins(ref, cur)
        chi = chisquare(r, c)
        stat = {"psi": psi(r, c), "jensenshannon": jensenshannon(r, c), "chisquare": chi.statistic}
        evidence.update(
            psi=stat["psi"],
            jensenshannon=stat["jensenshannon"],
            chi2=chi.statistic,
            chi2_p=chi.p_value,
            chi2_dof=chi.dof,
            unseen_share=cur.unseen_total / n_cur,
        )
        p_ks, p_chi = math.nan, chi.p_value
    # the significance behind every verdict: the method's own p, else KS (ordered) or chi2
    if method is DriftMethod.KS or (
        method not in _P_METHODS and not binned and ref.kind == "numeric"
    ):
        p, sig = p_ks, "ks"
    else:
        p, sig = p_chi, "chisquare"
    evidence["significance_test"] = sig
    if method in _P_METHODS:
        warn, crit = thresholds.fdr_alpha, thresholds.fdr_alpha / 10
        decided_on = "q_value"
    else:
        warn, crit = getattr(thresholds, method.value)
        decided_on = "statistic"
    return ColumnDrift(
        column=ref.name,
        kind=ref.kind,
        role=role,
        method=method.value,
        statistic=stat.get(method.value, math.nan),
        threshold=warn,
        critical_threshold=crit,
        p_value=_nan_to_none(p),
        q_value=None,
        drifted=False,
        severity="none",
        n_reference=n_ref,
        n_current=n_cur,
        decided_on=decided_on,
        evidence=evidence,
    )


def _decide(cols: list[ColumnDrift], alpha: float) -> None:
    """BH-adjust the family's p-values, then apply each column's rule."""
    tested = [c for c in cols if c.p_value is not None]
    for c, q in zip(tested, benjamini_hochberg([c.p_value for c in tested]), strict=True):
        c.q_value = float(q)
        c.evidence["q_value"] = float(q)
        if c.decided_on == "q_value":
            c.drifted = q < alpha
            critical = q < alpha / 10
        else:
            c.drifted = c.statistic >= c.threshold and q < alpha
            critical = c.statistic >= c.critical_threshold
        c.severity = ("critical" if critical else "warning") if c.drifted else "none"


@dataclass
class DriftReport:
    """Drift of one dataset (a day) against the reference, per column and overall."""

    features: list[ColumnDrift]
    predictions: list[ColumnDrift]
    null_rates: list[NullRateResult]
    unseen: list[UnseenResult]
    n_features: int
    n_drifted: int
    drift_share: float
    dataset_drift_severity: SeverityName
    drift_share_thresholds: tuple[float, float] = (math.nan, math.nan)
    fdr_alpha: float = math.nan

    @property
    def drifted_features(self) -> list[ColumnDrift]:
        return [c for c in self.features if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (numpy scalars to Python, NaN to None)."""
        d = asdict(self)
        for group in ("features", "predictions"):
            for src, dst in zip(getattr(self, group), d[group], strict=True):
                dst["value"] = src.value
        return jsonable(d)


def _same_spec(reference: DatasetProfile, current: DatasetProfile, col: str) -> bool:
    a, b = reference.spec, current.spec
    if col in a.numeric:
        return col in b.numeric and np.array_equal(a.numeric[col], b.numeric[col])
    return col in a.categorical and a.categorical[col] == b.categorical.get(col)


def compare_profiles(
    reference: DatasetProfile,
    current: DatasetProfile,
    thresholds: DriftThresholds,
    *,
    features: Sequence[str],
    prediction_columns: Sequence[str] = (),
) -> DriftReport:
    """Drift of `current` against `reference` (both profiled on the same spec).

    Features form one Benjamini-Hochberg family, prediction columns another. Null-rate
    increases are checked on every listed column, unseen categories on the categorical ones.
    Only the compared columns' part of the specs must match (the current profile may hold
    fewer columns). Raises ValueError when they differ or a column was not profiled.
    """
    for c in [*features, *prediction_columns]:
        if c not in reference.columns or c not in current.columns:
            raise ValueError(f"column '{c}' is not in both profiles")
        if not _same_spec(reference, current, c):
            raise ValueError(
                f"column '{c}': reference and current profiles were built on different specs "
                "(bins or vocabulary); profile the current data with the reference's spec"
            )
    feats = [
        _assess(reference.columns[c], current.columns[c], "feature", thresholds) for c in features
    ]
    preds = [
        _assess(reference.columns[c], current.columns[c], "prediction", thresholds)
        for c in prediction_columns
    ]
    _decide(feats, thresholds.fdr_alpha)
    _decide(preds, thresholds.fdr_alpha)
    roles: list[tuple[str, Role]] = [(c, "feature") for c in features] + [
        (c, "prediction") for c in prediction_columns
    ]
    nulls = [
        null_rate_drift(reference.columns[c], current.columns[c], thresholds, role=r)
        for c, r in roles
    ]
    unseen = [
        unseen_categories(reference.columns[c], current.columns[c], thresholds, role=r)
        for c, r in roles
        if reference.columns[c].kind == "categorical"
    ]
    n_drifted = sum(c.drifted for c in feats)
    share = n_drifted / len(feats) if feats else 0.0
    warn, crit = thresholds.drift_share
    severity: SeverityName = "critical" if share >= crit else "warning" if share >= warn else "none"
    return DriftReport(
        features=feats,
        predictions=preds,
        null_rates=nulls,
        unseen=unseen,
        n_features=len(feats),
        n_drifted=n_drifted,
        drift_share=share,
        dataset_drift_severity=severity,
        drift_share_thresholds=(warn, crit),
        fdr_alpha=thresholds.fdr_alpha,
    )
