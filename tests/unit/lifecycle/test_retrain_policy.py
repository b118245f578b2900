"""The retrain policy, decided from a real monitoring store (SQLite)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from aiops_pipelines.core.config import ModelConfig, parse_config
from aiops_pipelines.core.findings import LEVEL_CODES
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.lifecycle.retrain_policy import REQUESTED, cooldown_window, decide

START = date(2026, 3, 1)


def _model(**retrain: object) -> ModelConfig:
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": "/tmp",
        },
        "tenants": [
            {
                "name": "globex",
                "models": [
                    {
                        "name": "eta",
                        "task": "regression",
                        "features": {"numeric": ["distance_km"]},
                        "predictions": {"url": "sqlite://", "table": "p"},
                        "outcomes": {"url": "sqlite://", "table": "o"},
                        "reference": {"url": "sqlite://", "table": "r"},
                        "retrain": retrain,
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


@pytest.fixture
def store(tmp_path: Path) -> MonitoringStore:
    return MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}")


def _levels(store: MonitoringStore, levels: list[str], start: date = START) -> None:
    for i, level in enumerate(levels):
        day = (start + timedelta(days=i)).isoformat()
        store.replace_partition(
            "globex",
            "eta",
            day,
            "performance_report",
            metrics={("decay_level", ""): LEVEL_CODES[level], ("n_labelled", ""): 900.0},
            findings=[],
        )


def _retrained(store: MonitoringStore, window_end: str, beats: bool, version: str) -> None:
    store.record_action(
        "retrain_job",
        "retrain",
        "globex",
        "eta",
        window_end,
        {
            "version": version,
            "beats_champion": beats,
            "window": {"start": "2026-03-01", "end": window_end},
        },
    )


def _requested(store: MonitoringStore, decision) -> None:
    store.record_action(
        "retrain_sensor",
        REQUESTED,
        "globex",
        "eta",
        decision.trigger_day,
        {"run_key": decision.run_key, "trigger_day": decision.trigger_day},
    )


def test_persistent_critical_decay_triggers_one_retrain_per_window(store) -> None:
    model = _model(cooldown_days=7)
    _levels(store, ["ok", "ok", "critical"])
    assert not decide(store, model).retrain  # one bad day: pending, not firing
    _levels(store, ["ok", "ok", "critical", "critical"])
    first = decide(store, model)
    assert first.retrain and first.reason == "performance_decay"
    assert first.evidence["decay_since"] == "2026-03-03"
    assert first.window_start == cooldown_window(date(2026, 3, 4), 7).isoformat()
    assert first.run_key == f"retrain:globex.eta:{first.window_start}"
    _requested(store, first)
    _levels(store, ["ok", "ok", "critical", "critical", "critical"])
    again = decide(store, model)
    assert not again.retrain and again.reason.startswith("cooldown")


def test_losing_candidate_is_retried_after_the_cooldown_but_a_winner_is_not(store) -> None:
    model = _model(cooldown_days=3)
    _levels(store, ["critical"] * 3)
    first = decide(store, model)
    assert first.retrain
    _requested(store, first)
    _retrained(store, first.trigger_day, beats=False, version="2")
    _levels(store, ["critical"] * 7)
    retry = decide(store, model)
    assert retry.retrain and retry.run_key != first.run_key
    _requested(store, retry)
    _retrained(store, retry.trigger_day, beats=True, version="3")
    _levels(store, ["critical"] * 12)
    waiting = decide(store, model)
    assert not waiting.retrain and "version 3" in waiting.reason


def test_drift_trigger_needs_enough_labels(store) -> None:
    model = _model(on_decay="never", on_drift_share=0.5, min_new_labels=2000)
    day = START.isoformat()
    store.replace_partition(
        "globex", "eta", day, "drift_report", metrics={("drift_share", ""): 0.6}, findings=[]
    )
    _levels(store, ["ok"])  # 900 labels in the window
    assert not decide(store, model).retrain
    _levels(store, ["ok", "ok", "ok"])  # 2,700 labels
    store.replace_partition(
        "globex",
        "eta",
        (START + timedelta(days=2)).isoformat(),
        "drift_report",
        metrics={("drift_share", ""): 0.6},
        findings=[],
    )
    decision = decide(store, model)
    assert decision.retrain and decision.reason == "dataset_drift"
    assert decision.evidence["labels_in_window"] == 2700


def test_disabled_or_never_means_no_retrain(store) -> None:
    _levels(store, ["critical"] * 4)
    assert not decide(store, _model(enabled=False)).retrain
    assert not decide(store, _model(on_decay="never", on_drift_share=None)).retrain
    warning_only = _model(on_decay="critical")
    store2_levels = ["warning"] * 4
    _levels(store, store2_levels)
    assert not decide(store, warning_only).retrain
    assert decide(store, _model(on_decay="warning")).retrain
