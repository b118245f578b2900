"""Reading and profiling a day: SQLAlchemy chunks vs ADBC (SQLite, PostgreSQL) and Parquet.

Builds one day of `--rows` rows (default 1,000,000; `--quick`: 100,000) x (20 numeric + 5
categorical features, 1% NULL each, a timestamp, the request id, version, prediction, status
and latency: 31 columns), with 2% more rows on each neighbouring day, in SQLite (ISO-8601 text
timestamps with an offset, indexed), in PostgreSQL (timestamptz, indexed, in a throwaway
schema dropped afterwards) and in Parquet (UTC timestamps). Each source and reader is measured
in its own child process: `profile_for_day` (the read, the profile, and the database's count
and duplicate checks), best of `--repeats`, then the read alone (every chunk of the day's
window), best of `--repeats`, then the whole daily read (profile, operations and the
predictions the performance join needs: three reads before `signals.day_pass`, one after),
best of `--repeats`, and the child's peak RSS (VmHWM, its high-water mark since it started;
`wait4` would count the parent's memory at the fork). Then a day of `--big-rows` rows
(default 10,000,000) from Parquet and from SQLite through the new path, once each: memory
bounded by the chunk size does not grow with the rows.

    python benchmarks/bench_read.py [--quick] [--rows N] [--big-rows N] [--pg-url URL]
                                    [--before GIT-REF]

PostgreSQL: `--pg-url`, else $AIOPS_TEST_POSTGRES_URL (a SQLAlchemy URL); skipped without one.
`--before REF`: also measure each source with the code of that commit (`git archive`), the
reading and profiling as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

DAY = "2026-03-02"
NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
PART_ROWS = 1_000_000  # rows generated and written at a time
REPO = Path(__file__).resolve().parents[1]


def _part(n: int, seed: int, lo: float, hi: float, *, text_ts: bool) -> pa.Table:
    """`n` rows stamped uniformly in [lo, hi) days from the day's midnight, in time order."""
    rng = np.random.default_rng(seed)
    day = pd.Timestamp(DAY, tz="UTC")
    ts = day + pd.to_timedelta(np.sort(rng.uniform(lo, hi, n)) * 86400e6, unit="us")
    cols: dict[str, pa.Array] = {
        "request_id": pa.array([f"{seed}-{i}" for i in range(n)]),
        "timestamp": pa.array(ts.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00") if text_ts else ts),
        "model_version": pa.array(np.where(rng.random(n) < 0.5, "1", "2")),
        "prediction": pa.array(rng.integers(0, 2, n)),
    }
    for j, name in enumerate(NUMERIC):
        cols[name] = pa.array(rng.normal(j, 1 + j, n), mask=rng.random(n) < 0.01)
    for j, name in enumerate(CATEGORICAL):
        levels = np.array([f"{name}_v{k}" for k in range(5 + 10 * j)])
        cols[name] = pa.array(levels[rng.integers(0, len(levels), n)], mask=rng.random(n) < 0.01)
    cols["status"] = pa.array(np.where(rng.random(n) < 0.99, "ok", "error"))
    cols["latency_ms"] = pa.array(rng.lognormal(3, 0.3, n))
    return pa.table(cols)


def _parts(rows: int, *, text_ts: bool) -> Iterator[pa.Table]:
    """The day's rows in parts of at most PART_ROWS, in time order, 2% of `rows` on each
    neighbouring day."""
    edge = max(1, rows // 50)
    yield _part(edge, 1, -0.5, 0.0, text_ts=text_ts)
    k = -(-rows // PART_ROWS)
    for i in range(k):
        n = min(PART_ROWS, rows - i * PART_ROWS)
        yield _part(n, 100 + i, i / k, (i + 1) / k, text_ts=text_ts)
    yield _part(edge, 2, 1.0, 1.5, text_ts=text_ts)


def write_sqlite(path: Path, rows: int) -> None:
    import adbc_driver_sqlite.dbapi as driver

    with driver.connect(str(path)) as conn, conn.cursor() as cur:
        for i, part in enumerate(_parts(rows, text_ts=True)):
            cur.adbc_ingest("preds", part, mode="create" if i == 0 else "append")
        cur.adbc_ingest("ref", _part(50_000, 7, 0, 1, text_ts=True), mode="create")
        cur.execute('CREATE INDEX "ix_preds_timestamp" ON preds ("timestamp")')
        conn.commit()


def write_postgres(url: str, schema: str, rows: int) -> None:
    import adbc_driver_postgresql.dbapi as driver

    uri = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with driver.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
        for i, part in enumerate(_parts(rows, text_ts=False)):
            mode = "create" if i == 0 else "append"
            cur.adbc_ingest("preds", part, mode=mode, db_schema_name=schema)
        cur.execute(f'CREATE INDEX ON "{schema}".preds ("timestamp")')
        cur.execute(f'ANALYZE "{schema}".preds')
        conn.commit()


def drop_postgres(url: str, schema: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    eng.dispose()


def write_parquet(folder: Path, rows: int) -> None:
    folder.mkdir()
    for i, part in enumerate(_parts(rows, text_ts=False)):
        pq.write_table(part, folder / f"part-{i:04d}.parquet")


def _config(predictions: dict[str, Any], reference_url: str) -> dict[str, Any]:
    model = {
        "name": "bench",
        "task": "binary_classification",
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "predictions": predictions,
        "outcomes": predictions,
        "reference": {"url": reference_url, "table": "ref"},
    }
    return {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": "artifacts",
        },
        "tenants": [{"name": "acme", "models": [model]}],
    }


# ---------------------------------------------------------------------- the measured child
def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One source and reader: `profile_for_day` and the read alone, each best of `repeats`."""
    from aiops_pipelines.core.config import parse_config
    from aiops_pipelines.io.sources import Source, day_window
    from aiops_pipelines.signals.profile.day import profile_for_day, profiled_columns
    from aiops_pipelines.signals.profile.profiles import DatasetProfile

    model = parse_config(spec["config"]).models[0]
    reference = DatasetProfile.from_dict(json.loads(Path(spec["reference"]).read_text()))
    base_mb = peak_mb()
    profile_s, read_s, rows = [], [], 0
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        day = profile_for_day(model, DAY, reference)
        profile_s.append(time.perf_counter() - t0)
        rows = day.n_rows
    c = model.columns
    cols = [c.request_id, c.timestamp, c.version, c.prediction, *profiled_columns(model).all]
    cols += [c.latency_ms, c.status]
    for _ in range(spec["repeats"] if spec["read_alone"] else 0):
        src = Source(model.predictions)
        t0 = time.perf_counter()
        for _chunk in src.iter_window(c.timestamp, *day_window(DAY), cols):
            pass
        read_s.append(time.perf_counter() - t0)
    daily_s, kept_mb = [], 0.0
    for i in range(spec["repeats"] if spec.get("daily") else 0):
        t0 = time.perf_counter()
        kept_mb = daily_read(model, reference, f"bench-{i}")
        daily_s.append(time.perf_counter() - t0)
    return {
        "profile_s": profile_s,
        "read_s": read_s,
        "daily_s": daily_s,
        "kept_mb": kept_mb,
        "rows": rows,
        "base_mb": base_mb,
        "peak_mb": peak_mb(),
        "profile": day.profile.to_dict(),
    }


def daily_read(model: Any, reference: Any, token: str) -> float:
    """What a daily run reads: the feature profile, the operational numbers and the
    predictions the performance join needs; through the day's one read where the code has it
    (`signals.day_pass`, a run's `read_token`), else three reads. The MB of the predictions'
    columns kept for the performance join."""
    from aiops_pipelines.io.labels import read_day_predictions
    from aiops_pipelines.signals.operations.day import stream_operations
    from aiops_pipelines.signals.profile.day import profile_for_day

    try:
        from aiops_pipelines.signals.day_pass import day_predictions
    except ImportError:  # the code before one read per day
        profile_for_day(model, DAY, reference)
        stream_operations(model, DAY)
        predictions = read_day_predictions(model, DAY)
    else:
        profile_for_day(model, DAY, reference, read_token=token)
        stream_operations(model, DAY, read_token=token)
        predictions = day_predictions(model, DAY, read_token=token)
    return float(predictions.memory_usage(deep=True).sum()) / 2**20


def peak_mb() -> float:
    """This process's peak resident memory since it started (its exec, not its fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(
    spec: dict[str, Any], tmp: Path, code: Path = REPO, script: str = __file__
) -> dict[str, Any]:
    """Run `child(spec)` of `script` (this benchmark's, or another's with the same `--child`
    convention) in a fresh interpreter on the package in `code`; its results and its own peak
    RSS."""
    spec_path = tmp / f"spec-{uuid.uuid4().hex[:8]}.json"
    out_path = spec_path.with_suffix(".out.json")
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(code)}
    child = [sys.executable, script, "--child", str(spec_path), str(out_path)]
    if subprocess.run(child, cwd=tmp, env=env).returncode != 0:
        raise SystemExit(f"the measurement of {spec['label']} failed")
    return json.loads(out_path.read_text())


# ---------------------------------------------------------------------- the run
def _reference(config: dict[str, Any], path: Path) -> None:
    from aiops_pipelines.core.config import parse_config
    from aiops_pipelines.signals.profile.day import profile_reference

    model = parse_config(config).models[0]
    path.write_text(json.dumps(profile_reference(model).profile.to_dict()))


def _row(label: str, r: dict[str, Any]) -> str:
    best = min(r["profile_s"])
    read = f"{min(r['read_s']):8.2f}" if r["read_s"] else f"{'-':>8}"
    daily = f"{min(r['daily_s']):9.2f}" if r.get("daily_s") else f"{'-':>9}"
    return f"{label:<40}{r['rows']:>11,}{best:>10.2f}{read}{daily}{r['peak_mb']:>10.0f}"


def _before(ref: str, tmp: Path) -> Path:
    """The package as it was at `ref`, extracted under `tmp`."""
    folder = tmp / "before"
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "aiops_pipelines"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run(args: argparse.Namespace) -> None:
    pg_url = args.pg_url or os.environ.get("AIOPS_TEST_POSTGRES_URL")
    schema = f"aiops_bench_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="bench-read-") as name:
        tmp = Path(name)
        before = _before(args.before, tmp) if args.before else None
        t0 = time.perf_counter()
        db = tmp / "day.db"
        write_sqlite(db, args.rows)
        write_parquet(tmp / "day.parquet", args.rows)
        sqlite_url = f"sqlite:///{db}"
        backends: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
            ("SQLite", {"url": sqlite_url, "table": "preds"}, ("sqlalchemy", "adbc"))
        ]
        results: dict[str, dict[str, Any]] = {}
        try:
            if pg_url:
                write_postgres(pg_url, schema, args.rows)
                # a scan of a table larger than a quarter of shared_buffers starts where the
                # last one stopped (synchronize_seqscans): no two reads of the day, by either
                # reader, would return its rows in the same order, nor profile them to the
                # same last bit of a float
                options = f"-csearch_path={schema} -csynchronize_seqscans=off"
                url = sa.make_url(pg_url).update_query_dict({"options": options})
                pg = {"url": url.render_as_string(hide_password=False), "table": "preds"}
                backends.append(("PostgreSQL", pg, ("sqlalchemy", "adbc")))
            else:
                print("PostgreSQL skipped: give --pg-url or set AIOPS_TEST_POSTGRES_URL")
            backends.append(("Parquet", {"parquet": str(tmp / "day.parquet")}, ("pyarrow",)))
            reference = tmp / "reference.json"
            _reference(_config(backends[0][1], sqlite_url), reference)
            print(f"data written in {time.perf_counter() - t0:.0f} s", flush=True)
            runs: list[tuple[str, dict[str, Any], Path]] = []
            for backend, source, readers in backends:
                if before is not None:
                    runs.append((f"{backend}, before ({args.before})", source, before))
                for reader in readers:
                    config = source if reader == "pyarrow" else {**source, "reader": reader}
                    runs.append((f"{backend}, {reader}", config, REPO))
            for label, predictions, code in runs:
                spec = {
                    "label": label,
                    "config": _config(predictions, sqlite_url),
                    "reference": str(reference),
                    "repeats": args.repeats,
                    "read_alone": True,
                    "daily": "sqlalchemy" not in label,
                }
                results[label] = measure(spec, tmp, code)
                print(_row(label, results[label]), flush=True)
        finally:
            if pg_url:
                drop_postgres(pg_url, schema)
        profiles = {
            label: json.dumps(r.pop("profile"), sort_keys=True) for label, r in results.items()
        }
        big: dict[str, dict[str, Any]] = {}
        if args.big_rows:
            big_db = tmp / "big.db"
            write_sqlite(big_db, args.big_rows)
            write_parquet(tmp / "big.parquet", args.big_rows)
            big_sources = [
                ("Parquet, pyarrow", {"parquet": str(tmp / "big.parquet")}),
                ("SQLite, adbc", {"url": f"sqlite:///{big_db}", "table": "preds"}),
            ]
            for label, predictions in big_sources:
                spec = {
                    "label": label,
                    "config": _config(predictions, sqlite_url),
                    "reference": str(reference),
                    "repeats": 1,
                    "read_alone": False,
                }
                big[label] = measure(spec, tmp)
                big[label].pop("profile")
                print(_row(f"{label}, {args.big_rows:,} rows", big[label]), flush=True)
    load = os.getloadavg()
    print()
    print(
        f"{args.rows:,}-row day, best of {args.repeats}; load average {load[0]:.2f}, "
        f"{load[1]:.2f}, {load[2]:.2f} (1, 5, 15 min) on {os.cpu_count()} cores"
    )
    print(
        f"{'source, reader':<40}{'rows':>11}{'profile s':>10}{'read s':>8}{'daily s':>9}"
        f"{'peak MB':>10}"
    )
    for label, r in results.items():
        print(_row(label, r))
    for label, r in big.items():
        print(_row(f"{label}, {args.big_rows:,} rows", r))
    print()
    for backend, _, readers in backends:
        mine = [profiles[f"{backend}, {r}"] for r in readers]
        mine += [p for label, p in profiles.items() if label.startswith(f"{backend}, before")]
        same = "the same" if len(set(mine)) == 1 else "DIFFERENT"
        print(f"{backend}: the day's profile is {same} through every reader above")
    print(f"profiles over every source: {len(set(profiles.values()))} distinct")
    print(
        "profile s: profile_for_day (read, profile, the database's count and duplicate "
        "checks); read s: the window's chunks alone; daily s: profile, operations and the "
        "performance join's predictions, as a daily run reads them (three reads before "
        "signals.day_pass, one after); peak MB: the child's peak RSS "
        f"(about {min(r['base_mb'] for r in results.values()):.0f} MB after imports)"
    )
    kept = [r["kept_mb"] for r in results.values() if r.get("kept_mb")]
    if kept:
        print(f"the predictions' columns kept for the performance join: {max(kept):.0f} MB")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        spec = json.loads(Path(sys.argv[2]).read_text())
        Path(sys.argv[3]).write_text(json.dumps(child(spec)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 300,000 big")
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--before", default=None, help="a git ref to measure as it was")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows = 100_000, 300_000
    run(args)


if __name__ == "__main__":
    main()
