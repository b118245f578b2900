"""A model-day with MLflow down: `aiops run` of one day and one model, as a real process, on
a small demo world, with MLflow's tracking server

- up: a real `mlflow server` on loopback (the baseline);
- refused: nothing listens on its port;
- silent: a server that accepts each connection and never answers (a hung proxy, a
  firewall that drops): the worst case, each request waits its full timeout.

Each down scenario runs on its own copy of the world; the next run, with the server up,
logs what was queued, and is timed too. The acceptance: a day with MLflow down finishes in
under 60 s, every result in the store. (Before this change the same day took 1,239 s and
then failed: MLflow's own request defaults, 7 retries with doubling back-off and a 120 s
timeout, per request.)

    PYTHONPATH=. python benchmarks/bench_mlflow_down.py
"""

from __future__ import annotations

import json
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
from aiops_pipelines.io.store import MonitoringStore  # noqa: E402
from tests.servers import MlflowServer, Silent, free_port  # noqa: E402

MODEL = "acme.churn"
DAY, NEXT = "2026-03-12", "2026-03-13"


def _run(home: Path, day: str) -> tuple[float, str]:
    return aiops_run(home, "--start", day, "--end", day, "--model", MODEL, "--no-html")


def _point(home: Path, uri: str) -> None:
    config = home / "demo" / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["storage"]["mlflow_tracking_uri"] = uri
    config.write_text(yaml.safe_dump(raw, sort_keys=False))


def _queued(home: Path) -> int:
    with MonitoringStore(f"sqlite:///{home / 'demo' / 'store.db'}") as store:
        return store.tracking_backlog()[0]


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_world(
            tmp / "world" / "demo",
            days=6,
            end_date=date(2026, 3, 14),
            rows_per_day=2000,
            reference_rows=3000,
            register_models=False,
        )
        results = {}
        for scenario in ("up", "refused", "silent"):
            home = tmp / scenario
            shutil.copytree(tmp / "world", home)
            port = free_port()
            silent = Silent(hold_seconds=3600) if scenario == "silent" else None
            uri = silent.base if silent else f"http://127.0.0.1:{port}"
            _point(home, uri)
            row: dict[str, object] = {}
            if scenario == "up":
                with MlflowServer(tmp / "mlflow-up", port):
                    row["day_s"], _ = _run(home, DAY)
            else:
                row["day_s"], _ = _run(home, DAY)
                row["queued"] = _queued(home)
                if silent:
                    row["requests_to_the_silent_server"] = silent.hits
                    silent.close()
                    port = free_port()
                    _point(home, f"http://127.0.0.1:{port}")
                with MlflowServer(tmp / f"mlflow-{scenario}", port):
                    row["next_day_with_replay_s"], _ = _run(home, NEXT)
                row["queued_after"] = _queued(home)
            results[scenario] = {
                k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()
            }
            print(scenario, json.dumps(results[scenario]), flush=True)
    print(json.dumps({"mlflow_down": results}, indent=1))


if __name__ == "__main__":
    main()
