"""`make bench`: the alert rules and the outbox at fleet scale.

A SQLite store with MODELS models x DAYS days of findings (FINDINGS_PER_DAY per model-day over a
rotating set of features, with episodes that start, persist and clear). Each model is evaluated
day after day, as the daily job does (`evaluate_and_store`), and every pending notification is
delivered to a real local HTTP receiver (`deliver`, grouped per route, tenant and model).

Printed: the time of one model-day evaluation (median and p95, which grows with the horizon's
findings), the time to deliver the outbox, events and messages, and the check that the
receiver got every event exactly once.

Environment: BENCH_ALERT_MODELS (default 50), BENCH_ALERT_DAYS (default 60),
BENCH_ALERT_FINDINGS (default 20).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from aiops_pipelines.alerting.outbox import deliver
from aiops_pipelines.alerting.rules import evaluate_and_store
from aiops_pipelines.core.config import AlertingConfig
from aiops_pipelines.core.findings import Finding, Severity
from aiops_pipelines.io.store import MonitoringStore

MODELS = int(os.environ.get("BENCH_ALERT_MODELS", "50"))
DAYS = int(os.environ.get("BENCH_ALERT_DAYS", "60"))
PER_DAY = int(os.environ.get("BENCH_ALERT_FINDINGS", "20"))
START = date(2026, 1, 1)
TARGET_MS_PER_MODEL_DAY = 250.0


def _receiver() -> tuple[ThreadingHTTPServer, list[dict]]:
    got: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                got.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def main() -> None:
    rng = np.random.default_rng(0)
    server, got = _receiver()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    cfg = AlertingConfig.model_validate(
        {
            "persistence_days": 2,
            "routes": [{"name": "hook", "type": "webhook", "url": url}],
            "max_attempts": 1,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = MonitoringStore(f"sqlite:///{Path(tmp) / 'store.db'}")
        features = [f"f{i:02d}" for i in range(PER_DAY * 2)]
        t0 = time.perf_counter()
        for m in range(MODELS):
            # each feature drifts in episodes: on with p=0.5 when it was on yesterday, else 0.1
            on = np.zeros(len(features), dtype=bool)
            for i in range(DAYS):
                day = (START + timedelta(days=i)).isoformat()
                on = np.where(on, rng.random(len(features)) < 0.5, rng.random(len(features)) < 0.1)
                chosen = [f for f, o in zip(features, on, strict=True) if o][:PER_DAY]
                found = [
                    Finding(
                        tenant="t",
                        model=f"m{m:03d}",
                        partition=day,
                        asset="drift_report",
                        signal="feature_drift",
                        severity=Severity.CRITICAL if rng.random() < 0.3 else Severity.WARNING,
                        value=0.3,
                        threshold=0.1,
                        column=f,
                        message=f"{f} drifted",
                    )
                    for f in chosen
                ]
                store.replace_partition(
                    "t", f"m{m:03d}", day, "drift_report", metrics={}, findings=found
                )
        load_s = time.perf_counter() - t0

        timings: list[float] = []
        for m in range(MODELS):
            for i in range(DAYS):
                day = (START + timedelta(days=i)).isoformat()
                t = time.perf_counter()
                evaluate_and_store(store, cfg, "t", f"m{m:03d}", day)
                timings.append(time.perf_counter() - t)
        n_events = len(store.alert_events())
        t = time.perf_counter()
        report = deliver(store, cfg)
        deliver_s = time.perf_counter() - t
        keys = [a["event_key"] for body in got for a in body["alerts"]]
        server.shutdown()
        store.close()

    ms = sorted(1000 * x for x in timings)
    median, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
    print(f"alerts: {MODELS} models x {DAYS} days, up to {PER_DAY} findings a model-day")
    print(f"  findings stored in {load_s:.1f}s")
    print(f"  evaluate_and_store per model-day: median {median:.1f} ms, p95 {p95:.1f} ms")
    print(
        f"  {n_events} alert events; deliver: {report.messages.get('hook', 0)} messages in "
        f"{deliver_s:.2f}s; receiver got {len(keys)} events, {len(set(keys))} distinct"
    )
    ok = len(keys) == len(set(keys)) == n_events and p95 <= TARGET_MS_PER_MODEL_DAY
    print(f"  target: p95 <= {TARGET_MS_PER_MODEL_DAY:.0f} ms, each event once: "
          f"{'OK' if ok else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
