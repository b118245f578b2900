"""A demo world copied with `cp -r` is a world of its own: `aiops run` on the copy writes into
the copy only, and the copy keeps working once the original folder is gone. Every run is a
real `aiops run` process, as a user would start it (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from mlflow import MlflowClient

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.tracking import TAG_ASSET, TAG_PARTITION
from aiops_pipelines.lifecycle.registry import aliases
from aiops_pipelines.lifecycle.training import load_version
from tests.unit.io.test_relocate import _files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
WORLD = dict(
    days=4, end_date=date(2026, 3, 14), rows_per_day=500, reference_rows=1500, register_models=True
)
MODEL = "acme.churn"


def _aiops_run(home: Path, first: str, last: str) -> str:
    """`aiops run` of `MODEL` from `first` to `last` on the world in `home`; its output."""
    (home.parent / "dagster").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIOPS_HOME": str(home.parent),
        "DAGSTER_HOME": str(home.parent / "dagster"),
    }
    args = ["--config", str(home / "config.yaml"), "--start", first, "--end", last]
    done = subprocess.run(
        [sys.executable, "-m", "aiops_pipelines.cli", "run", *args, "--model", MODEL],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_aiops_run_on_a_copied_world_writes_into_the_copy_and_needs_no_original(
    make_world: Callable[..., DemoWorld], tmp_path: Path
) -> None:
    """The original runs a day; its copy re-runs that day and runs the next: every MLflow run
    of the copy keeps its files in the copy, the original's files are as they were, and with
    the original deleted the copy's reports download and its champion loads."""
    world = make_world("relocate", **WORLD)
    original = world.home
    assert "1 partitions succeeded, 0 failed" in _aiops_run(original, "2026-03-13", "2026-03-13")

    copy = tmp_path / "copied" / "demo"
    shutil.copytree(original, copy)
    before = _files(original)
    assert "2 partitions succeeded, 0 failed" in _aiops_run(copy, "2026-03-13", "2026-03-14")
    assert _files(original) == before

    config = load_config(copy / "config.yaml")
    uri = config.storage.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    here = Path(config.storage.artifacts_dir).resolve().as_uri()
    assert runs and all(r.info.artifact_uri.startswith(f"{here}/") for r in runs)
    reports = {
        (r.data.tags[TAG_PARTITION], r.info.run_id)
        for r in runs
        if r.data.tags.get(TAG_ASSET) == "drift_report"
    }
    assert {day for day, _ in reports} == {"2026-03-13", "2026-03-14"}

    shutil.rmtree(original)
    for day, run_id in sorted(reports):
        files = [a.path for a in client.list_artifacts(run_id)]
        assert files, (day, files)
        got = client.download_artifacts(run_id, files[0], str(tmp_path / "dl" / day))
        assert Path(got).stat().st_size > 0
    champion = aliases(uri, MODEL)["champion"]
    model = load_version(uri, MODEL, champion)
    assert hasattr(model, "predict")
    assert not original.exists()
