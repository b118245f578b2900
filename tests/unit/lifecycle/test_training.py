"""Retraining on a real demo world with a real MLflow sqlite registry.

One small world (14 days x 800 rows, champions registered as version 1) is built once for the
module. Every test that writes to the registry works on its own copy of `mlflow.db` (the
artifacts stay where the world put them; new runs get new folders), so the tests do not depend
on each other's versions and aliases.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier, DummyRegressor
from threadpoolctl import threadpool_limits

from aiops_pipelines.core.config import (
    FeatureSpec,
    Metric,
    ModelConfig,
    RetrainPolicy,
    SourceConfig,
    TaskType,
    load_config,
)
from aiops_pipelines.core.errors import ConfigError, DataError
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.sources import Source
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import experiment_name
from aiops_pipelines.lifecycle.training import (
    TAG_BEATS,
    TAG_REASON,
    TAG_WINDOW_END,
    TAG_WINDOW_START,
    InsufficientLabelsError,
    RetrainError,
    RetrainResult,
    default_trainer,
    evaluate,
    labelled_window,
    load_trainer,
    load_version,
    retrain,
)
from aiops_pipelines.signals.performance.metrics import realized_metrics

END = date(2026, 3, 14)
AS_OF = datetime(2026, 3, 15, tzinfo=UTC)  # the world's "now": midnight after its last day
POOR_TRAINER = "tests.unit.lifecycle.test_training:poor_trainer"


def poor_trainer(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: TaskType,
    numeric: list[str],
    categorical: list[str],
    classes: list[str] | None,
    seed: int,
) -> DummyClassifier | DummyRegressor:
    """A trainer entry point that ignores the features: it can only lose to a real champion."""
    if task is TaskType.REGRESSION:
        return DummyRegressor(strategy="mean").fit(X, y)
    return DummyClassifier(strategy="prior").fit(X, y)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One OpenMP thread: gradient boosting's workers busy-wait on a shared 2-core machine,
    which made these tests several times slower and their time unpredictable (see demo.py)."""
    with threadpool_limits(limits=1):
        yield


#: the module's demo world, built once by the `world` fixture (tests/conftest.py)
#: a test that uses it (or `registry`) is marked slow: building it with MLflow takes
#: seconds, and training on it more
WORLD = dict(days=14, end_date=END, rows_per_day=800, reference_rows=3000, register_models=True)


@pytest.fixture
def registry(world: DemoWorld, tmp_path: Path) -> str:
    """A private copy of the world's registry (champion v1 per model; churn's canary v2)."""
    shutil.copy(world.home / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _model(world: DemoWorld, key: str, **retrain_policy: Any) -> ModelConfig:
    model = load_config(world.config_path).model(key)
    if retrain_policy:
        model = model.model_copy(
            update={"retrain": model.retrain.model_copy(update=retrain_policy)}
        )
    return model


def _incident(world: DemoWorld, kind: str) -> dict[str, Any]:
    return next(i for i in world.manifest["incidents"] if i["kind"] == kind)


def _retrain(world: DemoWorld, model: ModelConfig, uri: str, **kw: Any) -> RetrainResult:
    args: dict[str, Any] = {
        "tracking_uri": uri,
        "artifacts_dir": str(world.home / "artifacts"),
        "reason": "performance_decay",
        "evidence": {"finding": "performance_decay", "mae": 9.1},
        "end_day": END,
        "as_of": AS_OF,
    }
    return retrain(model, **{**args, **kw})


def _aliases(uri: str, name: str) -> dict[str, str]:
    model = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model(name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def _versions(uri: str, name: str) -> list[str]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))


# ----------------------------------------------------------------------------- the window


@pytest.mark.slow
def test_labelled_window_is_the_windows_predictions_with_labels_observed_by_as_of(
    world: DemoWorld,
) -> None:
    model = _model(world, "globex.eta", window_days=5)
    as_of = datetime(2026, 3, 13, 12, tzinfo=UTC)
    data = labelled_window(model, END, as_of)

    with sqlite3.connect(world.world_db) as con:
        expected = pd.read_sql(
            "SELECT p.request_id, o.label FROM globex_eta_predictions p "
            "JOIN globex_eta_outcomes o ON o.request_id = p.request_id "
            "WHERE p.timestamp >= '2026-03-10' AND p.timestamp < '2026-03-15' "
            "AND o.observed_at < '2026-03-13 12:00:00'",
            con,
        )
    assert list(data.columns) == [
        "request_id",
        "timestamp",
        *model.features.numeric,
        *model.features.categorical,
        "label",
    ]
    assert len(data) == len(expected) > 300
    assert data["timestamp"].is_monotonic_increasing
    assert data["timestamp"].min() >= pd.Timestamp("2026-03-10", tz="UTC")
    assert data["timestamp"].max() < as_of
    assert data["label"].notna().all()
    got = data.set_index("request_id")["label"]
    want = expected.set_index("request_id")["label"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_index_type=False)

    # labels arrive late: a later as_of sees more of the same window, never fewer
    assert len(labelled_window(model, END, AS_OF)) > len(data)


def test_labelled_window_keeps_the_latest_label_within_the_label_window(tmp_path: Path) -> None:
    db = tmp_path / "tiny.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE preds (request_id TEXT, timestamp TEXT, x REAL, c TEXT)")
        con.executemany(
            "INSERT INTO preds VALUES (?, ?, ?, ?)",
            [
                ("a", "2026-03-01 10:00:00+00:00", 1.0, "u"),
                ("b", "2026-03-02 09:00:00+00:00", 2.0, None),
                ("c", "2026-03-02 08:00:00+00:00", 3.0, "v"),  # labelled after as_of
                ("d", "2026-03-02 07:00:00+00:00", 4.0, "v"),  # never labelled
                ("e", "2026-02-27 07:00:00+00:00", 5.0, "v"),  # before the window
                ("f", "2026-03-01 11:00:00+00:00", 6.0, "v"),  # labelled too late to count
            ],
        )
        con.execute("CREATE TABLE outcomes (request_id TEXT, label INTEGER, observed_at TEXT)")
        con.executemany(
            "INSERT INTO outcomes VALUES (?, ?, ?)",
            [
                ("b", 1, "2026-03-04 00:00:00+00:00"),  # the latest label of b wins ...
                ("a", 0, "2026-03-02 00:00:00+00:00"),
                ("b", 0, "2026-03-03 00:00:00+00:00"),  # ... whatever the row order
                ("c", 1, "2026-03-09 00:00:00+00:00"),
                ("e", 1, "2026-03-02 00:00:00+00:00"),
                ("f", 1, "2026-03-04 00:00:00+00:00"),  # day + label_window_days (2) + 1
                ("a", 1, "2026-03-04 12:00:00+00:00"),  # a correction that comes too late
            ],
        )
    url = f"sqlite:///{db}"
    model = ModelConfig(
        name="tiny",
        tenant="t",
        task=TaskType.BINARY,
        features=FeatureSpec(numeric=["x"], categorical=["c"]),
        predictions=SourceConfig(url=url, table="preds"),
        outcomes=SourceConfig(url=url, table="outcomes"),
        reference=SourceConfig(url=url, table="preds"),
        retrain={"window_days": 2},
        performance={"label_window_days": 2},
    )
    data = labelled_window(model, date(2026, 3, 2), datetime(2026, 3, 5, tzinfo=UTC))
    assert data["request_id"].tolist() == ["a", "b"]  # sorted by prediction time
    assert data["label"].tolist() == [0, 1]
    assert data["x"].tolist() == [1.0, 2.0]
    assert data["c"].iloc[0] == "u" and pd.isna(data["c"].iloc[1])

    with pytest.raises(ValueError, match="timezone-aware"):
        labelled_window(model, date(2026, 3, 2), datetime(2026, 3, 5))


# ----------------------------------------------------------------------------- trainers


@pytest.mark.slow
def test_default_trainer_keeps_the_datas_labels_and_predicts_probabilities(
    world: DemoWorld,
) -> None:
    for key in ("acme.churn", "acme.intent"):
        model = _model(world, key)
        ref = pd.concat(Source(model.reference).iter_all()).head(1500)
        est = default_trainer(
            ref[model.features.all],
            ref["label"],
            task=model.task,
            numeric=model.features.numeric,
            categorical=model.features.categorical,
            classes=model.classes,
            seed=0,
        )
        proba = est.predict_proba(ref[model.features.all].head(50))
        assert proba.shape == (50, len(model.classes or []))
        assert sorted(map(str, est.classes_)) == sorted(model.classes or [])
        # the classes the data uses: ints for churn, strings for intent
        assert type(est.predict(ref[model.features.all].head(1))[0]) is type(ref["label"].iloc[0])


def test_load_trainer_names_the_entry_it_cannot_load() -> None:
    assert load_trainer("aiops_pipelines.lifecycle.training:default_trainer") is default_trainer
    assert load_trainer(POOR_TRAINER).__name__ == "poor_trainer"
    cases = {
        "aiops_pipelines.no_such_module:train": "cannot import module",
        "aiops_pipelines.lifecycle.training:no_such_function": "has no callable 'no_such_function'",
        "aiops_pipelines.lifecycle.training:MIN_TRAIN_ROWS": "has no callable",
        "no_colon_here": "not of the form",
    }
    for entry, message in cases.items():
        with pytest.raises(ConfigError, match=message) as info:
            load_trainer(entry, where="model 'acme.churn'")
        assert entry in str(info.value)
        assert info.value.field == "retrain.trainer"
        assert "acme.churn" in str(info.value)


def test_a_config_naming_the_trainers_old_module_still_loads_it() -> None:
    policy = RetrainPolicy(trainer="aiops_pipelines.training:default_trainer")
    assert policy.trainer == "aiops_pipelines.lifecycle.training:default_trainer"
    assert load_trainer(policy.trainer) is default_trainer


@pytest.mark.slow
def test_retrain_with_a_broken_trainer_fails_before_touching_the_registry(
    world: DemoWorld, registry: str
) -> None:
    model = _model(world, "globex.eta", trainer="aiops_pipelines.no_such_module:train")
    with pytest.raises(ConfigError, match="aiops_pipelines.no_such_module:train"):
        _retrain(world, model, registry)

    # a classifier without predict_proba cannot be scored like the champion
    churn = _model(
        world, "acme.churn", trainer="tests.unit.lifecycle.test_training:regressor_for_anything"
    )
    with pytest.raises(ConfigError, match="without predict_proba"):
        _retrain(world, churn, registry)
    assert _versions(registry, "globex.eta") == ["1"]
    assert _versions(registry, "acme.churn") == ["1", "2"]


def regressor_for_anything(X: pd.DataFrame, y: pd.Series, **_: Any) -> DummyRegressor:
    """A trainer that returns the wrong kind of model for a classifier."""
    return DummyRegressor().fit(X, pd.to_numeric(y))


@pytest.mark.slow
def test_too_few_labels_is_refused_with_the_model_and_window(
    world: DemoWorld, registry: str, store: MonitoringStore
) -> None:
    # the last day has no label yet (labels take at least a day), the day before only a few
    model = _model(world, "globex.eta", window_days=2)
    with pytest.raises(InsufficientLabelsError) as info:
        _retrain(world, model, registry, store=store)
    err = info.value
    assert isinstance(err, DataError)
    assert err.model == "globex.eta" and err.partition == "2026-03-13..2026-03-14"
    assert "globex.eta" in str(err) and "2026-03-13..2026-03-14" in str(err)
    assert "need at least 200 and 100" in str(err)
    assert _versions(registry, "globex.eta") == ["1"]
    assert store.actions().empty


# ----------------------------------------------------------------------------- retraining


@pytest.mark.slow
def test_retrain_after_concept_shift_registers_a_better_challenger(
    world: DemoWorld, registry: str, store: MonitoringStore
) -> None:
    shift = date.fromisoformat(_incident(world, "concept_shift")["start"])
    assert _incident(world, "concept_shift")["model"] == "globex.eta"
    model = _model(world, "globex.eta", window_days=(END - shift).days + 1)
    uri_before = mlflow.get_tracking_uri()

    result = _retrain(world, model, registry, store=store, seed=3)

    # a new version, made challenger; the champion stays where it was
    assert result.version == "2" and result.champion_version == "1"
    assert result.beats_champion
    assert _aliases(registry, "globex.eta") == {"champion": "1", "challenger": "2"}
    assert (result.window_start, result.window_end) == (shift, END)
    assert result.primary_metric is Metric.MAE
    cand, champ = result.candidate_metrics[Metric.MAE], result.champion_metrics[Metric.MAE]
    assert cand < 0.6 * champ  # the labels moved to y*1.2+3: the old model is far off
    assert result.improvement == pytest.approx(champ - cand)
    assert result.n_holdout >= 100 and result.n_train >= 200
    assert result.n_holdout / (result.n_train + result.n_holdout) == pytest.approx(0.25, abs=0.01)
    assert mlflow.get_tracking_uri() == uri_before  # the global MLflow state is restored

    # the same held-out rows, scored again from the registry, give the logged numbers
    data = labelled_window(model, END, AS_OF)
    cutoff = pd.Timestamp(result.params["holdout_from"])
    train, held = data[data["timestamp"] < cutoff], data[data["timestamp"] >= cutoff]
    assert (len(train), len(held)) == (result.n_train, result.n_holdout)
    for version, logged in (("1", result.champion_metrics), ("2", result.candidate_metrics)):
        est = load_version(registry, "globex.eta", version)
        again = evaluate(model, est, held[model.features.all], held["label"])
        assert again == pytest.approx(logged)
    plain = realized_metrics(
        model.task, held["label"], load_version(registry, "globex.eta", "1").predict(held)
    )
    assert plain[Metric.MAE] == pytest.approx(champ)

    # the version says why it exists and how it compared
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    tags = client.get_model_version("globex.eta", "2").tags
    assert tags[TAG_REASON] == "performance_decay"
    assert (tags[TAG_WINDOW_START], tags[TAG_WINDOW_END]) == (shift.isoformat(), END.isoformat())
    assert tags[TAG_BEATS] == "true"
    assert float(tags["candidate.mae"]) == pytest.approx(cand, rel=1e-5)
    assert float(tags["champion.mae"]) == pytest.approx(champ, rel=1e-5)
    assert tags["aiops.run_id"] == result.run_id

    # the run: in the model's experiment, tagged, with both models' metrics and the evidence
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == experiment_name("globex.eta")
    assert run.info.artifact_uri.startswith((world.home / "artifacts").as_uri())
    assert run.info.status == "FINISHED"
    assert run.data.tags["aiops.asset"] == "retrain"
    assert run.data.tags["aiops.tenant"] == "globex" and run.data.tags["aiops.model"] == "eta"
    assert run.data.tags[TAG_REASON] == "performance_decay"
    assert run.data.tags[TAG_WINDOW_START] == shift.isoformat()
    assert run.data.params["trainer"] == "aiops_pipelines.lifecycle.training:default_trainer"
    assert run.data.params["n_holdout"] == str(result.n_holdout)
    for m in ("mae", "rmse", "mape", "r2"):
        assert f"candidate.{m}" in run.data.metrics and f"champion.{m}" in run.data.metrics
    evidence = json.loads(
        Path(client.download_artifacts(result.run_id, "evidence.json")).read_text()
    )
    assert evidence == {
        "reason": "performance_decay",
        "evidence": {"finding": "performance_decay", "mae": 9.1},
    }

    # the challenger is a loadable model that predicts delivery minutes
    challenger = load_version(registry, "globex.eta", "2")
    assert np.isfinite(challenger.predict(held[model.features.all].head(5))).all()

    # the audit trail
    actions = store.actions("globex", "eta")
    assert len(actions) == 1
    row = actions.iloc[0]
    assert (row["actor"], row["action"], row["partition"]) == (
        "retrain_job",
        "retrain",
        "2026-03-14",
    )
    details = row["details"]
    assert details["version"] == "2" and details["run_id"] == result.run_id
    assert details["beats_champion"] is True and details["reason"] == "performance_decay"
    assert details["window"]["start"] == shift.isoformat()
    assert details["window"]["end"] == END.isoformat()
    assert details["candidate_metrics"]["mae"] == pytest.approx(cand)
    assert details["champion_metrics"]["mae"] == pytest.approx(champ)


@pytest.mark.slow
def test_a_worse_candidate_is_registered_but_gets_no_challenger(
    world: DemoWorld, registry: str, store: MonitoringStore
) -> None:
    # churn: champion v1, canary v2, and a challenger from an earlier retrain on v2
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    client.set_registered_model_alias("acme.churn", "challenger", "2")
    model = _model(world, "acme.churn", trainer=POOR_TRAINER)

    result = _retrain(world, model, registry, store=store)

    assert result.version == "3" and not result.beats_champion
    assert result.primary_metric is Metric.ROC_AUC
    assert result.candidate_metrics[Metric.ROC_AUC] == pytest.approx(0.5)
    assert result.champion_metrics[Metric.ROC_AUC] > 0.7
    assert result.improvement is not None and result.improvement < 0
    # nothing moved: not the champion, not the canary, not the earlier challenger
    assert _aliases(registry, "acme.churn") == {"champion": "1", "canary": "2", "challenger": "2"}
    tags = client.get_model_version("acme.churn", "3").tags
    assert tags[TAG_BEATS] == "false"
    assert float(tags["candidate.roc_auc"]) == pytest.approx(0.5)
    assert store.actions("acme", "churn")["details"].iloc[0]["beats_champion"] is False


@pytest.mark.slow
def test_a_candidate_short_of_min_improvement_gets_no_challenger(
    world: DemoWorld, registry: str
) -> None:
    # a real multiclass candidate cannot gain 1.0 of macro F1 (the metric's whole range)
    model = _model(world, "acme.intent", min_improvement=1.0)
    result = _retrain(world, model, registry)

    # the demo world has a canary (v2) on intent: the candidate is v3
    assert result.version == "3" and not result.beats_champion
    assert result.primary_metric is Metric.MACRO_F1
    assert set(result.candidate_metrics) == {Metric.ACCURACY, Metric.MACRO_F1}
    assert 0.3 < result.candidate_metrics[Metric.MACRO_F1] <= 1
    assert _aliases(registry, "acme.intent") == {"champion": "1", "canary": "2"}
    tags = (
        MlflowClient(tracking_uri=registry, registry_uri=registry)
        .get_model_version("acme.intent", result.version)
        .tags
    )
    assert tags[TAG_BEATS] == "false"


@pytest.mark.slow
def test_the_first_candidate_of_a_model_without_champion_becomes_challenger(
    world: DemoWorld, registry: str
) -> None:
    model = _model(world, "globex.eta", trainer=POOR_TRAINER).model_copy(
        update={"registered_model": "globex.eta-new"}
    )
    result = _retrain(world, model, registry)

    assert result.version == "1" and result.champion_version is None
    assert result.beats_champion and result.improvement is None
    assert result.champion_metrics == {}
    assert _aliases(registry, "globex.eta-new") == {"challenger": "1"}
    assert _aliases(registry, "globex.eta") == {"champion": "1"}


@pytest.mark.slow
def test_a_champion_that_may_not_be_deserialized_stops_the_retrain(
    world: DemoWorld, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow 3.17 gates loading every format, skops included, behind this variable
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = _model(world, "globex.eta", trainer=POOR_TRAINER)
    with pytest.raises(RetrainError, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        _retrain(world, model, registry)
    assert _versions(registry, "globex.eta") == ["1"]  # nothing registered without a verdict
