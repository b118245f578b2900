"""The demo's three real scikit-learn models: their specs, training on the reference (and the
canary versions), what they predict for a day's traffic, and their registration in MLflow
under the `champion` and `canary` aliases."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from aiops_pipelines.core.config import TaskType
from aiops_pipelines.demo.generators import (
    INTENT_CLASSES,
    churn_features,
    churn_labels,
    daily_profile,
    eta_features,
    eta_labels,
    intent_features,
    intent_labels,
)
from aiops_pipelines.demo.incidents import CANARY_LABEL_NOISE


def _one_hot() -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


def _linear_model(numeric: list[str], categorical: list[str], seed: int) -> Pipeline:
    """Logistic regression with imputation, scaling and one-hot: the classic tabular baseline."""
    num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    prep = ColumnTransformer([("num", num, numeric), ("cat", _one_hot(), categorical)])
    return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=2000))])


def _boosted_model(
    numeric: list[str], categorical: list[str], seed: int, task: TaskType
) -> Pipeline:
    """Gradient boosting on one-hot categories; missing numerics are handled natively."""
    prep = ColumnTransformer([("num", "passthrough", numeric), ("cat", _one_hot(), categorical)])
    kw: dict[str, Any] = {
        "max_iter": 100,
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
        "random_state": seed,
    }
    est: BaseEstimator
    if task is TaskType.REGRESSION:
        est = HistGradientBoostingRegressor(early_stopping=False, **kw)
    else:
        est = HistGradientBoostingClassifier(early_stopping=False, **kw)
    return Pipeline([("prep", prep), ("model", est)])


@dataclass(frozen=True)
class ModelSpec:
    """One demo model: its names, task, features, generating process and estimator."""

    tenant: str
    name: str
    task: TaskType
    numeric: list[str]
    categorical: list[str]
    segments: list[str]
    features: Callable[[np.random.Generator, np.ndarray], pd.DataFrame]
    labels: Callable[[np.random.Generator, pd.DataFrame, np.ndarray], np.ndarray]
    hour_profile: tuple[float, ...]
    weekday_factor: tuple[float, ...]
    latency_median_ms: float
    label_rate: float
    classes: list[str] | None = None

    @property
    def key(self) -> str:
        return f"{self.tenant}.{self.name}"

    @property
    def prefix(self) -> str:
        return f"{self.tenant}_{self.name}"

    def estimator(self, seed: int) -> Pipeline:
        if self.task is TaskType.BINARY:
            return _linear_model(self.numeric, self.categorical, seed)
        return _boosted_model(self.numeric, self.categorical, seed, self.task)


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        tenant="acme",
        name="churn",
        task=TaskType.BINARY,
        numeric=[
            "tenure_months",
            "monthly_charges",
            "support_calls",
            "data_usage_gb",
            "age",
            "num_products",
        ],
        categorical=["contract_type", "region", "payment_method"],
        segments=["region"],
        features=churn_features,
        labels=churn_labels,
        hour_profile=daily_profile({3: 0.2, 9: 1.0, 13: 1.2, 17: 1.0, 21: 0.6}),
        weekday_factor=(1.04, 1.04, 1.03, 1.03, 1.0, 0.94, 0.92),
        latency_median_ms=12.0,
        label_rate=0.65,
        classes=["0", "1"],
    ),
    ModelSpec(
        tenant="acme",
        name="intent",
        task=TaskType.MULTICLASS,
        numeric=["message_length", "num_prior_contacts", "account_age_days", "sentiment_score"],
        categorical=["channel", "plan_tier", "language"],
        segments=["channel"],
        features=intent_features,
        labels=intent_labels,
        hour_profile=daily_profile({4: 0.15, 10: 1.0, 14: 1.1, 20: 0.9, 23: 0.4}),
        weekday_factor=(1.06, 1.04, 1.02, 1.0, 0.98, 0.95, 0.95),
        latency_median_ms=35.0,
        label_rate=0.62,
        classes=list(INTENT_CLASSES),
    ),
    ModelSpec(
        tenant="globex",
        name="eta",
        task=TaskType.REGRESSION,
        numeric=["distance_km", "num_items", "prep_time_min", "traffic_index"],
        categorical=["city", "vehicle_type", "weather"],
        segments=["city"],
        features=eta_features,
        labels=eta_labels,
        hour_profile=daily_profile({4: 0.05, 9: 0.3, 12: 1.0, 15: 0.45, 19: 1.3, 23: 0.3}),
        weekday_factor=(0.94, 0.95, 0.97, 1.0, 1.06, 1.06, 1.02),
        latency_median_ms=20.0,
        label_rate=0.68,
    ),
)

SPEC_BY_KEY = {s.key: s for s in SPECS}


def validation_rows(reference: pd.DataFrame, seed: int) -> np.ndarray:
    """The 20% of the reference held out from training: the champion's validation set."""
    return np.random.default_rng([seed, 101]).random(len(reference)) < 0.2


def train(
    spec: ModelSpec, reference: pd.DataFrame, seed: int
) -> tuple[Pipeline, dict[str, float], dict[str, Any]]:
    """Fit the champion on 80% of the reference; metrics on the other 20% (its validation)."""
    val = validation_rows(reference, seed)
    x = reference[spec.numeric + spec.categorical]
    y = reference["label"].to_numpy()
    model = spec.estimator(seed)
    model.fit(x[~val], y[~val])
    metrics = _metrics(spec, model, x[val], y[val])
    params = {
        "estimator": type(model.steps[-1][1]).__name__,
        "n_train": int((~val).sum()),
        "n_validation": int(val.sum()),
        "seed": seed,
        "features": ",".join(spec.numeric + spec.categorical),
    }
    return model, metrics, params


def train_canary(
    spec: ModelSpec, reference: pd.DataFrame, seed: int
) -> tuple[Pipeline, dict[str, float], dict[str, Any]]:
    """A worse version: 400 rows, a fifth of the labels flipped, no categorical features, and
    classes re-weighted to balance.

    It is what a rushed retrain on a bad sample looks like: it still runs and outputs plausible
    scores, but ranks worse, over-predicts churn (many false positives) and is badly calibrated,
    so it loses to the champion on accuracy, log loss and Brier score alike.
    """
    rng = np.random.default_rng([seed, 202])
    idx = rng.choice(len(reference), size=min(400, len(reference)), replace=False)
    sub = reference.iloc[idx]
    y = sub["label"].to_numpy().copy()
    flip = rng.random(len(y)) < CANARY_LABEL_NOISE
    y[flip] = 1 - y[flip]
    num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    prep = ColumnTransformer([("num", num, spec.numeric)])
    clf = LogisticRegression(max_iter=2000, class_weight="balanced")
    model = Pipeline([("prep", prep), ("model", clf)])
    model.fit(sub[spec.numeric + spec.categorical], y)
    x = reference[spec.numeric + spec.categorical]
    metrics = _metrics(spec, model, x, reference["label"].to_numpy())
    params = {
        "estimator": "LogisticRegression",
        "n_train": len(sub),
        "label_noise": CANARY_LABEL_NOISE,
        "class_weight": "balanced",
        "seed": seed,
        "features": ",".join(spec.numeric),
    }
    return model, metrics, params


def _metrics(spec: ModelSpec, model: Pipeline, x: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """Held-out training metrics, logged to the model's MLflow run."""
    if spec.task is TaskType.REGRESSION:
        p = model.predict(x)
        return {
            "mae": float(mean_absolute_error(y, p)),
            "rmse": float(np.sqrt(mean_squared_error(y, p))),
            "r2": float(r2_score(y, p)),
        }
    proba = model.predict_proba(x)
    if spec.task is TaskType.BINARY:
        p1 = proba[:, 1]
        return {
            "roc_auc": float(roc_auc_score(y, p1)),
            "accuracy": float(accuracy_score(y, (p1 >= 0.5).astype(int))),
            "log_loss": float(log_loss(y, p1, labels=[0, 1])),
            "brier": float(brier_score_loss(y, p1)),
            "positive_rate": float(np.mean(y)),
        }
    pred = np.asarray(model.classes_)[proba.argmax(axis=1)]
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "log_loss": float(log_loss(y, proba, labels=list(model.classes_))),
    }


def predict(
    spec: ModelSpec, model: Pipeline, x: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    """What the served model outputs: (prediction, score) in the contract's types."""
    with warnings.catch_warnings():  # an unseen category is the point of one incident
        warnings.filterwarnings("ignore", message=".*unknown categories.*")
        if spec.task is TaskType.REGRESSION:
            return model.predict(x).round(3), None
        proba = model.predict_proba(x)
    if spec.task is TaskType.BINARY:
        p1 = proba[:, 1]
        return (p1 >= 0.5).astype(np.int64), p1.round(6)
    return np.asarray(model.classes_)[proba.argmax(axis=1)], proba.max(axis=1).round(6)


@dataclass
class ModelData:
    reference: pd.DataFrame
    predictions: pd.DataFrame
    outcomes: pd.DataFrame
    daily_rows: dict[str, int]
    champion: Pipeline
    champion_metrics: dict[str, float]
    champion_params: dict[str, Any]
    canary: Pipeline | None = None
    canary_metrics: dict[str, float] = field(default_factory=dict)
    canary_params: dict[str, Any] = field(default_factory=dict)
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)
    canary_start: str | None = None


def register_in_mlflow(
    uri: str, artifacts_dir: Path, data: dict[str, ModelData]
) -> dict[str, dict[str, int]]:
    """Log each model to its experiment, register it as `<key>` v1 `champion` (v2 `canary`)."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from aiops_pipelines.io.tracking import (
        TAG_MODEL,
        TAG_TENANT,
        ensure_experiment,
        fluent_uri,
        trusted_types,
    )
    from aiops_pipelines.lifecycle.registry import TAG_CANARY_START

    registered: dict[str, dict[str, int]] = {}
    reqs = [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"]
    with fluent_uri(uri), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        for key, d in data.items():
            spec = SPEC_BY_KEY[key]
            exp_id = ensure_experiment(client, key, artifacts_dir)
            # the signature has the stored types (integer counts as long), so pyfunc accepts the
            # rows exactly as they are read back from world.db
            sample = d.reference[spec.numeric + spec.categorical].head(200)
            versions: list[tuple[str, Pipeline, dict[str, float], dict[str, Any]]] = [
                ("champion", d.champion, d.champion_metrics, d.champion_params)
            ]
            if d.canary is not None:
                versions.append(("canary", d.canary, d.canary_metrics, d.canary_params))
            registered[key] = {}
            for alias, model, metrics, params in versions:
                with mlflow.start_run(
                    experiment_id=exp_id,
                    run_name=f"train-{alias}",
                    tags={
                        TAG_TENANT: spec.tenant,
                        TAG_MODEL: spec.name,
                        "aiops.role": alias,
                        "aiops.source": "demo",
                    },
                ):
                    mlflow.log_params({**params, "task": spec.task.value})
                    mlflow.log_metrics(metrics)
                    info = mlflow.sklearn.log_model(
                        model,
                        name="model",
                        registered_model_name=key,
                        signature=infer_signature(sample, model.predict(sample)),
                        pip_requirements=reqs,
                        skops_trusted_types=trusted_types(model),
                        await_registration_for=60,
                    )
                version = str(info.registered_model_version)
                client.set_registered_model_alias(key, alias, version)
                client.update_model_version(
                    key,
                    version,
                    description=f"{alias}: "
                    + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()),
                )
                registered[key][alias] = int(version)
                if alias == "canary" and d.canary_start:
                    # where the canary's traffic begins: the canary analysis starts there
                    client.set_model_version_tag(key, version, TAG_CANARY_START, d.canary_start)
            client.update_registered_model(
                key, description=f"demo {spec.task.value} model of tenant '{spec.tenant}'"
            )
            for tag, value in ((TAG_TENANT, spec.tenant), (TAG_MODEL, spec.name)):
                client.set_registered_model_tag(key, tag, value)
    return registered
