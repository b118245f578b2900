"""The latest monitoring numbers as Prometheus gauges, exposed with `prometheus_client`.

`gauge_samples` reads the monitoring store into `Gauges` (every series of every family);
`GaugeCollector` hands them to a `prometheus_client` registry as `GaugeMetricFamily`s, and
`render_metrics` is that registry's page (`generate_latest`, the text format 0.0.4), which
`serve_metrics` serves at /metrics. The same `Gauges` feed the OTLP export
(`views.telemetry`). Every model's gauge is labelled with `tenant` and `model`.

What "latest" means: each asset's numbers come from its latest partition up to `day` (each
model's own latest partition when `day` is None), looked back at most `LOOKBACK_DAYS`;
`aiops_last_partition_timestamp_seconds{asset=...}` says which partition that is, so an alert
rule can catch a model whose pipeline stopped. Performance gauges come from the latest day
whose primary metric is known (labels arrive late; the newest days have few), and
`aiops_performance_partition_timestamp_seconds` says which. Canary gauges are exposed only while
a canary runs (its report is on the model's latest partition). Latency is stored in
milliseconds and exposed in seconds, the Prometheus base unit.

A gauge read straight from the metric history (an asset's stored metric on its latest
partition) is one `HistoryGauge` line in `HISTORY_GAUGES`; nothing else changes for it to be
scraped, exported over OTLP and listed in `FAMILIES`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, TypeVar

import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from aiops_pipelines.core.config import AppConfig, FairnessMetric
from aiops_pipelines.core.findings import Asset, Severity
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.overview import (
    latest_partition,
    monitored_models,
    normalize_alerts,
    normalize_deliveries,
    performance_history,
    primary_metric_of,
    reference_performance_value,
)

__all__ = [
    "CONTENT_TYPE",
    "FAMILIES",
    "HISTORY_GAUGES",
    "LOOKBACK_DAYS",
    "CachedPage",
    "GaugeCollector",
    "Gauges",
    "HistoryGauge",
    "Snapshot",
    "exposition",
    "gauge_samples",
    "make_metrics_server",
    "render_metrics",
    "serve_metrics",
]

# `generate_latest` writes the classic text format (our names and labels are all legacy-valid,
# so there is no escaping to announce); CONTENT_TYPE_LATEST would say version=1.0.0
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LOOKBACK_DAYS = 35
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryGauge:
    """One stored metric of an asset, on the asset's latest partition, as series of a gauge.

    Entries sharing a `name` are one family (give them the same `help`), told apart by their
    fixed `labels` (the latency quantiles below)."""

    name: str
    """The gauge's name (`aiops_...`, in base units: `_seconds`, `_ratio`...)."""
    asset: str
    """The `asset` of the metric-history rows (an `Asset` value)."""
    metric: str
    """The `metric` of the rows."""
    help: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """Fixed labels of this entry's series, beside `tenant` and `model`."""
    column_label: str | None = None
    """None: the model-level row (`column` ""). A label name: one series per stored `column`
    of the metric (a feature, attribute, segment, SLO...), that label carrying it."""
    scale: float = 1.0
    """Stored value times `scale` (e.g. 0.001: milliseconds to seconds)."""


#: Gauges read straight from the metric history. Adding one is adding a line here.
HISTORY_GAUGES: tuple[HistoryGauge, ...] = (
    HistoryGauge(
        "aiops_drift_share",
        Asset.DRIFT_REPORT,
        "drift_share",
        "Share of the model's features that drifted (latest drift_report).",
    ),
    HistoryGauge(
        "aiops_drifted_features",
        Asset.DRIFT_REPORT,
        "n_drifted",
        "Number of drifted features (latest drift_report).",
    ),
    HistoryGauge(
        "aiops_throughput_predictions_per_day",
        Asset.OPS_REPORT,
        "throughput_day",
        "Predictions served on the latest ops_report day.",
    ),
    *(
        HistoryGauge(
            "aiops_latency_seconds",
            Asset.OPS_REPORT,
            metric,
            "Serving latency quantiles on the latest ops_report day.",
            labels={"quantile": q},
            scale=0.001,  # stored in milliseconds
        )
        for q, metric in (("0.5", "latency_p50"), ("0.95", "latency_p95"), ("0.99", "latency_p99"))
    ),
    HistoryGauge(
        "aiops_error_rate",
        Asset.OPS_REPORT,
        "error_rate",
        "Share of predictions with an error status on the latest ops_report day.",
    ),
    HistoryGauge(
        "aiops_cost_per_1000_predictions",
        Asset.OPS_REPORT,
        "cost_per_1000",
        "Serving cost per 1,000 predictions (latest ops_report).",
    ),
    HistoryGauge(
        "aiops_segments_drifted",
        Asset.DRIFT_REPORT,
        "segments_drifted",
        "Segment values with a segment_drift finding (latest drift_report).",
    ),
    HistoryGauge(
        "aiops_segment_drift_share",
        Asset.DRIFT_REPORT,
        "segment_drift_share",
        "Share of the features that drifted within one segment value (latest drift_report).",
        column_label="segment",
    ),
    HistoryGauge(
        "aiops_domain_classifier_auc",
        Asset.DRIFT_REPORT,
        "domain_auc",
        "Out-of-fold AUC of the classifier telling the day's rows from the reference's "
        "(0.5: no multivariate drift; latest drift_report).",
    ),
    HistoryGauge(
        "aiops_pca_error_ratio",
        Asset.DRIFT_REPORT,
        "pca_error_ratio",
        "The day's mean PCA reconstruction error over the reference's (latest drift_report).",
    ),
    *(
        HistoryGauge(
            "aiops_fairness",
            Asset.PERFORMANCE_REPORT,
            str(metric),
            "Group-fairness metric across the sensitive attribute, worst group against the "
            "privileged one (latest performance_report).",
            labels={"metric": str(metric)},
            column_label="attribute",
        )
        for metric in FairnessMetric
    ),
    HistoryGauge(
        "aiops_slo_budget_remaining_ratio",
        Asset.SLO_REPORT,
        "slo_budget_remaining",
        "Share of the SLO's error budget left over its window (<= 0: exhausted).",
        column_label="slo",
    ),
    HistoryGauge(
        "aiops_slo_sli_ratio",
        Asset.SLO_REPORT,
        "slo_sli_window",
        "Share of good events over the SLO's window (compare with aiops_slo_objective_ratio).",
        column_label="slo",
    ),
    HistoryGauge(
        "aiops_slo_objective_ratio",
        Asset.SLO_REPORT,
        "slo_objective",
        "The SLO's objective (share of good events).",
        column_label="slo",
    ),
    *(
        HistoryGauge(
            "aiops_slo_burn_rate",
            Asset.SLO_REPORT,
            f"slo_burn_rate_{window}",
            "Error-budget burn rate over a window, at the latest slo_report day's last hour.",
            labels={"window": window},
            column_label="slo",
        )
        for window in ("1h", "6h", "3d")
    ),
)

#: Every family (name -> help), in the order of the page.
FAMILIES: dict[str, str] = {
    "aiops_last_partition_timestamp_seconds": (
        "Start (00:00 UTC) of the latest partition an asset stored for the model."
    ),
    **{g.name: g.help for g in HISTORY_GAUGES},  # entries of one family share their help
    "aiops_performance": (
        "Realized performance metric on late labels, on the latest day whose primary metric "
        "is known."
    ),
    "aiops_performance_estimated": (
        "Label-free estimate of a performance metric, on the latest performance partition."
    ),
    "aiops_performance_reference": "Reference (champion) value of a performance metric.",
    "aiops_performance_partition_timestamp_seconds": (
        "Start (00:00 UTC) of the day the aiops_performance gauges were measured on."
    ),
    "aiops_label_coverage": "Share of that day's predictions with a label so far.",
    "aiops_labelled_predictions": "Number of that day's predictions with a label so far.",
    "aiops_canary_verdict": (
        "1 for the running canary's verdict on its latest day (pass, fail or inconclusive)."
    ),
    "aiops_canary_difference": (
        "Canary minus champion on the primary comparison: estimate and confidence bounds."
    ),
    "aiops_canary_traffic_share": "Cumulative share of traffic served by the canary.",
    "aiops_findings": "Findings of the model's latest partition, by severity.",
    "aiops_alerts_firing": "Firing alerts, by severity (silenced and inhibited ones included).",
    "aiops_alert_deliveries": "Alert deliveries in the outbox, by route and status.",
    "aiops_mlflow_queued_loggings": (
        "MLflow loggings queued because MLflow could not be reached (replayed when it answers)."
    ),
    "aiops_mlflow_queued_oldest_timestamp_seconds": (
        "When the oldest queued MLflow logging was queued (Unix time; absent when none waits)."
    ),
    "aiops_alert_deliveries_failing": (
        "Undelivered alert deliveries whose last attempt failed, by route."
    ),
}


def _day_seconds(day: str) -> float:
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=dt.UTC)
    return start.timestamp()


Labels = tuple[tuple[str, str], ...]


class Gauges:
    """Every series of every family, in `FAMILIES` order; NaN samples are dropped (an unknown
    value is better absent than a NaN an alert rule would compare against)."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[Labels, float]] = {}

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        if name not in FAMILIES:
            raise KeyError(f"undeclared metric family {name!r}: declare it in FAMILIES")
        value = float(value)
        if math.isnan(value):
            return
        key = tuple((k, str(v)) for k, v in labels.items())
        self.samples.setdefault(name, {})[key] = value

    def series(self, name: str) -> Iterator[tuple[dict[str, str], float]]:
        """The family's series: (labels, value)."""
        for labels, value in self.samples.get(name, {}).items():
            yield dict(labels), value

    def families(self) -> Iterator[GaugeMetricFamily]:
        """The families with at least one series, as `prometheus_client` metric families."""
        for name, help_text in FAMILIES.items():
            samples = self.samples.get(name)
            if not samples:
                continue
            family = GaugeMetricFamily(name, help_text)
            for labels, value in samples.items():
                # add_sample, not add_metric: a family's series need not share label names
                family.add_sample(name, dict(labels), value)
            yield family

    def __bool__(self) -> bool:
        return bool(self.samples)


class GaugeCollector(Collector):
    """A `prometheus_client` collector yielding `source()`'s gauges at every collection.

    To serve them from prometheus_client's own server instead of `serve_metrics`:
    `REGISTRY.register(GaugeCollector(lambda: gauge_samples(store, cfg)))`."""

    def __init__(self, source: Callable[[], Gauges]) -> None:
        self._source = source

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # the names this collector may yield, without reading the store at registration
        return [GaugeMetricFamily(name, help_text) for name, help_text in FAMILIES.items()]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return list(self._source().families())


def exposition(gauges: Gauges) -> str:
    """The page of `gauges` in the text format 0.0.4 (`prometheus_client.generate_latest`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GaugeCollector(lambda: gauges))
    return generate_latest(registry).decode()


def _latest_rows(frame: pd.DataFrame, asset: str) -> tuple[str | None, pd.DataFrame]:
    rows = frame[frame["asset"] == asset]
    if rows.empty:
        return None, rows
    last = str(rows["partition"].max())
    return last, rows[rows["partition"] == last]


def _get(rows: pd.DataFrame, metric: str, column: str = "") -> float:
    hit = rows[(rows["metric"] == metric) & (rows["column"] == column)]
    return float(hit["value"].iloc[-1]) if len(hit) else math.nan


def _add_history(gauges: Gauges, base: dict[str, str], frame: pd.DataFrame) -> None:
    latest: dict[str, pd.DataFrame] = {}
    for g in HISTORY_GAUGES:
        if g.asset not in latest:
            latest[g.asset] = _latest_rows(frame, g.asset)[1]
        rows = latest[g.asset]
        labels = {**base, **g.labels}
        if g.column_label is None:
            gauges.add(g.name, labels, _get(rows, g.metric) * g.scale)
            continue
        hit = rows[rows["metric"] == g.metric]
        for column, value in zip(hit["column"], hit["value"], strict=True):
            gauges.add(g.name, {**labels, g.column_label: str(column)}, float(value) * g.scale)


def gauge_samples(
    store: MonitoringStore,
    cfg: AppConfig | None,
    *,
    day: str | None = None,
    alerts: pd.DataFrame | None = None,
    deliveries: pd.DataFrame | None = None,
) -> Gauges:
    """The latest gauges of every model (configured or stored).

    `day` caps the partitions read (default: each model's latest). Alert gauges are read
    only when `alerts`/`deliveries` are given; empty frames give zeros.
    """
    gauges = Gauges()
    al = normalize_alerts(alerts) if alerts is not None else None
    for model in monitored_models(store, cfg):
        t, m = model.tenant, model.name
        base = {"tenant": t, "model": m}
        last = latest_partition(store, t, m, end=day)
        if al is not None:
            firing = al[(al["tenant"] == t) & (al["model"] == m) & (al["state"] == "firing")]
            for sev in Severity:
                n = int((firing["severity"] == sev.value).sum())
                gauges.add("aiops_alerts_firing", {**base, "severity": sev.value}, n)
        if last is None:
            continue
        start = (dt.date.fromisoformat(last) - dt.timedelta(days=LOOKBACK_DAYS)).isoformat()
        frame = store.metric_history(t, m, start=start, end=last)
        frame = frame[~frame["metric"].str.endswith("_hour")]
        for asset in sorted(set(frame["asset"])):
            newest = str(frame.loc[frame["asset"] == asset, "partition"].max())
            gauges.add(
                "aiops_last_partition_timestamp_seconds",
                {**base, "asset": asset},
                _day_seconds(newest),
            )
        _add_history(gauges, base, frame)

        perf = performance_history(store, model, last, 1)
        primary = primary_metric_of(model, perf)
        _add_performance(gauges, base, perf, primary)
        if primary:
            ref = reference_performance_value(store, t, m, primary)
            gauges.add("aiops_performance_reference", {**base, "metric": primary}, ref)

        found = store.findings(t, m, start=last, end=last)
        canary_day, canary = _latest_rows(frame, Asset.CANARY_REPORT)
        if canary_day == last:
            _add_canary(gauges, base, canary, found)
        for sev in Severity:
            n = int((found["severity"] == sev.value).sum())
            gauges.add("aiops_findings", {**base, "severity": sev.value}, n)

    if deliveries is not None:
        _add_deliveries(gauges, normalize_deliveries(deliveries))
    queued, oldest, _ = store.tracking_backlog() if day is None else (0, None, None)
    if queued or (day is None and gauges):  # now's state, not a day's; none: no page
        gauges.add("aiops_mlflow_queued_loggings", {}, queued)
        if oldest is not None:
            gauges.add("aiops_mlflow_queued_oldest_timestamp_seconds", {}, oldest.timestamp())
    return gauges


def render_metrics(
    store: MonitoringStore,
    cfg: AppConfig | None,
    *,
    day: str | None = None,
    alerts: pd.DataFrame | None = None,
    deliveries: pd.DataFrame | None = None,
) -> str:
    """`gauge_samples`' page in the text format 0.0.4 ("" when there is nothing to say)."""
    return exposition(gauge_samples(store, cfg, day=day, alerts=alerts, deliveries=deliveries))


def _add_performance(
    page: Gauges, base: dict[str, str], perf: pd.DataFrame, primary: str | None
) -> None:
    if perf.empty:
        return
    newest = perf[perf["partition"] == perf["partition"].max()]
    for r in newest.itertuples(index=False):
        if r.metric.startswith("estimated_"):
            metric = r.metric.removeprefix("estimated_")
            page.add("aiops_performance_estimated", {**base, "metric": metric}, r.value)
    if primary is None:
        return
    known = perf[(perf["metric"] == primary) & perf["value"].notna()]
    if known.empty:
        return
    day = str(known["partition"].max())
    rows = perf[perf["partition"] == day]
    skip = {"coverage", "n_labelled", "n_predictions", "decay_level"}
    for r in rows.itertuples(index=False):
        if r.metric not in skip and not r.metric.startswith("estimated_"):
            page.add("aiops_performance", {**base, "metric": r.metric}, r.value)
    page.add("aiops_performance_partition_timestamp_seconds", base, _day_seconds(day))
    page.add("aiops_label_coverage", base, _get(rows, "coverage"))
    page.add("aiops_labelled_predictions", base, _get(rows, "n_labelled"))


def _add_canary(
    page: Gauges, base: dict[str, str], canary: pd.DataFrame, found: pd.DataFrame
) -> None:
    signals = set(found["signal"])
    verdict = (
        "fail" if "canary_fail" in signals else "pass" if "canary_pass" in signals else None
    ) or "inconclusive"
    versions = canary.loc[canary["metric"] == "canary_n", "column"]
    labels = {**base, "version": str(versions.iloc[0]) if len(versions) else ""}
    for v in ("pass", "fail", "inconclusive"):
        page.add("aiops_canary_verdict", {**labels, "verdict": v}, 1.0 if v == verdict else 0.0)
    for bound, metric in (
        ("estimate", "canary_estimate"),
        ("lower", "canary_lower"),
        ("upper", "canary_upper"),
    ):
        page.add("aiops_canary_difference", {**labels, "bound": bound}, _get(canary, metric))
    page.add("aiops_canary_traffic_share", labels, _get(canary, "canary_share_cumulative"))


def _add_deliveries(page: Gauges, deliveries: pd.DataFrame) -> None:
    for (route, status), group in deliveries.groupby(["route", "status"], sort=True):
        page.add("aiops_alert_deliveries", {"route": route, "status": status}, len(group))
    for route, group in deliveries.groupby("route", sort=True):
        failing = (group["status"] != "sent") & group["last_error"].notna()
        page.add("aiops_alert_deliveries_failing", {"route": route}, int(failing.sum()))


# -- the /metrics endpoint -------------------------------------------------------------------
# Our own small server rather than prometheus_client's (`start_http_server`/`make_wsgi_app`):
# those call the registry's collect() and encode the page on every scrape, where this one
# answers from a `CachedPage` of the encoded page (a scrape storm costs one store read and one
# encoding, then none until the store changes); a failing build answers 500 with its reason;
# and the listen backlog is 128, not socketserver's 5.


@dataclass(frozen=True)
class Snapshot:
    """One read of the store: the gauges (what the OTLP export observes) and their page
    (what /metrics answers), cached together so both say the same."""

    gauges: Gauges
    text: str

    @classmethod
    def of(cls, gauges: Gauges) -> Snapshot:
        return cls(gauges, exposition(gauges))


T = TypeVar("T")


class CachedPage(Generic[T]):
    """`build()`'s page (or any value: `Snapshot`), rebuilt only when `marker()` changes (e.g.
    the store's `change_marker`), looked at most every `min_age` seconds. Concurrent callers
    share one build: a scrape storm costs one page, not one per scrape."""

    def __init__(
        self,
        build: Callable[[], T],
        marker: Callable[[], object],
        *,
        min_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build, self._marker = build, marker
        self.min_age, self._clock = min_age, clock
        self._lock = threading.Lock()
        self._page: T | None = None
        self._mark: object = None
        self._checked = -math.inf
        self.builds = 0

    def __call__(self) -> T:
        with self._lock:
            now = self._clock()
            if self._page is not None and now - self._checked < self.min_age:
                return self._page
            mark = self._marker()
            if self._page is None or mark != self._mark:
                self._page = self._build()
                self._mark = mark
                self.builds += 1
            self._checked = self._clock()
            return self._page


def make_metrics_server(
    build: Callable[[], str], host: str = "127.0.0.1", port: int = 9464
) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) answering GET /metrics with `build()`; port 0 picks a
    free port (see `server.server_address`). Each scrape calls `build` anew."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
            path = self.path.split("?", 1)[0]
            if path not in ("/metrics", "/"):
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")
                return
            if path == "/":
                self._reply(200, "text/plain; charset=utf-8", b"aiops metrics at /metrics\n")
                return
            try:
                body = build().encode()
            except Exception as exc:  # a scrape must get an answer, and the server must live on
                log.exception("building the metrics page failed")
                self._reply(500, "text/plain; charset=utf-8", f"error: {exc}\n".encode())
                return
            self._reply(200, CONTENT_TYPE, body)

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("%s " + format, self.address_string(), *args)

    return _Server((host, port), Handler)


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a burst of scrapes overflows it and the kernel drops
    # the SYNs, which clients resend only after a second
    request_queue_size = 128
    daemon_threads = True


def serve_metrics(
    build: Callable[[], str],
    host: str = "127.0.0.1",
    port: int = 9464,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve `build()` at http://host:port/metrics until interrupted (Ctrl-C).

    `on_ready` receives the URL once the socket listens (port 0: the port picked)."""
    server = make_metrics_server(build, host, port)
    bound_host, bound_port = server.server_address[:2]
    if on_ready is not None:
        on_ready(f"http://{bound_host}:{bound_port}/metrics")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
