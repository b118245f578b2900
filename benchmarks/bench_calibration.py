"""Drift verdicts on generated days with known truth: the previous rule and the calibrated one,
side by side on the same days.

* False alarms: the share of unchanged model-days with any drift finding (feature, prediction,
  dataset, null-rate or unseen-category), at 200, 1,000, 10,000 and 100,000 rows a day, with
  independent rows and with rows in correlated groups of 2-8 (the reference in arrival order,
  and shuffled so that only the days themselves can tell the rows are correlated).
* Detection: days from the start of a lasting change to the first finding on the changed
  column: a 0.2-std mean shift in one numeric feature, and 5 points more of one category.

The previous rule is rebuilt from the same evidence (uncorrected p-values): p-value tests alone
(KS, chi-square) at q < 0.05 when either side has <= 1,000 rows, else the effect size
(W1/std or Jensen-Shannon >= 0.1) and q < 0.05; null-rate z-test at p < 0.05; the day alone.

    python benchmarks/bench_calibration.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from aiops_pipelines.core.config import DriftThresholds
from aiops_pipelines.demo import drift_trials as t
from aiops_pipelines.signals.drift.compare import (
    compare_profiles,
    null_rate_drift,
    unseen_categories,
)
from aiops_pipelines.signals.drift.day import DriftResult
from aiops_pipelines.signals.drift.statistics import benjamini_hochberg

OLD = DriftThresholds(fdr_alpha=0.05, jensenshannon=(0.1, 0.2), windows=[1])


def previous_rule(model, ref, today, history) -> DriftResult:  # noqa: ANN001 - bench only
    """The rule before calibration, from uncorrected evidence, as a list of findings' columns."""
    rep = compare_profiles(
        ref.profile, today.profile, OLD, features=t.NUMERIC + t.CATEGORICAL, alpha=0.05
    )
    small = min(ref.profile.n_rows, today.profile.n_rows) <= 1000
    ps = []
    for c in rep.features:
        e = c.evidence
        binned = c.method == "jensenshannon"
        ps.append(e["chi2_p_independent"] if binned else e["ks_p_independent"])
    findings = []
    for c, q in zip(rep.features, benjamini_hochberg(ps), strict=True):
        e = c.evidence
        effect = e["jensenshannon"] if c.method == "jensenshannon" else e["wasserstein_normed"]
        if (q < 0.05) if small else (effect >= 0.1 and q < 0.05):
            findings.append(("feature_drift", c.column))
    for col in t.NUMERIC + t.CATEGORICAL:
        r = null_rate_drift(ref.profile.columns[col], today.profile.columns[col])
        if r.increase >= 0.05 and stats.norm.sf(r.z) < 0.05:
            findings.append(("null_rate_drift", col))
    for col in t.CATEGORICAL:
        u = unseen_categories(ref.profile.columns[col], today.profile.columns[col], OLD)
        if u.drifted:
            findings.append(("unseen_category", col))
    return DriftResult(rep, findings, {})  # type: ignore[arg-type]


def _columns(res: DriftResult) -> set[str]:
    out = set()
    for f in res.findings:
        if isinstance(f, tuple):
            out.add(f[1])
        elif f.signal in ("feature_drift", "null_rate_drift", "unseen_category"):
            out.add(f.column)
    return out


def false_alarms(quick: bool) -> None:
    sizes = [200, 1000, 10_000] if quick else [200, 1000, 10_000, 100_000]
    print("\nNo-change model-days with any drift finding (previous rule -> calibrated rule)")
    print(
        f"{'rows/day':>9} | {'independent':>21} | {'groups of 2-8':>21} | "
        f"{'groups, shuffled reference':>27} | days"
    )
    refs = {
        "independent": t.reference(0, 200_000, grouped=False),
        "grouped": t.reference(0, 200_000, grouped=True),
        "shuffled": t.reference(0, 200_000, grouped=True, shuffled=True),
    }
    model = t.trial_model()
    for n in sizes:
        days = 60 if quick else (100 if n >= 100_000 else 400 if n >= 10_000 else 600)
        cells = []
        t0 = time.perf_counter()
        for name, ref in refs.items():
            grouped = name != "independent"
            old = new = 0
            for _, res in t.run_days(model, ref, seed=7, n=n, days=days, grouped=grouped):
                new += bool(res.findings)
            for _, res in t.run_days(
                model, ref, seed=7, n=n, days=days, grouped=grouped, judge=previous_rule
            ):
                old += bool(res.findings)
            cells.append(f"{old / days:6.1%} -> {new / days:5.1%}")
        print(
            f"{n:>9,} | {cells[0]:>21} | {cells[1]:>21} | {cells[2]:>27} | {days} "
            f"({time.perf_counter() - t0:.0f} s)"
        )


def detection(quick: bool) -> None:
    trials = 6 if quick else 30
    print(
        f"\nDays to the first finding on the changed column ({trials} trials each; change from "
        "day 8 on, '>12' = not within 12 days): median [max], share on day 1"
    )
    model = t.trial_model()
    cases = [
        ("0.2-std shift in 'amount'", "amount", t.Change(7, numeric_shift=0.2)),
        ("+5 points of plan 'p0'", "plan", t.Change(7, category_points=5.0)),
    ]
    for grouped in (False, True):
        ref = t.reference(0, 200_000, grouped=grouped)
        for n in (1000, 10_000):
            for label, column, change in cases:
                row = []
                for judge in (previous_rule, None):
                    delays = []
                    for r in range(trials):
                        got = math.inf
                        for d, res in t.run_days(
                            model,
                            ref,
                            seed=1000 + r,
                            n=n,
                            days=7 + 12,
                            grouped=grouped,
                            change=change,
                            judge=judge,
                        ):
                            if d >= 7 and column in _columns(res):
                                got = d - 6
                                break
                        delays.append(got)
                    arr = np.array(delays)
                    med = float(np.median(arr))
                    worst = arr.max()
                    row.append(
                        f"{'>12' if math.isinf(med) else f'{med:g}'} "
                        f"[{'>12' if math.isinf(worst) else f'{worst:g}'}] "
                        f"{np.mean(arr == 1):4.0%}"
                    )
                rows = "groups of 2-8" if grouped else "independent"
                print(f"{rows:>13} {n:>7,}/day  {label:<26} previous {row[0]:<16} new {row[1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer days and trials")
    args = ap.parse_args()
    t0 = time.perf_counter()
    false_alarms(args.quick)
    detection(args.quick)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
