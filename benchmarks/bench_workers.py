"""20 models x 100k rows, one day, end to end: `aiops run` with 1 worker process and with 2.

The demo world's three models are copied into 20 (each of the 20 reads the predictions of
one of the three: same data, its own profiles, findings, MLflow runs and alerts), on two
copies of the world, and one day is run as a real process with `--workers 1` and
`--workers 2` (reference profiles built first, in a separate run, not timed). The
acceptance: <= 60 s.

    PYTHONPATH=. python benchmarks/bench_workers.py [--rows 100000] [--models 20]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worlds import aiops_run  # noqa: E402

from aiops_pipelines.demo.world import build_world  # noqa: E402

DAY = "2026-03-14"


def _fleet(config: Path, n: int) -> list[str]:
    """Rewrite the world's config to `n` models cloned from its three; returns their keys."""
    raw = yaml.safe_load(config.read_text())
    base = [(t["name"], m) for t in raw["tenants"] for m in t["models"]]
    tenants: dict[str, list[dict]] = {}
    for i in range(n):
        tenant, model = base[i % len(base)]
        clone = copy.deepcopy(model)
        clone["name"] = f"{model['name']}{i}"
        clone.pop("registered_model", None)
        tenants.setdefault(tenant, []).append(clone)
    raw["tenants"] = [{"name": t, "models": ms} for t, ms in tenants.items()]
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return [f"{t}.{m['name']}" for t, ms in tenants.items() for m in ms]


def _run(home: Path, *args: str) -> tuple[float, str]:
    return aiops_run(home, *args, ok=(0, 1))  # 1: a day's injected failure, still timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_world(
            tmp / "world" / "demo",
            days=3,
            end_date=date(2026, 3, 14),
            rows_per_day=args.rows,
            reference_rows=20_000,
            register_models=False,
        )
        _fleet(tmp / "world" / "demo" / "config.yaml", args.models)
        # the reference profiles, once, before the copies (not timed)
        _run(tmp / "world", "--start", "2026-03-12", "--end", "2026-03-12", "--no-html",
             "--no-overview", "--workers", "2")  # fmt: skip
        results = {}
        for workers in (1, 2):
            home = tmp / f"w{workers}"
            shutil.copytree(tmp / "world", home)
            took, out = _run(
                home, "--start", DAY, "--end", DAY, "--no-html", "--workers", str(workers)
            )
            done = re.search(r"\d+ partitions succeeded, \d+ failed", out)
            results[f"workers_{workers}"] = {
                "wall_s": round(took, 1),
                "partitions": done.group(0) if done else out[-300:],
            }
            print(workers, json.dumps(results[f"workers_{workers}"]), flush=True)
    print(
        json.dumps({"fleet_day": {"models": args.models, "rows": args.rows, **results}}, indent=1)
    )


if __name__ == "__main__":
    main()
