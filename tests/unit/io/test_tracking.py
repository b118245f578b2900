"""MLflow tracking: one run per (asset, partition), updated in place on re-runs."""

from __future__ import annotations

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
