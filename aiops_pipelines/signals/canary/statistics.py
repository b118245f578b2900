"""Canary statistics: is a new version credibly worse, or credibly not worse, than the champion?

A canary serves a share of live traffic next to the champion, and it is judged every day on all
its data so far. Looking every day at a fixed-horizon test (two-proportion z, Welch t) inflates
false rollbacks: with 30 daily looks a one-sided 0.05 z-test rolls back ~20% of canaries that are
exactly as good as the champion (notes section 3.2; pinned in tests/test_canary.py). So the
primary comparison uses an **anytime-valid confidence sequence**, which holds simultaneously at
every look, however often and whenever we look.

Definitions (the numbers in the store mean exactly this)
--------------------------------------------------------
* **Per-prediction value** (higher is always better): classification, 1 when the prediction
  equals the label compared as strings (1, 1.0 and "1" are the same class), else 0; regression,
  ``-|prediction - label|``. Only labelled rows with a prediction are scored; a failed request
  without a prediction counts in the error-rate guardrail instead, never twice.
* **ArmStats**: mergeable sufficient statistics of one version over some predictions: counts,
  sum and sum of squares of the value over labelled rows, errors (status != "ok", as
  `monitor.py` counts them), and a latency histogram on fixed log-spaced edges (0.1 ms to 100 s,
  200 bins, ratio 1.072 per bin), so days merge by addition and the p95 is recomputed after
  merging (a p95 of p95s is not a p95). The variance is the plug-in one (divide by n): for 0/1
  values it is p(1 - p), the notes' proportion formula.
* **Confidence sequence** (GrowthBook ``gbstats/frequentist/tests.py``; Waudby-Smith et al. 2023,
  arXiv 2103.06476), two-sided at level ``alpha``, on delta = mean(canary) - mean(champion)::

      rho = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / n_star)
      SE^2 = var_c / n_c + var_s / n_s          (n = labelled rows of each arm)
      N = n_c + n_s                             (labelled rows of both arms)
      hw = sqrt(SE^2 N) * sqrt(2 (N rho^2 + 1) / (N^2 rho^2) * ln(sqrt(N rho^2 + 1) / alpha))
      CS = [delta - hw, delta + hw]

  ``n_star`` is where the sequence is tightest relative to a fixed-n interval; pick about the
  labelled N expected at decision time and keep it fixed for the canary's life. The same
  sequence on the 0/1 error indicator over all predictions bounds the error-rate increase.

The verdict (`canary_verdict`)
------------------------------
* **fail** (roll back): the canary is credibly worse than the margin (CS upper < -margin, with at
  least ``min_labels`` labels in each arm), or a guardrail is breached: the error-rate increase
  is credibly above ``max_error_rate_increase`` (its CS lower bound), or canary p95 latency /
  champion p95 latency exceeds ``max_latency_p95_ratio``. Guardrails need at least 200
  predictions per arm but no labels: they exist to catch a broken canary on day one, before any
  label has arrived.
* **pass** (promote): no failure, at least ``min_days`` days of traffic (weekly seasonality),
  label coverage at least ``min_coverage``, at least ``min_labels`` labels in each arm, and the
  canary credibly not worse than the margin (CS lower > -margin).
* **inconclusive** otherwise, and always when an arm has no predictions, or too few labels with
  no guardrail breached.

Why the margin: with margin 0 a perfect tie can never pass and a tiny true loss eventually
fails; the margin is the loss the owner accepts (accuracy points, or MAE units for regression).
A drop smaller than the margin is, by design, not a rollback.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import CanaryPolicy, TaskType
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import Finding, Severity, Signal, jsonable
from aiops_pipelines.signals.profile.profiles import _label

ASSET = "canary_report"
LATENCY_MIN_MS = 0.1
LATENCY_MAX_MS = 100_000.0
LATENCY_BINS = 200
LATENCY_EDGES_MS: np.ndarray = np.geomspace(LATENCY_MIN_MS, LATENCY_MAX_MS, LATENCY_BINS + 1)
GUARDRAIL_MIN_PREDICTIONS = 200
LATENCY_QUANTILE = 0.95

Verdict = Literal["pass", "fail", "inconclusive"]


def _empty_hist() -> np.ndarray:
    return np.zeros(LATENCY_BINS, dtype=np.int64)


def latency_histogram(latency_ms: np.ndarray | pd.Series) -> np.ndarray:
    """Counts of latencies (ms) on `LATENCY_EDGES_MS`; NaN skipped, out-of-range values clipped.

    Fixed edges make histograms of different days and versions addable; clipping (rather than
    dropping) keeps every request in the count, so a p95 beyond 100 s still reads as "huge".
    """
    x = np.asarray(latency_ms, dtype=float)
    x = x[np.isfinite(x)]
    idx = np.searchsorted(LATENCY_EDGES_MS, x, side="right") - 1
    idx = np.clip(idx, 0, LATENCY_BINS - 1)
    return np.bincount(idx, minlength=LATENCY_BINS).astype(np.int64)


def histogram_quantile(hist: np.ndarray, q: float = LATENCY_QUANTILE) -> float:
    """The q-quantile (ms) of a latency histogram, interpolated geometrically inside its bin.

    Geometric interpolation matches the log-spaced bins: the error is at most one bin width
    (7.2% of the value). NaN for an empty histogram.
    """
    h = np.asarray(hist, dtype=float)
    total = h.sum()
    if total <= 0:
        return math.nan
    target = q * total
    cum = np.cumsum(h)
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, LATENCY_BINS - 1)
    below = cum[i - 1] if i > 0 else 0.0
    frac = (target - below) / h[i] if h[i] > 0 else 0.0
    lo, hi = LATENCY_EDGES_MS[i], LATENCY_EDGES_MS[i + 1]
    return float(lo * (hi / lo) ** min(max(frac, 0.0), 1.0))


@dataclass(frozen=True, eq=False)
class ArmStats:
    """Sufficient statistics of one version over some predictions; `merge` adds days together.

    Stored instead of rows so the daily verdict on all data so far costs one addition per day,
    and so the store keeps a few numbers per version-day rather than every prediction.
    """

    n: int = 0
    n_labelled: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    n_errors: int = 0
    latency_hist: np.ndarray = field(default_factory=_empty_hist)

    @classmethod
    def empty(cls) -> ArmStats:
        return cls()

    def merge(self, other: ArmStats) -> ArmStats:
        """The statistics of both sets of predictions together (they must not overlap)."""
        return ArmStats(
            n=self.n + other.n,
            n_labelled=self.n_labelled + other.n_labelled,
            sum=self.sum + other.sum,
            sumsq=self.sumsq + other.sumsq,
            n_errors=self.n_errors + other.n_errors,
            latency_hist=np.asarray(self.latency_hist, dtype=np.int64)
            + np.asarray(other.latency_hist, dtype=np.int64),
        )

    @property
    def mean(self) -> float:
        """Mean per-prediction value (accuracy; minus MAE for regression); NaN without labels."""
        return self.sum / self.n_labelled if self.n_labelled else math.nan

    @property
    def variance(self) -> float:
        """Plug-in variance of the value (p(1 - p) for 0/1 values); NaN without labels."""
        if not self.n_labelled:
            return math.nan
        m = self.sum / self.n_labelled
        return max(self.sumsq / self.n_labelled - m * m, 0.0)

    @property
    def error_rate(self) -> float:
        return self.n_errors / self.n if self.n else math.nan

    @property
    def latency_p95(self) -> float:
        """p95 latency (ms) from the histogram, so it stays right after merging; NaN if none."""
        return histogram_quantile(self.latency_hist, LATENCY_QUANTILE)

    @property
    def n_latency(self) -> int:
        return int(np.asarray(self.latency_hist).sum())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the histogram as 200 counts); `mean`, `error_rate`... are for reading."""
        return jsonable(
            {
                "n": int(self.n),
                "n_labelled": int(self.n_labelled),
                "sum": float(self.sum),
                "sumsq": float(self.sumsq),
                "n_errors": int(self.n_errors),
                "latency_hist": [int(v) for v in np.asarray(self.latency_hist)],
                "mean": self.mean,
                "variance": self.variance,
                "error_rate": self.error_rate,
                "latency_p95": self.latency_p95,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArmStats:
        """Inverse of `to_dict` (derived values are ignored; a missing histogram is empty)."""
        hist = d.get("latency_hist")
        h = _empty_hist() if not hist else np.asarray(hist, dtype=np.int64)
        if h.shape != (LATENCY_BINS,):
            raise ValueError(f"latency_hist must have {LATENCY_BINS} counts, got {h.shape}")
        return cls(
            n=int(d.get("n") or 0),
            n_labelled=int(d.get("n_labelled") or 0),
            sum=float(d.get("sum") or 0.0),
            sumsq=float(d.get("sumsq") or 0.0),
            n_errors=int(d.get("n_errors") or 0),
            latency_hist=h,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArmStats):
            return NotImplemented
        return (
            self.n == other.n
            and self.n_labelled == other.n_labelled
            and self.sum == other.sum
            and self.sumsq == other.sumsq
            and self.n_errors == other.n_errors
            and np.array_equal(self.latency_hist, other.latency_hist)
        )

    __hash__ = None  # type: ignore[assignment]


def _as_labels(values: pd.Series) -> np.ndarray:
    """Each value as the string it is compared as (1, 1.0, "1" and np.int64(1) are all "1").

    Factorize first, so the Python-level conversion runs once per distinct value, not per row.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    labels = np.array([_label(u) for u in uniques] + [""], dtype=object)
    return labels[codes]  # code -1 (missing) picks the trailing "" (never compared: filtered)


def arm_stats(
    frame: pd.DataFrame,
    *,
    task: TaskType,
    prediction_col: str,
    label_col: str,
    latency_col: str | None,
    status_col: str | None,
) -> ArmStats:
    """Statistics of one version's rows (typically of one day); label NaN = not labelled yet.

    Rows with a label and a prediction are scored (see the module docstring); rows whose
    prediction is missing are left to the error guardrail. Missing status counts as an error,
    as in `monitor.py`; missing latency is skipped.
    """
    missing = [c for c in (prediction_col, label_col, latency_col, status_col) if c]
    missing = [c for c in missing if c not in frame.columns]
    if missing:
        raise DataError("column is missing from the canary rows", column=missing[0])
    n = len(frame)
    if n == 0:
        return ArmStats()
    pred, label = frame[prediction_col], frame[label_col]
    scored = (label.notna() & pred.notna()).to_numpy()
    if task.is_classification:
        p = _as_labels(pred[scored])
        y = _as_labels(label[scored])
        values = (p == y).astype(float)
    else:
        try:
            p = pd.to_numeric(pred[scored], errors="raise").to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise DataError(
                "regression predictions must be numeric", column=prediction_col
            ) from None
        try:
            y = pd.to_numeric(label[scored], errors="raise").to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise DataError("regression labels must be numeric", column=label_col) from None
        values = -np.abs(p - y)
    n_errors = 0
    if status_col:
        n_errors = int((frame[status_col].astype(str) != "ok").sum())
    hist = _empty_hist()
    if latency_col:
        lat = frame[latency_col]
        if not (pd.api.types.is_numeric_dtype(lat) or lat.isna().all()):
            raise DataError(f"latency must be numeric, got {lat.dtype}", column=latency_col)
        hist = latency_histogram(lat.to_numpy(dtype=float, na_value=np.nan))
    return ArmStats(
        n=n,
        n_labelled=int(values.size),
        sum=float(values.sum()),
        sumsq=float(np.square(values).sum()),
        n_errors=n_errors,
        latency_hist=hist,
    )


def cs_halfwidth(se2: Any, n_total: Any, *, alpha: float, n_star: int) -> Any:
    """Half-width of the two-sided asymptotic confidence sequence (notes 3.2, eq. 9).

    Vectorised over `se2` (squared standard error of the difference) and `n_total` (labelled
    rows of both arms) so simulations can evaluate thousands of canaries at once.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_star <= 0:
        raise ValueError(f"n_star must be positive, got {n_star}")
    rho2 = (-2.0 * math.log(alpha) + math.log(-2.0 * math.log(alpha) + 1.0)) / n_star
    n = np.asarray(n_total, dtype=float)
    a = n * rho2 + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        hw = np.sqrt(np.asarray(se2, dtype=float) * n) * np.sqrt(
            2.0 * a / (n * n * rho2) * np.log(np.sqrt(a) / alpha)
        )
    return hw if np.ndim(hw) else float(hw)


def _sequence(
    mean_c: float,
    var_c: float,
    n_c: int,
    mean_s: float,
    var_s: float,
    n_s: int,
    *,
    alpha: float,
    n_star: int,
) -> tuple[float, float, float]:
    if n_c <= 0 or n_s <= 0:
        return math.nan, math.nan, math.nan
    est = mean_c - mean_s
    se2 = var_c / n_c + var_s / n_s
    hw = float(cs_halfwidth(se2, n_c + n_s, alpha=alpha, n_star=n_star))
    return est, est - hw, est + hw


def confidence_sequence(
    canary: ArmStats, champion: ArmStats, *, alpha: float, n_star: int
) -> tuple[float, float, float]:
    """(estimate, lower, upper) of mean(canary) - mean(champion), anytime-valid at `alpha`.

    Valid simultaneously over every look, which is what lets the verdict run daily on all data
    so far. NaN triple when an arm has no labelled rows.
    """
    return _sequence(
        canary.mean,
        canary.variance,
        canary.n_labelled,
        champion.mean,
        champion.variance,
        champion.n_labelled,
        alpha=alpha,
        n_star=n_star,
    )


def error_rate_sequence(
    canary: ArmStats, champion: ArmStats, *, alpha: float, n_star: int
) -> tuple[float, float, float]:
    """(estimate, lower, upper) of error_rate(canary) - error_rate(champion), anytime-valid.

    The same sequence on the 0/1 error indicator over all predictions (labels are not needed),
    with the proportion variance p(1 - p).
    """

    def pv(a: ArmStats) -> tuple[float, float, int]:
        p = a.error_rate
        return p, (p * (1.0 - p) if a.n else math.nan), a.n

    return _sequence(*pv(canary), *pv(champion), alpha=alpha, n_star=n_star)


@dataclass
class CanaryVerdict:
    """The day's decision on a canary with everything it rests on (stored as evidence)."""

    verdict: Verdict
    reasons: list[str]
    estimate: float
    lower: float
    upper: float
    margin: float
    alpha: float
    n_star: int
    canary_mean: float
    champion_mean: float
    n_canary: int
    n_champion: int
    n_labelled_canary: int
    n_labelled_champion: int
    coverage: float
    days: int
    guardrails: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_causes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def canary_verdict(
    canary: ArmStats,
    champion: ArmStats,
    *,
    policy: CanaryPolicy,
    days: int,
    coverage: float,
) -> CanaryVerdict:
    """pass / fail / inconclusive for the canary on all its data so far (module docstring).

    `days`: days of canary traffic so far; `coverage`: the canary's label coverage (labelled
    share of its predictions in the cohorts judged), both computed by the caller.
    """
    est, lo, hi = confidence_sequence(canary, champion, alpha=policy.alpha, n_star=policy.n_star)
    reasons: list[str] = []
    fails: list[str] = []
    enough_preds = min(canary.n, champion.n) >= GUARDRAIL_MIN_PREDICTIONS

    e_est, e_lo, e_hi = error_rate_sequence(
        canary, champion, alpha=policy.alpha, n_star=policy.n_star
    )
    err_breached = bool(enough_preds and e_lo > policy.max_error_rate_increase)
    guardrails: dict[str, dict[str, Any]] = {
        "error_rate": {
            "canary": canary.error_rate,
            "champion": champion.error_rate,
            "increase": e_est,
            "lower": e_lo,
            "upper": e_hi,
            "limit": policy.max_error_rate_increase,
            "min_predictions": GUARDRAIL_MIN_PREDICTIONS,
            "evaluated": enough_preds,
            "breached": err_breached,
        }
    }
    p95_c, p95_s = canary.latency_p95, champion.latency_p95
    ratio = p95_c / p95_s if math.isfinite(p95_c) and math.isfinite(p95_s) and p95_s > 0 else None
    lat_ok = min(canary.n_latency, champion.n_latency) >= GUARDRAIL_MIN_PREDICTIONS
    lat_evaluated = bool(enough_preds and lat_ok and ratio is not None)
    lat_breached = bool(lat_evaluated and ratio > policy.max_latency_p95_ratio)
    guardrails["latency_p95"] = {
        "canary_ms": p95_c,
        "champion_ms": p95_s,
        "ratio": ratio,
        "limit": policy.max_latency_p95_ratio,
        "min_predictions": GUARDRAIL_MIN_PREDICTIONS,
        "evaluated": lat_evaluated,
        "breached": lat_breached,
    }

    causes: list[str] = []

    def verdict(v: Verdict, why: list[str]) -> CanaryVerdict:
        return CanaryVerdict(
            verdict=v,
            reasons=why,
            estimate=est,
            lower=lo,
            upper=hi,
            margin=policy.margin,
            alpha=policy.alpha,
            n_star=policy.n_star,
            canary_mean=canary.mean,
            champion_mean=champion.mean,
            n_canary=canary.n,
            n_champion=champion.n,
            n_labelled_canary=canary.n_labelled,
            n_labelled_champion=champion.n_labelled,
            coverage=coverage,
            days=days,
            guardrails=guardrails,
            fail_causes=list(causes),
        )

    if canary.n == 0 or champion.n == 0:
        which = "canary" if canary.n == 0 else "champion"
        return verdict("inconclusive", [f"no {which} predictions"])

    if err_breached:
        causes.append("error_rate")
        fails.append(
            f"error-rate guardrail: increase {_fmt(e_est)} (CS lower {_fmt(e_lo)}) > "
            f"{_fmt(policy.max_error_rate_increase)}"
        )
    if lat_breached:
        causes.append("latency_p95")
        fails.append(
            f"latency guardrail: p95 {_fmt(p95_c)} ms vs {_fmt(p95_s)} ms, ratio "
            f"{_fmt(ratio)} > {_fmt(policy.max_latency_p95_ratio)}"
        )
    judged = min(canary.n_labelled, champion.n_labelled) >= policy.min_labels
    if judged and hi < -policy.margin:
        causes.insert(0, "primary")
        fails.append(
            f"credibly worse: difference {_fmt(est)}, CS [{_fmt(lo)}, {_fmt(hi)}] entirely "
            f"below -margin {_fmt(-policy.margin)}"
        )
    if fails:
        return verdict("fail", fails)

    if not judged:
        reasons.append(
            f"too few labels: canary {canary.n_labelled}, champion {champion.n_labelled} "
            f"(need {policy.min_labels} each)"
        )
    elif not lo > -policy.margin:
        reasons.append(
            f"not yet credibly within the margin: CS [{_fmt(lo)}, {_fmt(hi)}] reaches below "
            f"-margin {_fmt(-policy.margin)}"
        )
    if days < policy.min_days:
        reasons.append(f"{days} days of traffic (need {policy.min_days})")
    if not coverage >= policy.min_coverage:
        reasons.append(f"label coverage {_fmt(coverage, 3)} (need {_fmt(policy.min_coverage)})")
    if reasons:
        return verdict("inconclusive", reasons)
    return verdict(
        "pass",
        [
            f"credibly not worse than the margin: difference {_fmt(est)}, CS [{_fmt(lo)}, "
            f"{_fmt(hi)}] above -margin {_fmt(-policy.margin)} after {days} days at label "
            f"coverage {_fmt(coverage, 3)}"
        ],
    )


def canary_findings(
    verdict: CanaryVerdict,
    *,
    tenant: str,
    model: str,
    partition: str,
    canary_version: str,
    champion_version: str,
) -> list[Finding]:
    """`canary_fail` (critical: it rolls back) or `canary_pass` (info); none when inconclusive.

    The finding's column is the canary version, so each canary version is its own problem for
    deduplication: a new canary failing is a new alert, not a repeat of the last one.
    """
    if verdict.verdict == "inconclusive":
        return []
    v = verdict
    evidence = {
        **v.to_dict(),
        "canary_version": canary_version,
        "champion_version": champion_version,
    }
    base = dict(tenant=tenant, model=model, partition=partition, asset=ASSET)
    head = f"canary {canary_version} vs champion {champion_version}: "
    detail = "; ".join(v.reasons)
    if v.verdict == "pass":
        return [
            Finding(
                **base,
                signal=Signal.CANARY_PASS.value,
                severity=Severity.INFO,
                value=v.lower,
                threshold=-v.margin,
                column=canary_version,
                message=head + "pass, " + detail,
                evidence=evidence,
            )
        ]
    g = v.guardrails
    if "primary" in v.fail_causes:
        value, threshold = v.upper, -v.margin
    elif "error_rate" in v.fail_causes:
        value, threshold = g["error_rate"]["lower"], g["error_rate"]["limit"]
    else:
        value, threshold = g["latency_p95"]["ratio"], g["latency_p95"]["limit"]
    return [
        Finding(
            **base,
            signal=Signal.CANARY_FAIL.value,
            severity=Severity.CRITICAL,
            value=float(value),
            threshold=float(threshold),
            column=canary_version,
            message=head + "fail (roll back), " + detail,
            evidence=evidence,
        )
    ]
