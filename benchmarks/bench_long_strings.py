"""Peak memory and bytes written when one category value of a day is huge (issue 11).

Builds a one-model world (3,000 reference rows, 2,000 predictions on one day) twice, once clean
and once with a single `--value-mb` MB value in the categorical feature `plan`, and runs
`aiops run` over the day in a child process (the reference, the day's assets with Evidently's
HTML, the overview page, as real Dagster runs). For each: the child's peak resident memory, the
largest Evidently HTML report, and the size of the store, of MLflow (its database and
artifacts) and of the Dagster instance (its event log).

    python benchmarks/bench_long_strings.py [--value-mb 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

DAY = "2026-03-02"


def _rows(n: int, seed: int, day: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "plus", "pro"], n).astype(object),
        }
    )
    df["score"] = 1 / (1 + np.exp(-(df.income - 50) / 10))
    df["prediction"] = (df.score > 0.5).astype(int)
    if day is not None:
        ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 86399, n)), "s")
        df.insert(0, "request_id", [f"{day}-{i}" for i in range(n)])
        df.insert(1, "timestamp", ts.strftime("%Y-%m-%d %H:%M:%S.%f+00:00"))
        df.insert(2, "model_version", "1")
        df["latency_ms"] = rng.lognormal(3, 0.3, n)
        df["status"] = "ok"
    return df


def _world(folder: Path, value_mb: float) -> Path:
    eng = sa.create_engine(f"sqlite:///{folder / 'world.db'}")
    _rows(3000, 0).to_sql("ref", eng, index=False)
    day = _rows(2000, 1, DAY)
    if value_mb:
        day.loc[100, "plan"] = "</script>" + "x" * int(value_mb * 2**20)
    day.to_sql("preds", eng, index=False)
    eng.dispose()
    model = {
        "name": "churn",
        "task": "binary_classification",
        "features": {"numeric": ["income"], "categorical": ["plan"]},
        "columns": {"score": "score"},
        "segments": ["plan"],
        "predictions": {"url": "sqlite:///world.db", "table": "preds"},
        "reference": {"url": "sqlite:///world.db", "table": "ref"},
    }
    config = {
        "start_date": "2026-03-01",
        "storage": {
            "store_url": "sqlite:///store.db",
            "mlflow_tracking_uri": "sqlite:///mlflow.db",
            "artifacts_dir": "artifacts",
        },
        "tenants": [{"name": "acme", "models": [model]}],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(value_mb: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _world(folder, value_mb)
        env = {**os.environ, "AIOPS_HOME": str(folder / "home")}
        env["DAGSTER_HOME"] = str(folder / "home" / "dagster")
        log = folder / "run.log"
        with log.open("w") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "aiops_pipelines.cli", "run", "--config", str(config)]
                + ["--start", DAY, "--end", DAY],
                env=env,
                cwd=folder,  # `-m` imports from the cwd first: the package comes from the path
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"aiops run failed:\n{log.read_text()[-3000:]}")
        mb = 2**20
        return {
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "html_report_mb": max((_size(p) for p in folder.rglob("drift_*.html")), default=0) / mb,
            "store_mb": _size(folder / "store.db") / mb,
            "mlflow_mb": (_size(folder / "mlflow.db") + _size(folder / "artifacts" / "mlflow"))
            / mb,
            "dagster_mb": _size(folder / "home" / "dagster") / mb,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--value-mb", type=float, default=10.0)
    args = parser.parse_args()
    rows = {"clean": measure(0), f"one {args.value_mb:g} MB value": measure(args.value_mb)}
    cols = list(next(iter(rows.values())))
    print(f"{'day':<20}" + "".join(f"{c:>16}" for c in cols))
    for name, r in rows.items():
        print(f"{name:<20}" + "".join(f"{r[c]:>16.1f}" for c in cols))


if __name__ == "__main__":
    main()
