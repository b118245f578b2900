"""Segment drift: what profiling every segment value costs a day, and how often unchanged days
raise a segment_drift finding.

Cost: a Parquet day of `--rows` rows (default 200,000) x 20 features (16 numeric, 4
categorical, one of them the segment `region` with 10 values, Zipf-shared), profiled by
`profile_for_day` as `feature_profile` does, on the same reference: the old path (segment
drift off) and the new one (`segment_drift.top_k` 5: 5 values and `other`, each profiled as
the whole day is), best of `--repeats`, each in turn; then the stored day's JSON size with and
without the segment profiles, and the segment drift of the day (`segment_drift_for_day`,
which reads only profiles).

False alarms: `--days` unchanged generated days (default 300 per setting) of the drift
trials (`demo.drift_trials`: 5 numeric, 3 categorical features) with segment drift on
`channel` (3 values) and `region` (12, Zipf) at top_k 5, min_rows 200: independent rows,
rows in correlated groups of 2-8 with the reference in order, and groups with a shuffled
reference; the share of model-days with any segment_drift finding (target <= 1%).

    python benchmarks/bench_segments.py [--rows N] [--repeats N] [--days N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' generators (tests/unit/signals/test_segment_drift)

from aiops_pipelines.core.config import ModelConfig, parse_config  # noqa: E402
from aiops_pipelines.signals.drift.segments import segment_drift_for_day  # noqa: E402
from aiops_pipelines.signals.profile.day import profile_for_day, profile_reference  # noqa: E402
from aiops_pipelines.signals.profile.segments import SegmentReference  # noqa: E402

DAY = "2026-03-02"
NUMERIC = [f"x{i:02d}" for i in range(16)]
CATEGORICAL = ["region", "c1", "c2", "c3"]
REGIONS = [f"r{i}" for i in range(10)]


def _frame(n: int, seed: int, day: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    share = 1 / np.arange(1, 11) ** 1.1
    out: dict[str, object] = {
        "request_id": [f"{seed}-{i}" for i in range(n)],
        "timestamp": pd.Timestamp(day, tz="UTC")
        + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, n)), unit="s"),
        "model_version": "1",
        "prediction": rng.integers(0, 2, n),
        "score": rng.random(n),
    }
    for i, c in enumerate(NUMERIC):
        x = rng.normal(i, 1 + i / 10, n)
        x[rng.random(n) < 0.01] = np.nan
        out[c] = x
    out["region"] = rng.choice(REGIONS, n, p=share / share.sum())
    for i, c in enumerate(CATEGORICAL[1:]):
        out[c] = rng.choice([f"v{j}" for j in range(4 + 3 * i)], n)
    return pd.DataFrame(out)


def _model(folder: Path, enabled: bool) -> ModelConfig:
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": str(folder),
        },
        "tenants": [
            {
                "name": "bench",
                "models": [
                    {
                        "name": "segments",
                        "task": "binary_classification",
                        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
                        "columns": {"score": "score", "latency_ms": None, "status": None},
                        "predictions": {"parquet": str(folder / "day.parquet")},
                        "reference": {"parquet": str(folder / "reference.parquet")},
                        "segments": ["region"],
                        "segment_drift": {"enabled": enabled, "top_k": 5},
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


def cost(rows: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _frame(100_000, 1, "2026-02-01").to_parquet(folder / "reference.parquet")
        _frame(rows, 2, DAY).to_parquet(folder / "day.parquet")
        old, new = _model(folder, False), _model(folder, True)
        ref = profile_reference(new, sample_rows=1000)
        assert ref.segments is not None
        times: dict[str, list[float]] = {"old": [], "new": []}
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        days = {}
        for _ in range(repeats):
            for label, model in (("old", old), ("new", new)):
                t0, c0 = time.perf_counter(), time.process_time()
                days[label] = profile_for_day(model, DAY, ref.profile, sample_rows=1000)
                times[label].append(time.perf_counter() - t0)
                cpu[label].append(time.process_time() - c0)
        old_bytes = len(json.dumps(days["old"].payload))
        new_bytes = len(json.dumps(days["new"].payload))
        t0 = time.perf_counter()
        segments = days["new"].segments
        assert segments is not None
        result = segment_drift_for_day(
            new, DAY, SegmentReference.from_dict(ref.segments.to_dict(), ref.profile.spec), segments
        )
        drift_s = time.perf_counter() - t0
    best_old, best_new = min(times["old"]), min(times["new"])
    return {
        "rows": rows,
        "profile_old_s": round(best_old, 3),
        "profile_new_s": round(best_new, 3),
        "profile_old_median_s": round(statistics.median(times["old"]), 3),
        "profile_new_median_s": round(statistics.median(times["new"]), 3),
        "extra_s": round(best_new - best_old, 3),
        "cpu_old_s": round(min(cpu["old"]), 3),
        "cpu_new_s": round(min(cpu["new"]), 3),
        "extra_share": round(best_new / best_old - 1, 3),
        "payload_old_kb": round(old_bytes / 1024, 1),
        "payload_new_kb": round(new_bytes / 1024, 1),
        "segment_drift_s": round(drift_s, 3),
        "segment_tests": result.n_tests,
        "segment_findings": len(result.findings),
    }


def false_alarms(days: int) -> list[dict[str, object]]:
    from tests.unit.signals.test_segment_drift import reference, run_days, segment_model

    out = []
    for n, grouped, shuffled in [(2000, False, False), (2000, True, False), (1000, True, True)]:
        model = segment_model()
        ref = reference(model, 1, 50_000, grouped=grouped, shuffled=shuffled)
        t0 = time.perf_counter()
        hits = [
            (d, [f.column for f in seg.findings], bool(whole.findings))
            for d, _, whole, seg in run_days(model, ref, seed=5, n=n, days=days, grouped=grouped)
        ]
        flagged = [h for h in hits if h[1]]
        out.append(
            {
                "rows_per_day": n,
                "grouped": grouped,
                "reference": "shuffled" if shuffled else "in order",
                "days": days,
                "days_with_segment_drift": len(flagged),
                "false_alarm_rate": round(len(flagged) / days, 4),
                "days_with_any_whole_model_finding": sum(h[2] for h in hits),
                "days_with_any_drift_finding": sum(bool(h[1]) or h[2] for h in hits),
                "flagged": [(d, cols) for d, cols, _ in flagged],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--days", type=int, default=300, help="per setting; 0: the cost only")
    ap.add_argument("--quick", action="store_true", help="3 repeats, 60 days per setting")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.days = 3, 60
    c = cost(args.rows, args.repeats)
    print(
        f"profile_for_day, {c['rows']:,} rows x 20 features (Parquet), best of {args.repeats}: "
        f"without segments {c['profile_old_s']:.3f} s, with region top-5 + other "
        f"{c['profile_new_s']:.3f} s (+{c['extra_s']:.3f} s, +{c['extra_share']:.0%}); "
        f"medians {c['profile_old_median_s']:.3f} / {c['profile_new_median_s']:.3f} s; CPU "
        f"(every thread, less sensitive to a busy machine) {c['cpu_old_s']:.3f} / "
        f"{c['cpu_new_s']:.3f} s"
    )
    print(
        f"stored day: {c['payload_old_kb']:,.0f} kB without segments, "
        f"{c['payload_new_kb']:,.0f} kB with; segment drift of the day "
        f"{c['segment_drift_s']:.3f} s ({c['segment_tests']} tests, "
        f"{c['segment_findings']} findings)"
    )
    fa = false_alarms(args.days) if args.days else []
    for r in fa:
        print(
            f"unchanged days, {r['rows_per_day']:,} rows, "
            f"{'groups of 2-8' if r['grouped'] else 'independent rows'}, reference "
            f"{r['reference']}: {r['days_with_segment_drift']} of {r['days']} model-days with "
            f"a segment_drift finding ({r['false_alarm_rate']:.1%}), "
            f"{r['days_with_any_drift_finding']} with any drift finding, whole model's too "
            f"{r['flagged'] or ''}"
        )
    print(json.dumps({"cost": c, "false_alarms": fa}))


if __name__ == "__main__":
    main()
