"""Change points on generated hourly series with known truth: our detector next to ruptures'
PELT and Binseg with default settings and a detector that flags nothing.

1. The suite (`aiops_pipelines.demo.changepoint_suite`): level shifts, drops to a fraction
   that last, a variance change, seasonal series with and without a shift, trends with and
   without, outliers with and without, plain noise; four weeks of hourly points each. Scored
   with F1 (margin 5) and covering, the Turing change-point benchmark's measures.
2. Online, as the ops asset runs it: each day the last four weeks are segmented and the
   current shift (if any) reported with its onset. On a year of unchanged seasonal traffic,
   how many distinct false onsets; on traffic dropping to a fraction and staying, how many
   days until it is reported (the seasonal spike detector absorbs it within days).

PELT and Binseg: `ruptures` defaults (least-squares cost, min_size 2, jump 5) with the BIC
penalty 2 sigma^2 log n, sigma from the median absolute first difference.

    python benchmarks/bench_changepoints.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd
import ruptures as rpt

from aiops_pipelines.demo import changepoint_suite as cs
from aiops_pipelines.signals.changepoints import change_points, current_shift, robust_sigma


def ours(c: cs.Case) -> list[int]:
    return change_points(c.values, period=168, scale=c.scale)


def _bic(x: np.ndarray) -> float:
    s = robust_sigma(x) or float(np.std(x)) or 1.0
    return 2 * s * s * math.log(len(x))


def pelt(c: cs.Case) -> list[int]:
    x = c.values.reshape(-1, 1)
    return [b for b in rpt.Pelt(model="l2").fit(x).predict(pen=_bic(c.values)) if b < len(x)]


def binseg(c: cs.Case) -> list[int]:
    x = c.values.reshape(-1, 1)
    return [b for b in rpt.Binseg(model="l2").fit(x).predict(pen=_bic(c.values)) if b < len(x)]


DETECTORS = {"ours": ours, "PELT": pelt, "Binseg": binseg, "no change point": lambda c: []}


def offline(seeds: int) -> None:
    scores: dict[str, dict[str, list[tuple[float, float]]]] = {k: {} for k in DETECTORS}
    seconds = dict.fromkeys(DETECTORS, 0.0)
    for seed in range(seeds):
        for case in cs.suite(seed):
            for name, detect in DETECTORS.items():
                t0 = time.perf_counter()
                pred = detect(case)
                seconds[name] += time.perf_counter() - t0
                score = (
                    cs.f1_score(case.truth, pred),
                    cs.covering(case.truth, pred, case.values.size),
                )
                scores[name].setdefault(case.name, []).append(score)
    print(f"\nChange-point suite: {seeds} series of each kind, F1 (margin 5) / covering")
    print(f"{'':<24}" + "".join(f"{k:>17}" for k in DETECTORS))
    names = list(scores["ours"])
    for n in names:
        row = "".join(
            f"{np.mean([f for f, _ in scores[k][n]]):10.2f} / "
            f"{np.mean([c for _, c in scores[k][n]]):.2f}"
            for k in DETECTORS
        )
        print(f"{n:<24}{row}")
    row = "".join(
        f"{np.mean([f for n in names for f, _ in scores[k][n]]):10.2f} / "
        f"{np.mean([c for n in names for _, c in scores[k][n]]):.2f}"
        for k in DETECTORS
    )
    print(f"{'all':<24}{row}")
    per = len(names) * seeds
    print("seconds per series: " + ", ".join(f"{k} {v / per:.3f}" for k, v in seconds.items()))


def _traffic(rng: np.random.Generator, hours: int, drop_at: int | None, frac: float) -> pd.Series:
    h = np.arange(hours)
    rate = 200 * np.exp(
        0.5 * np.sin(2 * np.pi * ((h % 24) - 6) / 24) - 0.4 * (((h // 24) % 7) >= 5)
    )
    if drop_at is not None:
        rate = np.where(h >= drop_at, rate * frac, rate)
    index = pd.date_range("2026-01-05", periods=hours, freq="h", tz="UTC")
    return pd.Series(rng.poisson(rate).astype(float), index=index)


def online(years: int) -> None:
    window = 24 * 28
    false_onsets = []
    for seed in range(years):
        s = _traffic(np.random.default_rng(seed), 24 * (365 + 28), None, 1.0)
        onsets = set()
        for day in range(28, 365 + 28):
            shift = current_shift(s.iloc[(day - 28) * 24 : day * 24], period=168, scale="log")
            if shift is not None:
                onsets.add(shift.onset)
        false_onsets.append(len(onsets))
    print(
        f"\nOnline, a year of unchanged seasonal traffic ({years} series-years, the last 4 weeks "
        f"segmented each day): false onsets per series-year {false_onsets} "
        f"(mean {np.mean(false_onsets):.2f})"
    )
    for frac in (0.5, 0.8):
        delays = []
        for seed in range(years * 4):
            rng = np.random.default_rng(1000 + seed)
            drop_at = 24 * 35 + int(rng.integers(0, 24))
            s = _traffic(rng, 24 * 56, drop_at, frac)
            got = math.inf
            for day in range(36, 56):
                shift = current_shift(s.iloc[(day - 28) * 24 : day * 24], period=168, scale="log")
                if shift is not None and shift.direction == "down":
                    got = day - 35
                    assert abs((shift.onset - s.index[drop_at]).total_seconds()) <= 6 * 3600
                    break
            delays.append(got)
        arr = np.array(delays)
        print(
            f"traffic dropping to {frac:.0%} and staying: reported after {np.median(arr):g} day(s) "
            f"(median, max {arr.max():g}) with its onset within 6 hours"
        )
    print(f"({window} hourly points per evaluation)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    offline(3 if args.quick else 20)
    online(1 if args.quick else 3)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
