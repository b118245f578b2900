"""Lasting level shifts of a model's daily series, with the day they started.

The per-day detectors judge each day against the reference (drift, decay) and forget it; a
change that lasts then looks like a string of separate days, and its start is nowhere. This
module runs the change-point segmentation of `signals.changepoints` over a model's stored daily
metric history (the last `WINDOW_DAYS` days) and reports the level each series is at now
against the level before its onset, every day until the level returns:

- **drift share** (`drift_report`, metric `drift_share`): a lasting rise of the share of
  drifted features by at least `thresholds.drift_share_shift` (one feature's share by default);
- **the primary performance metric** (`performance_report`, `ModelConfig.primary_metric`):
  a lasting move to worse (down for roc_auc, accuracy, f1...; up for mae, rmse, log_loss...:
  `Metric.higher_is_better`) by at least `performance.relative_drop[0]` of the level before,
  on the days with at least `performance.min_labels` labels (the days the decay judges);
- **label coverage** (`performance_report`, metric `coverage`): a lasting relative drop of at
  least `performance.coverage_drop`: the label feed lost a share of the outcomes.

Daily parameters (in days, one point per day)
---------------------------------------------
The hourly series' parameters follow their cycle, the day (a 6-hour minimum segment, a new
level held 12 hours, a baseline of one day, settled after a week), which their seasonal
model removes. The cycle of daily series is the week (traffic mix,
and with it drift and performance, differs between weekdays and weekends), so:

- `MIN_SIZE_DAYS` = 7: a segment spans a full week, so a weekend or a holiday is not a level
  of its own, and the median of a segment ignores up to three odd days. Shorter episodes are
  what the per-day detectors (two-day persistence) are for.
- `MIN_DURATION_DAYS` = 14, twice the minimum segment as for the hourly series: the start of
  the last segment is the least certain point of a window. A change fewer than 7 days before
  the end can only end a 7-day segment that starts before it: with a 7-day duration, 100
  seeded 4-sigma steps were first reported 4 to 6 days after the change with the onset 2 to 6
  days early in 92 of them; with 14, on the 14th day with the onset exact in 98 and one day
  off in 2. A shift is thus reported on its 14th day at the new level (14th labelled day, for
  the metric) and every day after. A return to the level before is confirmed once it has
  lasted 7 days, so a finding can outlast its episode by up to 6 days.
- `MIN_BASELINE_DAYS` = 14: the level before has been seen over two weeks.
- `SETTLED_DAYS` = 28: and for as long as the new level, up to four weeks (the ops baseline's
  `history_days` default), else the window started inside an older episode and what came after
  it is the norm. With the 90-day window, a shift stops being reported when it is 62 days old
  (fewer than 28 days of the old level are left in the window): it is the norm by then.
- penalty, minimum step: `changepoints`' defaults (4 log n, 1 noise sigma), no seasonal period
  (`period=None`), linear scale: all three series are shares or bounded metrics.
- noise floor (`min_sigma`): a share sits on one value for weeks (no feature drifted, every
  outcome labelled), which leaves the median-difference sigma at 0. The drift share's floor is
  its quantisation noise, one feature's share / sqrt(12); coverage's is the widest sampling
  noise of a share of the day's predictions, 0.5 / sqrt(median predictions a day).

Label coverage: compared at an equal label age
----------------------------------------------
A day's coverage grows as its labels arrive, and `late_labels_sensor` re-judges the day each
time, replacing the stored value. Recent days are therefore low only because they are young.
The coverage series keeps only the days whose label window (`performance.label_window_days`)
had closed when the labels were read (`as_of`): their coverage is final, so every point is at
the same (full) label age. The price is the delay: a drop is reported once its first
`MIN_DURATION_DAYS` days are final, by the report of the day `label_window_days` + 13 days
after its onset (43 days with the defaults). The primary metric does not wait: on part of its
labels a day's metric estimates the same level, only noisier (when labels arrive in an order
unrelated to the outcome), so it uses every day with at least `performance.min_labels` labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal
from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals.changepoints import LevelShift, current_shift

WINDOW_DAYS = 90
"""Days of daily history segmented, the day itself included."""
MIN_SIZE_DAYS = 7
"""Shortest segment, in days: a full weekly cycle."""
MIN_DURATION_DAYS = 14
"""Days the new level must have held before it is reported: twice the minimum segment."""
MIN_BASELINE_DAYS = 14
"""Days the level before the onset must have held."""
SETTLED_DAYS = 28
"""The level before must have held as long as the new one, up to this many days."""

DRIFT_SHARE = "drift_share"
COVERAGE = "coverage"
N_LABELLED = "n_labelled"
N_PREDICTIONS = "n_predictions"
N_FEATURES = "n_features"


@dataclass(frozen=True)
class DailyShift:
    """A lasting shift of one daily series, in the bad direction, past its effect-size gate.

    `change` is what the gate is held against, in the same units: an absolute rise of the share
    for drift share, a relative change to worse of the level before for the primary metric and
    coverage.
    """

    series: str
    asset: Asset
    shift: LevelShift
    change: float
    gate: float
    relative: bool
    n_points: int
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def onset_day(self) -> str:
        return self.shift.onset.date().isoformat()


def daily_history(
    store: MonitoringStore, model: ModelConfig, day: str, asset: Asset
) -> pd.DataFrame:
    """The stored model-level rows of `asset` over the `WINDOW_DAYS` - 1 days before `day`
    (the day itself comes from the running report, not from what an earlier run stored)."""
    end = date.fromisoformat(day)
    metrics = (
        [DRIFT_SHARE, N_FEATURES]
        if asset == Asset.DRIFT_REPORT
        else [str(model.primary_metric), N_LABELLED, N_PREDICTIONS, COVERAGE]
    )
    return store.metric_history(
        model.tenant,
        model.name,
        metric=metrics,
        column="",
        asset=asset,
        start=end - timedelta(days=WINDOW_DAYS - 1),
        end=end - timedelta(days=1),
    )


def _daily(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as one column per metric, indexed by the partition's UTC midnight."""
    rows = frame.drop_duplicates(["partition", "metric"], keep="last")
    wide = rows.pivot(index="partition", columns="metric", values="value")
    wide.index = pd.to_datetime(wide.index.astype(str), utc=True)
    return wide.sort_index().astype(float)


def _series(daily: pd.DataFrame, metric: str) -> pd.Series:
    """One metric of `_daily`'s frame, days without it dropped."""
    if metric not in daily:
        return pd.Series(index=daily.index[:0], dtype=float)
    return daily[metric].dropna()


def _current(series: pd.Series, min_sigma: float = 0.0) -> LevelShift | None:
    if len(series) < MIN_BASELINE_DAYS + MIN_DURATION_DAYS:
        return None
    return current_shift(
        series,
        period=None,
        scale="linear",
        min_size=MIN_SIZE_DAYS,
        min_baseline=MIN_BASELINE_DAYS,
        settled=SETTLED_DAYS,
        min_duration=MIN_DURATION_DAYS,
        min_sigma=min_sigma if math.isfinite(min_sigma) else 0.0,
    )


def drift_share_gate(model: ModelConfig, n_features: float) -> float:
    """Smallest lasting rise of the drift share reported: `thresholds.drift_share_shift`, by
    default one feature's share of the features tested."""
    configured = model.thresholds.drift_share_shift
    if configured is not None:
        return configured
    return 1.0 / n_features if n_features and math.isfinite(n_features) else math.nan


def _relative_worse(sh: LevelShift, higher_is_better: bool) -> float:
    """How much worse the level now is than before, relative to the level before."""
    if not sh.before or not math.isfinite(sh.before):
        return math.nan
    rel = (sh.after - sh.before) / abs(sh.before)
    return -rel if higher_is_better else rel


def daily_shifts(
    model: ModelConfig,
    day: str,
    history: pd.DataFrame,
    *,
    asset: Asset,
    today: Mapping[tuple[str, str], float] | None = None,
    as_of: datetime | None = None,
) -> list[DailyShift]:
    """The lasting shifts of `asset`'s daily series at `day` (module docstring).

    `history` is the store's metric history frame (`MonitoringStore.metric_history`, e.g. from
    `daily_history`); rows after `day` and of other assets are ignored, and `today` (the running
    report's metric rows, keyed (metric, column)) replaces whatever is stored for `day`, so a
    re-run judges the day on its new numbers. `as_of` (performance only; default the end of
    `day`) is when the labels were read: it decides which days' label windows had closed.
    """
    frame = history[
        (history["asset"] == asset)
        & (history["column"] == "")
        & (history["partition"].astype(str) <= day)
    ]
    if today is not None:
        frame = frame[frame["partition"].astype(str) != day]
        rows = pd.DataFrame(
            [{"partition": day, "metric": m, "value": v} for (m, c), v in today.items() if not c]
        )
        if len(rows):
            frame = pd.concat([frame[["partition", "metric", "value"]], rows], ignore_index=True)
    if frame.empty:
        return []
    daily = _daily(frame)
    if asset == Asset.DRIFT_REPORT:
        found = _drift_share_shift(model, daily)
        return [found] if found else []
    if asset == Asset.PERFORMANCE_REPORT:
        read_at = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(day)
        read_at = read_at.tz_localize("UTC") if read_at.tzinfo is None else read_at
        if as_of is None:
            read_at += pd.Timedelta(days=1)
        return [
            s
            for s in (_metric_shift(model, daily), _coverage_shift(model, daily, read_at))
            if s is not None
        ]
    return []


def _drift_share_shift(model: ModelConfig, daily: pd.DataFrame) -> DailyShift | None:
    share = _series(daily, DRIFT_SHARE)
    n_features = _series(daily, N_FEATURES)
    features = float(n_features.iloc[-1]) if len(n_features) else math.nan
    sh = _current(share, min_sigma=1.0 / features / math.sqrt(12))
    if sh is None or sh.direction != "up":
        return None
    gate = drift_share_gate(model, features)
    change = sh.after - sh.before
    # one feature's share is both the gate and a possible step: compare past the float's noise
    if not change >= gate - 1e-9:
        return None
    return DailyShift(
        DRIFT_SHARE,
        Asset.DRIFT_REPORT,
        sh,
        change,
        gate,
        relative=False,
        n_points=len(share),
        evidence={"drift_share_critical": model.thresholds.drift_share[1]},
    )


def _metric_shift(model: ModelConfig, daily: pd.DataFrame) -> DailyShift | None:
    metric = model.primary_metric
    policy = model.performance
    labelled = _series(daily, N_LABELLED)
    judged = labelled.index[labelled >= policy.min_labels]
    values = _series(daily, str(metric))
    values = values[values.index.isin(judged)]
    sh = _current(values)
    if sh is None:
        return None
    worse = _relative_worse(sh, metric.higher_is_better)
    gate = policy.relative_drop[0]
    if not worse >= gate:
        return None
    return DailyShift(
        str(metric),
        Asset.PERFORMANCE_REPORT,
        sh,
        worse,
        gate,
        relative=True,
        n_points=len(values),
        evidence={
            "higher_is_better": metric.higher_is_better,
            "min_labels": policy.min_labels,
            "last_judged_day": values.index[-1].date().isoformat(),
        },
    )


def _coverage_shift(
    model: ModelConfig, daily: pd.DataFrame, read_at: pd.Timestamp
) -> DailyShift | None:
    window = model.performance.label_window_days
    # labels of day d count until d + window + 1 days (`io.labels.read_day_outcomes`)
    last_closed = (read_at.tz_convert("UTC") - pd.Timedelta(days=window + 1)).date()
    coverage = _series(daily, COVERAGE)
    coverage = coverage[coverage.index.date <= last_closed]
    predictions = _series(daily, N_PREDICTIONS)
    typical = float(predictions[predictions.index.isin(coverage.index)].median())
    sh = _current(coverage, min_sigma=0.5 / math.sqrt(typical) if typical > 0 else 0.0)
    if sh is None or sh.direction != "down":
        return None
    drop = _relative_worse(sh, higher_is_better=True)
    gate = model.performance.coverage_drop
    if not drop >= gate:
        return None
    return DailyShift(
        COVERAGE,
        Asset.PERFORMANCE_REPORT,
        sh,
        drop,
        gate,
        relative=True,
        n_points=len(coverage),
        evidence={"label_window_days": window, "last_closed_day": last_closed.isoformat()},
    )


def shift_findings(model: ModelConfig, day: str, shifts: list[DailyShift]) -> list[Finding]:
    """One `level_shift` finding per shifted series (column: the series' name), raised every
    day the series stays at its new level with the same onset, so the alert keeps firing until
    the level returns. Warning: the per-day detectors (dataset drift, decay) carry the critical
    levels and what they trigger, and a critical level shift would inhibit the other series'
    level-shift warnings."""
    out = []
    for s in shifts:
        sh = s.shift
        since = (date.fromisoformat(day) - sh.onset.date()).days + 1
        share = s.series in (DRIFT_SHARE, COVERAGE)
        fmt = ".1%" if share else ".4g"
        if s.relative:
            by = f"{s.change:.1%} {'lower' if share else 'worse'} >= {s.gate:.1%}"
        else:
            by = f"+{100 * s.change:.1f} points >= {100 * s.gate:.1f}"
        what = f"{fmt_number(sh.after, fmt)} vs {fmt_number(sh.before, fmt)} before ({by})"
        if s.series == COVERAGE:
            what += (
                f", on days whose {s.evidence['label_window_days']}-day label window closed "
                f"(up to {s.evidence['last_closed_day']})"
            )
        out.append(
            Finding(
                tenant=model.tenant,
                model=model.name,
                partition=day,
                asset=s.asset,
                signal=Signal.LEVEL_SHIFT.value,
                severity=Severity.WARNING,
                value=float(s.change),
                threshold=float(s.gate),
                column=s.series,
                message=f"{s.series} shifted {sh.direction} since {s.onset_day} "
                f"({since} days, lasting): {what}, {sh.sigmas:.1f} noise sigmas",
                evidence={
                    "onset": s.onset_day,
                    "before": sh.before,
                    "after": sh.after,
                    "change": s.change,
                    "gate": s.gate,
                    "relative": s.relative,
                    "sigmas": sh.sigmas,
                    "days_at_new_level": sh.points,
                    "n_points": s.n_points,
                    **s.evidence,
                    "method": "PELT segmentation of the daily history (ruptures), "
                    f"segments >= {MIN_SIZE_DAYS} days, new level held {MIN_DURATION_DAYS} "
                    f"days, level before {MIN_BASELINE_DAYS} days, steps >= 1 sigma that "
                    "a trend does not explain",
                },
            )
        )
    return out
