"""One model x 365 days backfill, end to end: one Dagster run per (day, model) next to range runs.

A demo world of `--days` days (default 365) is built once; its reference profile is built in a
separate run (not timed); then the whole range of one model is run as a real `aiops run`
process on two copies of the world: with `--day-runs` (the old path: a run per day, the
late labels re-judged as the sensor asks every 7 days) and with range runs (the default: one run
per model and chunk of days up to each weekly late-label tick). Both store the same rows
(`tests/e2e/test_range_runs.py`); here only the wall time and the number of Dagster runs are
compared. The acceptance: <= 90 s for 365 days.

    PYTHONPATH=. python benchmarks/bench_backfill.py [--days 365] [--rows 1000] [--old]

`--old` also times range runs on Dagster's default SQLite storages (a home made before
`orchestration.local_instance`) and the old path, one run per day (about 2-3 s a day here: 15+
minutes for a year).
`--dagster-pg URL` (a SQLAlchemy URL of a PostgreSQL server) also times range runs on a
PostgreSQL Dagster instance (`aiops instance`, the production path), in a throwaway database
dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worlds import aiops_run  # noqa: E402

from aiops_pipelines.demo.world import build_world  # noqa: E402
from aiops_pipelines.deploy import (  # noqa: E402
    EMBEDDED_INSTANCE,
    InstanceSettings,
    write_instance_yaml,
)

END = date(2026, 3, 14)
MODEL = "globex.eta"  # a regression model with late labels and no injected failure day


def _runs(home: Path) -> int:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        return len(instance.get_runs())


def _pg_instance(home: Path, server: str, name: str) -> tuple[dict[str, str], Callable[[], None]]:
    """A PostgreSQL Dagster instance in a new database `name` for the world's copy at `home`:
    the environment its runs need, and how to drop the database."""
    url = sa.make_url(server)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    shutil.rmtree(home / "dagster")
    write_instance_yaml(home / "dagster", InstanceSettings())
    target = url.set(drivername="postgresql+psycopg2", database=name)
    env = {InstanceSettings().postgres_url_env: target.render_as_string(hide_password=False)}

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return env, drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--old", action="store_true", help="also time one run per day")
    parser.add_argument("--dagster-pg", help="also time range runs on a PostgreSQL instance")
    args = parser.parse_args()
    start = (END - timedelta(days=args.days - 1)).isoformat()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_world(
            tmp / "world" / "demo",
            days=args.days,
            end_date=END,
            rows_per_day=args.rows,
            reference_rows=5000,
            register_models=False,
        )
        first = ["--model", MODEL, "--start", start, "--end", start, "--no-html"]
        aiops_run(tmp / "world", *first, "--no-overview", ok=(0, 1))  # the reference
        rest = ["--model", MODEL, "--start", (date.fromisoformat(start) + timedelta(days=1))]
        rest = [str(x) for x in rest] + ["--end", END.isoformat(), "--no-html"]
        results = {}
        paths = [("range", [])]
        if args.old:  # range runs on Dagster's default SQLite storages; one run per day
            paths += [("range_default_storages", []), ("day", ["--day-runs"])]
        paths += [("range_pg_instance", [])] if args.dagster_pg else []
        for label, flags in paths:
            home = tmp / label
            shutil.copytree(tmp / "world", home)
            env: dict[str, str] = {}
            drop = None
            if label == "range_default_storages":  # the dagster.yaml of homes made before
                shutil.rmtree(home / "dagster")
                (home / "dagster").mkdir()
                (home / "dagster" / "dagster.yaml").write_text(EMBEDDED_INSTANCE)
            if label == "range_pg_instance":
                env, drop = _pg_instance(home, args.dagster_pg, f"aiops_bench_{os.getpid()}")
                os.environ.update(env)  # this process reads the instance too
            before = _runs(home)
            try:
                took, out = aiops_run(home, *rest, *flags, env=env, ok=(0, 1))
                after = _runs(home)
            finally:
                if drop is not None:
                    drop()
            done = re.search(r"\d+ partitions succeeded, \d+ failed", out)
            results[label] = {
                "wall_s": round(took, 1),
                "per_day_s": round(took / (args.days - 1), 3),
                "dagster_runs": after - before,
                "partitions": done.group(0) if done else out[-300:],
            }
            print(label, json.dumps(results[label]), flush=True)
    print(
        json.dumps(
            {"backfill": {"model": MODEL, "days": args.days, "rows": args.rows, **results}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
