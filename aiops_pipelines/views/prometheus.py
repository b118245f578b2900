"""The latest monitoring numbers as Prometheus gauges (text exposition format 0.0.4).

`render_metrics` reads the monitoring store and returns the page a Prometheus server scrapes;
`serve_metrics` serves it at /metrics. Every gauge is labelled with `tenant` and `model`.

What "latest" means: each asset's numbers come from its latest partition up to `day` (each
model's own latest partition when `day` is None), looked back at most `LOOKBACK_DAYS`;
`aiops_last_partition_timestamp_seconds{asset=...}` says which partition that is, so an alert
rule can catch a model whose pipeline stopped. Performance gauges come from the latest day
whose primary metric is known (labels arrive late; the newest days have few), and
`aiops_performance_partition_timestamp_seconds` says which. Canary gauges are exposed only while
a canary runs (its report is on the model's latest partition). Latency is stored in
milliseconds and exposed in seconds, the Prometheus base unit.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

from aiops_pipelines.core.config import AppConfig
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
    "LOOKBACK_DAYS",
    "CachedPage",
    "make_metrics_server",
    "render_metrics",
    "serve_metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LOOKBACK_DAYS = 35
log = logging.getLogger(__name__)

# name -> help, in the order they are written
_FAMILIES: dict[str, str] = {
    "aiops_last_partition_timestamp_seconds": (
        "Start (00:00 UTC) of the latest partition an asset stored for the model."
    ),
    "aiops_drift_share": "Share of the model's features that drifted (latest drift_report).",
    "aiops_drifted_features": "Number of drifted features (latest drift_report).",
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
    "aiops_throughput_predictions_per_day": "Predictions served on the latest ops_report day.",
    "aiops_latency_seconds": "Serving latency quantiles on the latest ops_report day.",
    "aiops_error_rate": "Share of predictions with an error status on the latest ops_report day.",
    "aiops_cost_per_1000_predictions": "Serving cost per 1,000 predictions (latest ops_report).",
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


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _day_seconds(day: str) -> float:
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=dt.UTC)
    return start.timestamp()


class _Page:
    """Samples grouped by family, written in `_FAMILIES` order; NaN samples are dropped
    (an unknown value is better absent than a NaN an alert rule would compare against)."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        if name not in _FAMILIES:
            raise KeyError(f"undeclared metric family {name!r}")
        value = float(value)
        if math.isnan(value):
            return
        key = tuple((k, str(v)) for k, v in labels.items())
        self.samples.setdefault(name, {})[key] = value

    def render(self) -> str:
        lines: list[str] = []
        for name, help_text in _FAMILIES.items():
            samples = self.samples.get(name)
            if not samples:
                continue
            lines.append(f"# HELP {name} {_escape_help(help_text)}")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in samples.items():
                body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                lines.append(
                    f"{name}{{{body}}} {_number(value)}" if body else f"{name} {_number(value)}"
                )
        return "\n".join(lines) + "\n" if lines else ""


def _latest_rows(frame: pd.DataFrame, asset: str) -> tuple[str | None, pd.DataFrame]:
    rows = frame[frame["asset"] == asset]
    if rows.empty:
        return None, rows
    last = str(rows["partition"].max())
    return last, rows[rows["partition"] == last]


def _get(rows: pd.DataFrame, metric: str, column: str = "") -> float:
    hit = rows[(rows["metric"] == metric) & (rows["column"] == column)]
    return float(hit["value"].iloc[-1]) if len(hit) else math.nan


def render_metrics(
    store: MonitoringStore,
    cfg: AppConfig | None,
    *,
    day: str | None = None,
    alerts: pd.DataFrame | None = None,
    deliveries: pd.DataFrame | None = None,
) -> str:
    """The latest gauges of every model (configured or stored) in the text format 0.0.4.

    `day` caps the partitions read (default: each model's latest). Alert gauges are written
    only when `alerts`/`deliveries` are given; empty frames give zeros.
    """
    page = _Page()
    al = normalize_alerts(alerts) if alerts is not None else None
    for model in monitored_models(store, cfg):
        t, m = model.tenant, model.name
        base = {"tenant": t, "model": m}
        last = latest_partition(store, t, m, end=day)
        if al is not None:
            firing = al[(al["tenant"] == t) & (al["model"] == m) & (al["state"] == "firing")]
            for sev in Severity:
                n = int((firing["severity"] == sev.value).sum())
                page.add("aiops_alerts_firing", {**base, "severity": sev.value}, n)
        if last is None:
            continue
        start = (dt.date.fromisoformat(last) - dt.timedelta(days=LOOKBACK_DAYS)).isoformat()
        frame = store.metric_history(t, m, start=start, end=last)
        frame = frame[~frame["metric"].str.endswith("_hour")]
        for asset in sorted(set(frame["asset"])):
            newest = str(frame.loc[frame["asset"] == asset, "partition"].max())
            page.add(
                "aiops_last_partition_timestamp_seconds",
                {**base, "asset": asset},
                _day_seconds(newest),
            )

        _, drift = _latest_rows(frame, Asset.DRIFT_REPORT)
        page.add("aiops_drift_share", base, _get(drift, "drift_share"))
        page.add("aiops_drifted_features", base, _get(drift, "n_drifted"))

        perf = performance_history(store, model, last, 1)
        primary = primary_metric_of(model, perf)
        _add_performance(page, base, perf, primary)
        if primary:
            ref = reference_performance_value(store, t, m, primary)
            page.add("aiops_performance_reference", {**base, "metric": primary}, ref)

        _, ops = _latest_rows(frame, Asset.OPS_REPORT)
        page.add("aiops_throughput_predictions_per_day", base, _get(ops, "throughput_day"))
        for q, metric in (("0.5", "latency_p50"), ("0.95", "latency_p95"), ("0.99", "latency_p99")):
            page.add("aiops_latency_seconds", {**base, "quantile": q}, _get(ops, metric) / 1000)
        page.add("aiops_error_rate", base, _get(ops, "error_rate"))
        page.add("aiops_cost_per_1000_predictions", base, _get(ops, "cost_per_1000"))

        found = store.findings(t, m, start=last, end=last)
        canary_day, canary = _latest_rows(frame, Asset.CANARY_REPORT)
        if canary_day == last:
            _add_canary(page, base, canary, found)
        for sev in Severity:
            n = int((found["severity"] == sev.value).sum())
            page.add("aiops_findings", {**base, "severity": sev.value}, n)

    if deliveries is not None:
        _add_deliveries(page, normalize_deliveries(deliveries))
    queued, oldest, _ = store.tracking_backlog() if day is None else (0, None, None)
    if queued or (day is None and page.samples):  # now's state, not a day's; none: no page
        page.add("aiops_mlflow_queued_loggings", {}, queued)
        if oldest is not None:
            page.add("aiops_mlflow_queued_oldest_timestamp_seconds", {}, oldest.timestamp())
    return page.render()


def _add_performance(
    page: _Page, base: dict[str, str], perf: pd.DataFrame, primary: str | None
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
    page: _Page, base: dict[str, str], canary: pd.DataFrame, found: pd.DataFrame
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


def _add_deliveries(page: _Page, deliveries: pd.DataFrame) -> None:
    for (route, status), group in deliveries.groupby(["route", "status"], sort=True):
        page.add("aiops_alert_deliveries", {"route": route, "status": status}, len(group))
    for route, group in deliveries.groupby("route", sort=True):
        failing = (group["status"] != "sent") & group["last_error"].notna()
        page.add("aiops_alert_deliveries_failing", {"route": route}, int(failing.sum()))


# -- the /metrics endpoint -------------------------------------------------------------------


class CachedPage:
    """`build()`'s page, rebuilt only when `marker()` changes (e.g. the store's
    `change_marker`), looked at most every `min_age` seconds. Concurrent callers share one
    build: a scrape storm costs one page, not one per scrape."""

    def __init__(
        self,
        build: Callable[[], str],
        marker: Callable[[], object],
        *,
        min_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build, self._marker = build, marker
        self.min_age, self._clock = min_age, clock
        self._lock = threading.Lock()
        self._page: str | None = None
        self._mark: object = None
        self._checked = -math.inf
        self.builds = 0

    def __call__(self) -> str:
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
