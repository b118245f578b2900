"""Residual anomalies of regression models: the day's mean absolute residual (the realized MAE)
against a robust seasonal baseline of the model's own earlier labelled days.

This compares the model with its own recent past rather than with the reference, so it catches
an error that jumps even while it is still inside the decay thresholds. A day is used only with
`performance.min_labels` labels, today included: with fewer there is no verdict. The history
is what earlier runs stored, so a re-run with more labels judges the day against the same days,
and never against itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from aiops_pipelines.core.config import Metric, ModelConfig, TaskType
from aiops_pipelines.core.findings import Asset, Finding
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals.anomaly import anomaly_findings, detect_last_day

RESIDUAL_PERSISTENCE_DAYS = 2
"""Consecutive labelled days beyond z before a residual anomaly. Not `ops.persistence`: that
one counts hours. Two days is the anomaly detector's documented default for daily series."""

RESIDUAL_MIN_HISTORY_DAYS = 7
"""Labelled days of history before residuals are judged: the baseline is warming up before."""

RESIDUAL_LOOKBACK_WEEKS = 8
"""Weeks of history behind the residual baseline (the anomaly detector's default)."""


@dataclass
class ResidualVerdict:
    """`status` is "" (not a regression model), "insufficient labels (...)", "warming up
    (...)", "ok" or "anomaly"; `z` the day's robust z (NaN without a verdict)."""

    status: str = ""
    z: float = math.nan
    findings: list[Finding] = field(default_factory=list)


def residual_verdict(
    store: MonitoringStore,
    model: ModelConfig,
    day: str,
    realized: dict[str, float],
    n_labelled: int,
) -> ResidualVerdict:
    """The day's residual verdict against the labelled days stored before it."""
    if model.task is not TaskType.REGRESSION:
        return ResidualVerdict()
    mae = realized.get(Metric.MAE.value, math.nan)
    min_labels = model.performance.min_labels
    if n_labelled < min_labels or not math.isfinite(mae):
        return ResidualVerdict(f"insufficient labels ({n_labelled} < {min_labels})")
    today = date.fromisoformat(day)
    since = today - timedelta(weeks=RESIDUAL_LOOKBACK_WEEKS, days=RESIDUAL_PERSISTENCE_DAYS)
    stored = store.metric_history(
        model.tenant,
        model.name,
        metric=["n_labelled", Metric.MAE.value],
        column="",
        asset=Asset.PERFORMANCE_REPORT,
        start=since,
        end=today - timedelta(days=1),
    )

    def series(metric: str) -> pd.Series:
        h = stored[stored["metric"] == metric]
        return pd.Series(h["value"].to_numpy(), index=h["partition"].to_numpy(), dtype=float)

    n = series("n_labelled")
    past = series(Metric.MAE.value)
    past = past[past.index.isin(n.index[n >= min_labels])]
    daily = pd.concat([past, pd.Series([mae], index=[day])])
    daily.index = pd.to_datetime(daily.index, utc=True)
    z, anomalies = detect_last_day(
        daily,
        kind="residual",
        z=model.ops.z,
        persistence=RESIDUAL_PERSISTENCE_DAYS,
        min_history=RESIDUAL_MIN_HISTORY_DAYS,
        lookback_weeks=RESIDUAL_LOOKBACK_WEEKS,
    )
    findings = anomaly_findings(
        anomalies,
        tenant=model.tenant,
        model=model.name,
        partition=day,
        asset=Asset.PERFORMANCE_REPORT,
    )
    for f in findings:
        f.evidence.update(metric=Metric.MAE.value, n_labelled=n_labelled, min_labels=min_labels)
    if math.isfinite(z):
        return ResidualVerdict("anomaly" if findings else "ok", z, findings)
    window_start = pd.Timestamp(today - timedelta(days=RESIDUAL_PERSISTENCE_DAYS - 1), tz="UTC")
    n_history = int((daily.index < window_start).sum())
    return ResidualVerdict(
        f"warming up ({n_history} of {RESIDUAL_MIN_HISTORY_DAYS} days)", z, findings
    )
