"""One dead alert route: the alert steps of 6 partitions with it and without it.

Six models (three per tenant) each raise a critical finding on the same day; each partition's
`model_alerts` is materialized as a real Dagster run, one after the other (tenants
interleaved), on a fresh store and instance per scenario:

- healthy: a local webhook receiver and a JSON-lines file, for every tenant;
- dead: the same, plus a webhook for one tenant that accepts the connection and never answers
  (the route's default 10 s timeout, 3 attempts, 0.5 s backoff).

Where the code delivers outside the alert step (`alert_delivery_job`), the delivery run is
timed too: once after the six steps, and once more, as the next delivery would be. Run it on
two commits to compare before and after:

    PYTHONPATH=. python benchmarks/bench_dead_route.py

Environment: BENCH_DEAD_TIMEOUT (the dead route's timeout_seconds, default 10).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from aiops_pipelines.core.findings import Finding, Severity
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, partition_key
from aiops_pipelines.orchestration.resources import Clock, MonitoringConfig, default_resources
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from assets.alerts import model_alerts

try:  # after: delivery is a job of its own
    from assets.alerts import alert_delivery_job
except ImportError:  # before: model_alerts delivers
    alert_delivery_job = None

DAY = "2026-03-14"
TIMEOUT = float(os.environ.get("BENCH_DEAD_TIMEOUT", "10"))
PARTITIONS = [(t, f"m{i}") for i in range(3) for t in ("acme", "globex")]
SOURCE = {"url": "sqlite:///unused.db", "table": "unused"}
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class _Receiver:
    """A healthy webhook (counts what it accepted) or a dead one (reads, never answers)."""

    def __init__(self, answer: bool) -> None:
        self.got: list[dict] = []
        self.at: list[float] = []  # time.monotonic() of each request
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.got.append(body)
                outer.at.append(time.monotonic())
                if not answer:
                    outer.release.wait(600)
                    return
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _config(tmp: Path, healthy: str, dead: str | None) -> Path:
    routes: list[dict[str, Any]] = [
        {"name": "hook", "type": "webhook", "url": healthy},
        {"name": "file", "type": "file", "path": str(tmp / "alerts.jsonl")},
    ]
    if dead:
        routes.append(
            {
                "name": "dead",
                "type": "webhook",
                "url": dead,
                "tenants": ["acme"],
                "timeout_seconds": TIMEOUT,
            }
        )
    models: dict[str, list[dict]] = {}
    for tenant, name in PARTITIONS:
        models.setdefault(tenant, []).append(
            {
                "name": name,
                "task": "binary_classification",
                "features": {"numeric": ["x"]},
                "predictions": SOURCE,
                "reference": SOURCE,
            }
        )
    raw = {
        "storage": {
            "store_url": f"sqlite:///{tmp / 'store.db'}",
            "mlflow_tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
            "artifacts_dir": str(tmp / "artifacts"),
        },
        "tenants": [{"name": t, "models": ms} for t, ms in models.items()],
        "alerting": {"routes": routes},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def scenario(dead: bool) -> dict[str, Any]:
    healthy = _Receiver(answer=True)
    silent = _Receiver(answer=False) if dead else None
    with tempfile.TemporaryDirectory() as name, dg.instance_for_test() as instance:
        tmp = Path(name)
        config = _config(tmp, healthy.url, silent.url if silent else None)
        store = MonitoringStore(f"sqlite:///{tmp / 'store.db'}")
        for tenant, model in PARTITIONS:
            finding = Finding(
                tenant=tenant,
                model=model,
                partition=DAY,
                asset="drift_report",
                signal="feature_drift",
                severity=Severity.CRITICAL,
                value=0.4,
                threshold=0.1,
                column="x",
                message="x drifted",
            )
            store.replace_partition(
                tenant, model, DAY, "drift_report", metrics={}, findings=[finding]
            )
        instance.add_dynamic_partitions(MODELS, [f"{t}.{m}" for t, m in PARTITIONS])
        resources = {
            **default_resources(),
            "monitoring_config": MonitoringConfig(config_path=str(config)),
            "clock": Clock(now_iso=f"{DAY}T22:00:00+00:00"),
        }
        steps = []
        started = time.monotonic()
        for tenant, model in PARTITIONS:
            t = time.perf_counter()
            res = dg.materialize(
                ALL_ASSETS,
                selection=[model_alerts],
                partition_key=partition_key(DAY, f"{tenant}.{model}"),
                instance=instance,
                resources=resources,
                raise_on_error=False,
                run_config=QUIET,
            )
            steps.append(time.perf_counter() - t)
            assert res.success
        deliveries = []
        delivery_started = time.monotonic()
        if alert_delivery_job is not None:
            for _ in range(2):
                t = time.perf_counter()
                assert alert_delivery_job.execute_in_process(
                    instance=instance, resources=resources, run_config=QUIET
                ).success
                deliveries.append(time.perf_counter() - t)
        out = store.deliveries()
        store.close()
    healthy.close()
    dead_hits = len(silent.got) if silent else 0
    if silent:
        silent.close()
    return {
        "steps_s": [round(s, 1) for s in steps],
        "steps_total_s": round(sum(steps), 1),
        "deliveries_s": [round(s, 1) for s in deliveries],
        "healthy_route_messages": len(healthy.got),
        # in the first delivery run (after), or in the steps (before)
        "healthy_route_last_message_after_s": round(
            max(healthy.at) - (delivery_started if alert_delivery_job else started), 1
        ),
        "dead_route_requests": dead_hits,
        "sent": int((out["status"] == "sent").sum()),
        "pending": int((out["status"] == "pending").sum()),
    }


def main() -> None:
    mode = "after (delivery job)" if alert_delivery_job is not None else "before (in the step)"
    print(f"dead route: 6 partitions' alert steps, {mode}, dead timeout {TIMEOUT:g}s")
    for dead in (False, True):
        result = scenario(dead)
        total = result["steps_total_s"] + sum(result["deliveries_s"][:1])
        print(f"  {'dead   ' if dead else 'healthy'} {json.dumps(result)}")
        print(f"          steps + first delivery: {total:.1f}s")


if __name__ == "__main__":
    main()
