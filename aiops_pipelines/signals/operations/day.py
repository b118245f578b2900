"""Operational signals of a day: latency percentiles, throughput, errors, cost; per version.

One streamed pass over the day's prediction log. Latency percentiles come from a fixed
log-spaced histogram (the canary analysis uses the same one), so a day's numbers merge into a
week's exactly and memory does not grow with traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io.sources import Source, day_window
from aiops_pipelines.signals.operations.latency import histogram_quantile, latency_histogram

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
            out[("throughput_day", f"v{version}")] = float(v.n)
            out[("error_rate", f"v{version}")] = v.error_rate
            for q, name in ((0.50, "latency_p50"), (0.95, "latency_p95"), (0.99, "latency_p99")):
                out[(name, f"v{version}")] = v.latency(q)
        p95 = self.hourly_p95()
        err = self.hourly_error_rate()
        for h in range(HOURS):
            hour = f"{self.partition}T{h:02d}"
            out[("throughput_hour", hour)] = float(self.hourly_requests[h])
            out[("latency_p95_hour", hour)] = float(p95[h])
            out[("error_rate_hour", hour)] = float(err[h])
            out[("errors_hour", hour)] = float(self.hourly_errors[h])
        return out


def ops_for_day(model: ModelConfig, partition: str) -> OpsDay:
    """Stream the day's log once into per-version and per-hour operational numbers."""
    c = model.columns
    cols = [c.timestamp, c.version] + [x for x in (c.latency_ms, c.status) if x]
    start, end = day_window(partition)
    versions: dict[str, VersionOps] = {}
    hourly_requests = np.zeros(HOURS, dtype=np.int64)
    hourly_errors = np.zeros(HOURS, dtype=np.int64)
    hourly_latency = [latency_histogram(np.array([])) for _ in range(HOURS)]
    try:
        for chunk in Source(model.predictions).iter_window(c.timestamp, start, end, cols):
            hour = chunk[c.timestamp].dt.hour.to_numpy()
            err = (
                (chunk[c.status].astype(str) != "ok").to_numpy()
                if c.status
                else np.zeros(len(chunk), dtype=bool)
            )
            lat = (
                pd.to_numeric(chunk[c.latency_ms], errors="coerce").to_numpy(dtype=float)
                if c.latency_ms
                else np.array([])
            )
            hourly_requests += np.bincount(hour, minlength=HOURS)
            hourly_errors += np.bincount(hour, weights=err, minlength=HOURS).astype(np.int64)
            if len(lat):
                for h in np.unique(hour):
                    hourly_latency[h] = hourly_latency[h] + latency_histogram(lat[hour == h])
            ver = chunk[c.version].astype(str).to_numpy()
            for v in np.unique(ver):
                mask = ver == v
                versions.setdefault(str(v), VersionOps()).add(
                    lat[mask] if len(lat) else np.array([]), int(err[mask].sum()), int(mask.sum())
                )
    except DataError as exc:
        raise exc.located(model=model.key, partition=partition) from None
    day = OpsDay(partition, versions, hourly_requests, hourly_errors, hourly_latency)
    unit = model.ops.unit_cost_per_hour
    if unit is not None and day.total.n:
        day.cost_per_1000 = unit * HOURS / (day.total.n / 1000)
    return day
