"""Operational signals resting on few requests, the old path and the new one side by side on
the same generated series with known truth.

1. Latency p95 of a quiet day (`signals.anomaly.detect`, kind latency): four weeks of hourly
   p95s from the ops histogram (~125 requests an hour, log-normal latency with 0.5% errors
   three times slower, the demo world's law; the generator of `tests/unit/signals/
   test_anomaly.py`), then one day at a fraction of the traffic.
   Share of such unchanged days with a latency_regression, without the hours' request counts
   (old) and with them (`support`, new); and the share of days with a real 1.5x regression
   at full traffic found.
2. Lasting error-rate shifts (`signals.operations.day.level_shifts`): 28 days of hourly
   requests (Poisson, daily cycle) and failures (binomial, or in bursts). Share of unchanged
   series with an error_rate level_shift reported on their last day, old rule (PELT on the
   hourly rate, medians of the segments) and new one (`error_rate_shift`: binomial noise floor,
   pooled rates, two-proportion z over-dispersion corrected); then the share of series whose
   rate steps up for the last 30 hours found on that day.

    python benchmarks/bench_ops_small_counts.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiops_pipelines.demo.drift_trials import trial_model  # noqa: E402
from aiops_pipelines.signals.anomaly import detect  # noqa: E402
from aiops_pipelines.signals.changepoints import current_shift  # noqa: E402
from aiops_pipelines.signals.operations.day import (  # noqa: E402
    error_rate_shift,
    hourly_error_rate,
)
from tests.unit.signals.test_anomaly import p95_hours  # noqa: E402

START = pd.Timestamp("2026-01-05", tz="UTC")  # a Monday
HOURS = 28 * 24


def latency(trials: int) -> None:
    print(f"\n1. Latency p95 of one day ({trials} series each): days with a latency_regression")
    print(f"{'day':<34} {'old (no counts)':>16} {'new (support)':>14}")
    for label, traffic, regression in (
        ("unchanged, 100% of traffic", 1.0, 1.0),
        ("unchanged, 20% of traffic", 0.2, 1.0),
        ("unchanged, 10% of traffic", 0.1, 1.0),
        ("1.5x slower, 100% of traffic", 1.0, 1.5),
    ):
        old = new = 0
        for seed in range(trials):
            history, day, counts = p95_hours(seed, traffic=traffic, regression=regression)
            old += bool(detect(day, history, kind="latency"))
            new += bool(detect(day, history, kind="latency", support=counts))
        print(f"{label:<34} {old / trials:>16.1%} {new / trials:>14.1%}")


def error_series(
    seed: int, per_hour: float, rate: float, burst: int = 1, after: float | None = None
) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=HOURS, freq="h")
    load = 1 + 0.6 * np.sin(2 * np.pi * (np.asarray(index.hour) - 9) / 24)
    n = rng.poisson(per_hour * load)
    p = np.full(n.size, rate)
    if after is not None:
        p[-30:] = after
    errors = rng.binomial(n // burst, p) * burst
    return pd.Series(errors.astype(float), index), pd.Series(n.astype(float), index)


def shifted(errors: pd.Series, requests: pd.Series, new: bool, gate: float) -> bool:
    if new:
        sh = error_rate_shift(errors, requests, 168)
    else:
        sh = current_shift(hourly_error_rate(errors, requests), period=168, scale="linear")
    return sh is not None and sh.after - sh.before >= gate


def error_rate(trials: int) -> None:
    gate = trial_model().ops.level_shift_min_error_rate
    print(f"\n2. Error-rate level shifts ({trials} series each, gate {gate:.0%} up)")
    print(f"{'series':<48} {'old':>7} {'new':>7}")
    cases = [
        ("unchanged 0.5%, 25 requests/h", 25, 0.005, 1, None),
        ("unchanged 2%, 25 requests/h", 25, 0.02, 1, None),
        ("unchanged 2%, 25 requests/h, bursts of 5", 25, 0.02, 5, None),
        ("unchanged 0.5%, 200 requests/h", 200, 0.005, 1, None),
        ("unchanged 1%, 1,000 requests/h", 1000, 0.01, 1, None),
        ("0.5% -> 3% for 30 h, 25 requests/h", 25, 0.005, 1, 0.03),
        ("0.5% -> 5% for 30 h, 25 requests/h", 25, 0.005, 1, 0.05),
        ("0.5% -> 2% for 30 h, 200 requests/h", 200, 0.005, 1, 0.02),
        ("1% -> 3% for 30 h, 1,000 requests/h", 1000, 0.01, 1, 0.03),
    ]
    for label, per_hour, rate, burst, after in cases:
        old = new = 0
        for seed in range(trials):
            errors, requests = error_series(seed, per_hour, rate, burst, after)
            old += shifted(errors, requests, False, gate)
            new += shifted(errors, requests, True, gate)
        print(f"{label:<48} {old / trials:>7.1%} {new / trials:>7.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer series")
    args = ap.parse_args()
    t0 = time.perf_counter()
    latency(60 if args.quick else 300)
    error_rate(60 if args.quick else 300)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
