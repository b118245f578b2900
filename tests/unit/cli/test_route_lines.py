"""`aiops run` ends with a line per alert route that is failing or open, and what waits on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from aiops_pipelines.cli import _print_routes
from aiops_pipelines.core.config import load_config
from aiops_pipelines.io.store import MonitoringStore


def test_an_open_route_is_named_with_its_pending_notifications(tmp_path: Path, capsys) -> None:
    raw = {
        "storage": {
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifacts_dir": str(tmp_path / "artifacts"),
        },
        "tenants": [],
        "alerting": {
            "routes": [
                {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x"},
                {"name": "file", "type": "file", "path": str(tmp_path / "a.jsonl")},
            ]
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "c.yaml")
    until = datetime.now(UTC) + timedelta(minutes=9)
    with MonitoringStore(config.storage.store_url) as store:
        event = {"event_key": "k", "fingerprint": "f", "tenant": "acme", "model": "churn",
                 "signal": "feature_drift", "column": "age", "kind": "firing",
                 "severity": "critical", "partition": "2026-03-01",
                 "episode_start": "2026-03-01", "payload": {}}  # fmt: skip
        store.add_alert_events([event], lambda ev: ["hook", "file"])
        store.save_route_state(
            "hook",
            failures=3,
            open_until=until,
            cooldown_seconds=600,
            last_error="TimeoutError: timed out",
            last_failure_at=until - timedelta(minutes=10),
            last_success_at=None,
        )
    _print_routes(config)
    (line,) = capsys.readouterr().out.splitlines()  # the healthy file route is not listed
    assert line.startswith(f"alert route hook: open until {until.isoformat(timespec='seconds')}")
    assert line.endswith("TimeoutError: timed out; 1 notification(s) pending")
