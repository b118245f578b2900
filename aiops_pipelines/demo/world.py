"""The demo world: two tenants, three real models, two months of traffic, known incidents.

`build_world(home)` writes everything a demo (and the end-to-end tests) needs under one folder:

- `world.db`: one SQLite file holding, per model, the reference set, the prediction log and the
  late, partial outcomes, exactly in the shape of the data contract (README, "Config").
- `mlflow.db` + `artifacts/`: the models really trained on their reference sets and registered
  under aliases (`champion`; `canary` for the model that gets a worse canary version).
- `config.yaml`: a config that `aiops_pipelines.core.config.load_config` accepts, pointing at both.
- `manifest.json`: the ground truth: which incident was injected into which model, columns and
  days, and which signals a monitor should (and may) raise for it.

`detection_summary(manifest, findings)` then grades a pipeline's findings against that truth:
what was detected and how late, what was missed, and which alarms nothing explains. The world is
built so the grading is fair: feature distributions are stationary day to day (traffic volume has
hour-of-day and weekday seasonality, the feature mix does not), so a normal day stays far below
the default drift thresholds, while every injected drift clears them within its first day.

This module is plain Python (no Dagster): the CLI, the Dagster wiring and the tests all call it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
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
from threadpoolctl import threadpool_limits

from aiops_pipelines.core.config import CanaryPolicy, PerformancePolicy, TaskType
from aiops_pipelines.core.findings import Signal

log = logging.getLogger(__name__)

WORLD_DB = "world.db"
CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
MLFLOW_DB = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
#: What a rebuild deletes: only the files the world owns, never anything else under home.
ALERTS_FILE = "alerts.jsonl"
OWNED = (WORLD_DB, CONFIG_FILE, MANIFEST_FILE, MLFLOW_DB, ARTIFACTS_DIR, ALERTS_FILE)
#: The demo's webhook routes read their URLs from these variables (set by `aiops demo` to the
#: receiver it starts); elsewhere they are unset and those notifications stay pending.
DEMO_WEBHOOK_ENV = "AIOPS_DEMO_WEBHOOK_URL"
DEMO_SLACK_ENV = "AIOPS_DEMO_SLACK_URL"

#: The incident calendar below is written for this many days and scaled to other lengths.
CALENDAR_DAYS = 64
#: The signals today's assets produce; other expected signals are "not in scope yet".
DRIFT_SIGNALS: frozenset[str] = frozenset(s.value for s in Signal)
#: Signals about the model as a whole: their findings carry no (or a non-feature) column.
MODEL_LEVEL_SIGNALS: frozenset[str] = frozenset(
    {
        Signal.DATASET_DRIFT.value,
        Signal.PREDICTION_DRIFT.value,
        Signal.PERFORMANCE_DECAY.value,
        Signal.ESTIMATED_PERFORMANCE_DECAY.value,
        Signal.CANARY_FAIL.value,  # their column names the canary version, not a feature
        Signal.CANARY_PASS.value,
        Signal.THROUGHPUT_ANOMALY.value,  # their column is the direction (drop, spike, ...)
        Signal.LATENCY_REGRESSION.value,
        Signal.ERROR_RATE_ANOMALY.value,
        Signal.RESIDUAL_ANOMALY.value,
        Signal.PIPELINE_FAILURE.value,  # its column is the run id
    }
)
#: Labels arrive 1 to this many days after the prediction (see `_generate`).
MAX_LABEL_LAG_DAYS = 14
#: Signals judged on late labels, graded on the day they were raised (not the partition day),
#: with how many days after the incident's start still count as "detected": the label lag
#: plus the persistence window (decay) or the minimum canary duration (pass).
LABEL_SIGNALS: dict[str, int] = {
    Signal.PERFORMANCE_DECAY.value: MAX_LABEL_LAG_DAYS + PerformancePolicy().persistence,
    # two anomalous days against the model's own recent residuals (assets/performance.py)
    Signal.RESIDUAL_ANOMALY.value: MAX_LABEL_LAG_DAYS + 2,
    Signal.CANARY_FAIL.value: MAX_LABEL_LAG_DAYS,
    Signal.CANARY_PASS.value: MAX_LABEL_LAG_DAYS + CanaryPolicy().min_days,
}
#: Findings that report good news: raised at severity info, still what the incident expects.
INFO_SIGNALS: frozenset[str] = frozenset({Signal.CANARY_PASS.value})
_RAISED = ("warning", "critical")
_DAY_US = 86_400_000_000


# --------------------------------------------------------------------------------------------
# The models and their generating processes
# --------------------------------------------------------------------------------------------


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows x classes) probability matrix, vectorised."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def _churn_features(rng: np.random.Generator, hour: np.ndarray) -> pd.DataFrame:
    """Telecom customers scored for churn: tenure, usage and charges hang together, as in life.

    Older customers have longer tenure; long tenure buys longer contracts and more products;
    more products and more data mean higher charges; high charges and monthly contracts mean
    more support calls. Nothing depends on the hour: who gets scored does not vary in the day.
    """
    n = len(hour)
    age = np.clip(rng.normal(44, 14, n), 18, 85).round().astype(np.int64)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.3, 0.25, 0.25, 0.2])
    tenure = np.clip(rng.gamma(1.6, 10 + 0.35 * (age - 18)), 0, 72).round().astype(np.int64)
    contract_logits = np.column_stack([1.2 - 0.04 * tenure, np.zeros(n), -1.0 + 0.03 * tenure])
    contract = np.array(["month-to-month", "one_year", "two_year"])[
        _sample_rows(rng, _softmax(contract_logits))
    ]
    num_products = np.clip(1 + rng.poisson(0.6 + 0.015 * tenure), 1, 6).astype(np.int64)
    usage = rng.lognormal(np.log(12) - 0.012 * (age - 44), 0.6)
    usage[rng.random(n) < 0.01] = np.nan  # a meter that sometimes does not report
    region_offset = np.select(
        [region == "north", region == "south", region == "east"], [2.0, -3.0, 0.0], 4.0
    )
    charges = 18 + 14 * num_products + 0.9 * np.nan_to_num(usage, nan=12.0) + region_offset
    charges = np.clip(charges + rng.normal(0, 8, n), 15, None)
    calls = rng.poisson(
        0.6 + 0.015 * np.maximum(charges - 60, 0) + 0.5 * (contract == "month-to-month")
    ).astype(np.int64)
    young = age < 35
    pay_p = np.where(young[:, None], [[0.3, 0.2, 0.42, 0.08]], [[0.32, 0.3, 0.23, 0.15]])
    payment = np.array(["credit_card", "bank_transfer", "electronic_check", "mailed_check"])[
        _sample_rows(rng, pay_p)
    ]
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges.round(2),
            "support_calls": calls,
            "data_usage_gb": usage.round(3),
            "age": age,
            "num_products": num_products,
            "contract_type": contract,
            "region": region,
            "payment_method": payment,
        }
    )


def _churn_labels(rng: np.random.Generator, x: pd.DataFrame, shifted: np.ndarray) -> np.ndarray:
    """Churn follows a logistic law of the features (no concept shift is injected here)."""
    logit = (
        -0.9
        - 0.045 * x["tenure_months"]
        + 0.03 * (x["monthly_charges"] - 70)
        + 0.4 * x["support_calls"]
        + 0.9 * (x["contract_type"] == "month-to-month")
        - 0.9 * (x["contract_type"] == "two_year")
        + 0.5 * (x["payment_method"] == "electronic_check")
        - 0.2 * (x["num_products"] - 1)
        - 0.012 * (x["age"] - 44)
        + 0.015 * (x["data_usage_gb"].fillna(12) - 12)
    ).to_numpy(dtype=float)
    return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


_INTENT_CLASSES = ["billing", "cancellation", "sales", "technical_support"]


def _intent_features(rng: np.random.Generator, hour: np.ndarray) -> pd.DataFrame:
    """Support messages routed by intent: channel and plan shape how people write to us."""
    n = len(hour)
    channel = rng.choice(["web", "app", "email", "phone"], n, p=[0.38, 0.3, 0.17, 0.15])
    plan = rng.choice(["free", "basic", "pro", "enterprise"], n, p=[0.35, 0.33, 0.22, 0.10])
    language = rng.choice(["en", "de", "fr", "es"], n, p=[0.55, 0.2, 0.13, 0.12])
    paid_big = np.isin(plan, ["pro", "enterprise"])
    account_age = rng.gamma(2.0, 220 + 120 * paid_big).round().astype(np.int64)
    prior = rng.poisson(0.9 + 0.5 * paid_big).astype(np.int64)
    length = rng.lognormal(
        np.log(220) + 0.4 * (channel == "email") - 0.3 * (channel == "app"), 0.55
    )
    sentiment = np.clip(rng.normal(0.15 - 0.1 * prior, 0.35), -1, 1)
    return pd.DataFrame(
        {
            "message_length": np.maximum(length.round(), 5).astype(np.int64),
            "num_prior_contacts": prior,
            "account_age_days": account_age,
            "sentiment_score": sentiment.round(4),
            "channel": channel,
            "plan_tier": plan,
            "language": language,
        }
    )


def _intent_labels(rng: np.random.Generator, x: pd.DataFrame, shifted: np.ndarray) -> np.ndarray:
    """The intent is drawn from a softmax of the features (a channel it never saw is 'phone')."""
    ch = x["channel"].to_numpy()
    phone_like = (ch == "phone") | ~np.isin(ch, ["web", "app", "email"])
    plan = x["plan_tier"].to_numpy()
    loglen = np.log(x["message_length"].to_numpy(dtype=float) / 220)
    prior = x["num_prior_contacts"].to_numpy(dtype=float)
    sent = x["sentiment_score"].to_numpy(dtype=float)
    age = x["account_age_days"].to_numpy(dtype=float) / 365
    logits = np.column_stack(
        [
            0.2 + 1.8 * phone_like + 1.0 * (plan == "basic") + 0.2 * age,  # billing
            -1.2 - 4.0 * sent + 0.6 * prior + 0.5 * (ch == "email"),  # cancellation
            -0.6 + 2.4 * (plan == "free") + 1.0 * (ch == "web") - 0.5 * age,  # sales
            0.2 + 2.2 * loglen + 1.2 * (ch == "app") + 0.9 * np.isin(plan, ["pro", "enterprise"]),
        ]
    )
    return np.array(_INTENT_CLASSES)[_sample_rows(rng, _softmax(logits))]


def _rush(hour: np.ndarray) -> np.ndarray:
    """How congested the roads are at a given hour (0..1), peaking at 8h and 18h."""
    h = hour.astype(float)
    return np.exp(-0.5 * ((h - 8) / 1.5) ** 2) + np.exp(-0.5 * ((h - 18) / 2.0) ** 2)


def _eta_features(rng: np.random.Generator, hour: np.ndarray) -> pd.DataFrame:
    """Food deliveries: order size, kitchen time, distance, vehicle and traffic by the hour."""
    n = len(hour)
    city = rng.choice(
        ["berlin", "paris", "madrid", "rome", "amsterdam"], n, p=[0.28, 0.26, 0.18, 0.14, 0.14]
    )
    vehicle = rng.choice(["bike", "scooter", "car"], n, p=[0.45, 0.35, 0.2])
    weather = rng.choice(["clear", "cloudy", "rain"], n, p=[0.62, 0.24, 0.14])
    distance = np.clip(rng.lognormal(np.log(3.2) + 0.25 * (vehicle == "car"), 0.5), 0.3, 25)
    dinner = (hour >= 18) & (hour <= 21)
    items = (1 + rng.poisson(1.6 + 0.4 * dinner)).astype(np.int64)
    prep = 6 + 1.8 * items + rng.gamma(2.0, 2.5, n)
    city_traffic = np.select(
        [city == "paris", city == "rome", city == "amsterdam"], [0.1, 0.08, -0.1]
    )
    traffic = np.clip(0.3 + 0.3 * _rush(hour) + city_traffic + rng.normal(0, 0.12, n), 0, 1)
    traffic[rng.random(n) < 0.02] = np.nan  # the traffic feed has small gaps
    return pd.DataFrame(
        {
            "distance_km": distance.round(3),
            "num_items": items,
            "prep_time_min": prep.round(2),
            "traffic_index": traffic.round(4),
            "city": city,
            "vehicle_type": vehicle,
            "weather": weather,
        }
    )


def _eta_labels(rng: np.random.Generator, x: pd.DataFrame, shifted: np.ndarray) -> np.ndarray:
    """Delivery minutes: kitchen, pickup, ride. After a concept shift, orders are batched.

    The batching policy (the injected concept shift) makes every delivery ~20% longer plus a
    fixed detour, without changing any feature: only P(y | x) moves.
    """
    vehicle = x["vehicle_type"].to_numpy()
    traffic = x["traffic_index"].fillna(0.45).to_numpy(dtype=float)
    speed = np.select([vehicle == "bike", vehicle == "scooter"], [15.0, 24.0], 30.0)
    slow = np.where(vehicle == "bike", 0.15, 0.55) * traffic
    speed = speed * (1 - slow) * np.where(x["weather"].to_numpy() == "rain", 0.85, 1.0)
    ride = x["distance_km"].to_numpy(dtype=float) / speed * 60
    minutes = 0.7 * x["prep_time_min"].to_numpy(dtype=float) + 4 + ride
    minutes = minutes * rng.lognormal(0, 0.08, len(x)) + rng.normal(0, 1.5, len(x))
    minutes = np.where(shifted, CONCEPT_FACTOR * minutes + CONCEPT_ADD_MIN, minutes)
    return np.maximum(minutes, 5).round(2)


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
class _Spec:
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


def _profile(points: dict[int, float]) -> tuple[float, ...]:
    """A smooth 24-hour traffic profile from a few anchor hours (linear in between)."""
    hours = sorted(points)
    xs = [*hours, hours[0] + 24]
    ys = [points[h] for h in hours] + [points[hours[0]]]
    w = np.interp(np.arange(24) + (np.arange(24) < hours[0]) * 24, xs, ys)
    return tuple(float(v) for v in w / w.sum())


SPECS: tuple[_Spec, ...] = (
    _Spec(
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
        features=_churn_features,
        labels=_churn_labels,
        hour_profile=_profile({3: 0.2, 9: 1.0, 13: 1.2, 17: 1.0, 21: 0.6}),
        weekday_factor=(1.04, 1.04, 1.03, 1.03, 1.0, 0.94, 0.92),
        latency_median_ms=12.0,
        label_rate=0.65,
        classes=["0", "1"],
    ),
    _Spec(
        tenant="acme",
        name="intent",
        task=TaskType.MULTICLASS,
        numeric=["message_length", "num_prior_contacts", "account_age_days", "sentiment_score"],
        categorical=["channel", "plan_tier", "language"],
        segments=["channel"],
        features=_intent_features,
        labels=_intent_labels,
        hour_profile=_profile({4: 0.15, 10: 1.0, 14: 1.1, 20: 0.9, 23: 0.4}),
        weekday_factor=(1.06, 1.04, 1.02, 1.0, 0.98, 0.95, 0.95),
        latency_median_ms=35.0,
        label_rate=0.62,
        classes=list(_INTENT_CLASSES),
    ),
    _Spec(
        tenant="globex",
        name="eta",
        task=TaskType.REGRESSION,
        numeric=["distance_km", "num_items", "prep_time_min", "traffic_index"],
        categorical=["city", "vehicle_type", "weather"],
        segments=["city"],
        features=_eta_features,
        labels=_eta_labels,
        hour_profile=_profile({4: 0.05, 9: 0.3, 12: 1.0, 15: 0.45, 19: 1.3, 23: 0.3}),
        weekday_factor=(0.94, 0.95, 0.97, 1.0, 1.06, 1.06, 1.02),
        latency_median_ms=20.0,
        label_rate=0.68,
    ),
)
_SPEC_BY_KEY = {s.key: s for s in SPECS}


# --------------------------------------------------------------------------------------------
# The incident calendar
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Incident:
    """An injected problem: day offsets from the first demo day, `end` inclusive, None = open."""

    id: int
    kind: str
    model: str
    start: int
    end: int | None
    columns: list[str]
    expected: list[str]
    allowed: list[str]
    description: str
    params: dict[str, Any] = field(default_factory=dict)

    def active(self, day: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows whose day index falls inside the incident."""
        if self.end is None:
            return day >= self.start
        return (day >= self.start) & (day <= self.end)


# (id, kind, model, start, end) on the 64-day calendar; spread out so that every incident on a
# model starts on its own day, and the first ten days of the world are clean history.
_CALENDAR: tuple[tuple[int, str, str, int, int | None], ...] = (
    (1, "null_rate", "globex.eta", 14, 18),
    (2, "covariate_drift", "acme.churn", 20, None),
    (3, "throughput_drop", "globex.eta", 24, 25),
    (4, "unseen_category", "acme.intent", 28, None),
    (5, "concept_shift", "globex.eta", 36, None),
    (6, "canary", "acme.churn", 44, None),
    (7, "canary_good", "acme.intent", 32, None),
    (8, "bad_batch", "acme.churn", 12, 12),
)

TENURE_SHIFT_SD = 0.5  # mean shift of tenure_months, in reference standard deviations
CHARGES_SHIFT_SD = 0.3  # mean shift of monthly_charges
CONCEPT_FACTOR = 1.2  # delivery minutes after the concept shift: factor * y + add
CONCEPT_ADD_MIN = 3.0
NULL_RATE_TO = 0.30  # traffic_index missing share inside the outage window (from 0.02)
UNSEEN_VALUE = "voice_assistant"
UNSEEN_SHARE = 0.10
CANARY_SHARE = 0.10
#: The good canary gets more traffic: proving "not worse" takes more data than proving worse.
GOOD_CANARY_SHARE = 0.25
#: Its non-inferiority margin (accuracy points) in the demo config: a 4-class model at ~62%
#: accuracy with a quarter of the traffic can show "no worse than 5 points" in about a week.
GOOD_CANARY_MARGIN = 0.05
CANARY_LABEL_NOISE = 0.2
THROUGHPUT_FACTOR = 0.20  # share of normal traffic left on a throughput-drop day
BAD_BATCH_COLUMN = "monthly_charges"  # acme.churn: text in a numeric column fails the day's run
BAD_BATCH_VALUE = "n/a"


def _incidents(days: int, scale: float) -> list[_Incident]:
    """The calendar scaled to `days` (offsets * scale, rounded), checked to fit in the world."""

    def at(offset: int) -> int:
        return int(round(offset * scale))

    out: list[_Incident] = []
    for iid, kind, model, start0, end0 in _CALENDAR:
        start = at(start0)
        end = None if end0 is None else max(start, at(end0))
        if start < 1 or start >= days or (end is not None and end >= days):
            raise ValueError(
                f"incident {iid} ({kind}) falls on day {start}..{end} of a {days}-day world: "
                "use more days or a smaller incident_scale"
            )
        out.append(_incident(iid, kind, model, start, end))
    return out


def _incident(iid: int, kind: str, model: str, start: int, end: int | None) -> _Incident:
    """The columns, signals and description of one calendar entry."""
    drift = Signal.FEATURE_DRIFT.value
    pred = Signal.PREDICTION_DRIFT.value
    if kind == "covariate_drift":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            ["tenure_months", "monthly_charges"],
            [drift],
            # scores follow the features, so the label-free estimate moves too
            [pred, Signal.DATASET_DRIFT.value, Signal.ESTIMATED_PERFORMANCE_DECAY.value],
            "A new-customer campaign and a price rise: tenure_months drops by "
            f"~{TENURE_SHIFT_SD} sd and monthly_charges rises by ~{CHARGES_SHIFT_SD} sd; "
            "P(churn | x) is unchanged, so the churn scores rise with the features.",
            {"tenure_shift_sd": TENURE_SHIFT_SD, "charges_shift_sd": CHARGES_SHIFT_SD},
        )
    if kind == "concept_shift":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            [],
            [Signal.PERFORMANCE_DECAY.value, Signal.RESIDUAL_ANOMALY.value],
            [],
            f"Couriers start batching orders: delivery takes ~{CONCEPT_FACTOR - 1:.0%} longer plus "
            f"{CONCEPT_ADD_MIN:.0f} minutes for the "
            "same features. No feature or prediction moves; only the labels do (error grows "
            "as they arrive, 1-14 days later).",
            {"factor": CONCEPT_FACTOR, "add_minutes": CONCEPT_ADD_MIN},
        )
    if kind == "null_rate":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            ["traffic_index"],
            [Signal.NULL_RATE_DRIFT.value],
            [drift],
            f"The traffic feed has an outage: traffic_index is missing in ~{NULL_RATE_TO:.0%} "
            "of the rows instead of ~2%.",
            {"null_rate_from": 0.02, "null_rate_to": NULL_RATE_TO},
        )
    if kind == "unseen_category":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            ["channel"],
            [Signal.UNSEEN_CATEGORY.value],
            [drift, pred, Signal.ESTIMATED_PERFORMANCE_DECAY.value],
            f"A new support channel '{UNSEEN_VALUE}' goes live and carries ~{UNSEEN_SHARE:.0%} "
            "of the messages; the reference never saw it.",
            {"value": UNSEEN_VALUE, "share": UNSEEN_SHARE},
        )
    if kind == "canary":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            [],
            [Signal.CANARY_FAIL.value],
            # the worse version really lowers the blended performance of the model
            [pred, Signal.PERFORMANCE_DECAY.value, Signal.ESTIMATED_PERFORMANCE_DECAY.value],
            f"Version 2 (trained on a small, noisy sample) serves ~{CANARY_SHARE:.0%} of the "
            "traffic as a canary; it is clearly worse than the champion (version 1).",
            {"canary_version": "2", "champion_version": "1", "share": CANARY_SHARE},
        )
    if kind == "canary_good":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            [],
            [Signal.CANARY_PASS.value],
            [pred, Signal.ESTIMATED_PERFORMANCE_DECAY.value],
            f"Version 2 (the champion's recipe, another seed) serves ~{GOOD_CANARY_SHARE:.0%} of "
            "the traffic as a canary; it is as good as the champion and should be promoted.",
            {"canary_version": "2", "champion_version": "1", "share": GOOD_CANARY_SHARE},
        )
    if kind == "throughput_drop":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            [],
            [Signal.THROUGHPUT_ANOMALY.value],
            [],
            f"An upstream outage: only ~{THROUGHPUT_FACTOR:.0%} of the usual requests arrive.",
            {"factor": THROUGHPUT_FACTOR},
        )
    if kind == "bad_batch":
        return _Incident(
            iid,
            kind,
            model,
            start,
            end,
            [BAD_BATCH_COLUMN],
            [Signal.PIPELINE_FAILURE.value],
            [],
            f"An upstream job writes '{BAD_BATCH_VALUE}' into {BAD_BATCH_COLUMN} for a day: the "
            "day's monitoring run fails on the column's type, and the failed run must reach "
            "the feed and the alert routes.",
            {"value": BAD_BATCH_VALUE},
        )
    raise ValueError(f"unknown incident kind {kind!r}")


# --------------------------------------------------------------------------------------------
# Building the world
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoWorld:
    """What `build_world` made: the folder, its config, its ground truth and its model keys."""

    home: Path
    config_path: Path
    manifest: dict[str, Any]
    models: list[str]

    @property
    def world_db(self) -> Path:
        return self.home / WORLD_DB

    @property
    def manifest_path(self) -> Path:
        return self.home / MANIFEST_FILE

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / MLFLOW_DB}"


def _ts_strings(us: np.ndarray) -> np.ndarray:
    """UTC microsecond timestamps as '2026-03-01 13:45:12.123456+00:00'.

    A space (not 'T') separates date and time, so plain string comparison with day bounds such
    as `timestamp >= '2026-03-01' AND timestamp < '2026-03-02'` selects exactly that UTC day,
    and the explicit offset makes every reader parse the value as tz-aware UTC.
    """
    s = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return np.char.add(np.char.replace(s, "T", " "), "+00:00")


def _day_us(d: date) -> int:
    return int(np.datetime64(d, "us").astype(np.int64))


def _validation_rows(reference: pd.DataFrame, seed: int) -> np.ndarray:
    """The 20% of the reference held out from training: the champion's validation set."""
    return np.random.default_rng([seed, 101]).random(len(reference)) < 0.2


def _train(
    spec: _Spec, reference: pd.DataFrame, seed: int
) -> tuple[Pipeline, dict[str, float], dict[str, Any]]:
    """Fit the champion on 80% of the reference; metrics on the other 20% (its validation)."""
    val = _validation_rows(reference, seed)
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


def _train_canary(
    spec: _Spec, reference: pd.DataFrame, seed: int
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


def _metrics(spec: _Spec, model: Pipeline, x: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
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


def _predict(spec: _Spec, model: Pipeline, x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
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


def _hours(rng: np.random.Generator, spec: _Spec, n: int) -> np.ndarray:
    return rng.choice(24, size=n, p=np.asarray(spec.hour_profile))


def _reference(spec: _Spec, rows: int, seed: int, idx: int) -> pd.DataFrame:
    """The champion's training/validation data: the same process as a normal day."""
    rng = np.random.default_rng([seed, idx, 1])
    x = spec.features(rng, _hours(rng, spec, rows))
    x["label"] = spec.labels(rng, x, np.zeros(rows, dtype=bool))
    return x


def _daily_counts(
    spec: _Spec,
    rng: np.random.Generator,
    start: date,
    days: int,
    rows_per_day: int,
    incidents: list[_Incident],
) -> np.ndarray:
    """Rows per day: the mean, a weekday rhythm, a little day-to-day noise, and any drop."""
    dow = np.array([(start + timedelta(days=d)).weekday() for d in range(days)])
    factor = np.asarray(spec.weekday_factor)[dow] * np.exp(rng.normal(0, 0.03, days))
    for inc in incidents:
        if inc.kind == "throughput_drop":
            factor = np.where(inc.active(np.arange(days)), factor * THROUGHPUT_FACTOR, factor)
    return np.maximum(np.round(rows_per_day * factor), 1).astype(np.int64)


@dataclass
class _ModelData:
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


def _generate(
    spec: _Spec,
    idx: int,
    *,
    start: date,
    days: int,
    rows_per_day: int,
    reference_rows: int,
    seed: int,
    incidents: list[_Incident],
) -> _ModelData:
    """One model's reference, prediction log and outcomes, with its incidents injected."""
    mine = [i for i in incidents if i.model == spec.key]
    reference = _reference(spec, reference_rows, seed, idx)
    champion, metrics, params = _train(spec, reference, seed)
    pred, score = _predict(spec, champion, reference[spec.numeric + spec.categorical])
    reference["prediction"] = pred
    if score is not None:
        reference["score"] = score

    rng = np.random.default_rng([seed, idx, 2])
    counts = _daily_counts(spec, rng, start, days, rows_per_day, mine)
    n = int(counts.sum())
    day = np.repeat(np.arange(days), counts)
    hour = _hours(rng, spec, n)
    us = _day_us(start) + day * _DAY_US + hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)
    order = np.argsort(us, kind="stable")  # rows of a day stay together: days are in order
    day, hour, us = day[order], hour[order], us[order]
    x = spec.features(rng, hour)
    ref_sd = reference[spec.numeric].std()

    concept = np.zeros(n, dtype=bool)
    canary_rows = np.zeros(n, dtype=bool)
    for inc in mine:
        rows = inc.active(day)
        if inc.kind == "covariate_drift":
            tenure = x["tenure_months"].to_numpy(dtype=float)
            tenure = tenure - TENURE_SHIFT_SD * ref_sd["tenure_months"] * rows
            # clipping at 0 would eat part of the shift: fold the few negatives back instead
            x["tenure_months"] = np.abs(tenure).round().astype(np.int64)
            x["monthly_charges"] = (
                x["monthly_charges"] + CHARGES_SHIFT_SD * ref_sd["monthly_charges"] * rows
            ).round(2)
        elif inc.kind == "null_rate":
            col = inc.columns[0]
            extra = (NULL_RATE_TO - 0.02) / 0.98
            x.loc[rows & (rng.random(n) < extra), col] = np.nan
        elif inc.kind == "unseen_category":
            col = inc.columns[0]
            vals = x[col].to_numpy(dtype=object)
            vals[rows & (rng.random(n) < UNSEEN_SHARE)] = UNSEEN_VALUE
            x[col] = vals.astype(str)
        elif inc.kind == "concept_shift":
            concept |= rows
        elif inc.kind in ("canary", "canary_good"):
            share = GOOD_CANARY_SHARE if inc.kind == "canary_good" else CANARY_SHARE
            canary_rows |= rows & (rng.random(n) < share)
    labels = spec.labels(rng, x, concept)

    feats = x[spec.numeric + spec.categorical]
    pred, score = _predict(spec, champion, feats)
    data = _ModelData(reference, pd.DataFrame(), pd.DataFrame(), {}, champion, metrics, params)
    # reference performance must be measured on rows the champion never trained on
    data.validation = reference[_validation_rows(reference, seed)].reset_index(drop=True)
    canary_inc = next((i for i in mine if i.kind in ("canary", "canary_good")), None)
    if canary_inc is not None:
        if canary_inc.kind == "canary":
            data.canary, data.canary_metrics, data.canary_params = _train_canary(
                spec, reference, seed
            )
        else:  # as good as the champion: the same recipe on the same rows, another seed
            data.canary, data.canary_metrics, data.canary_params = _train(spec, reference, seed + 1)
        data.canary_start = (start + timedelta(days=canary_inc.start)).isoformat()
        if canary_rows.any():
            cpred, cscore = _predict(spec, data.canary, feats[canary_rows])
            pred = pred.copy()
            pred[canary_rows] = cpred
            if score is not None and cscore is not None:
                score = score.copy()
                score[canary_rows] = cscore

    status = np.where(rng.random(n) < 0.005, "error", "ok")
    latency = spec.latency_median_ms * rng.lognormal(0, 0.35, n)
    latency *= 1 + 0.25 * np.asarray(spec.hour_profile)[hour] * 24 / 2  # busier hours: slower
    latency = np.where(status == "error", latency * 3, latency).round(3)
    day_str = [(start + timedelta(days=d)).strftime("%Y%m%d") for d in range(days)]
    seq = np.concatenate([np.arange(c) for c in counts])
    head = f"{spec.tenant}-{spec.name}-"
    ids = np.array([f"{head}{day_str[d]}-{s:06d}" for d, s in zip(day, seq, strict=True)])
    predictions = pd.DataFrame(
        {
            "request_id": ids,
            "timestamp": _ts_strings(us),
            "model_version": np.where(canary_rows, "2", "1"),
        }
    )
    predictions = pd.concat([predictions, feats.reset_index(drop=True)], axis=1)
    # An 'error' row is a request that failed after the model answered (a downstream timeout or
    # a rejected response): the log still has the model's output, as the contract requires a
    # prediction (and score) on every row.
    predictions["prediction"] = pred
    if score is not None:
        predictions["score"] = score
    predictions["latency_ms"] = latency
    predictions["status"] = status

    # Labels arrive for part of the traffic, 1 to 14 days later, and only those observed before
    # the world's "now" (midnight after the last day) exist yet.
    lag_days = 1 + np.minimum(rng.exponential(2.0, n), MAX_LABEL_LAG_DAYS - 1)
    observed = us + (lag_days * _DAY_US).astype(np.int64)
    now = _day_us(start + timedelta(days=days))
    keep = (rng.random(n) < spec.label_rate) & (observed < now)
    outcomes = pd.DataFrame(
        {
            "request_id": predictions["request_id"].to_numpy()[keep],
            "label": labels[keep],
            "observed_at": _ts_strings(observed[keep]),
            "_sort": observed[keep],
        }
    ).sort_values("_sort", kind="stable")
    data.predictions = predictions
    data.outcomes = outcomes.drop(columns="_sort").reset_index(drop=True)
    data.daily_rows = {
        (start + timedelta(days=d)).isoformat(): int(c) for d, c in enumerate(counts)
    }
    return data


def _sql_type(s: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        return "INTEGER"
    if pd.api.types.is_float_dtype(s):
        return "REAL"
    return "TEXT"


def _pylist(s: pd.Series) -> list[Any]:
    """A column as plain Python values with None for missing, which sqlite3 stores as NULL."""
    if pd.api.types.is_float_dtype(s):
        arr = s.to_numpy(dtype=float)
        out = arr.astype(object)
        out[np.isnan(arr)] = None
        return out.tolist()
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
        return s.to_numpy().tolist()
    return s.astype(object).where(s.notna(), None).tolist()


def _write_table(
    con: sqlite3.Connection,
    table: str,
    df: pd.DataFrame,
    *,
    unique: str | None = None,
    index: str | None = None,
    chunk: int = 50_000,
) -> None:
    """Create `table` with explicit column types and bulk-insert `df` in chunks."""
    cols = ", ".join(
        f'"{c}" {_sql_type(df[c])}' + (" NOT NULL UNIQUE" if c == unique else "")
        for c in df.columns
    )
    con.execute(f'CREATE TABLE "{table}" ({cols})')
    marks = ", ".join("?" for _ in df.columns)
    names = ", ".join(f'"{c}"' for c in df.columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
    for lo in range(0, len(df), chunk):
        part = df.iloc[lo : lo + chunk]
        con.executemany(sql, zip(*(_pylist(part[c]) for c in part.columns), strict=True))
    if index:
        con.execute(f'CREATE INDEX "ix_{table}_{index}" ON "{table}" ("{index}")')


def _register(home: Path, data: dict[str, _ModelData]) -> dict[str, dict[str, int]]:
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

    uri = f"sqlite:///{home / MLFLOW_DB}"
    registered: dict[str, dict[str, int]] = {}
    reqs = [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"]
    with fluent_uri(uri), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        for key, d in data.items():
            spec = _SPEC_BY_KEY[key]
            exp_id = ensure_experiment(client, key, home / ARTIFACTS_DIR)
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


def _config(start: date) -> dict[str, Any]:
    """The YAML config document: every path relative to the config's own folder."""
    db = "sqlite:///${CONFIG_DIR}/" + WORLD_DB
    tenants: dict[str, list[dict[str, Any]]] = {}
    for spec in SPECS:
        columns: dict[str, Any] = {}
        if spec.task.is_classification:
            columns["score"] = "score"
        m: dict[str, Any] = {
            "name": spec.name,
            "task": spec.task.value,
            "registered_model": spec.key,
            "features": {"numeric": list(spec.numeric), "categorical": list(spec.categorical)},
            "columns": columns,
            "segments": list(spec.segments),
            "predictions": {"url": db, "table": f"{spec.prefix}_predictions"},
            "outcomes": {"url": db, "table": f"{spec.prefix}_outcomes"},
            "reference": {"url": db, "table": f"{spec.prefix}_reference"},
            "validation": {"url": db, "table": f"{spec.prefix}_validation"},
        }
        if spec.classes:
            m["classes"] = list(spec.classes)
        if any(kind == "canary_good" and model == spec.key for _, kind, model, _, _ in _CALENDAR):
            m["canary"] = {"margin": GOOD_CANARY_MARGIN}
        if not columns:
            del m["columns"]
        tenants.setdefault(spec.tenant, []).append(m)
    return {
        "start_date": start.isoformat(),
        "storage": {
            "store_url": "sqlite:///${CONFIG_DIR}/store.db",
            "mlflow_tracking_uri": "sqlite:///${CONFIG_DIR}/" + MLFLOW_DB,
            "artifacts_dir": "${CONFIG_DIR}/" + ARTIFACTS_DIR,
        },
        "tenants": [{"name": t, "models": ms} for t, ms in tenants.items()],
        "alerting": {
            "routes": [
                {"name": "alerts-file", "type": "file", "path": "${CONFIG_DIR}/" + ALERTS_FILE},
                {
                    "name": "acme-webhook",
                    "type": "webhook",
                    "url_env": DEMO_WEBHOOK_ENV,
                    "tenants": ["acme"],
                },
                {
                    "name": "globex-slack",
                    "type": "slack",
                    "url_env": DEMO_SLACK_ENV,
                    "tenants": ["globex"],
                },
            ]
        },
    }


_CONFIG_HEADER = """\
# The demo world's config, written by aiops_pipelines.demo.world.build_world.
# ${CONFIG_DIR} is the folder of this file: the world moves with it. Thresholds are the
# defaults; the ground truth of what was injected where is in manifest.json beside this file.
"""


def _refuse_foreign(home: Path) -> None:
    """Refuse to wipe a folder that holds someone's real config or MLflow data.

    `home` is meant to be a folder of its own (e.g. `$AIOPS_HOME/demo`); pointing the demo at
    `$AIOPS_HOME` itself would otherwise delete a real `mlflow.db` and `artifacts/`.
    """
    config = home / CONFIG_FILE
    if config.is_file() and not config.read_text(errors="replace").startswith(_CONFIG_HEADER[:40]):
        raise ValueError(f"{config} was not written by the demo: refusing to rebuild over it")
    if not any((home / n).exists() for n in (CONFIG_FILE, MANIFEST_FILE, WORLD_DB)) and any(
        (home / n).exists() for n in (MLFLOW_DB, ARTIFACTS_DIR)
    ):
        raise ValueError(
            f"{home} holds MLflow data but no demo world: refusing to delete it; "
            "give the demo a folder of its own"
        )


def _wipe(home: Path) -> None:
    """Delete what a previous build left (only the world's own files)."""
    for name in (*OWNED, WORLD_DB + ".tmp"):
        p = home / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def build_world(
    home: Path,
    *,
    days: int = 64,
    end_date: date | None = None,
    rows_per_day: int = 3000,
    reference_rows: int = 20000,
    seed: int = 7,
    register_models: bool = True,
    incident_scale: float | None = None,
) -> DemoWorld:
    """Build (or rebuild from scratch) the demo world under `home`; returns what it made.

    `end_date` is the last demo day (default: yesterday, UTC), so the world always ends just
    before "now", like a live system. The incident calendar is written for 64 days and scaled
    by `incident_scale` (default `days / 64`), so a small test world keeps every incident.
    The same arguments give the same data (the MLflow run ids differ).
    """
    t0 = time.perf_counter()
    if days < 1 or rows_per_day < 1 or reference_rows < 100:
        raise ValueError("need days >= 1, rows_per_day >= 1 and reference_rows >= 100")
    home = Path(home).expanduser().resolve()
    end = end_date or (datetime.now(UTC).date() - timedelta(days=1))
    start = end - timedelta(days=days - 1)
    incidents = _incidents(days, days / CALENDAR_DAYS if incident_scale is None else incident_scale)

    home.mkdir(parents=True, exist_ok=True)
    _refuse_foreign(home)
    _wipe(home)
    data: dict[str, _ModelData] = {}
    tmp = home / (WORLD_DB + ".tmp")
    # One OpenMP/BLAS thread: gradient boosting's workers busy-wait when the (2-core) machine is
    # shared with a test run or Dagster, which made generation several times slower; a single
    # thread costs ~20% on an idle machine and keeps the build time predictable.
    with threadpool_limits(limits=1), closing(sqlite3.connect(tmp)) as con:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        for idx, spec in enumerate(SPECS):
            d = _generate(
                spec,
                idx,
                start=start,
                days=days,
                rows_per_day=rows_per_day,
                reference_rows=reference_rows,
                seed=seed,
                incidents=incidents,
            )
            data[spec.key] = d
            _write_table(con, f"{spec.prefix}_reference", d.reference)
            _write_table(con, f"{spec.prefix}_validation", d.validation)
            _write_table(
                con,
                f"{spec.prefix}_predictions",
                d.predictions,
                unique="request_id",
                index="timestamp",
            )
            for inc in incidents:  # after the load: a type error a loader would not catch
                if inc.kind == "bad_batch" and inc.model == spec.key:
                    lo = (start + timedelta(days=inc.start)).isoformat()
                    hi = (start + timedelta(days=(inc.end or inc.start) + 1)).isoformat()
                    con.execute(
                        f'UPDATE "{spec.prefix}_predictions" SET "{inc.columns[0]}" = ? '
                        "WHERE timestamp >= ? AND timestamp < ?",
                        (BAD_BATCH_VALUE, lo, hi),
                    )
            _write_table(
                con,
                f"{spec.prefix}_outcomes",
                d.outcomes,
                unique="request_id",
                index="observed_at",
            )
            con.commit()
    os.replace(tmp, home / WORLD_DB)
    t_data = time.perf_counter() - t0

    registered = _register(home, data) if register_models else {}

    manifest: dict[str, Any] = {
        "generator": "aiops_pipelines.demo.world.build_world",
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": days,
        "rows_per_day": rows_per_day,
        "reference_rows": reference_rows,
        "labels_observed_before": (end + timedelta(days=1)).isoformat(),
        "models": {
            key: {
                "task": _SPEC_BY_KEY[key].task.value,
                "tables": {
                    kind: f"{_SPEC_BY_KEY[key].prefix}_{kind}"
                    for kind in ("reference", "validation", "predictions", "outcomes")
                },
                "registered": registered.get(key, {}),
                "training_metrics": {
                    "champion": d.champion_metrics,
                    **({"canary": d.canary_metrics} if d.canary is not None else {}),
                },
                "label_rate": _SPEC_BY_KEY[key].label_rate,
                "daily_rows": d.daily_rows,
            }
            for key, d in data.items()
        },
        "incidents": [
            {
                "id": i.id,
                "kind": i.kind,
                "model": i.model,
                "start": (start + timedelta(days=i.start)).isoformat(),
                "end": None if i.end is None else (start + timedelta(days=i.end)).isoformat(),
                "columns": i.columns,
                "expected_signals": i.expected,
                "allowed_signals": i.allowed,
                "description": i.description,
                "params": i.params,
            }
            for i in incidents
        ],
    }
    config_path = home / CONFIG_FILE
    config_path.write_text(
        _CONFIG_HEADER + yaml.safe_dump(_config(start), sort_keys=False, width=100)
    )
    (home / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    log.info(
        "demo world in %s: %d days, data %.1fs, total %.1fs",
        home,
        days,
        t_data,
        time.perf_counter() - t0,
    )
    return DemoWorld(home, config_path, manifest, [s.key for s in SPECS])


# --------------------------------------------------------------------------------------------
# Grading findings against the ground truth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSummary:
    """How a run of the pipeline did on the demo world.

    `incidents` has one row per (incident, expected signal[, column]) with `status` one of
    'detected' (first warning/critical finding on or the day after the start), 'late' (found
    later), 'missed', 'not in scope yet' (no asset produces the signal yet) or 'nothing
    expected'. `false_alarms` are raised drift findings no incident explains. `all_detected` is
    true when every in-scope row is 'detected' (rows 'not run yet' are left out), so a demo run
    can fail loudly when a detector regresses.
    """

    incidents: list[dict[str, Any]]
    false_alarms: list[dict[str, Any]]
    false_alarm_count: int
    all_detected: bool
    model_days: int = 0
    clean_model_days: int = 0

    def render(self) -> str:
        """A plain-text report: per model, what was injected when, what was found when."""
        lines = ["Demo world: injected incidents vs findings", ""]
        by_model: dict[str, list[dict[str, Any]]] = {}
        for row in self.incidents:
            by_model.setdefault(row["model"], []).append(row)
        head = (
            "#",
            "injected",
            "from",
            "to",
            "expected signal",
            "column",
            "detected",
            "lag",
            "status",
        )
        for model, rows in sorted(by_model.items()):
            table = [head] + [
                (
                    str(r["incident"]),
                    r["kind"],
                    r["start"],
                    r["end"] or "open",
                    r["signal"] or "-",
                    r["column"] or "-",
                    f"{r['first_detected']} ({r['severity']})" if r["first_detected"] else "-",
                    f"{r['lag_days']}d" if r["lag_days"] is not None else "-",
                    r["status"],
                )
                for r in rows
            ]
            widths = [max(len(t[i]) for t in table) for i in range(len(head))]
            lines.append(model)
            for t in table:
                cells = "  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True))
                lines.append(("  " + cells).rstrip())
            lines.append("")
        verdict = (
            "all in-scope incidents detected in time"
            if self.all_detected
            else "NOT all in-scope incidents detected in time"
        ) + (
            " (drift: within a day; on late labels: within the label lag plus the persistence "
            "window for decay, plus the minimum canary duration for a pass)"
        )
        lines.append(verdict)
        lines.append(
            f"False alarms: {self.false_alarm_count} (drift findings no incident explains; "
            f"{self.model_days} model-days monitored, {self.clean_model_days} of them with no "
            "injected data change)"
        )
        for fa in self.false_alarms:
            lines.append(
                f"  {fa['model']}  {fa['partition']}  {fa['signal']}  {fa['column'] or '-'}  "
                f"({fa['severity']})"
            )
        return "\n".join(lines).rstrip() + "\n"


def _findings_key(df: pd.DataFrame) -> pd.Series:
    """`tenant.model` of each finding (accepts a `model` column that already holds the key)."""
    keys = [
        m if not t or m.startswith(t + ".") else f"{t}.{m}"
        for t, m in zip(
            df["tenant"].fillna("").astype(str), df["model"].fillna("").astype(str), strict=True
        )
    ]
    return pd.Series(keys, index=df.index, dtype=object)


def detection_summary(
    manifest: dict[str, Any],
    findings: pd.DataFrame,
    *,
    monitored_days: Iterable[str] | None = None,
) -> DemoSummary:
    """Grade `findings` (tenant, model, partition, signal, column, severity) against the truth.

    An expected signal counts as detected when a warning or critical finding of it, on one of
    the incident's columns (any column for a model-level signal), falls on the start day or the
    day after. A performance decay is judged on late labels, so it is graded on the day it was
    raised (its evidence's `detected_at`) and counts as detected within the label lag plus the
    persistence window. `monitored_days` (partitions the pipeline ran), when given, marks
    incidents that start after the last monitored day as 'not run yet' instead of 'missed'.
    """
    need = {"tenant", "model", "partition", "signal", "column", "severity"}
    missing = need - set(findings.columns)
    if missing:
        raise ValueError(f"findings lack columns: {sorted(missing)}")
    f = findings.loc[:, sorted(need)].copy()
    # a finding on late labels is raised when its labels arrive: grade it on that date
    evidence = findings["evidence"] if "evidence" in findings.columns else None
    f["detected"] = [
        str(e.get("detected_at"))[:10]
        if evidence is not None and isinstance(e, dict) and e.get("detected_at")
        else str(p)[:10]
        for e, p in zip(
            evidence if evidence is not None else [None] * len(f), f["partition"], strict=True
        )
    ]
    f["key"] = _findings_key(f)
    f["column"] = f["column"].fillna("").astype(str)
    f["signal"] = f["signal"].astype(str)
    f["partition"] = f["partition"].astype(str).str[:10]
    f["severity"] = f["severity"].astype(str).str.lower()
    raised = f[
        f["severity"].isin(_RAISED) | (f["signal"].isin(INFO_SIGNALS) & (f["severity"] == "info"))
    ].copy()
    raised["day"] = pd.to_datetime(raised["partition"]).dt.date
    raised["detected_day"] = pd.to_datetime(raised["detected"]).dt.date
    monitored = sorted(str(d)[:10] for d in monitored_days) if monitored_days is not None else None

    rows: list[dict[str, Any]] = []
    for inc in manifest.get("incidents", []):
        start = date.fromisoformat(inc["start"])
        end = date.fromisoformat(inc["end"]) if inc.get("end") else None
        cols = list(inc.get("columns") or [])
        base = {
            "incident": inc["id"],
            "kind": inc["kind"],
            "model": inc["model"],
            "start": inc["start"],
            "end": inc.get("end"),
        }
        expected = list(inc.get("expected_signals") or [])
        if not expected:
            rows.append(
                {
                    **base,
                    "signal": "",
                    "column": "",
                    "status": "nothing expected",
                    "first_detected": None,
                    "lag_days": None,
                    "severity": None,
                }
            )
            continue
        for sig in expected:
            targets = [""] if sig in MODEL_LEVEL_SIGNALS or not cols else cols
            for col in targets:
                row = {
                    **base,
                    "signal": sig,
                    "column": col,
                    "first_detected": None,
                    "lag_days": None,
                    "severity": None,
                }
                if sig not in DRIFT_SIGNALS:
                    rows.append({**row, "status": "not in scope yet"})
                    continue
                hit = raised[(raised["key"] == inc["model"]) & (raised["signal"] == sig)]
                if col:
                    hit = hit[hit["column"] == col]
                hit = hit[hit["day"] >= start]
                if end is not None:
                    hit = hit[hit["day"] <= end + timedelta(days=1)]
                if len(hit):
                    first = hit["detected_day"].min()
                    found = set(hit[hit["detected_day"] == first]["severity"])
                    sev = next(s for s in ("critical", "warning", "info") if s in found)
                    lag = (first - start).days
                    allowed = LABEL_SIGNALS.get(sig, 1)
                    status = "detected" if lag <= allowed else "late"
                    row.update(first_detected=first.isoformat(), lag_days=lag, severity=sev)
                elif monitored is not None and (not monitored or monitored[-1] < inc["start"]):
                    status = "not run yet"
                else:
                    status = "missed"
                rows.append({**row, "status": status})

    false_alarms = _false_alarms(manifest, raised)
    in_scope = [r for r in rows if r["signal"] in DRIFT_SIGNALS and r["status"] != "not run yet"]
    days = pd.date_range(manifest["start"], manifest["end"], freq="D").date
    changed = {
        (inc["model"], d)
        for inc in manifest["incidents"]
        if set(inc["expected_signals"]) & DRIFT_SIGNALS or inc["kind"].startswith("canary")
        for d in days
        if date.fromisoformat(inc["start"]) <= d
        and (inc["end"] is None or d <= date.fromisoformat(inc["end"]))
    }
    models = manifest.get("models") or {inc["model"] for inc in manifest["incidents"]}
    model_days = len(models) * len(days)
    return DemoSummary(
        incidents=rows,
        false_alarms=false_alarms,
        false_alarm_count=len(false_alarms),
        all_detected=all(r["status"] == "detected" for r in in_scope),
        model_days=model_days,
        clean_model_days=model_days - len(changed),
    )


def _false_alarms(manifest: dict[str, Any], raised: pd.DataFrame) -> list[dict[str, Any]]:
    """Raised drift findings on (model, day, signal, column) that no incident explains."""
    drift = raised[raised["signal"].isin(DRIFT_SIGNALS)]
    drift = drift.drop_duplicates(["key", "partition", "signal", "column"])
    incidents = []
    for inc in manifest.get("incidents", []):
        incidents.append(
            (
                inc["model"],
                date.fromisoformat(inc["start"]),
                date.fromisoformat(inc["end"]) + timedelta(days=1) if inc.get("end") else None,
                set(inc.get("expected_signals") or []) | set(inc.get("allowed_signals") or []),
                set(inc.get("columns") or []),
            )
        )
    out: list[dict[str, Any]] = []
    for r in drift.sort_values(["key", "partition", "signal", "column"]).itertuples():
        explained = any(
            r.key == model
            and r.day >= lo
            and (hi is None or r.day <= hi)
            and r.signal in signals
            and (r.column in columns or r.signal in MODEL_LEVEL_SIGNALS)
            for model, lo, hi, signals, columns in incidents
        )
        if not explained:
            out.append(
                {
                    "model": r.key,
                    "partition": r.partition,
                    "signal": r.signal,
                    "column": r.column,
                    "severity": r.severity,
                }
            )
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m aiops_pipelines.demo [HOME]`: build the world and say where it is."""
    from aiops_pipelines.core.config import aiops_home

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", nargs="?", default=str(aiops_home() / "demo"))
    ap.add_argument("--days", type=int, default=64)
    ap.add_argument("--rows-per-day", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-mlflow", action="store_true", help="skip training runs and registry")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    world = build_world(
        Path(args.home),
        days=args.days,
        rows_per_day=args.rows_per_day,
        seed=args.seed,
        register_models=not args.no_mlflow,
    )
    print(
        f"demo world in {world.home} ({time.perf_counter() - t0:.1f}s); config: {world.config_path}"
    )


if __name__ == "__main__":
    main()


def label_lags(home: Path, sample: int = 20_000) -> dict[str, tuple[float, float]]:
    """Median and 90th percentile of label lag in days per model, from the world's tables."""
    out: dict[str, tuple[float, float]] = {}
    with closing(sqlite3.connect(home / WORLD_DB)) as con:
        for spec in SPECS:
            rows = con.execute(
                f"SELECT julianday(o.observed_at) - julianday(p.timestamp) "
                f"FROM {spec.prefix}_outcomes o JOIN {spec.prefix}_predictions p "
                f"ON o.request_id = p.request_id LIMIT {int(sample)}"
            ).fetchall()
            lags = np.array([r[0] for r in rows if r[0] is not None], dtype=float)
            if len(lags):
                out[spec.key] = (float(np.median(lags)), float(np.quantile(lags, 0.9)))
    return out


def actions_summary(home: Path, store: Any, tracking_uri: str) -> str:
    """What the sensors did: retrains requested and run, and the registry aliases now."""
    from aiops_pipelines.lifecycle.registry import aliases

    lines = ["Label lag (days from prediction to outcome): "]
    lags = label_lags(home)
    lines[0] += ", ".join(f"{k} median {m:.1f}, p90 {p:.1f}" for k, (m, p) in lags.items())
    acts = store.actions()
    lines.append("Actions:")
    if acts.empty:
        lines.append("  none")
    for a in acts.itertuples():
        d = a.details if isinstance(a.details, dict) else {}
        key = f"{a.tenant}.{a.model}"
        if a.action in ("retrain_requested", "retrain_dry_run"):
            lines.append(
                f"  {key:<13} {a.action:<17} trigger {d.get('reason')} on {d.get('trigger_day')}"
                f" ({d.get('run_key')})"
            )
        elif a.action == "retrain":
            w = d.get("window") or {}
            metric = d.get("primary_metric", "")
            cand = (d.get("candidate_metrics") or {}).get(metric)
            champ = (d.get("champion_metrics") or {}).get(metric)
            lines.append(
                f"  {key:<13} {'retrain':<17} version {d.get('version')} on "
                f"{w.get('start')}..{w.get('end')}: {metric} {cand:.3f} vs champion "
                f"{champ:.3f}, beats champion: {d.get('beats_champion')}"
                if cand is not None and champ is not None
                else f"  {key:<13} retrain version {d.get('version')}"
            )
        elif a.action.startswith(("rollback_canary", "promote_canary")):
            lines.append(
                f"  {key:<13} {a.action:<17} version {d.get('version')} on the verdict of "
                f"{a.partition}: aliases now {d.get('aliases_after')}"
            )
        else:
            lines.append(f"  {key:<13} {a.action}")
    lines.append("Registry aliases:")
    for spec in SPECS:
        live = aliases(tracking_uri, spec.key)
        if live:  # {} when the model is not registered
            shown = ", ".join(f"{k}=v{v}" for k, v in sorted(live.items()))
            lines.append(f"  {spec.key:<13} {shown}")
    return "\n".join(lines) + "\n"


class AlertReceiver:
    """A local HTTP receiver for the demo's webhook routes: keeps every JSON body it accepts,
    by path. Use as a context manager; `url(path)` is where a route should post."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: dict[str, list[dict[str, Any]]] = {}
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except (ValueError, TypeError):
                    self.send_response(400)
                    self.end_headers()
                    return
                with lock:
                    received.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def __enter__(self) -> AlertReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def alerts_summary(store: Any, receiver: AlertReceiver | None = None) -> str:
    """Alert notifications per route (sent, pending) and what the local receiver got."""
    deliveries = store.deliveries()
    alerts = store.alerts()
    lines = ["Alerts", ""]
    if alerts.empty:
        lines.append("  no alert fired")
    else:
        by_state = alerts.groupby(["state", "severity"]).size()
        lines.append(
            "  alert states: "
            + ", ".join(f"{n} {sev} {state}" for (state, sev), n in by_state.items())
        )
    if deliveries.empty:
        lines.append("  no notification queued")
        return "\n".join(lines)
    lines.append(f"  {'route':<16}{'events':>8}{'sent':>8}{'pending':>9}  kinds")
    for route, g in deliveries.groupby("route"):
        kinds = ", ".join(f"{n} {k}" for k, n in g["event"].value_counts().sort_index().items())
        lines.append(
            f"  {route:<16}{len(g):>8}{int((g['status'] == 'sent').sum()):>8}"
            f"{int((g['status'] != 'sent').sum()):>9}  {kinds}"
        )
    if receiver is not None:
        got = {p: len(bodies) for p, bodies in sorted(receiver.received.items())}
        lines.append(
            f"  local webhook receiver: {sum(got.values())} messages accepted ("
            + ", ".join(f"{p}: {n}" for p, n in got.items())
            + ")"
        )
    return "\n".join(lines)
