"""MLflow unreachable: what an asset logs is queued in the store (with its files) instead of
failing or waiting, and replayed once MLflow answers. Real servers on loopback: a port nobody
listens on, one that accepts and never answers; MLflow "back" is a real SQLite tracking store
(the end-to-end test brings a real tracking server back)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aiops_pipelines.core.config import StorageConfig
from aiops_pipelines.io import tracking
from aiops_pipelines.io.mlflow_outbox import log_or_queue, outbox_dir, replay
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import (
    TAG_ASSET,
    TAG_PARTITION,
    Tracker,
    TrackingUnavailable,
    is_unavailable,
)
from tests.servers import Silent, free_port

KEY, ASSET, DAY = "acme.churn", "drift_report", "2026-03-01"
LOCK = f"{ASSET}:{DAY}|{KEY}"


@pytest.fixture(autouse=True)
def _fresh_reachability(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with MLflow not known down, and requests bounded (1 s, no retry)."""
    monkeypatch.setattr(tracking, "_down", {})
    for name in ("TIMEOUT", "MAX_RETRIES", "BACKOFF_FACTOR"):
        monkeypatch.delenv(f"MLFLOW_HTTP_REQUEST_{name}", raising=False)
    StorageConfig(
        store_url="sqlite://",
        mlflow_tracking_uri="sqlite://",
        artifacts_dir=".",
        mlflow_timeout_seconds=1,
        mlflow_retries=0,
    ).bound_mlflow_requests()
    yield


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    yield s
    s.close()


def _report(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"drift_{DAY}.json"
    path.write_text(text)
    return path


def _log(tracker: Tracker, store: MonitoringStore, run_dir: Path, drift: float, text: str):
    return log_or_queue(
        tracker,
        store,
        KEY,
        ASSET,
        DAY,
        lock_key=LOCK,
        metrics={"drift_share": drift, "nan": float("nan")},
        params={"method": "ks"},
        tags={"verdict": "drift" if drift > 0.3 else "ok"},
        artifacts={"report_json": _report(run_dir, text)},
    )


def test_a_refused_connection_queues_the_logging_with_its_files(
    store: MonitoringStore, tmp_path: Path
) -> None:
    down = Tracker(f"http://127.0.0.1:{free_port()}", tmp_path / "artifacts")
    first = _log(down, store, tmp_path / "run1", 0.5, "first")
    assert first.run_id == "" and first.queued and "127.0.0.1" in first.queued
    [row] = store.queued_tracking()
    assert (row["model_key"], row["asset"], row["partition"]) == (KEY, ASSET, DAY)
    assert row["payload"]["metrics"] == {"drift_share": 0.5}  # NaN is not logged, as live
    assert Path(first.artifacts["report_json"]).read_text() == "first"

    # a second attempt of the same partition replaces the queued one (and its files)
    second = _log(down, store, tmp_path / "run2", 0.1, "second")
    [row2] = store.queued_tracking()
    assert row2["attempts"] == 2 and row2["payload"]["metrics"] == {"drift_share": 0.1}
    assert not Path(first.artifacts["report_json"]).exists()
    assert Path(second.artifacts["report_json"]).read_text() == "second"
    assert [p.name for p in outbox_dir(tmp_path / "artifacts").iterdir()] == [row2["token"]]


def test_a_server_that_never_answers_is_asked_once_then_skipped(
    store: MonitoringStore, tmp_path: Path, silent: Silent
) -> None:
    """The first logging waits one bounded request; the next ones queue without asking."""
    tracker = Tracker(silent.base, tmp_path / "artifacts")
    assert _log(tracker, store, tmp_path / "run1", 0.5, "a").queued
    asked = silent.hits
    assert asked >= 1
    for i in range(3):
        assert _log(tracker, store, tmp_path / f"again{i}", 0.5, "a").queued
    assert silent.hits == asked
    assert replay(tracker, store).unreachable  # still down: nothing is tried
    assert silent.hits == asked and len(store.queued_tracking()) == 1


def test_replay_logs_what_waited_once_mlflow_answers(
    store: MonitoringStore, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    down = Tracker(f"http://127.0.0.1:{free_port()}", artifacts)
    queued = _log(down, store, tmp_path / "run", 0.5, '{"verdict": "drift"}')
    assert queued.queued
    back = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts)
    report = replay(back, store)
    assert (report.logged, report.refused, report.left, report.unreachable) == (1, 0, 0, None)
    assert store.queued_tracking() == [] and not list(outbox_dir(artifacts).iterdir())

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`{TAG_ASSET}` = '{ASSET}' and tags.`{TAG_PARTITION}` = '{DAY}'",
    )
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"drift_share": 0.5}
    assert run.data.params == {"method": "ks"} and run.data.tags["verdict"] == "drift"
    got = client.download_artifacts(run.info.run_id, f"drift_{DAY}.json", str(tmp_path / "dl"))
    assert Path(got).read_text() == '{"verdict": "drift"}'
    assert replay(back, store).logged == 0  # nothing left: nothing logged twice


def test_a_later_logging_that_reaches_mlflow_supersedes_the_queued_one(
    store: MonitoringStore, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    assert _log(
        Tracker(f"http://127.0.0.1:{free_port()}", artifacts), store, tmp_path / "a", 0.5, "old"
    ).queued
    back = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts)
    logged = _log(back, store, tmp_path / "b", 0.1, "new")
    assert logged.queued is None and logged.run_id
    assert store.queued_tracking() == [] and not list(outbox_dir(artifacts).iterdir())
    assert replay(back, store).logged == 0
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(logged.run_id)
    assert run.data.metrics["drift_share"] == 0.1  # the older queued value never lands on it


def test_what_mlflow_refuses_is_raised_live_and_kept_with_its_error_in_a_replay(
    store: MonitoringStore, tmp_path: Path
) -> None:
    """A bad value is our bug, not an outage: raised at once, never queued; a queued row MLflow
    refuses on replay keeps its error, and the rows after it are still logged."""
    artifacts = tmp_path / "artifacts"
    back = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts)
    with pytest.raises(MlflowException):
        log_or_queue(back, store, KEY, ASSET, DAY, lock_key=LOCK, metrics={"bad*name": 1.0})
    assert store.queued_tracking() == []

    down = Tracker(f"http://127.0.0.1:{free_port()}", artifacts)
    log_or_queue(down, store, KEY, ASSET, DAY, lock_key=LOCK, metrics={"bad*name": 1.0})
    log_or_queue(down, store, KEY, ASSET, "2026-03-02", lock_key="x", metrics={"ok": 1.0})
    report = replay(back, store)
    assert (report.logged, report.refused) == (1, 1)
    [kept] = store.queued_tracking()
    assert kept["partition"] == DAY and "bad*name" in kept["last_error"]
    assert kept["attempts"] == 2


def test_replay_leaves_a_partition_a_run_is_working_on(
    store: MonitoringStore, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    _log(Tracker(f"http://127.0.0.1:{free_port()}", artifacts), store, tmp_path / "a", 0.5, "a")
    back = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts)
    with store.partition_lock(LOCK, timeout=1):
        report = replay(back, store, lock_timeout=0.2)
    assert (report.logged, report.left) == (0, 1)
    assert replay(back, store).logged == 1


def test_what_counts_as_mlflow_unreachable() -> None:
    assert is_unavailable(requests.ConnectionError("refused"))
    assert is_unavailable(MlflowException("API request to http://x/api failed with exception y"))
    assert is_unavailable(TrackingUnavailable("http://x", "down"))
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = requests.ReadTimeout("slow")
    assert is_unavailable(wrapped)
    assert not is_unavailable(MlflowException("bad", error_code="INVALID_PARAMETER_VALUE"))
    assert not is_unavailable(ValueError("ours"))
