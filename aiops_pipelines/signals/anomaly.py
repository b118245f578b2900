"""Anomalies in a model's operational signals: throughput, latency p95, error rate, residuals.

Drift and decay ask "is the model still right?"; this module asks "is the service around it
still healthy?". Each signal is an hourly series (a daily one for the mean absolute residual of
a regression model, available once labels arrive), and an anomaly is a sustained departure
from what the same hour looked like in the past weeks.

Method
------
1. **Seasonal baseline** (`seasonal_baseline`). Traffic has a daily and a weekly cycle, so a
   global mean/std would flag every night and every weekend. The expected value of an hour is
   the **median of the history values in the same (weekday, hour-of-day) cell** (4 weeks of
   history: 4 values per cell). With fewer than ``min_weeks`` (2) weeks of history the cells are
   too thin, so the baseline falls back to the **hour-of-day median** (all weekdays pooled;
   it cannot see the weekly cycle, so weekend hours may look like drops until two weeks are
   known). A cell with no history falls back to its hour of day; an hour of day absent from
   the history gets no baseline (NaN) and is never flagged.
2. **Robust scale**. ``scale = 1.4826 * MAD`` of *leave-one-out prediction errors*: each
   history value minus the median of the other values of its cell. Using out-of-sample errors
   (instead of the spread within a cell) includes the noise of the median itself, which a
   4-value median adds on top of the point noise; otherwise z would be ~15% too large and the
   false-alarm rate several times the nominal one. MAD needs many values to be stable, so the
   errors are pooled over the hour of day and its two neighbours, across weekdays and weeks
   (84 values with 4 weeks), or over all hours when that pool has fewer than 8 values.
   The median and MAD ignore up to half the history being anomalous, so a past outage does
   not poison the baseline.
3. **Support** (optional, for a statistic estimated from the hour's requests, like latency p95).
   The scale is learnt on hours with their usual number of requests; an hour with ``n`` of
   them where the same hours of the history had a median of ``n_typ`` is estimated from fewer
   rows, so its sampling noise is ``sqrt(n_typ / n)`` times larger (a quantile's standard error
   goes as ``1 / sqrt(n)``). The scale is widened by that factor (never narrowed): an hour at
   20% of its traffic, whose p95 rests on a fifth of the rows, gets ``sqrt(5) = 2.2`` times the
   scale, and the usual hours are unchanged. Widening the whole scale, not only its sampling
   part, errs on the quiet side.
4. **Scale floors**, so a flat history does not give a zero scale and an infinite z:
   ``rel_floor`` (5%) of the expected value (a 5% wobble is never an incident), for counts the
   Poisson standard deviation ``sqrt(expected)``, and a per-signal absolute floor (1 request,
   1 ms, 0.1 percentage point of error rate).
5. **Robust z** of each evaluated point: ``(observed - expected) / scale``, the baseline built
   from the history strictly **before the first evaluated point** (`detect` drops the rest), so
   an evaluated point never enters its own baseline and re-evaluating data already stored in
   the history gives the same answer.
6. **Direction per signal**: throughput alerts on drops *and* spikes; latency, error rate and
   residual alert on increases only (an improvement is not an incident).
7. **Persistence**: an anomaly needs ``persistence`` (2) *consecutive* points beyond ``z`` (4)
   in the same direction (consecutive = one sampling step apart: hours, or days for the daily
   residual; a missing point breaks the run). This is Prometheus' ``for:``: one noisy hour
   never pages.

Expected false-alarm rate under the null
----------------------------------------
With Gaussian prediction errors, independent hours and a well-estimated scale, one point
exceeds ``|z| >= 4`` with probability ``P(|Z| > 4) = 6.3e-5`` (one side: ``3.2e-5``). Two
consecutive points must exceed, so per hour the false-alarm probability is about
``P(|Z| > 4)^2 = 4.0e-9``, i.e. **9.6e-8 false alarms per series per 24-hour day**
(7e-7 per week; two-sided throughput counted pessimistically, one-sided signals half of it:
``24 * P(Z > 4)^2 = 2.4e-8`` per day). At ``z = 3`` the same rule gives ``24 * P(|Z|>3)^2 =
1.7e-4`` per day, at ``persistence = 1, z = 4`` it is ``1.5e-3`` per day (one false page every
two years per series).

These are Gaussian rates with a known scale; measured rates are higher, because real noise is
skewed (Poisson/binomial counts, log-normal latency) and the scale is estimated (84 pooled
errors give a scale within about +-13%, and neighbouring hours share most of their pool, so
their errors are correlated). On 300 simulated clean weeks per signal (4 weeks of history
each, the simulation of the anomaly tests) the single-point rate of ``|z| >= 4`` was
1.6e-4 (throughput), 7.7e-4 (latency) and 7.3e-4 (error rate) against the nominal 6.3e-5, and
``z = 3, persistence = 2`` raised 0.013-0.017 anomalies per week (latency, error rate) against
a nominal 3e-4: **the real rate is 10-50x the Gaussian one**. At the defaults no anomaly was
raised in those 1,200 weeks; squaring the measured single-point rates, times 4 for the
correlation of neighbouring hours seen at z = 3, gives about 3e-6 (throughput) to 6e-5
(latency) false alarms per series-day, one per series every 45-900 years; the tests hold 30
clean weeks to at most one. Around ``|z| = 2.5`` the calibration is close to nominal
(1.3-1.9% vs 1.2%). The daily residual is conservative in that simulation (the 5% floor
binds). Holidays, trends and deploys are not
modelled and will dominate false alarms in production.

Detection delay
---------------
A step change large enough to cross ``z`` at every point is reported by the ``persistence``-th
anomalous point: with hourly buckets starting at ``t0`` the anomaly is confirmed on bucket
``t0 + (persistence - 1) h`` (``Anomaly.detected_at``), whose value is complete at
``t0 + persistence`` hours, i.e. **2 hours** by default (2 days for the daily residual). A step
of ``d`` scales crosses on each point with probability ``Phi(d - z)``, so a step of 6 scales
(``z = 4``) is confirmed within 2 points with probability ``Phi(2)^2 = 0.95``; a step near
``z`` scales needs several hours and may be missed.

Severity (`anomaly_findings`): warning when ``|peak z| >= z``, critical when ``|peak z| >= 2z``
or when throughput falls below 20% of the expected value (an outage, whatever the noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from aiops_pipelines.core.findings import Asset, Finding, Severity
from aiops_pipelines.core.values import fmt_number

Kind = Literal["throughput", "latency", "error_rate", "errors", "residual"]
Direction = Literal["drop", "spike", "increase"]

MAD_TO_SIGMA = 1.4826
"""1 / Phi^-1(3/4): makes the MAD a consistent estimate of a Gaussian standard deviation."""

MIN_SCALE_POOL = 8
"""Fewer pooled prediction errors than this and the hour's MAD is too noisy: pool all hours."""

TINY_SCALE = 1e-12
"""Last-resort floor: a zero scale would turn any change into an infinite z."""

CRITICAL_DROP_RATIO = 0.2
"""Throughput below this share of the expected value is an outage: critical whatever the z."""


@dataclass(frozen=True)
class _KindRule:
    signal: str
    directions: tuple[Direction, ...]
    counts: bool
    abs_floor: float
    unit: str


_RULES: dict[str, _KindRule] = {
    "throughput": _KindRule("throughput_anomaly", ("drop", "spike"), True, 1.0, "requests"),
    "latency": _KindRule("latency_regression", ("increase",), False, 1.0, "ms"),
    "error_rate": _KindRule("error_rate_anomaly", ("increase",), False, 0.001, ""),
    # hourly error counts: Poisson-like noise, and a few stray errors are never an incident
    # (an hourly *rate* of 1 error in 100 requests over a baseline of 0 would be z = 10)
    "errors": _KindRule("error_rate_anomaly", ("increase",), True, 2.0, "errors"),
    "residual": _KindRule("residual_anomaly", ("increase",), False, 0.0, ""),
}


@dataclass(frozen=True)
class Anomaly:
    """A run of consecutive points beyond the z threshold, in one direction.

    ``peak_z`` is the largest |z| of the run (signed); ``observed``, ``expected`` and ``scale``
    are taken at that point. ``ratio`` is observed / expected at the run's most extreme ratio
    (lowest for drops, highest otherwise): the outage rule reads it. ``detected_at`` is the
    point that confirmed the run (the ``persistence``-th), which gives the detection delay.
    """

    kind: str
    direction: Direction
    start: pd.Timestamp
    end: pd.Timestamp
    peak_z: float
    observed: float
    expected: float
    scale: float
    n_points: int
    detected_at: pd.Timestamp
    ratio: float
    z_threshold: float
    persistence: int
    baseline_mode: str
    n_history: int


def _clean(series: pd.Series) -> pd.Series:
    """Float values, NaN dropped, time-sorted: missing points are gaps, not zeros."""
    s = pd.Series(series, dtype=float).dropna()
    if not isinstance(s.index, pd.DatetimeIndex):
        s.index = pd.DatetimeIndex(s.index)
    return s.sort_index()


def _step(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The sampling step (median spacing): an hour, or a day for the residual series."""
    if len(index) < 2:
        return None
    return pd.Timedelta((index[1:] - index[:-1]).median())


def _mad_scale(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(values - np.median(values))))


def _loo_errors(values: np.ndarray) -> np.ndarray:
    """Each value minus the median of the others: out-of-sample errors of a cell median."""
    n = values.size
    if n < 2:
        return np.empty(0)
    others = np.broadcast_to(values, (n, n))[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return values - np.median(others, axis=1)


def seasonal_baseline(
    history: pd.Series,
    *,
    at: pd.DatetimeIndex,
    min_weeks: int = 2,
    counts: bool = False,
    rel_floor: float = 0.05,
    abs_floor: float = 0.0,
    support: pd.Series | None = None,
) -> pd.DataFrame:
    """Expected value and robust scale at each timestamp of ``at``, from ``history`` alone.

    Returns a frame indexed by ``at`` with columns ``expected`` and ``scale`` (NaN where the
    history says nothing about that hour, e.g. empty history). ``attrs["mode"]`` is
    ``"weekday_hour"``, ``"hour"`` (fewer than ``min_weeks`` weeks) or ``"none"``, and
    ``attrs["n_history"]`` the number of history values used. See the module docstring for
    why each step is done this way. ``counts`` adds the Poisson floor ``sqrt(expected)``.
    ``support``: the number of rows behind each value (history's and ``at``'s timestamps); an
    evaluated hour with fewer rows than its hours usually have gets a wider scale (step 3).
    """
    at = pd.DatetimeIndex(at)
    out = pd.DataFrame({"expected": np.nan, "scale": np.nan}, index=at)
    h = _clean(history)
    out.attrs.update(mode="none", n_history=int(h.size))
    if h.empty or len(at) == 0:
        return out

    span = h.index[-1] - h.index[0] + (_step(h.index) or pd.Timedelta(0))
    mode = "weekday_hour" if span >= pd.Timedelta(weeks=min_weeks) else "hour"
    out.attrs["mode"] = mode

    h_hour = np.asarray(h.index.hour)
    h_cell = h_hour + 24 * np.asarray(h.index.dayofweek) if mode == "weekday_hour" else h_hour
    values = h.to_numpy()

    cell_median: dict[int, float] = {}
    err_hours: list[np.ndarray] = []
    errors: list[np.ndarray] = []
    for cell in np.unique(h_cell):
        mask = h_cell == cell
        v = values[mask]
        cell_median[int(cell)] = float(np.median(v))
        e = _loo_errors(v)
        errors.append(e)
        err_hours.append(h_hour[mask][: e.size])
    hour_median = pd.Series(values).groupby(h_hour).median().to_dict()
    all_err = np.concatenate(errors)
    all_hours = np.concatenate(err_hours)
    global_scale = _mad_scale(all_err)

    def hour_scale(hour: int) -> float:
        pool = all_err[_near(all_hours, hour)]
        return _mad_scale(pool) if pool.size >= MIN_SCALE_POOL else global_scale

    scales = {hour: hour_scale(hour) for hour in range(24)}
    at_hour = np.asarray(at.hour)
    at_cell = at_hour + 24 * np.asarray(at.dayofweek) if mode == "weekday_hour" else at_hour
    expected = np.array(
        [
            cell_median.get(int(c), hour_median.get(int(hr), np.nan))
            for c, hr in zip(at_cell, at_hour, strict=True)
        ],
        dtype=float,
    )
    scale = np.array([scales[int(hr)] for hr in at_hour], dtype=float)
    if support is not None:
        scale = scale * _support_widening(support, h.index, h_hour, at, at_hour)
    scale = np.maximum(scale, rel_floor * np.abs(expected))
    if counts:
        scale = np.maximum(scale, np.sqrt(np.clip(expected, 0.0, None)))
    scale = np.maximum(scale, max(abs_floor, TINY_SCALE))
    scale[np.isnan(expected)] = np.nan
    out["expected"] = expected
    out["scale"] = scale
    return out


def _near(hours: np.ndarray, hour: int) -> np.ndarray:
    """Which of `hours` are `hour` or one of its two neighbours (the pool a scale is learnt on)."""
    return np.isin(hours, [(hour - 1) % 24, hour, (hour + 1) % 24])


def _support_widening(
    support: pd.Series,
    h_index: pd.DatetimeIndex,
    h_hour: np.ndarray,
    at: pd.DatetimeIndex,
    at_hour: np.ndarray,
) -> np.ndarray:
    """``sqrt(n_typ / n)`` per evaluated point, at least 1: ``n`` its support, ``n_typ`` the
    median support of the history in its hour of day and the two neighbours (the pool its
    scale was learnt on). 1 where either is unknown or not positive."""
    sup = support[~support.index.duplicated(keep="last")]
    h_sup = sup.reindex(h_index).to_numpy(dtype=float)
    at_sup = sup.reindex(at).to_numpy(dtype=float)
    typical = np.full(24, np.nan)
    for hour in range(24):
        pool = h_sup[_near(h_hour, hour)]
        pool = pool[np.isfinite(pool)]
        if pool.size:
            typical[hour] = np.median(pool)
    n_typ = typical[at_hour.astype(int)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = n_typ / at_sup
    ratio = np.where(np.isfinite(ratio) & (at_sup > 0) & (n_typ > 0), ratio, 1.0)
    return np.sqrt(np.maximum(ratio, 1.0))


def _rule(kind: str) -> _KindRule:
    try:
        return _RULES[kind]
    except KeyError:
        raise ValueError(
            f"unknown anomaly kind {kind!r}; expected one of {sorted(_RULES)}"
        ) from None


def score(
    series: pd.Series,
    history: pd.Series,
    *,
    kind: Kind,
    min_weeks: int = 2,
    lookback_weeks: int | None = 8,
    support: pd.Series | None = None,
) -> pd.DataFrame:
    """Robust z of each point of ``series``: columns observed, expected, scale, z.

    Only history strictly before the first evaluated point is used (no leakage), and at most
    ``lookback_weeks`` of it, so a slow trend from months ago does not set today's baseline.
    Points without a baseline get z = NaN. ``support``: see `seasonal_baseline`.
    """
    rule = _rule(kind)
    s = _clean(series)
    h = _clean(history)
    if not s.empty:
        h = h[h.index < s.index[0]]
        if lookback_weeks is not None:
            h = h[h.index >= s.index[0] - pd.Timedelta(weeks=lookback_weeks)]
    base = seasonal_baseline(
        h,
        at=s.index,
        min_weeks=min_weeks,
        counts=rule.counts,
        abs_floor=rule.abs_floor,
        support=support,
    )
    out = base.assign(observed=s.to_numpy())[["observed", "expected", "scale"]]
    out["z"] = (out["observed"] - out["expected"]) / out["scale"]
    out.attrs.update(base.attrs)
    return out


def _direction(z: float, rule: _KindRule, threshold: float) -> Direction | None:
    if not math.isfinite(z):
        return None
    if z >= threshold:
        return "spike" if "spike" in rule.directions else "increase"
    if z <= -threshold and "drop" in rule.directions:
        return "drop"
    return None


def detect(
    series: pd.Series,
    history: pd.Series,
    *,
    kind: Kind,
    z: float = 4.0,
    persistence: int = 2,
    min_weeks: int = 2,
    lookback_weeks: int | None = 8,
    support: pd.Series | None = None,
) -> list[Anomaly]:
    """Anomalies of ``series`` against the seasonal baseline of ``history``.

    An anomaly is a run of at least ``persistence`` consecutive points (one sampling step
    apart) beyond ``z`` in an alerting direction of ``kind``. Empty series or empty history
    give no anomalies (nothing to compare with is not an incident), never an exception.
    ``support``: the rows behind each value, history's and ``series``' (`seasonal_baseline`).
    """
    if persistence < 1:
        raise ValueError(f"persistence must be >= 1, got {persistence}")
    rule = _rule(kind)
    scored = score(
        series,
        history,
        kind=kind,
        min_weeks=min_weeks,
        lookback_weeks=lookback_weeks,
        support=support,
    )
    if scored.empty:
        return []
    step = _step(scored.index)
    anomalies: list[Anomaly] = []
    run: list[int] = []
    run_dir: Direction | None = None

    def close() -> None:
        if run_dir is not None and len(run) >= persistence:
            anomalies.append(_make_anomaly(scored, run, run_dir, kind, z, persistence))

    zs = scored["z"].to_numpy()
    times = scored.index
    for i, zi in enumerate(zs):
        d = _direction(float(zi), rule, z)
        contiguous = bool(run) and step is not None and times[i] - times[run[-1]] == step
        if d is not None and d == run_dir and contiguous:
            run.append(i)
            continue
        close()
        run, run_dir = ([i], d) if d is not None else ([], None)
    close()
    return anomalies


def _make_anomaly(
    scored: pd.DataFrame,
    run: list[int],
    direction: Direction,
    kind: str,
    z: float,
    persistence: int,
) -> Anomaly:
    part = scored.iloc[run]
    peak = int(np.argmax(np.abs(part["z"].to_numpy())))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (part["observed"] / part["expected"]).to_numpy()
    ratio = float(np.nanmin(ratios) if direction == "drop" else np.nanmax(ratios))
    row = part.iloc[peak]
    return Anomaly(
        kind=kind,
        direction=direction,
        start=part.index[0],
        end=part.index[-1],
        peak_z=float(row["z"]),
        observed=float(row["observed"]),
        expected=float(row["expected"]),
        scale=float(row["scale"]),
        n_points=len(run),
        detected_at=part.index[persistence - 1],
        ratio=ratio,
        z_threshold=z,
        persistence=persistence,
        baseline_mode=str(scored.attrs.get("mode", "")),
        n_history=int(scored.attrs.get("n_history", 0)),
    )


def anomaly_severity(a: Anomaly) -> Severity:
    """Warning past z, critical past 2z or for a throughput outage (< 20% of expected)."""
    if abs(a.peak_z) >= 2 * a.z_threshold:
        return Severity.CRITICAL
    if a.kind == "throughput" and a.direction == "drop" and a.ratio < CRITICAL_DROP_RATIO:
        return Severity.CRITICAL
    return Severity.WARNING


def anomaly_findings(
    anomalies: list[Anomaly],
    *,
    tenant: str,
    model: str,
    partition: str,
    asset: str = Asset.OPS_REPORT,
) -> list[Finding]:
    """One finding per anomaly, with the numbers and the method in its evidence."""
    findings: list[Finding] = []
    for a in anomalies:
        rule = _rule(a.kind)
        severity = anomaly_severity(a)
        by_z = abs(a.peak_z) >= 2 * a.z_threshold
        threshold = 2 * a.z_threshold if severity is Severity.CRITICAL and by_z else a.z_threshold
        unit = f" {rule.unit}" if rule.unit else ""
        evidence: dict[str, Any] = {
            "kind": a.kind,
            "direction": a.direction,
            "start": a.start.isoformat(),
            "end": a.end.isoformat(),
            "detected_at": a.detected_at.isoformat(),
            "n_points": a.n_points,
            "peak_z": a.peak_z,
            "observed": a.observed,
            "expected": a.expected,
            "scale": a.scale,
            "ratio": a.ratio,
            "z_threshold": a.z_threshold,
            "persistence": a.persistence,
            "critical_drop_ratio": CRITICAL_DROP_RATIO if a.kind == "throughput" else None,
            "baseline_mode": a.baseline_mode,
            "n_history": a.n_history,
            "method": "robust z vs seasonal median (weekday x hour, hour-of-day fallback), "
            "scale 1.4826*MAD of leave-one-out errors, floored; "
            f"{a.persistence} consecutive points beyond |z| >= {fmt_number(a.z_threshold, '.4g')}",
        }
        findings.append(
            Finding(
                tenant=tenant,
                model=model,
                partition=partition,
                asset=asset,
                signal=rule.signal,
                severity=severity,
                value=a.peak_z,
                threshold=threshold,
                message=f"{a.kind} {a.direction}: {fmt_number(a.observed, '.4g')}{unit} vs "
                f"expected "
                f"{fmt_number(a.expected, '.4g')}{unit} (z={fmt_number(a.peak_z, '.4g')}, "
                f"{fmt_number(100 * a.ratio, '.4g')}% of "
                f"expected) for {a.n_points} points from {a.start.isoformat()} to "
                f"{a.end.isoformat()}",
                evidence=evidence,
            )
        )
    return findings


def detect_last_day(
    daily: pd.Series,
    *,
    kind: Kind = "residual",
    z: float = 4.0,
    persistence: int = 2,
    min_history: int = 7,
    lookback_weeks: int | None = 8,
) -> tuple[float, list[Anomaly]]:
    """The last day of a daily series judged against the days before it.

    The window judged is the last ``persistence`` calendar days, ending on the series' last day;
    every earlier day (at most ``lookback_weeks``) is its baseline, so a day never enters its
    own baseline and judging it again later (with more labels) uses the same history. Returns
    the robust z of the last day and the anomalies ending on it (at most one: the whole window
    beyond ``z``). A day missing from the window breaks the run, and fewer than
    ``min_history`` earlier days give z = NaN and no anomaly: a median of a few days alarms on
    noise.
    """
    if persistence < 1:
        raise ValueError(f"persistence must be >= 1, got {persistence}")
    s = _clean(daily)
    if s.empty:
        return math.nan, []
    last = s.index[-1]
    first = last - pd.Timedelta(days=persistence - 1)
    window, history = s[s.index >= first], s[s.index < first]
    if lookback_weeks is not None:
        history = history[history.index >= first - pd.Timedelta(weeks=lookback_weeks)]
    if history.size < min_history:
        return math.nan, []
    z_last = float(score(window, history, kind=kind, lookback_weeks=None)["z"].iloc[-1])
    if window.size < persistence or _direction(z_last, _rule(kind), z) is None:
        return z_last, []
    found = detect(window, history, kind=kind, z=z, persistence=persistence, lookback_weeks=None)
    return z_last, [a for a in found if a.end == last]
