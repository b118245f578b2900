"""Canary statistics: is a new version credibly worse, or credibly not worse, than the champion?

A canary serves a share of live traffic next to the champion, and it is judged every day on all
its data so far. Looking every day at a fixed-horizon test (two-proportion z, Welch t) inflates
false rollbacks: with 30 daily looks a one-sided 0.05 z-test rolls back ~20% of canaries that are
exactly as good as the champion (pinned in the canary tests). So the primary
comparison uses an **anytime-valid confidence sequence**, which holds simultaneously at every
look, however often and whenever we look.

Definitions (the numbers in the store mean exactly this)
--------------------------------------------------------
* **Per-prediction value** (higher is always better): classification, 1 when the prediction
  equals the label compared as strings (1, 1.0 and "1" are the same class), else 0; regression,
  ``-|prediction - label|``. Only labelled rows with a prediction are scored; a failed request
  without a prediction counts in the error-rate guardrail instead, never twice.
* **ArmStats**: mergeable sufficient statistics of one version over some predictions: counts,
  sum and sum of squares of the value over labelled rows, errors (status != "ok", as the
  feature profile counts them), and a latency histogram on fixed log-spaced edges (0.1 ms to 100 s,
  200 bins, ratio 1.072 per bin), so days merge by addition and the p95 is recomputed after
  merging (a p95 of p95s is not a p95). The variance is the plug-in one (divide by n): for 0/1
  values it is p(1 - p), the proportion's variance.
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import TaskType
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import jsonable
from aiops_pipelines.core.values import category_label
from aiops_pipelines.signals.operations.latency import (
    LATENCY_BINS,
    LATENCY_QUANTILE,
    empty_latency_histogram,
    histogram_quantile,
    latency_histogram,
)


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
    latency_hist: np.ndarray = field(default_factory=empty_latency_histogram)

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
        h = empty_latency_histogram() if not hist else np.asarray(hist, dtype=np.int64)
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
    labels = np.array([category_label(u) for u in uniques] + [""], dtype=object)
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
    as in the feature profile (`profile_for_day`); missing latency is skipped.
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
    hist = empty_latency_histogram()
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
