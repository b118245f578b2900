"""Multivariate drift on generated model-days with known truth (`signals.drift.multivariate`).

* False alarms: the share of unchanged model-days with a `multivariate_drift` finding, at 150,
  1,000, 5,000 and 50,000 rows a day (the day's sample holds at most 5,000 rows, as
  `sample_rows` keeps it), with independent rows and with rows in groups of 2-8 sharing every
  value (`demo.drift_trials`), the reference (200,000 rows) sampled the way `SampleKeeper`
  samples it: 5,000 uniform rows in arrival order. A third column gives the groups in a sample
  drawn in random order (what `profile: pushdown` keeps). Each rate with its 95% Clopper-Pearson
  upper bound; target <= 1% per model-day.
* Detection: the share of days found after a correlation flip of two features with unchanged
  marginals ("x1", "x2": +0.8 -> -0.8, and the subtler +0.8 -> +0.4).
* Time per model-day, CPU seconds on one thread (OMP_NUM_THREADS=1 is set here), the default
  config (3 folds).

    python benchmarks/bench_multivariate.py [--quick] [--days N] [--sizes 150,1000]
        [--part false-alarms|detection]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the budget is stated

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from aiops_pipelines.core.config import ModelConfig, parse_config  # noqa: E402
from aiops_pipelines.demo import drift_trials as t  # noqa: E402
from aiops_pipelines.signals.drift.multivariate import multivariate_drift  # noqa: E402

SAMPLE_ROWS = 5000
PAIR = ["x1", "x2"]


def bench_model() -> ModelConfig:
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": "/tmp",
        },
        "tenants": [
            {
                "name": "bench",
                "models": [
                    {
                        "name": "joint",
                        "task": "binary_classification",
                        "features": {"numeric": PAIR + t.NUMERIC, "categorical": t.CATEGORICAL},
                        "predictions": {"url": "sqlite://", "table": "p"},
                        "reference": {"url": "sqlite://", "table": "r"},
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


def rows(rng: np.random.Generator, n: int, *, grouped: bool, rho: float = 0.8) -> pd.DataFrame:
    """n rows in arrival order: `drift_trials` features plus x1, x2 (normal, correlation rho,
    the same marginals whatever rho), whole groups sharing every value."""
    sizes = t.group_sizes(rng, n, grouped)
    x = t.features(rng, len(sizes))
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], len(sizes))
    x["x1"] = 50 + 10 * z[:, 0]
    x["x2"] = 5 + 2 * z[:, 1]
    return x.iloc[np.repeat(np.arange(len(sizes)), sizes)].reset_index(drop=True)


def sample(rng: np.random.Generator, df: pd.DataFrame, *, shuffled: bool = False) -> pd.DataFrame:
    """What `SampleKeeper` keeps: at most SAMPLE_ROWS uniform rows in arrival order (or in
    random order, as the push-down profile's `ORDER BY random()` sample)."""
    keep = np.arange(len(df))
    if len(df) > SAMPLE_ROWS:
        keep = np.sort(rng.choice(len(df), SAMPLE_ROWS, replace=False))
    if shuffled:
        keep = rng.permutation(keep)
    return df.iloc[keep].reset_index(drop=True)


def upper95(k: int, n: int) -> float:
    """Clopper-Pearson one-sided 95% upper bound of a rate seen k times in n."""
    return 1.0 if k >= n else float(stats.beta.ppf(0.95, k + 1, n - k))


def false_alarms(model: ModelConfig, days: int, sizes: list[int]) -> None:
    print(f"\nNo-change model-days with a multivariate_drift finding ({days} days per cell)")
    print(
        f"{'rows/day':>9} | {'independent':>20} | {'groups of 2-8':>20} | "
        f"{'groups, random order':>20} | CPU s/day (median, max)"
    )
    refs = {}
    for grouped in (False, True):
        rng = np.random.default_rng([11, grouped])
        refs[grouped] = sample(rng, rows(rng, 200_000, grouped=grouped))
    total = fired_total = 0
    for n in sizes:
        cells, times = [], []
        for grouped, shuffled in ((False, False), (True, False), (True, True)):
            rng = np.random.default_rng([12, n, grouped, shuffled])
            fired = 0
            for d in range(days):
                day = sample(rng, rows(rng, n, grouped=grouped), shuffled=shuffled)
                t0 = time.process_time()
                res = multivariate_drift(model, f"day-{d}", refs[grouped], day, seed=d)
                times.append(time.process_time() - t0)
                fired += bool(res.findings)
            total += days
            fired_total += fired
            cells.append(f"{fired / days:5.1%} (<= {upper95(fired, days):4.1%})")
        print(
            f"{n:>9,} | {cells[0]:>20} | {cells[1]:>20} | {cells[2]:>20} | "
            f"{np.median(times):.3f}, {max(times):.3f}"
        )
    print(
        f"all cells: {fired_total} of {total} model-days = {fired_total / total:.2%} "
        f"(95% upper bound {upper95(fired_total, total):.2%})"
    )


def detection(model: ModelConfig, trials: int, sizes: list[int]) -> None:
    print(f"\nCorrelation flips found ({trials} days per cell; marginals unchanged)")
    print(f"{'rows/day':>9} | {'rows':>11} | {'+0.8 -> -0.8':>12} | {'+0.8 -> +0.4':>12}")
    for grouped in (False, True):
        rng = np.random.default_rng([21, grouped])
        ref = sample(rng, rows(rng, 200_000, grouped=grouped))
        for n in sizes:
            cells = []
            for rho in (-0.8, 0.4):
                found = 0
                for d in range(trials):
                    day = sample(rng, rows(rng, n, grouped=grouped, rho=rho))
                    found += bool(multivariate_drift(model, f"d{d}", ref, day, seed=d).findings)
                cells.append(f"{found / trials:.0%}")
            kind = "groups 2-8" if grouped else "independent"
            print(f"{n:>9,} | {kind:>11} | {cells[0]:>12} | {cells[1]:>12}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer days")
    ap.add_argument("--days", type=int, default=None, help="no-change days per cell")
    ap.add_argument(
        "--sizes", default="150,1000,5000,50000", help="rows a day of the no-change cells"
    )
    ap.add_argument("--part", choices=["all", "false-alarms", "detection"], default="all")
    args = ap.parse_args()
    model = bench_model()
    t0 = time.perf_counter()
    days = args.days or (40 if args.quick else 120)
    if args.part in ("all", "false-alarms"):
        false_alarms(model, days, [int(n) for n in args.sizes.split(",")])
    if args.part in ("all", "detection"):
        detection(model, 10 if args.quick else 40, [150, 1000, 5000])
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
