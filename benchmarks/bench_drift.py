"""`make bench`: profile-based drift vs Evidently's DataDriftPreset, and flat-memory profiling.

Part 1. 1,000,000 rows x (20 numeric + 5 categorical), current vs a reference of the same size,
odd numeric columns and two categoricals shifted. Our path: the reference profile is built once
and stored as JSON (like the store keeps it); the timed path loads it, profiles the current
frame in one pass and runs every drift test. Evidently's DataDriftPreset runs on the same frames
in the same run. Each side runs in its own child process so peak memory is its own. Printed:
both times, the ratio, peak memory, and how many per-column verdicts agree on Evidently's
default tests (W1/std >= 0.1 for numeric, Jensen-Shannon >= 0.1 for categorical columns).

Part 2. One day of 1M and of 5M rows in SQLite profiled through the real source and
`profile_for_day` (streamed chunks): the peak memory must not grow with the rows.

Environment: BENCH_ROWS (default 1000000), BENCH_DAY_ROWS (default "1000000,5000000"),
BENCH_SKIP_EVIDENTLY=1 to skip the slow Evidently side.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
DAY_ROWS = [int(x) for x in os.environ.get("BENCH_DAY_ROWS", "1000000,5000000").split(",") if x]
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
LEVELS = [5, 20, 2, 100, 3]
TARGET_SPEEDUP = 200.0


def make_frame(n: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i, name in enumerate(NUMERIC):
        shift = (0.05 if i % 4 == 1 else 0.3 if i % 4 == 3 else 0.0) if shifted else 0.0
        if i % 3 == 0:
            data[name] = rng.normal(shift, 1.0, n)
        elif i % 3 == 1:
            data[name] = rng.exponential(1.0, n) + shift
        else:
            data[name] = rng.lognormal(0.0, 0.5, n) + shift
    for i, (name, k) in enumerate(zip(CATEGORICAL, LEVELS, strict=True)):
        p = np.linspace(1.0, 2.0, k)
        if shifted and i in (0, 3):
            p = p[::-1]
        values = np.array([f"v{j}" for j in range(k)], dtype=object)
        data[name] = values[rng.choice(k, n, p=p / p.sum())]
    return pd.DataFrame(data)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build_reference(ref_path: str, out_path: str, out: mp.Queue) -> None:
    from aiops_pipelines.signals.profile.builder import build_reference_profile

    frames = [pd.read_parquet(ref_path)]
    t0 = time.perf_counter()
    profile = build_reference_profile(lambda: frames, NUMERIC, CATEGORICAL)
    Path(out_path).write_text(json.dumps(profile.to_dict()))
    out.put({"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()})


def _ours(stored_path: str, cur_path: str, out: mp.Queue) -> None:
    from aiops_pipelines.core.config import DriftThresholds
    from aiops_pipelines.signals.drift.compare import compare_profiles
    from aiops_pipelines.signals.profile.builder import ProfileBuilder
    from aiops_pipelines.signals.profile.profiles import DatasetProfile

    cur = pd.read_parquet(cur_path)
    base = peak_rss_mb()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        reference = DatasetProfile.from_dict(json.loads(Path(stored_path).read_text()))
        current = ProfileBuilder(reference.spec, NUMERIC, CATEGORICAL).update(cur).result()
        # Evidently's effect levels (JS 0.1), so the verdicts are compared like for like
        report = compare_profiles(
            reference,
            current,
            DriftThresholds(jensenshannon=(0.1, 0.2)),
            features=NUMERIC + CATEGORICAL,
        )
        times.append(time.perf_counter() - t0)
    stat = {
        c.column: c.evidence.get("wasserstein_normed", c.statistic)
        if c.kind == "numeric"
        else c.evidence.get("jensenshannon", c.statistic)
        for c in report.features
    }
    out.put(
        {
            "seconds": min(times),
            "all_seconds": times,
            "peak_rss_mb": peak_rss_mb(),
            "rss_over_data_mb": peak_rss_mb() - base,
            "scores": stat,
            "drifted": {c.column: c.drifted for c in report.features},
            "methods": {c.column: c.method for c in report.features},
        }
    )


def _evidently(ref_path: str, cur_path: str, out: mp.Queue) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - t0
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    base = peak_rss_mb()
    t0 = time.perf_counter()
    dd = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snap = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd)
    )
    seconds = time.perf_counter() - t0
    scores, methods = {}, {}
    for m in snap.dict()["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            scores[cfg["column"]] = float(m["value"])
            methods[cfg["column"]] = cfg["method"]
    out.put(
        {
            "seconds": seconds,
            "import_s": import_s,
            "peak_rss_mb": peak_rss_mb(),
            "rss_over_data_mb": peak_rss_mb() - base,
            "scores": scores,
            "methods": methods,
        }
    )


def _run_child(target, *args) -> dict:
    """Run one measured step in its own process (its own peak memory); fail loudly if it dies."""
    q: mp.Queue = mp.Queue()
    p = mp.get_context("fork").Process(target=target, args=(*args, q))
    p.start()
    while True:
        try:
            result = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"{target.__name__} died (exit code {p.exitcode})") from None
    p.join()
    return result


def part1(tmp: Path) -> bool:
    print(
        f"== Part 1: drift on {ROWS:,} rows x {len(NUMERIC)} numeric + "
        f"{len(CATEGORICAL)} categorical columns ==",
        flush=True,
    )
    ref_path, cur_path = tmp / "ref.parquet", tmp / "cur.parquet"
    make_frame(ROWS, 1, False).to_parquet(ref_path)
    make_frame(ROWS, 2, True).to_parquet(cur_path)
    stored = tmp / "reference_profile.json"
    built = _run_child(_build_reference, str(ref_path), str(stored))
    print(
        f"reference profile built once in {built['seconds']:.2f} s and stored "
        f"({stored.stat().st_size / 1024:.0f} KB JSON), peak RSS {built['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    ours = _run_child(_ours, str(stored), str(cur_path))
    print(
        f"aiops  : {ours['seconds']:.3f} s (best of 3: "
        f"{', '.join(f'{t:.3f}' for t in ours['all_seconds'])}) to load the stored reference, "
        "profile the current frame and run every drift test",
        flush=True,
    )
    print(
        f"         peak RSS {ours['peak_rss_mb']:.0f} MB "
        f"(+{ours['rss_over_data_mb']:.0f} MB over the loaded data)",
        flush=True,
    )
    if os.environ.get("BENCH_SKIP_EVIDENTLY") == "1":
        print("Evidently skipped (BENCH_SKIP_EVIDENTLY=1)")
        return True
    ev = _run_child(_evidently, str(ref_path), str(cur_path))
    print(
        f"Evidently DataDriftPreset: {ev['seconds']:.1f} s (import {ev['import_s']:.1f} s not "
        f"counted), peak RSS {ev['peak_rss_mb']:.0f} MB "
        f"(+{ev['rss_over_data_mb']:.0f} MB over the loaded data)",
        flush=True,
    )
    speedup = ev["seconds"] / ours["seconds"]
    agree, rows = 0, []
    max_diff = 0.0
    for col in NUMERIC + CATEGORICAL:
        e = ev["scores"][col]
        o = ours["scores"][col]
        e_flag, o_flag = e >= 0.1, o >= 0.1
        agree += e_flag == o_flag
        max_diff = max(max_diff, abs(e - o))
        rows.append(
            f"  {col:<7} evidently {ev['methods'][col][:30]:<30} {e:8.4f} {e_flag!s:<5}  "
            f"aiops {ours['methods'][col]:<13} {o:8.4f} {o_flag!s:<5} "
            f"(final verdict {ours['drifted'][col]})"
        )
    print("\n".join(rows))
    print(
        f"speedup: {speedup:.0f}x (target >= {TARGET_SPEEDUP:.0f}x) -> "
        f"{'PASS' if speedup >= TARGET_SPEEDUP else 'FAIL'}"
    )
    print(
        f"verdicts agreeing on Evidently's default tests: {agree}/{len(rows)}; "
        f"largest |score difference| {max_diff:.5f}"
    )
    return speedup >= TARGET_SPEEDUP and agree == len(rows)


def _profile_day(url: str, rows: int, out: mp.Queue) -> None:
    from aiops_pipelines.core.config import parse_config
    from aiops_pipelines.signals.profile.day import profile_for_day, profile_reference

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
                        "name": "m",
                        "task": "regression",
                        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
                        "columns": {"latency_ms": None, "status": None},
                        "predictions": {"url": url, "table": "predictions", "chunk_rows": 50000},
                        "reference": {"url": url, "table": "reference"},
                    }
                ],
            }
        ],
    }
    model = parse_config(raw).models[0]
    ref = profile_reference(model).profile
    base = peak_rss_mb()
    t0 = time.perf_counter()
    day = profile_for_day(model, "2026-01-01", ref)
    out.put(
        {
            "rows": day.n_rows,
            "seconds": time.perf_counter() - t0,
            "peak_rss_mb": peak_rss_mb(),
            "growth_mb": peak_rss_mb() - base,
        }
    )


def _write_sqlite(path: Path, rows: int) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(f"sqlite:///{path}")
    ref = make_frame(50_000, 3, False).assign(prediction=0.0)
    ref.to_sql("reference", eng, index=False)
    chunk = 250_000
    for lo in range(0, rows, chunk):
        n = min(chunk, rows - lo)
        df = make_frame(n, 10 + lo, True)
        secs = np.sort(np.random.default_rng(lo).uniform(0, 86399, n))
        ts = (pd.Timestamp("2026-01-01") + pd.to_timedelta(secs, unit="s")).strftime(
            "%Y-%m-%d %H:%M:%S.%f+00:00"
        )
        df.insert(0, "request_id", [f"r{lo + i}" for i in range(n)])
        df.insert(1, "timestamp", ts)
        df.insert(2, "model_version", "1")
        df["prediction"] = df["num_00"] * 2.0
        df.to_sql("predictions", eng, index=False, if_exists="append", chunksize=50_000)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE INDEX ix_ts ON predictions (timestamp)"))
    eng.dispose()


def part2(tmp: Path) -> bool:
    print(
        f"\n== Part 2: profiling one day from SQLite, {', '.join(f'{r:,}' for r in DAY_ROWS)}"
        " rows (50,000-row chunks) ==",
        flush=True,
    )
    results = []
    for rows in DAY_ROWS:
        path = tmp / f"day_{rows}.db"
        t0 = time.perf_counter()
        _write_sqlite(path, rows)
        print(f"  wrote {rows:,} rows to SQLite in {time.perf_counter() - t0:.0f} s", flush=True)
        r = _run_child(_profile_day, f"sqlite:///{path}", rows)
        results.append(r)
        print(
            f"  {r['rows']:>9,} rows: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB,"
            f" growth while profiling {r['growth_mb']:.0f} MB",
            flush=True,
        )
        path.unlink()
    if len(results) < 2:
        return True
    small, big = results[0], results[-1]
    flat = big["peak_rss_mb"] <= small["peak_rss_mb"] * 1.25 + 50
    print(
        f"peak memory {small['peak_rss_mb']:.0f} MB at {small['rows']:,} rows vs "
        f"{big['peak_rss_mb']:.0f} MB at {big['rows']:,} rows -> "
        f"{'FLAT (PASS)' if flat else 'GROWS (FAIL)'}"
    )
    return flat


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as d:
        ok1 = part1(Path(d))
        ok2 = part2(Path(d))
    print(f"\nbenchmark {'PASSED' if ok1 and ok2 else 'FAILED'}")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
