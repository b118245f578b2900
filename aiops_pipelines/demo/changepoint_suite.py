"""Generated hourly series with known change points, and the scores of the change-point
literature to judge detectors on them (used by `benchmarks/bench_changepoints.py` and tests).

Scores as the Turing change-point benchmark defines them (van den Burg & Williams, 2020):
the start of the series counts as a change point in both the truth and the prediction; F1
matches each true change point with at most one predicted within `margin` points; covering
is the length-weighted best Jaccard overlap of each true segment with a predicted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

HOURS = 24 * 28
"""Four weeks of hourly points: the window the ops detector segments."""


@dataclass(frozen=True)
class Case:
    name: str
    values: np.ndarray
    truth: list[int]
    scale: str = "linear"
    seasonal: bool = False


def _daily(n: int, amp: float = 0.5) -> np.ndarray:
    h = np.arange(n) % 24
    return amp * np.sin(2 * np.pi * (h - 6) / 24)


def _weekly(n: int, weekend: float = -0.4) -> np.ndarray:
    day = (np.arange(n) // 24) % 7
    return np.where(day >= 5, weekend, 0.0)


def _cps(rng: np.random.Generator, n: int, k: int, gap: int = 48) -> list[int]:
    while True:
        cps = sorted(rng.integers(gap, n - gap, k).tolist())
        if all(b - a >= gap for a, b in zip(cps[:-1], cps[1:], strict=True)):
            return cps


def _steps(n: int, cps: list[int], levels: list[float]) -> np.ndarray:
    out = np.full(n, levels[0])
    for cp, lev in zip(cps, levels[1:], strict=True):
        out[cp:] = lev
    return out


def suite(seed: int, n: int = HOURS) -> list[Case]:
    """One series of each kind: level shifts, drops to a fraction that last, a variance
    change, seasonal with and without a shift, trends with and without, outliers with and
    without, and plain noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, n)
    cases = []
    cps = _cps(rng, n, int(rng.integers(1, 4)))
    signs = rng.choice([-1, 1], len(cps))
    levels = np.concatenate(([0.0], np.cumsum(signs * rng.uniform(2, 5, len(cps)))))
    cases.append(Case("level shifts", _steps(n, cps, list(levels)) + noise, cps))
    # throughput: Poisson counts with daily + weekly cycles, dropping to a fraction that lasts
    cp = _cps(rng, n, 1, gap=72)
    base = 200 * np.exp(_daily(n) + _weekly(n))
    frac = float(rng.choice([0.3, 0.5, 0.7]))
    rate = base * np.where(np.arange(n) >= cp[0], frac, 1.0)
    cases.append(Case("drop that lasts", rng.poisson(rate).astype(float), cp, "log", True))
    cp = _cps(rng, n, 1)
    sd = np.where(np.arange(n) >= cp[0], 3.0, 1.0)
    cases.append(Case("variance change", rng.normal(0, 1, n) * sd, cp))
    cp = _cps(rng, n, 1, gap=72)
    shift = _steps(n, cp, [0.0, float(rng.choice([-1, 1]) * rng.uniform(0.15, 0.4))])
    seasonal = 100 * np.exp(_daily(n) + _weekly(n) + shift)
    cases.append(
        Case("seasonal, level shift", rng.poisson(seasonal).astype(float), cp, "log", True)
    )
    calm = 100 * np.exp(_daily(n) + _weekly(n))
    cases.append(Case("seasonal, no change", rng.poisson(calm).astype(float), [], "log", True))
    slope = rng.uniform(2, 6) / n
    cases.append(Case("trend", slope * np.arange(n) * 1.0 + rng.normal(0, 0.5, n) * 1, []))
    cp = _cps(rng, n, 1)
    cases.append(
        Case(
            "trend, level shift",
            slope * np.arange(n) + _steps(n, cp, [0.0, 3.0]) + rng.normal(0, 0.5, n) * 2,
            cp,
        )
    )
    spikes = np.zeros(n)
    spikes[rng.choice(n, 8, replace=False)] = rng.choice([-1, 1], 8) * rng.uniform(6, 12, 8)
    cases.append(Case("outliers", rng.normal(0, 1, n) + spikes, []))
    cp = _cps(rng, n, 1)
    cases.append(
        Case("outliers, level shift", rng.normal(0, 1, n) + spikes + _steps(n, cp, [0, 3]), cp)
    )
    cases.append(Case("no change", rng.normal(0, 1, n), []))
    return cases


def f1_score(truth: list[int], pred: list[int], margin: int = 5) -> float:
    """F1 with the series start counted on both sides, one match per true change point."""
    t = sorted({0, *truth})
    p = sorted({0, *pred})
    used: set[int] = set()
    tp = 0
    for x in t:
        near = [q for q in p if abs(q - x) <= margin and q not in used]
        if near:
            used.add(min(near, key=lambda q: abs(q - x)))
            tp += 1
    precision, recall = tp / len(p), tp / len(t)
    return 2 * precision * recall / (precision + recall) if tp else 0.0


def _segments(cps: list[int], n: int) -> list[tuple[int, int]]:
    edges = [0, *sorted(c for c in set(cps) if 0 < c < n), n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def covering(truth: list[int], pred: list[int], n: int) -> float:
    """Length-weighted best Jaccard overlap of each true segment with a predicted one."""
    total = 0.0
    for a, b in _segments(truth, n):
        best = 0.0
        for c, d in _segments(pred, n):
            inter = max(0, min(b, d) - max(a, c))
            if inter:
                best = max(best, inter / (max(b, d) - min(a, c)))
        total += (b - a) * best
    return total / n


Detector = Callable[[Case], list[int]]
