"""A dead alert route and the wall time of a whole `aiops run`: 7 days x 3 models of a small
demo world, run as a real process, once with every webhook answering and once with the acme
tenant's webhook accepting connections and never answering (its 10 s timeout). Both on a
copy of the same world; notifications are sent (not held back as a backfill's would be:
`max_event_age_days` is raised). The acceptance: the dead route's run within 20% of the
healthy one.

    PYTHONPATH=. python benchmarks/bench_dead_route_run.py
"""

from __future__ import annotations

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

from aiops_pipelines.demo.world import DEMO_SLACK_ENV, DEMO_WEBHOOK_ENV, build_world  # noqa: E402
from tests.servers import Silent  # noqa: E402

RANGE = ["--start", "2026-03-08", "--end", "2026-03-14"]


def _run(home: Path, webhook: str, slack: str) -> tuple[float, str]:
    env = {DEMO_WEBHOOK_ENV: webhook, DEMO_SLACK_ENV: slack}
    return aiops_run(home, *RANGE, "--no-html", env=env)


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_world(
            tmp / "world" / "demo",
            days=12,
            end_date=date(2026, 3, 14),
            rows_per_day=1500,
            reference_rows=3000,
            register_models=False,
        )
        config = tmp / "world" / "demo" / "config.yaml"
        raw = yaml.safe_load(config.read_text())
        raw["alerting"]["max_event_age_days"] = 100_000
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        healthy = Silent(hold_seconds=0)  # answers 200 at once
        results = {}
        for scenario in ("healthy", "dead"):
            home = tmp / scenario
            shutil.copytree(tmp / "world", home)
            dead = Silent(hold_seconds=600) if scenario == "dead" else None
            webhook = dead.url if dead else healthy.url
            took, out = _run(home, webhook, healthy.url)
            line = re.search(r"\d+ partitions succeeded, \d+ failed", out)
            results[scenario] = {
                "wall_s": round(took, 1),
                "partitions": line.group(0) if line else "",
                "requests_to_the_dead_route": dead.hits if dead else 0,
                "route_lines": [x for x in out.splitlines() if "route" in x][:3],
            }
            if dead:
                dead.close()
            print(scenario, json.dumps(results[scenario]), flush=True)
        healthy.close()
    ratio = results["dead"]["wall_s"] / results["healthy"]["wall_s"]
    print(json.dumps({"dead_route_run": results, "dead_over_healthy": round(ratio, 3)}, indent=1))


if __name__ == "__main__":
    main()
