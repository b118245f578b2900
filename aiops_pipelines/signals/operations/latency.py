"""Latency histograms on fixed log-spaced edges: addable across days and versions.

0.1 ms to 100 s in 200 bins (ratio 1.072 per bin), so a p95 is recomputed after merging (a p95
of p95s is not a p95) and is within one bin width of the exact percentile.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LATENCY_MIN_MS = 0.1
LATENCY_MAX_MS = 100_000.0
LATENCY_BINS = 200
LATENCY_EDGES_MS: np.ndarray = np.geomspace(LATENCY_MIN_MS, LATENCY_MAX_MS, LATENCY_BINS + 1)
LATENCY_QUANTILE = 0.95


def empty_latency_histogram() -> np.ndarray:
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
