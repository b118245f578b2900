"""Champion vs canary on every prediction since the canary started, with the outcomes known now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.io.labels import outcomes_source
from aiops_pipelines.io.sources import Source, day_window
from aiops_pipelines.signals.canary.statistics import ArmStats, arm_stats


@dataclass
class CanaryWindow:
    """Per-version statistics of every prediction since the canary started, labels as of now."""

    arms: dict[str, ArmStats]
    days: int
    daily_rows: dict[str, dict[str, int]] = field(default_factory=dict)


def canary_window(
    model: ModelConfig,
    start_day: str,
    end_day: str,
    as_of: datetime,
    versions: set[str],
) -> CanaryWindow:
    """Stream the predictions of [start_day, end_day] once, join the outcomes observed by
    `as_of`, and accumulate mergeable per-version statistics (per prediction, not per day).

    Recomputed from the sources on every run, so labels that arrived late for early canary
    days count without re-materializing those days.
    """
    c = model.columns
    start, _ = day_window(start_day)
    _, end = day_window(end_day)
    labels: dict[str, Any] = {}
    if model.outcomes is not None and as_of > start:
        until = min(as_of, end + timedelta(days=model.performance.label_window_days + 1))
        for chunk in outcomes_source(model).iter_window(
            c.label_timestamp, start, until, [c.request_id, c.label, c.label_timestamp]
        ):
            chunk = chunk.sort_values(c.label_timestamp)  # the latest label of a request wins
            labels.update(zip(chunk[c.request_id].astype(str), chunk[c.label], strict=True))
    cols = [c.request_id, c.timestamp, c.version, c.prediction] + [
        x for x in (c.latency_ms, c.status) if x
    ]
    arms: dict[str, ArmStats] = {}
    daily: dict[str, dict[str, int]] = {}
    for chunk in Source(model.predictions).iter_window(c.timestamp, start, end, cols):
        chunk = chunk.assign(
            **{
                c.version: chunk[c.version].astype(str),
                c.label: chunk[c.request_id].astype(str).map(labels),
            }
        )
        days = chunk[c.timestamp].dt.strftime("%Y-%m-%d")
        for (day, version), n in chunk.groupby([days, c.version]).size().items():
            daily.setdefault(str(day), {})[str(version)] = int(n)
        for version, rows in chunk.groupby(c.version):
            if str(version) not in versions:
                continue
            stats = arm_stats(
                rows,
                task=model.task,
                prediction_col=c.prediction,
                label_col=c.label,
                latency_col=c.latency_ms,
                status_col=c.status,
            )
            key = str(version)
            arms[key] = arms[key].merge(stats) if key in arms else stats
    n_days = (date.fromisoformat(end_day) - date.fromisoformat(start_day)).days + 1
    return CanaryWindow(arms=arms, days=n_days, daily_rows=daily)
