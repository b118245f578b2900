"""A world folder copied with `cp -r` (or moved) is a world of its own: its MLflow database is
pointed at its own artifacts, the original is left as it was, and nothing the copy reads or
writes is in the original folder."""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import warnings
from contextlib import closing
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import sklearn
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier

from aiops_pipelines.io.relocate import relocate_artifacts
from aiops_pipelines.io.tracking import (
    Tracker,
    ensure_experiment,
    experiment_name,
    fluent_uri,
    prepare_tracking_store,
    trusted_types,
)

MODEL = "acme.churn"


def _uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def _files(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: its content hash and modification time."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _texts_naming(db: Path, needle: str) -> list[str]:
    """Every `table.column` of the database holding a text that contains `needle`."""
    found = []
    with closing(sqlite3.connect(db)) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]:
                hit = con.execute(
                    f'SELECT 1 FROM "{table}" WHERE instr(CAST("{column}" AS TEXT), ?) LIMIT 1',
                    (needle,),
                ).fetchone()
                if hit:
                    found.append(f"{table}.{column}")
    return found


def _register_champion(home: Path) -> DummyClassifier:
    """Log a small model to the world's experiment and register it as `acme.churn@champion`."""
    uri = _uri(home)
    x = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    model = DummyClassifier(strategy="most_frequent").fit(x, (np.arange(20) % 4 == 0).astype(int))
    with fluent_uri(uri), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        exp_id = ensure_experiment(client, MODEL, home / "artifacts")
        with mlflow.start_run(experiment_id=exp_id, run_name="train-champion"):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=MODEL,
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                skops_trusted_types=trusted_types(model),
                await_registration_for=60,
            )
        client.set_registered_model_alias(MODEL, "champion", str(info.registered_model_version))
    return model


def test_a_copied_world_writes_and_reads_its_own_artifacts_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A world with a run's report and a registered champion is copied: the copy's new and
    re-logged reports land in the copy, the original's files stay as they were, and once the
    original is deleted the copy still downloads its old report and loads its champion."""
    original = tmp_path / "worlds" / "original"
    report = tmp_path / "drift.html"
    report.write_text("<html>day one</html>")
    tracker = Tracker(_uri(original), original / "artifacts")
    first = tracker.record(MODEL, "drift_report", "2026-03-01", artifacts={"report": report})
    _register_champion(original)
    before = _files(original)

    copy = tmp_path / "elsewhere" / "copy of world"  # a space: file URIs are percent-encoded
    shutil.copytree(original, copy)
    with caplog.at_level(logging.INFO, logger="aiops_pipelines.io.relocate"):
        mine = Tracker(_uri(copy), copy / "artifacts")
    assert f"moved or copied from {original / 'artifacts'}" in caplog.text
    assert "runs.artifact_uri: 2" in caplog.text and "model_versions.storage_location: 1" in (
        caplog.text
    )
    copy_root = (copy / "artifacts").resolve().as_uri()
    exp = mine.client.get_experiment_by_name(experiment_name(MODEL))
    assert exp.artifact_location == f"{copy_root}/mlflow/{MODEL}"

    report.write_text("<html>day two</html>")
    second = mine.record(MODEL, "drift_report", "2026-03-02", artifacts={"report": report})
    report.write_text("<html>day one, again</html>")
    again = mine.record(MODEL, "drift_report", "2026-03-01", artifacts={"report": report})
    assert again.run_id == first.run_id
    for logged in (second, again):
        assert logged.artifacts["report"].startswith(f"{copy_root}/mlflow/{MODEL}/")
    assert _files(original) == before  # nothing written to, nor touched in, the original
    assert _texts_naming(copy / "mlflow.db", str(original)) == []
    assert (
        MlflowClient(tracking_uri=_uri(original))
        .get_experiment_by_name(experiment_name(MODEL))
        .artifact_location.startswith((original / "artifacts").as_uri())
    )

    shutil.rmtree(original)
    got = Path(mine.client.download_artifacts(first.run_id, "drift.html", str(tmp_path / "dl")))
    assert got.read_text() == "<html>day one, again</html>"
    with fluent_uri(_uri(copy)):
        champion = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    assert champion.predict(pd.DataFrame({"a": [1.0], "b": [2.0]})).tolist() == [0]
    assert not original.exists()
    assert relocate_artifacts(_uri(copy), copy / "artifacts") == {}  # done once


def test_a_moved_world_is_relocated_once_by_the_first_of_its_processes(tmp_path: Path) -> None:
    """`mv home moved/`: the first process preparing the store (here `aiops run`'s call, with
    the config's artifacts folder) rewrites it; every later one finds nothing to do."""
    home = tmp_path / "home"
    report = tmp_path / "profile.json"
    report.write_text("{}")
    Tracker(_uri(home), home / "artifacts").record(
        MODEL, "feature_profile", "2026-03-01", artifacts={"profile": report}
    )
    moved = tmp_path / "moved"
    home.rename(moved)
    prepare_tracking_store(_uri(moved))  # without the artifacts folder: nothing to compare
    prepare_tracking_store(_uri(moved), moved / "artifacts")
    assert _texts_naming(moved / "mlflow.db", str(home)) == []
    assert relocate_artifacts(_uri(moved), moved / "artifacts") == {}
    client = MlflowClient(tracking_uri=_uri(moved))
    [run] = client.search_runs(
        [client.get_experiment_by_name(experiment_name(MODEL)).experiment_id]
    )
    assert run.info.artifact_uri.startswith((moved / "artifacts").resolve().as_uri())
    assert Path(client.download_artifacts(run.info.run_id, "profile.json", str(tmp_path))).exists()


def test_what_did_not_move_with_the_database_is_left_alone(tmp_path: Path) -> None:
    """An experiment whose artifacts live in another store (s3://) or outside the world's
    layout, and a config pointing at a new, empty artifacts folder: nothing is rewritten."""
    home = tmp_path / "home"
    uri = _uri(home)
    Tracker(uri, home / "artifacts").record(MODEL, "drift_report", "2026-03-01")
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment(experiment_name("acme.s3"), artifact_location="s3://b/mlflow/acme.s3")
    client.create_experiment(
        experiment_name("acme.elsewhere"), artifact_location=(tmp_path / "x").as_uri()
    )
    with closing(sqlite3.connect(home / "mlflow.db")) as con:
        dump = list(con.iterdump())

    assert relocate_artifacts(uri, tmp_path / "new-artifacts") == {}  # the old ones stayed
    assert relocate_artifacts(uri, home / "artifacts") == {}
    assert relocate_artifacts("http://localhost:5000", home / "artifacts") == {}
    with closing(sqlite3.connect(home / "mlflow.db")) as con:
        assert list(con.iterdump()) == dump
