"""Per-column drift verdicts and the dataset drift share, from two profiles.

The rule (every n, no p-value-only path)
----------------------------------------
A column drifted when **both** hold:

* **its change is beyond what unchanged days produce at this size**: the day's test statistic,
  corrected by the column's design effect (`signals.drift.calibration`: the reference's
  contiguous blocks of the day's size and the model's own recent days), is significant after
  Benjamini-Hochberg over the model's features (q < the family's share of ``fdr_alpha``);
* **the change is large enough to matter**: its effect size reaches the configured minimum,
  normed Wasserstein (W1 / reference std, floored at 0.001, Evidently's "wasserstein") for an
  ordered numeric column, Jensen-Shannon distance (natural log, Evidently's "jensenshannon")
  for a categorical column or a numeric one with at most 5 distinct reference values.

The significance tests, each on n / deff effective rows of both sides:

* ordered numeric column: the two-sample **KS** test and the **Mann-Whitney** rank test (on
  the profiles' ordered bins, ties within a bin), the smaller p-value doubled (Bonferroni):
  KS sees any change of shape, the rank test is close to the most powerful one for the
  commonest drift, a shift (95% of the t-test's efficiency on normal data, more on skewed
  data). Both are distribution-free: the z-test of the means it replaces fired 9-70x its
  nominal rate at p < 1e-4 on log-normal features of 100-300 rows (a small sample's mean and
  spread move together when the data are skewed), the rank test stays at or under it;
* binned column: the **chi-square** homogeneity test divided by deff (Rao-Scott's first-order
  correction for clustered samples).

"Critical" when the effect reaches the critical level (W1/std 0.2, JS 0.1, PSI 0.25).

Why both: with a million rows any shift is "significant" (the KS critical D at 1M vs 1M is
~0.002), so the effect size decides whether it matters; on a small day an effect size crosses
any fixed level by chance (JS between 200 rows and their own population is ~0.05), so the
calibrated test decides whether it is real. Uncorrected p-values are kept as evidence.

Overrides: ``method`` (all columns) or ``per_column_method`` (one column) pick the effect size
(``wasserstein``, ``psi``, ``jensenshannon``) or the significance test (``ks`` or
``chisquare``, with the kind's default effect size). KS and Wasserstein need an ordered
numeric column: set globally, they fall back to chi-square and Jensen-Shannon on categorical
columns; set for a categorical column, they raise `ConfigError`.

Multiple testing: BH over the model's features (one family per model, day and window);
prediction columns form their own family; `drift_for_day` splits ``fdr_alpha`` over the
families it tests, so it bounds the chance of any drift finding on an unchanged model-day.

Differences from Evidently worth knowing: Evidently counts distinct values over reference and
current together (we use the reference, which is what the stored profile knows); Evidently
picks p-value tests alone below 1,000 reference rows and effect sizes alone above, with no
multiple-testing control and no allowance for correlated rows; our chi-square is the
homogeneity test on the 2 x k table (Evidently's is a goodness-of-fit test against the
reference shares, the reference's own sampling noise ignored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import special, stats

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
    ks_pvalue,
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
    design_effect: float = 1.0
    q_value: float | None = None


def null_rate_drift(
    ref: ColumnProfile,
    cur: ColumnProfile,
    thresholds: DriftThresholds | None = None,
    *,
    role: Role = "feature",
    design_effect: float = 1.0,
    alpha: float | None = None,
) -> NullRateResult:
    """Absolute increase of the missing share and the p-value of "current rate > reference".

    Evidently drops missing values before testing drift, so a feature going 40% null is
    invisible to its drift tests; this is the check that catches it. The z-test uses the pooled
    proportion (as statsmodels' `proportions_ztest`); one-sided because only an increase is a
    finding. The standard error is multiplied by sqrt(`design_effect`) for correlated rows.
    With `thresholds`, `drifted` is set when the increase >= null_rate_increase[0] and
    p < `alpha` (default `fdr_alpha`).
    """
    n1, n2 = ref.n_rows, cur.n_rows
    r1, r2 = ref.null_rate, cur.null_rate
    increase = r2 - r1
    z, p = 0.0, 1.0
    deff = max(design_effect, 1.0)
    if n1 and n2:
        pooled = (ref.n_missing + cur.n_missing) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2) * deff)
        if se > 0:
            z = increase / se
            p = float(stats.norm.sf(z))
        if cur.n_missing and r1 < 1:
            # the binomial upper tail on effective counts: the z-test's normal tail is too
            # thin for a rare event on a few hundred effective rows; keep the larger p
            k, m = cur.n_missing / deff, n2 / deff
            p = max(p, float(special.betainc(k, m - k + 1, r1)) if r1 > 0 else 0.0)
    res = NullRateResult(ref.name, role, r1, r2, increase, z, p, n1, n2)
    res.design_effect = max(design_effect, 1.0)
    if thresholds is not None:
        warn, crit = thresholds.null_rate_increase
        res.threshold, res.critical_threshold = warn, crit
        res.drifted = increase >= warn and p < (thresholds.fdr_alpha if alpha is None else alpha)
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

    `statistic` is the effect size (normed Wasserstein, Jensen-Shannon or PSI) held against
    `threshold` / `critical_threshold`; `p_value` is the calibrated significance test's (on
    n / `design_effect` effective rows) and `q_value` its Benjamini-Hochberg adjustment, held
    against `alpha`. `window_days` is 1 for the day alone, more for the trailing window of
    that many days that was tested.
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
    design_effect: float = 1.0
    alpha: float = math.nan
    window_days: int = 1
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The number held against `threshold`: the effect size."""
        return self.statistic

    @property
    def n_effective(self) -> float:
        """The day's rows as independent rows: n / design effect."""
        return self.n_current / self.design_effect


_EFFECT_FOR_TEST = {
    DriftMethod.KS: DriftMethod.WASSERSTEIN,
    DriftMethod.CHISQUARE: DriftMethod.JENSENSHANNON,
}


def _method_for(
    col: str, kind: str, binned: bool, thresholds: DriftThresholds
) -> tuple[DriftMethod, str]:
    """The configured method for one column and a note when an override had to be adapted."""
    explicit = col in thresholds.per_column_method
    method = DriftMethod(thresholds.per_column_method.get(col, thresholds.method))
    if method is DriftMethod.AUTO:
        return (DriftMethod.JENSENSHANNON if binned else DriftMethod.WASSERSTEIN), ""
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


MIN_EXPECTED = 5.0
"""Cochran's rule: bins expected to hold fewer effective rows are pooled for chi-square."""


def _pool_sparse(r: np.ndarray, c: np.ndarray, deff: float) -> tuple[np.ndarray, np.ndarray]:
    """The bins expected to hold fewer than 5 effective current rows pooled into one,
    smallest first, until every bin left (the pool included) expects at least 5."""
    seen = (r + c) > 0
    r, c = r[seen], c[seen]
    expected = (r + c) / (r.sum() + c.sum()) * c.sum() / max(deff, 1.0)
    order = np.argsort(expected, kind="stable")
    pool = 0.0
    n_pooled = 0
    for i in order[:-1]:
        if pool >= MIN_EXPECTED and expected[i] >= MIN_EXPECTED:
            break
        pool += expected[i]
        n_pooled += 1
    if not n_pooled:
        return r, c
    take, keep = order[:n_pooled], order[n_pooled:]
    return np.append(r[keep], r[take].sum()), np.append(c[keep], c[take].sum())


def _pooled_counts(
    ref_counts: np.ndarray, cur_counts: np.ndarray, deff: float
) -> tuple[np.ndarray, np.ndarray] | float:
    """Both count vectors with sparse bins pooled, or the p-value when there is nothing to
    test (NaN: a side is empty; 1.0: fewer than two bins)."""
    r = np.asarray(ref_counts, np.float64)
    c = np.asarray(cur_counts, np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return math.nan
    r, c = _pool_sparse(r, c, deff)
    return (r, c) if len(r) >= 2 else 1.0


def pooled_chisquare(ref_counts: np.ndarray, cur_counts: np.ndarray, deff: float) -> float:
    """p-value of the chi-square homogeneity test on counts divided by the design effect, the
    bins expected to hold fewer than 5 effective current rows pooled (smallest first) so the
    chi-square distribution holds; 1.0 when fewer than two bins remain."""
    pooled = _pooled_counts(ref_counts, cur_counts, deff)
    if isinstance(pooled, float):
        return pooled
    res = chisquare(*pooled)
    return float(stats.chi2.sf(res.statistic / max(deff, 1.0), res.dof)) if res.dof else 1.0


def category_share_test(ref_counts: np.ndarray, cur_counts: np.ndarray, deff: float) -> float:
    """p-value of the largest change of one bin's share: each (pooled) bin against the rest in
    Fisher's exact test on effective counts (the counts divided by the design effect; central:
    twice the smaller hypergeometric tail), the smallest p times the number of bins
    (Bonferroni). Far more powerful than chi-square when one category moved (a 5-point change
    of one share among 5 categories); NaN if not testable.

    Exact, not the two-proportion z-test: a rare category on a small day is a count of a few
    rows, whose upper tail is far heavier than the normal one (null days of 100-300 rows with
    2-3% categories: the z-test's p < 1e-4 came 1.8-2.3x as often as it should, the exact
    test's 0.2-1.2x). At large counts the two agree."""
    pooled = _pooled_counts(ref_counts, cur_counts, deff)
    if isinstance(pooled, float):
        return pooled
    r, c = pooled
    d = max(deff, 1.0)
    r, c = np.rint(r / d), np.rint(c / d)
    n1, n2 = r.sum(), c.sum()
    if n1 <= 0 or n2 <= 0:
        return math.nan
    total = r + c
    upper = stats.hypergeom.sf(c - 1, n1 + n2, total, n2)  # P(X >= c)
    lower = stats.hypergeom.cdf(c, n1 + n2, total, n2)  # P(X <= c)
    p = np.minimum(1.0, 2 * np.minimum(upper, lower))
    bins = len(r) if len(r) > 2 else 1  # two bins: one test (both shares move together)
    return float(min(1.0, bins * p.min()))


def _ordered_cells(p: ColumnProfile) -> np.ndarray:
    """A numeric profile's counts in value order: the segments' non-atom counts with the atoms
    on the edges between them (segment j >= 1 holds the atom on its left edge)."""
    counts = np.asarray(p.counts, np.float64)
    atoms = np.asarray(p.atoms, np.float64)
    cells = np.empty(2 * counts.size - 1)
    cells[0::2] = counts - np.concatenate(([0.0], atoms))
    cells[1::2] = atoms
    return cells


def rank_test(ref: ColumnProfile, cur: ColumnProfile, design_effect: float = 1.0) -> float:
    """Two-sided p-value of the Mann-Whitney U test from two numeric profiles on the same bins:
    the values of one ordered cell (a bin's interior, or an edge) are ties, U's variance is
    tie-corrected, times `design_effect`, and the normal approximation has the continuity
    correction (`scipy.stats.mannwhitneyu(method="asymptotic")` on the cells' indices gives the
    same p at design effect 1). NaN when a side is empty."""
    if ref.count < 1 or cur.count < 1:
        return math.nan
    r, c = _ordered_cells(ref), _ordered_cells(cur)
    n1, n2 = r.sum(), c.sum()
    n = n1 + n2
    t = r + c
    midrank = np.cumsum(t) - t + (t + 1) / 2
    u = float((c * midrank).sum() - n2 * (n2 + 1) / 2)
    ties = float((t**3 - t).sum())
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) * max(design_effect, 1.0)
    if var <= 0:
        return 1.0
    z = max(abs(u - n1 * n2 / 2) - 0.5, 0.0) / math.sqrt(var)
    return float(min(1.0, 2 * stats.norm.sf(z)))


def _assess(
    ref: ColumnProfile,
    cur: ColumnProfile,
    role: Role,
    thresholds: DriftThresholds,
    design_effect: float = 1.0,
) -> ColumnDrift:
    """Compute every statistic of one column and its calibrated p-value; verdicts come after
    BH (`_decide`)."""
    deff = max(design_effect, 1.0)
    n_ref, n_cur = ref.count, cur.count
    evidence: dict[str, Any] = {}
    distinct = reference_distinct(ref)
    evidence["n_distinct_reference"] = distinct
    binned = ref.kind == "categorical" or (distinct is not None and distinct <= SMALL_DISTINCT)
    method, note = _method_for(ref.name, ref.kind, binned, thresholds)
    if note:
        evidence["method_note"] = note
    effect = _EFFECT_FOR_TEST.get(method, method)
    if method is DriftMethod.KS and binned:
        effect = DriftMethod.JENSENSHANNON
    testable = n_ref > 0 and n_cur > 0
    stat: dict[str, float] = {}
    p = math.nan
    if not testable:
        evidence["note"] = "no non-missing values on one side: drift not testable"
    elif ref.kind == "numeric":
        ks = ks_from_profiles(ref, cur)
        r, c, how = numeric_bins(ref, cur)
        chi = chisquare(r, c)
        stat = {
            "wasserstein": wasserstein_normed(ref, cur),
            "psi": psi(r, c),
            "jensenshannon": jensenshannon(r, c),
        }
        p_ks = ks_pvalue(ks.statistic, n_ref / deff, n_cur / deff)
        p_rank = rank_test(ref, cur, deff)
        p_chi = pooled_chisquare(r, c, deff)
        evidence.update(
            ks_d=ks.statistic,
            ks_d_upper=ks.statistic_upper_bound,
            ks_p=p_ks,
            ks_p_independent=ks.p_value,
            rank_p=p_rank,
            wasserstein_normed=stat["wasserstein"],
            psi=stat["psi"],
            jensenshannon=stat["jensenshannon"],
            chi2=chi.statistic,
            chi2_p=p_chi,
            chi2_p_independent=chi.p_value,
            chi2_dof=chi.dof,
            bins=how,
            reference_mean=ref.mean,
            current_mean=cur.mean,
            reference_std=ref.std,
            current_std=cur.std,
        )
        if method is DriftMethod.CHISQUARE:
            p, sig = p_chi, "chisquare"
        elif binned:
            p_share = category_share_test(r, c, deff)
            evidence["share_p"] = p_share
            p, sig = min(1.0, 2 * min(p_chi, p_share)), "chisquare+share"
        elif method is DriftMethod.KS:
            p, sig = p_ks, "ks"
        else:
            p, sig = min(1.0, 2 * min(p_ks, p_rank)), "ks+rank"
        evidence["significance_test"] = sig
    else:
        r, c = categorical_bins(ref, cur)
        chi = chisquare(r, c)
        stat = {"psi": psi(r, c), "jensenshannon": jensenshannon(r, c)}
        p_chi = pooled_chisquare(r, c, deff)
        p_share = category_share_test(r, c, deff)
        if method is DriftMethod.CHISQUARE:
            p, sig = p_chi, "chisquare"
        else:
            p, sig = min(1.0, 2 * min(p_chi, p_share)), "chisquare+share"
        evidence.update(
            psi=stat["psi"],
            jensenshannon=stat["jensenshannon"],
            chi2=chi.statistic,
            chi2_p=p_chi,
            chi2_p_independent=chi.p_value,
            chi2_dof=chi.dof,
            share_p=p_share,
            unseen_share=cur.unseen_total / n_cur,
            significance_test=sig,
        )
    evidence["design_effect"] = deff
    evidence["n_effective"] = n_cur / deff
    warn, crit = getattr(thresholds, effect.value)
    return ColumnDrift(
        column=ref.name,
        kind=ref.kind,
        role=role,
        method=effect.value,
        statistic=stat.get(effect.value, math.nan),
        threshold=warn,
        critical_threshold=crit,
        p_value=_nan_to_none(p),
        q_value=None,
        drifted=False,
        severity="none",
        n_reference=n_ref,
        n_current=n_cur,
        design_effect=deff,
        evidence=evidence,
    )


def _decide(cols: list[ColumnDrift], alpha: float) -> None:
    """BH-adjust the family's calibrated p-values, then apply the rule: significant and an
    effect at or above the minimum."""
    tested = [c for c in cols if c.p_value is not None]
    for c in cols:
        c.alpha = alpha
    for c, q in zip(tested, benjamini_hochberg([c.p_value for c in tested]), strict=True):
        c.q_value = float(q)
        c.evidence["q_value"] = float(q)
        c.drifted = bool(q < alpha and c.statistic >= c.threshold)
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
    design_effects: Mapping[str, float] | None = None,
    alpha: float | None = None,
    window_days: int = 1,
) -> DriftReport:
    """Drift of `current` against `reference` (both profiled on the same spec).

    Features form one Benjamini-Hochberg family at level `alpha` (default ``fdr_alpha``),
    prediction columns another. `design_effects` (column -> deff, default 1: independent rows)
    widen each column's tests (`signals.drift.calibration`). Null-rate increases are checked on
    every listed column, unseen categories on the categorical ones. Only the compared columns'
    part of the specs must match (the current profile may hold fewer columns). Raises
    ValueError when they differ or a column was not profiled.
    """
    for c in [*features, *prediction_columns]:
        if c not in reference.columns or c not in current.columns:
            raise ValueError(f"column '{c}' is not in both profiles")
        if not _same_spec(reference, current, c):
            raise ValueError(
                f"column '{c}': reference and current profiles were built on different specs "
                "(bins or vocabulary); profile the current data with the reference's spec"
            )
    deffs = design_effects or {}
    level = thresholds.fdr_alpha if alpha is None else alpha

    def assess(names: Sequence[str], role: Role) -> list[ColumnDrift]:
        out = [
            _assess(reference.columns[c], current.columns[c], role, thresholds, deffs.get(c, 1.0))
            for c in names
        ]
        for col in out:
            col.window_days = window_days
        _decide(out, level)
        return out

    feats, preds = assess(features, "feature"), assess(prediction_columns, "prediction")
    roles: list[tuple[str, Role]] = [(c, "feature") for c in features] + [
        (c, "prediction") for c in prediction_columns
    ]
    nulls = [
        null_rate_drift(
            reference.columns[c],
            current.columns[c],
            thresholds,
            role=r,
            design_effect=deffs.get(c, 1.0),
            alpha=level,
        )
        for c, r in roles
    ]
    _decide_null_rates(nulls, thresholds, level)
    unseen = [
        unseen_categories(reference.columns[c], current.columns[c], thresholds, role=r)
        for c, r in roles
        if reference.columns[c].kind == "categorical"
    ]
    return summarise(feats, preds, nulls, unseen, thresholds)


def _decide_null_rates(
    nulls: list[NullRateResult], thresholds: DriftThresholds, alpha: float
) -> None:
    """Null-rate increases are one more family: BH over the columns, then the effect gate."""
    if not nulls:
        return
    warn, crit = thresholds.null_rate_increase
    for r, q in zip(nulls, benjamini_hochberg([r.p_value for r in nulls]), strict=True):
        r.q_value = float(q)
        r.drifted = bool(r.increase >= warn and q < alpha)
        r.severity = ("critical" if r.increase >= crit else "warning") if r.drifted else "none"


def summarise(
    features: list[ColumnDrift],
    predictions: list[ColumnDrift],
    null_rates: list[NullRateResult],
    unseen: list[UnseenResult],
    thresholds: DriftThresholds,
) -> DriftReport:
    """A report from column verdicts: the drifted share of features and its severity."""
    n_drifted = sum(c.drifted for c in features)
    share = n_drifted / len(features) if features else 0.0
    warn, crit = thresholds.drift_share
    severity: SeverityName = "critical" if share >= crit else "warning" if share >= warn else "none"
    return DriftReport(
        features=features,
        predictions=predictions,
        null_rates=null_rates,
        unseen=unseen,
        n_features=len(features),
        n_drifted=n_drifted,
        drift_share=share,
        dataset_drift_severity=severity,
        drift_share_thresholds=(warn, crit),
        fdr_alpha=thresholds.fdr_alpha,
    )


_RANK = {"none": 0, "warning": 1, "critical": 2}


def combine_windows(reports: Sequence[DriftReport], thresholds: DriftThresholds) -> DriftReport:
    """One report from the same columns tested over several windows (the day first): each
    column's verdict is the most severe window's (the shortest on a tie), else the day's;
    null rates and unseen categories are the day's."""
    if not reports:
        raise ValueError("no report to combine")
    day = reports[0]

    def pick(group: str) -> list[ColumnDrift]:
        out = []
        for i, first in enumerate(getattr(day, group)):
            best = first
            for rep in reports[1:]:
                other = getattr(rep, group)[i]
                if _RANK[other.severity] > _RANK[best.severity]:
                    best = other
            out.append(best)
        return out

    return summarise(pick("features"), pick("predictions"), day.null_rates, day.unseen, thresholds)
