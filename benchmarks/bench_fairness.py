"""Fairness findings on generated days with known truth: the false-alarm rate per model-day on
fair days (small to large, two or four groups, rows arriving in runs of 20 identical rows), at
the worst fair case (every metric exactly at its warning threshold), and the detection rate
of a group treated worse; and the time of `fairness_for_day` on a day's rows.

Days are simulated as the counts `fairness_for_day` makes of a day's rows (per group, 10-minute
block and cell: `simulated_cells` in tests/unit/signals/test_fairness.py) and judged by the
engine's own `DayCells.design_effect` and `judge_groups`; a few hundred days also go through
`fairness_for_day` on rows.
Targets: <= 1% of fair model-days with a finding, at every n.

    PYTHONPATH=. python benchmarks/bench_fairness.py [--days 5000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops_pipelines.signals.fairness import fairness_for_day  # noqa: E402
from tests.unit.signals.test_fairness import (  # noqa: E402
    AT_THRESHOLDS,
    BIASED,
    DAY,
    FAIR,
    biased_day,
    make_model,
    share_of_days_with_findings,
)

FOUR_FAIR = {g: FAIR["1"] for g in ("1", "0", "2", "3")}


def rows_path(days: int, n: int) -> float:
    """Share of fair days (rows, through fairlearn) with a finding."""
    model = make_model()
    rng = np.random.default_rng(7)
    raised = 0
    for _ in range(days):
        frame = biased_day(rng, n, tpr=(0.7, 0.7), fpr=(0.3, 0.3), base_rate=0.5)
        raised += bool(fairness_for_day(model, DAY, frame).findings)
    return raised / days


def seconds_per_day(n: int, repeat: int = 3) -> float:
    model = make_model()
    frame = biased_day(np.random.default_rng(0), n)
    fairness_for_day(model, DAY, frame)
    started = time.perf_counter()
    for _ in range(repeat):
        fairness_for_day(model, DAY, frame)
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=5000)
    args = parser.parse_args()
    started = time.perf_counter()
    d = args.days
    fair = {
        f"n={n}": share_of_days_with_findings(FAIR, n, d, seed=n) for n in (100, 300, 1000, 5000)
    }
    fair["n=50000"] = share_of_days_with_findings(FAIR, 50_000, d, seed=1)
    fair["n=5000, 4 groups"] = share_of_days_with_findings(FOUR_FAIR, 5000, d, seed=2)
    for n, seed in ((300, 3), (1000, 31), (5000, 32), (50000, 33)):
        fair[f"n={n}, runs of 20 rows"] = share_of_days_with_findings(
            FAIR, n, d, seed=seed, cluster=20
        )
    fair["n=1000, coverage 0.1"] = share_of_days_with_findings(FAIR, 1000, d, seed=4, coverage=0.1)
    boundary = {
        f"n={n}": share_of_days_with_findings(AT_THRESHOLDS, n, d, seed=10 + n)
        for n in (300, 1000, 5000, 50000)
    }
    for n, seed in ((300, 5), (5000, 51)):
        boundary[f"n={n}, runs of 20 rows"] = share_of_days_with_findings(
            AT_THRESHOLDS, n, d, seed=seed, cluster=20
        )
    detected = {
        f"n={n}": share_of_days_with_findings(BIASED, n, d // 5, seed=20 + n)
        for n in (300, 500, 1000, 2000, 5000)
    }
    detected["n=5000, runs of 20 rows"] = share_of_days_with_findings(
        BIASED, 5000, d // 5, seed=6, cluster=20
    )
    print(
        json.dumps(
            {
                "fairness": {
                    "days_per_case": d,
                    "alpha": make_model().fairness.alpha,  # type: ignore[union-attr]
                    "fair_days_with_a_finding": fair,
                    "at_thresholds_days_with_a_finding": boundary,
                    "biased_days_found": detected,
                    "rows_path_fair_days_with_a_finding_n=2000_300_days": rows_path(300, 2000),
                    "seconds_per_day": {
                        f"n={n}": round(seconds_per_day(n), 3) for n in (1000, 100_000, 1_000_000)
                    },
                    "seconds": round(time.perf_counter() - started, 1),
                }
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
