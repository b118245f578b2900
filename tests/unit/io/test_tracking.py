"""MLflow tracking: one run per (asset, partition), updated in place on re-runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from aiops_pipelines.io.tracking import TAG_ASSET, TAG_PARTITION, Tracker, experiment_name


def test_rerun_updates_the_same_run_and_keeps_metric_history(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, tmp_path / "artifacts")
    report = tmp_path / "drift.html"
    report.write_text("<html>first</html>")
    with tracker.partition_run(
        "acme.churn", "drift_report", "2026-03-01", params={"method": "auto"}
    ) as run:
        run.log_metrics({"drift_share": 0.5, "bad": float("nan")})
        first_id = run.run_id
        uri1 = run.log_artifact(report)
    report.write_text("<html>second</html>")
    with tracker.partition_run(
        "acme.churn", "drift_report", "2026-03-01", params={"method": "psi"}
    ) as run:
        run.log_metrics({"drift_share": 0.25})
        assert run.run_id == first_id and run.attempt == 1
        uri2 = run.log_artifact(report)
    with tracker.partition_run("acme.churn", "drift_report", "2026-03-02") as run:
        other_id = run.run_id

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment_name("acme.churn"))
    assert exp.artifact_location.startswith((tmp_path / "artifacts").resolve().as_uri())
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted([first_id, other_id])
    run = client.get_run(first_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_ASSET] == "drift_report"
    assert run.data.tags[TAG_PARTITION] == "2026-03-01"
    assert run.data.metrics["drift_share"] == 0.25
    assert "bad" not in run.data.metrics
    history = client.get_metric_history(first_id, "drift_share")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25)]
    assert run.data.params["method"] == "auto" and run.data.tags["param.method"] == "psi"
    assert uri1 == uri2
    local = Path(client.download_artifacts(first_id, "drift.html", str(tmp_path / "dl")))
    assert local.read_text() == "<html>second</html>"


def test_failed_block_marks_the_run_failed(tmp_path: Path) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "a")
    with (
        pytest.raises(RuntimeError, match="boom"),  # the error is not swallowed
        tracker.partition_run("acme.churn", "feature_profile", "2026-03-01") as run,
    ):
        run_id = run.run_id
        raise RuntimeError("boom")
    assert tracker.client.get_run(run_id).info.status == "FAILED"


@pytest.mark.slow  # four processes importing MLflow: ~35 s on 2 cores
def test_processes_starting_at_once_on_a_new_mlflow_store_all_work(tmp_path: Path) -> None:
    """Four runs open a Tracker on the same new SQLite store at the same moment (a barrier
    file releases them together): MLflow's first-use migrations run once, every run works."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import pathlib, sys, time
        from aiops_pipelines.io.tracking import Tracker
        pathlib.Path(sys.argv[1]).touch()
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.01)
        tracker = Tracker({uri!r}, {str(tmp_path / "artifacts")!r})
        with tracker.partition_run("acme.churn", "drift_report", sys.argv[2]) as run:
            run.log_metrics({{"drift_share": 0.5}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / f"ready{i}"), f"2026-03-0{i + 1}"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.05)
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment_name("acme.churn"))
    assert len(client.search_runs([exp.experiment_id])) == 4


def test_a_run_left_running_by_a_killed_process_is_ended_as_failed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, tmp_path / "artifacts")
    assert _killed_in_attempt(tmp_path, "drift_report") == -9
    dead = tracker.find_run("acme.churn", "drift_report", "2026-03-05").info.run_id
    client = tracker.client
    assert client.get_run(dead).info.status == "RUNNING"
    with tracker.partition_run("acme.churn", "drift_report", "2026-03-06") as mine:
        assert tracker.end_dead_runs() == [dead]  # this process's own open run is not touched
        assert client.get_run(mine.run_id).info.status == "RUNNING"
    run = client.get_run(dead)
    assert run.info.status == "FAILED"
    assert "died mid-attempt" in run.data.tags["aiops.failed_because"]
    assert tracker.end_dead_runs() == []


def test_the_local_mlflow_database_commits_in_wal_mode_without_an_fsync_each(
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa

    from aiops_pipelines.io.tracking import prepare_tracking_store

    db = tmp_path / "mlflow.db"
    prepare_tracking_store(f"sqlite:///{db}")
    tracker = Tracker(f"sqlite:///{db}", tmp_path / "artifacts")
    with tracker.partition_run("acme.churn", "drift_report", "2026-03-01") as run:
        run.log_metrics({"drift_share": 0.5})
    assert tracker.client.get_run(run.run_id).data.metrics == {"drift_share": 0.5}

    def pragmas(path: Path) -> tuple[str, int]:
        engine = sa.create_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        engine.dispose()
        return mode, sync

    # kept in the file (the MLflow UI's connections too); NORMAL (1) on this process's
    # connections to it, whoever opens them
    assert pragmas(db) == ("wal", 1)
    other = tmp_path / "other.db"
    assert pragmas(other) == ("delete", 2)  # any other SQLite file keeps SQLite's defaults


def test_a_later_attempt_changes_the_run_only_when_it_ends(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, tmp_path / "artifacts")
    with tracker.partition_run("acme.churn", "performance_report", "2026-03-05") as run:
        run.log_metrics({"coverage": 0.2})
    run_id = run.run_id
    # a re-judging killed mid-attempt leaves the run as the first attempt left it
    assert _killed_in_attempt(tmp_path, "performance_report", {"coverage": 0.6}) == -9
    client = tracker.client
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags["aiops.attempt"]) == ("FINISHED", "0")
    assert run.data.metrics == {"coverage": 0.2}
    assert tracker.end_dead_runs() == []
    # one that fails marks it failed; the next one that ends finishes it, at the next step
    with (
        pytest.raises(RuntimeError, match="labels unreadable"),
        tracker.partition_run("acme.churn", "performance_report", "2026-03-05") as run,
    ):
        raise RuntimeError("labels unreadable")
    assert client.get_run(run_id).info.status == "FAILED"
    with tracker.partition_run("acme.churn", "performance_report", "2026-03-05") as run:
        assert run.attempt == 1
        run.log_metrics({"coverage": 0.9})
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags["aiops.attempt"]) == ("FINISHED", "1")
    assert run.data.tags["aiops.process"]
    history = client.get_metric_history(run_id, "coverage")
    assert [(m.step, m.value) for m in history] == [(0, 0.2), (1, 0.9)]


def _killed_in_attempt(tmp_path: Path, asset: str, metrics: dict | None = None) -> int:
    """The exit code of a process killed (SIGKILL) inside an attempt of (acme.churn, `asset`,
    2026-03-05) logged to `tmp_path`'s MLflow store, after logging `metrics`."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = textwrap.dedent(
        f"""
        import os, signal
        from aiops_pipelines.io.tracking import Tracker
        tracker = Tracker({uri!r}, {str(tmp_path / "artifacts")!r})
        with tracker.partition_run("acme.churn", {asset!r}, "2026-03-05") as run:
            run.log_metrics({metrics or {}!r})
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    return subprocess.run([sys.executable, "-c", script], env=env).returncode
