"""Operational signals of a day: latency percentiles, throughput, errors, cost; per version;
and the anomalies of their hourly series (`operations_for_day`, the entry point).

One streamed pass over the day's prediction log. Latency percentiles come from a fixed
log-spaced histogram (the canary analysis uses the same one), so a day's numbers merge into a
week's exactly and memory does not grow with traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal
from aiops_pipelines.core.values import fmt_number, version_label
from aiops_pipelines.io.sources import Source, StringCap, day_window
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals.anomaly import Anomaly, anomaly_findings, detect
from aiops_pipelines.signals.changepoints import LevelShift, current_shift
from aiops_pipelines.signals.operations.latency import (
    LATENCY_BINS,
    LATENCY_EDGES_MS,
    histogram_quantile,
    latency_histogram,
)

HOURS = 24


@dataclass
class VersionOps:
    n: int = 0
    n_errors: int = 0
    latency_hist: np.ndarray = field(default_factory=lambda: latency_histogram(np.array([])))

    def add(self, latency: np.ndarray, errors: int, n: int) -> None:
        self.n += n
        self.n_errors += errors
        self.latency_hist = self.latency_hist + latency_histogram(latency)

    @property
    def error_rate(self) -> float:
        return self.n_errors / self.n if self.n else float("nan")

    def latency(self, q: float) -> float:
        return histogram_quantile(self.latency_hist, q)


@dataclass
class OpsDay:
    """A day's operational numbers, overall, per version and per hour."""

    partition: str
    versions: dict[str, VersionOps]
    hourly_requests: np.ndarray
    hourly_errors: np.ndarray
    hourly_latency: list[np.ndarray]
    cost_per_1000: float | None = None

    @property
    def total(self) -> VersionOps:
        out = VersionOps()
        for v in self.versions.values():
            out.n += v.n
            out.n_errors += v.n_errors
            out.latency_hist = out.latency_hist + v.latency_hist
        return out

    def hourly_p95(self) -> np.ndarray:
        return np.array(
            [histogram_quantile(h, 0.95) if h.sum() else np.nan for h in self.hourly_latency]
        )

    def hourly_error_rate(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.hourly_requests > 0,
                self.hourly_errors / np.maximum(self.hourly_requests, 1),
                np.nan,
            )

    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows for the store's metric history (column: version or the hour)."""
        total = self.total
        out: dict[tuple[str, str], float] = {
            ("throughput_day", ""): float(total.n),
            ("error_rate", ""): total.error_rate,
            ("latency_p50", ""): total.latency(0.50),
            ("latency_p95", ""): total.latency(0.95),
            ("latency_p99", ""): total.latency(0.99),
        }
        if self.cost_per_1000 is not None:
            out[("cost_per_1000", "")] = self.cost_per_1000
        for version, v in self.versions.items():
            out[("throughput_day", version_label(version))] = float(v.n)
            out[("error_rate", version_label(version))] = v.error_rate
            for q, name in ((0.50, "latency_p50"), (0.95, "latency_p95"), (0.99, "latency_p99")):
                out[(name, version_label(version))] = v.latency(q)
        p95 = self.hourly_p95()
        err = self.hourly_error_rate()
        for h in range(HOURS):
            hour = f"{self.partition}T{h:02d}"
            out[("throughput_hour", hour)] = float(self.hourly_requests[h])
            out[("latency_p95_hour", hour)] = float(p95[h])
            out[("error_rate_hour", hour)] = float(err[h])
            out[("errors_hour", hour)] = float(self.hourly_errors[h])
        return out


class OpsStream:
    """A day's operational numbers, accumulated chunk by chunk (`stream_operations`, and the
    day's one read, `signals.day_pass`): `read_columns` read with the `StringCap` `cut`, each
    chunk as `Source.iter_window` yields it to `add`, then `result`.

    Latencies are binned once per chunk and counted per hour and per version by one
    `bincount` each: the very counts of `latency_histogram` per hour and per version."""

    def __init__(self, model: ModelConfig, partition: str) -> None:
        c = model.columns
        self.model, self.partition = model, partition
        self.read_columns = [c.timestamp, c.version] + [x for x in (c.latency_ms, c.status) if x]
        # versions become metric columns: cut as feature_profile cuts (and reports) them
        self.cut = StringCap(model.max_string_length, (c.version,))
        self.versions: dict[str, VersionOps] = {}
        self.hourly_requests = np.zeros(HOURS, dtype=np.int64)
        self.hourly_errors = np.zeros(HOURS, dtype=np.int64)
        self.hourly_latency = np.zeros((HOURS, LATENCY_BINS), dtype=np.int64)

    def add(self, chunk: pd.DataFrame) -> None:
        c = self.model.columns
        n = len(chunk)
        hour = chunk[c.timestamp].dt.hour.to_numpy().astype(np.int64)
        err = (
            (chunk[c.status].astype(str) != "ok").to_numpy()
            if c.status
            else np.zeros(n, dtype=bool)
        )
        self.hourly_requests += np.bincount(hour, minlength=HOURS)
        self.hourly_errors += np.bincount(hour, weights=err, minlength=HOURS).astype(np.int64)
        codes, names = pd.factorize(chunk[c.version].astype(str), sort=True)
        k = len(names)
        per_version = np.bincount(codes, minlength=k)
        errors = np.bincount(codes, weights=err, minlength=k)
        lat_bins = None
        if c.latency_ms:
            lat = pd.to_numeric(chunk[c.latency_ms], errors="coerce").to_numpy(dtype=float)
            finite = np.isfinite(lat)
            idx = np.searchsorted(LATENCY_EDGES_MS, lat[finite], side="right") - 1
            idx = np.clip(idx, 0, LATENCY_BINS - 1)
            self.hourly_latency += np.bincount(
                hour[finite] * LATENCY_BINS + idx, minlength=HOURS * LATENCY_BINS
            ).reshape(HOURS, LATENCY_BINS)
            lat_bins = np.bincount(
                codes[finite] * LATENCY_BINS + idx, minlength=k * LATENCY_BINS
            ).reshape(k, LATENCY_BINS)
        for i, name in enumerate(names):
            v = self.versions.setdefault(str(name), VersionOps())
            v.n += int(per_version[i])
            v.n_errors += int(errors[i])
            if lat_bins is not None:
                v.latency_hist = v.latency_hist + lat_bins[i]

    def result(self) -> OpsDay:
        hourly = [self.hourly_latency[h].copy() for h in range(HOURS)]
        day = OpsDay(
            self.partition, self.versions, self.hourly_requests, self.hourly_errors, hourly
        )
        unit = self.model.ops.unit_cost_per_hour
        if unit is not None and day.total.n:
            day.cost_per_1000 = unit * HOURS / (day.total.n / 1000)
        return day


def stream_operations(
    model: ModelConfig, partition: str, *, read_token: str | None = None
) -> OpsDay:
    """Stream the day's log once into per-version and per-hour operational numbers (with a
    `read_token`, from the day's one read for every daily signal, `signals.day_pass`)."""
    if read_token is not None:
        from aiops_pipelines.signals.day_pass import day_operations  # it builds on this module

        return day_operations(model, partition, read_token=read_token)
    ops = OpsStream(model, partition)
    start, end = day_window(partition)
    src = Source(model.predictions, strings=ops.cut)
    try:
        for chunk in src.iter_window(model.columns.timestamp, start, end, ops.read_columns):
            ops.add(chunk)
    except DataError as exc:
        raise exc.located(model=model.key, partition=partition) from None
    return ops.result()


MIN_HISTORY_DAYS = 7
"""Days of history before anomalies are looked for: the baseline is warming up before."""

SERIES = {  # stored hourly metric -> anomaly kind
    "throughput_hour": "throughput",
    "latency_p95_hour": "latency",
    "errors_hour": "errors",  # counts, not rates: a rate hides how few requests it rests on
}
CHECKS = {"throughput": "throughput", "latency": "latency", "error_rate": "errors"}
"""Asset check name -> the anomaly kind it reports."""


def _hourly(frame: pd.DataFrame) -> pd.Series:
    if frame.empty:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    index = pd.to_datetime(frame["column"] + ":00:00+00:00", utc=True)
    return pd.Series(frame["value"].to_numpy(dtype=float), index=index).sort_index()


@dataclass
class OperationsDay:
    """A day's operational numbers, the anomalies of its hourly series against the stored
    history, and one finding per (signal, direction): the strongest episode of the day."""

    ops: OpsDay
    anomalies: dict[str, list[Anomaly]]
    warming_up: list[str]
    findings: list[Finding]
    metrics: dict[tuple[str, str], float]
    """Rows of the store's metric history (`OpsDay.metrics`)."""
    shifts: dict[str, LevelShift] = field(default_factory=dict)
    """Lasting level shifts the hourly series are in at the end of the day, by series."""

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        return {m: v for (m, c), v in self.metrics.items() if not c}

    def summary(self) -> dict[str, Any]:
        total = self.ops.total
        out: dict[str, Any] = {
            "throughput_day": int(total.n),
            "error_rate": float(total.error_rate),
            "latency_p50": float(total.latency(0.50)),
            "latency_p95": float(total.latency(0.95)),
            "latency_p99": float(total.latency(0.99)),
            "peak_hour_requests": int(self.ops.hourly_requests.max()),
            "versions": ", ".join(
                f"{version_label(v)}: {o.n}" for v, o in sorted(self.ops.versions.items())
            ),
            "n_anomalies": len(self.findings),
            "level_shifts": ", ".join(
                f"{k} {v.direction} since {v.onset:%Y-%m-%d %H:%M}" for k, v in self.shifts.items()
            )
            or "none",
            "baseline_warming_up": ", ".join(self.warming_up) or "no",
        }
        if self.ops.cost_per_1000 is not None:
            out["cost_per_1000"] = float(self.ops.cost_per_1000)
        return out

    def checks(self) -> list[Check]:
        """One warning check per signal: its anomalies of the day, or none."""
        return [
            Check(
                name,
                not self.anomalies[kind],
                "warn",
                {
                    "anomalies": "; ".join(
                        f"{a.direction} {a.start:%H:%M}-{a.end:%H:%M} z={a.peak_z:.1f}"
                        for a in self.anomalies[kind]
                    )
                    or "none"
                },
            )
            for name, kind in CHECKS.items()
        ]


def operations_for_day(
    model: ModelConfig, day: str, store: MonitoringStore, *, read_token: str | None = None
) -> OperationsDay:
    """The day's operational numbers and their anomalies against the previous
    `ops.history_days` days stored (a robust hour-of-day x weekday baseline); `read_token`:
    see `stream_operations`."""
    ops = stream_operations(model, day, read_token=read_token)
    metrics = ops.metrics()
    first = (date.fromisoformat(day) - timedelta(days=model.ops.history_days)).isoformat()
    last = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    stored = store.metric_history(
        model.tenant, model.name, metric=list(SERIES), asset=Asset.OPS_REPORT, start=first, end=last
    )
    anomalies: dict[str, list[Anomaly]] = {}
    warming: list[str] = []
    series: dict[str, pd.Series] = {}
    for metric, kind in SERIES.items():
        history = _hourly(stored[stored["metric"] == metric])
        today = _hourly(
            pd.DataFrame(
                {
                    "column": [c for (m, c) in metrics if m == metric],
                    "value": [v for (m, _), v in metrics.items() if m == metric],
                }
            )
        )
        series[kind] = pd.concat([history, today]).sort_index()
        history_days = history.index.normalize().nunique() if len(history) else 0
        if history_days < MIN_HISTORY_DAYS:  # a baseline of a few days alarms on noise
            anomalies[kind] = []
            warming.append(kind)
            continue
        anomalies[kind] = detect(
            today.dropna(),
            history.dropna(),
            kind=kind,
            z=model.ops.z,
            persistence=model.ops.persistence,
            # an hour's p95 from a fifth of its usual rows is noisier: widen its scale
            support=series["throughput"] if kind == "latency" else None,
        )
    # one finding per (signal, direction) and day: the strongest episode, the others counted
    strongest: dict[tuple[str, str], Anomaly] = {}
    episodes: dict[tuple[str, str], int] = {}
    for found in anomalies.values():
        for a in found:
            k = (a.kind, a.direction)
            episodes[k] = episodes.get(k, 0) + 1
            if k not in strongest or abs(a.peak_z) > abs(strongest[k].peak_z):
                strongest[k] = a
    findings = []
    for k, a in strongest.items():
        for f in anomaly_findings([a], tenant=model.tenant, model=model.name, partition=day):
            f.evidence["episodes_that_day"] = episodes[k]
            findings.append(replace(f, column=a.direction))
    shifts = level_shifts(series, model, day) if "throughput" not in warming else {}
    findings += [shift_finding(name, sh, model, day) for name, sh in shifts.items()]
    return OperationsDay(ops, anomalies, warming, findings, metrics, shifts)


def _regular(s: pd.Series, day: str) -> pd.Series:
    """An hourly series on every hour up to the day's end (missing hours NaN)."""
    end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=23)
    if s.empty:
        return s
    return s[~s.index.duplicated(keep="last")].reindex(pd.date_range(s.index[0], end, freq="h"))


def level_shifts(
    series: dict[str, pd.Series], model: ModelConfig, day: str
) -> dict[str, LevelShift]:
    """The lasting shifts (`signals.changepoints`) of throughput, latency p95 and error rate
    at the end of the day, large enough to report: a relative change of at least
    `ops.level_shift_min_change` (throughput either way, latency up), an error rate up by at
    least `ops.level_shift_min_error_rate`."""
    thr = _regular(series.get("throughput", pd.Series(dtype=float)), day)
    if thr.dropna().index.normalize().nunique() < MIN_HISTORY_DAYS:
        return {}
    period = 168 if len(thr) >= 3 * 168 else 24
    policy = model.ops
    out: dict[str, LevelShift] = {}
    sh = current_shift(thr.fillna(0.0).clip(lower=0.5), period=period, scale="log")
    if sh is not None and abs(math.log(sh.ratio)) >= math.log1p(policy.level_shift_min_change):
        out["throughput"] = sh
    lat = _regular(series.get("latency", pd.Series(dtype=float)), day)
    if lat.notna().sum() >= 2 * 24:
        sh = current_shift(lat.ffill().bfill(), period=period, scale="log")
        if sh is not None and sh.ratio >= 1 + policy.level_shift_min_change:
            out["latency_p95"] = sh
    errors = _regular(series.get("errors", pd.Series(dtype=float)), day).reindex(thr.index)
    if len(thr) >= 2 * 24:
        sh = error_rate_shift(errors.fillna(0.0), thr.fillna(0.0), period)
        if sh is not None and sh.after - sh.before >= policy.level_shift_min_error_rate:
            out["error_rate"] = sh
    return out


def hourly_error_rate(errors: pd.Series, requests: pd.Series) -> pd.Series:
    """Failures / requests per hour, an hour without requests at the rate before it."""
    return (errors / requests.where(requests > 0)).ffill().bfill()


RATE_SHIFT_Z = 4.0
"""Smallest two-proportion z (over-dispersion corrected) of a lasting error-rate shift: the
z of `signals.anomaly`, for a test whose onset was searched for."""


def error_rate_shift(errors: pd.Series, requests: pd.Series, period: int) -> LevelShift | None:
    """A lasting shift of the hourly error rate, judged on counts.

    An hourly rate rests on the hour's requests: at 25 an hour and 0.5% failing, most hours
    read 0% and one in eight 4%, so the hour-to-hour spread says little about the noise (its
    MAD is 0) and a segment's median is 0%. Three things follow from the counts instead:
    the segmentation's noise is at least the binomial one at the typical hour (``sqrt(p (1 -
    p) / n)``); the levels before and after the onset are pooled rates (failures / requests);
    and the step must pass a two-proportion z test at `RATE_SHIFT_Z`, its variance inflated by
    the over-dispersion of the hours before the onset (Pearson chi-square / df, at least 1:
    failures that come in bursts count as fewer independent ones)."""
    served = requests[requests > 0]
    if served.empty:
        return None
    p_all = float(errors.sum() / served.sum())
    binomial = math.sqrt(max(p_all * (1 - p_all), 0.0) / float(served.median()))
    rate = hourly_error_rate(errors, requests)
    sh = current_shift(rate, period=period, scale="linear", min_sigma=binomial)
    if sh is None:
        return None
    before = errors.index < sh.onset
    e_b, n_b = float(errors[before].sum()), float(requests[before].sum())
    e_a, n_a = float(errors[~before].sum()), float(requests[~before].sum())
    if n_b <= 0 or n_a <= 0:
        return None
    p_b, p_a = e_b / n_b, e_a / n_a
    pooled = (e_b + e_a) / (n_b + n_a)
    var = pooled * (1 - pooled) * (1 / n_b + 1 / n_a)
    if var <= 0:
        return None
    hours = requests[before] > 0
    expected = requests[before][hours] * p_b
    resid = errors[before][hours] - expected
    denom = expected * (1 - p_b)
    ok = denom > 0
    dispersion = 1.0
    if ok.sum() > 1:
        dispersion = max(1.0, float((resid[ok] ** 2 / denom[ok]).sum() / (ok.sum() - 1)))
    z = (p_a - p_b) / math.sqrt(var * dispersion)
    if abs(z) < RATE_SHIFT_Z or np.sign(p_a - p_b) != np.sign(sh.after - sh.before):
        return None
    return replace(sh, before=p_b, after=p_a, sigmas=abs(z))


def shift_finding(name: str, sh: LevelShift, model: ModelConfig, day: str) -> Finding:
    """A level-shift finding: raised every day the series stays at its new level, with the
    same onset, so the alert keeps firing until the level returns."""
    policy = model.ops
    if name == "error_rate":
        change, gate = sh.after - sh.before, policy.level_shift_min_error_rate
        what = f"{sh.before:.2%} -> {sh.after:.2%} of requests failing"
    else:
        change = abs(math.log(sh.ratio))
        gate = math.log1p(policy.level_shift_min_change)
        what = (
            f"{fmt_number(sh.after, '.4g')} vs {fmt_number(sh.before, '.4g')} before "
            f"({sh.ratio:.0%} of the level before)"
        )
    critical = change >= 2.5 * gate
    since = (pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) - sh.onset).total_seconds()
    return Finding(
        tenant=model.tenant,
        model=model.name,
        partition=day,
        asset=Asset.OPS_REPORT,
        signal=Signal.LEVEL_SHIFT.value,
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        value=float(sh.ratio if name != "error_rate" else sh.after - sh.before),
        threshold=float(
            1 + policy.level_shift_min_change
            if name != "error_rate"
            else policy.level_shift_min_error_rate
        ),
        column=name,
        message=f"{name} shifted {sh.direction} since {sh.onset:%Y-%m-%d %H:%M} UTC "
        f"({since / 86400:.1f} days, lasting): {what}, {sh.sigmas:.1f} noise sigmas",
        evidence={
            "onset": sh.onset.isoformat(),
            "before": sh.before,
            "after": sh.after,
            "ratio": sh.ratio,
            "sigmas": sh.sigmas,
            "hours_since_onset": sh.points,
            "method": "PELT segmentation of the history window (ruptures), seasonal shape "
            "removed, steps >= 1 sigma that a trend does not explain",
        },
    )
