"""`aiops run` after a feature was added to the config: refused up front, with the model, the
feature and the fix named, until `--refresh-reference` rebuilds the reference (on a one-day
world; the rebuild is real Dagster runs, so slow)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

# loaded before any test sets $AIOPS_CONFIG, as in the whole suite (see tests/e2e/test_cli.py)
import aiops_pipelines.orchestration.partitions  # noqa: F401
from aiops_pipelines.cli import main
from aiops_pipelines.core.config import load_config
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals.profile.day import profile_reference

DAY = "2026-03-02"


def _rows(n: int, seed: int, day: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "age": rng.integers(18, 90, n).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    df["score"] = 1 / (1 + np.exp(-(df.income - 50) / 10))
    df["prediction"] = (df.score > 0.5).astype(int)
    if day is not None:
        ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 86399, n)), "s")
        df.insert(0, "request_id", [f"{day}-{i}" for i in range(n)])
        df.insert(1, "timestamp", ts.strftime("%Y-%m-%d %H:%M:%S.%f+00:00"))
        df.insert(2, "model_version", "1")
        df["latency_ms"] = rng.lognormal(3, 0.3, n)
        df["status"] = "ok"
    return df


def _config(tmp_path: Path, numeric: list[str]) -> Path:
    world = f"sqlite:///{tmp_path / 'world.db'}"
    raw = {
        "storage": {
            "store_url": "sqlite:///store.db",
            "mlflow_tracking_uri": "sqlite:///mlflow.db",
            "artifacts_dir": "artifacts",
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    {
                        "name": "churn",
                        "task": "binary_classification",
                        "features": {"numeric": numeric, "categorical": ["plan"]},
                        "columns": {"score": "score"},
                        "predictions": {"url": world, "table": "preds"},
                        "reference": {"url": world, "table": "ref"},
                    }
                ],
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def world(tmp_path: Path) -> Path:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'world.db'}")
    _rows(3000, 0).to_sql("ref", eng, index=False)
    _rows(1500, 1, DAY).to_sql("preds", eng, index=False)
    eng.dispose()
    return tmp_path


def _stored_columns(config: Path, partition: str) -> set[str]:
    cfg = load_config(config)
    kind = "reference" if partition == "reference" else "daily"
    with MonitoringStore(cfg.storage.store_url) as store:
        payload = store.load_profile("acme", "churn", kind, partition)
    return {c["name"] for c in payload["profile"]["columns"]}


def test_run_refuses_a_config_whose_features_changed_before_any_run(
    world: Path, capsys: pytest.CaptureFixture
) -> None:
    before = _config(world, ["income"])
    cfg = load_config(before)
    with MonitoringStore(cfg.storage.store_url) as store:  # as reference_profile stores it
        ref = profile_reference(cfg.models[0])
        store.save_profile("acme", "churn", "reference", "reference", ref.payload, ref.n_rows)
    after = _config(world, ["income", "age"])
    assert main(["run", "--config", str(after), "--start", DAY, "--end", DAY]) == 2
    err = capsys.readouterr().err
    assert f"config {after.resolve()}: model 'acme.churn': field 'features'" in err
    assert "added: age (numeric)" in err and "--refresh-reference" in err
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs() == []


@pytest.mark.slow  # three `aiops run`s: Dagster runs of the reference, the day and its overview
def test_refresh_reference_rebuilds_it_and_the_days_after_use_the_new_features(
    world: Path, capsys: pytest.CaptureFixture
) -> None:
    day = ["--start", DAY, "--end", DAY, "--no-html"]
    config = _config(world, ["income"])
    assert main(["run", "--config", str(config), *day]) == 0
    assert "1 partitions succeeded, 0 failed" in capsys.readouterr().out
    assert "age" not in _stored_columns(config, DAY)

    config = _config(world, ["income", "age"])
    assert main(["run", "--config", str(config), *day]) == 2
    assert "added: age (numeric)" in capsys.readouterr().err

    assert main(["run", "--config", str(config), *day, "--refresh-reference"]) == 0
    assert "1 partitions succeeded, 0 failed" in capsys.readouterr().out
    assert "age" in _stored_columns(config, "reference")
    assert "age" in _stored_columns(config, DAY)
