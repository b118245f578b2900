"""Generated days with known truth for measuring drift verdicts: false alarms on unchanged days
and days to detect a lasting change, with independent rows or rows in correlated groups.

Used by `benchmarks/bench_calibration.py` (large) and the tests (small). Features: five numeric
columns of different shapes (normal, log-normal with 5% missing, a count, a bimodal mixture, a
0/1 flag) and three categorical ones (5 categories, 3, and 12 with a long tail, 5% missing).
With `grouped`, rows arrive in groups of 2-8 sharing every feature value and the same second,
the way a household or a batch of one population reaches a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import ModelConfig, parse_config
from aiops_pipelines.signals.drift.calibration import (
    DayBlocks,
    ReferenceCalibration,
    calibrate_reference,
)
from aiops_pipelines.signals.drift.day import DriftResult, StoredDay, drift_for_day
from aiops_pipelines.signals.profile.builder import ProfileBuilder, build_reference_profile
from aiops_pipelines.signals.profile.profiles import DatasetProfile

NUMERIC = ["amount", "income", "visits", "tenure", "flag"]
CATEGORICAL = ["plan", "channel", "region"]
PLAN_SHARES = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
REGION_SHARES = 1 / np.arange(1, 13) ** 1.2 / (1 / np.arange(1, 13) ** 1.2).sum()
START = date(2026, 1, 1)


@dataclass(frozen=True)
class Change:
    """A lasting change from day `start` on: a mean shift of `numeric_shift` reference standard
    deviations in "amount", or `category_points` percentage points more "plan" = "p0" (taken
    from the other plans in proportion)."""

    start: int
    numeric_shift: float = 0.0
    category_points: float = 0.0


def features(rng: np.random.Generator, n: int, change: Change | None = None) -> pd.DataFrame:
    """n independent feature vectors; `change` applied to all of them."""
    shift = change.numeric_shift if change else 0.0
    plan = PLAN_SHARES.copy()
    if change and change.category_points:
        d = change.category_points / 100
        plan = np.concatenate(([plan[0] + d], plan[1:] * (1 - (plan[0] + d)) / plan[1:].sum()))
    amount = rng.normal(100 + 15 * shift, 15, n)
    income = rng.lognormal(10, 0.5, n)
    income[rng.random(n) < 0.05] = np.nan
    region = rng.choice([f"r{i}" for i in range(12)], n, p=REGION_SHARES).astype(object)
    region[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "amount": amount,
            "income": income,
            "visits": rng.poisson(3, n).astype(float),
            "tenure": np.where(rng.random(n) < 0.6, rng.normal(12, 3, n), rng.normal(40, 8, n)),
            "flag": (rng.random(n) < 0.3).astype(float),
            "plan": rng.choice([f"p{i}" for i in range(5)], n, p=plan),
            "channel": rng.choice(["web", "app", "store"], n, p=[0.5, 0.3, 0.2]),
            "region": region,
        }
    )


def group_sizes(rng: np.random.Generator, n: int, grouped: bool) -> np.ndarray:
    """Sizes of the groups making up n rows: all 1, or 2-8 (the last one cut to fit)."""
    if not grouped:
        return np.ones(n, np.int64)
    sizes = rng.integers(2, 9, n // 2 + 1)
    cum = np.cumsum(sizes)
    k = int(np.searchsorted(cum, n)) + 1
    sizes = sizes[:k].copy()
    sizes[-1] -= int(cum[k - 1] - n)
    return sizes[sizes > 0]


def rows(
    rng: np.random.Generator, n: int, *, grouped: bool, change: Change | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """n rows in arrival order and the second of the day each arrived at."""
    sizes = group_sizes(rng, n, grouped)
    x = features(rng, len(sizes), change)
    when = np.sort(rng.uniform(0, 86_399, len(sizes)))
    idx = np.repeat(np.arange(len(sizes)), sizes)
    return x.iloc[idx].reset_index(drop=True), when[idx]


def trial_model(windows: tuple[int, ...] = (1, 3, 7), **thresholds: object) -> ModelConfig:
    """A model config over the generated columns (its sources are never opened)."""
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": "/tmp",
        },
        "tenants": [
            {
                "name": "bench",
                "models": [
                    {
                        "name": "trial",
                        "task": "binary_classification",
                        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
                        "predictions": {"url": "sqlite://", "table": "p"},
                        "reference": {"url": "sqlite://", "table": "r"},
                        "thresholds": {"windows": list(windows), **thresholds},
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


Judge = Callable[[ModelConfig, "Reference", StoredDay, list[StoredDay]], DriftResult]
"""Another decision rule to run on the same days (the benchmark's previous rule)."""


@dataclass
class Reference:
    profile: DatasetProfile
    calibration: ReferenceCalibration


def reference(seed: int, n: int, *, grouped: bool, shuffled: bool = False) -> Reference:
    """A reference of n rows, in arrival order or shuffled (an order that says nothing)."""
    rng = np.random.default_rng([seed, 0])
    df, _ = rows(rng, n, grouped=grouped)
    if shuffled:
        df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    profile = build_reference_profile(lambda: [df], NUMERIC, CATEGORICAL)
    return Reference(profile, calibrate_reference([df], profile, NUMERIC + CATEGORICAL))


def day_profile(
    ref: DatasetProfile, df: pd.DataFrame, seconds: np.ndarray, partition: str
) -> StoredDay:
    """A day's profile on the reference's bins, with its within-day block statistics."""
    profile = ProfileBuilder(ref.spec, NUMERIC, CATEGORICAL).update(df).result()
    blocks = DayBlocks(ref, NUMERIC + CATEGORICAL)
    stamps = pd.Series(pd.Timestamp(partition, tz="UTC") + pd.to_timedelta(seconds, unit="s"))
    blocks.add(df, stamps)
    return StoredDay(partition, profile, blocks.design_effects())


def run_days(
    model: ModelConfig,
    ref: Reference,
    *,
    seed: int,
    n: int,
    days: int,
    grouped: bool,
    change: Change | None = None,
    judge: Judge | None = None,
) -> Iterator[tuple[int, DriftResult]]:
    """Day index and drift result of `days` consecutive generated days."""
    rng = np.random.default_rng([seed, 1])
    history: list[StoredDay] = []
    for d in range(days):
        active = change if change is not None and d >= change.start else None
        df, secs = rows(rng, n, grouped=grouped, change=active)
        today = day_profile(ref.profile, df, secs, (START + timedelta(days=d)).isoformat())
        if judge is None:
            res = drift_for_day(
                model,
                today.partition,
                ref.profile,
                today,
                calibration=ref.calibration,
                history=history[-7:],
            )
        else:
            res = judge(model, ref, today, history[-7:])
        history.append(today)
        yield d, res
