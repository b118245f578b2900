"""Standard telemetry over a real store: a real Prometheus server scrapes `aiops metrics
--serve` and its query API returns our gauges; the same gauges over OTLP, read by the SDK's
in-memory reader and received by a real OTLP/HTTP endpoint from `aiops metrics --otlp`; the
Grafana dashboard asks only for gauges we expose."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from aiops_pipelines.core.config import AppConfig, TelemetryConfig
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views import telemetry
from aiops_pipelines.views.prometheus import (
    FAMILIES,
    HISTORY_GAUGES,
    CachedPage,
    Gauges,
    HistoryGauge,
    Snapshot,
    gauge_samples,
    render_metrics,
)
from aiops_pipelines.views.telemetry import GaugeExport
from tests.servers import OtlpReceiver, free_port
from tests.unit.views.support import LAST, _alerts, _deliveries
from tests.unit.views.test_prometheus import parse_exposition

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "aiops_pipelines" / "deploy" / "grafana"

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _expected(store: MonitoringStore, cfg: AppConfig) -> Series:
    """What `aiops metrics` exposes now: every series of every family, from the store."""
    gauges = gauge_samples(store, cfg, alerts=store.alerts(), deliveries=store.deliveries())
    return _series(gauges)


def _series(gauges: Gauges) -> Series:
    return {
        (name, tuple(sorted(labels.items()))): value
        for name in FAMILIES
        for labels, value in gauges.series(name)
    }


@contextmanager
def _aiops_metrics(config: Path, *args: str, log: Path) -> Iterator[Callable[[], str]]:
    """`aiops metrics --config CONFIG ARGS` as a user starts it (stopped with SIGTERM, as a
    service manager does); yields a reader of its next line of output."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiops_pipelines.cli", "metrics", "--config", str(config)]
            + list(args),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=REPO,
        )

    def next_line() -> str:
        line = proc.stdout.readline()
        assert line, f"aiops metrics said nothing: {log.read_text()[-2000:]}"
        return line

    try:
        yield next_line
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _wait(what: str, probe: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if got := probe():
                return got
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.25)


# -- a real Prometheus server ------------------------------------------------------------------


@pytest.mark.slow  # ~10 s: Prometheus starts, then scrapes every second
@pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus is not installed (`make prometheus`: Debian's package)",
)
def test_a_real_prometheus_scrapes_aiops_metrics_and_returns_the_stored_values(
    world, tmp_path: Path
) -> None:
    path, cfg, store = world
    with _aiops_metrics(path, "--serve", "0", log=tmp_path / "metrics.log") as lines:
        line = lines()
        m = re.search(r"http://(127\.0\.0\.1:\d+)/metrics", line)
        assert m, line
        target = m.group(1)
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {"job_name": "aiops", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        log = tmp_path / "prometheus.log"
        with log.open("w") as out:
            prom = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        api = f"http://127.0.0.1:{port}/api/v1"
        try:

            def target_up() -> bool:
                active = requests.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
                return any(t["scrapeUrl"].endswith(f"{target}/metrics") and t["health"] == "up"
                           for t in active)  # fmt: skip

            _wait("the aiops target to be up", target_up, 60, log)

            def query(promql: str) -> list[dict]:
                body = requests.get(f"{api}/query", params={"query": promql}, timeout=10).json()
                assert body["status"] == "success", body
                return body["data"]["result"]

            churn = 'tenant="acme",model="churn"'
            assert query(f"aiops_drift_share{{{churn}}}")[0]["value"][1] == "0.5"
            assert query(f'aiops_latency_seconds{{{churn},quantile="0.95"}}')[0]["value"][1] == (
                "0.085"
            )
            assert query('aiops_throughput_predictions_per_day{model="eta"}')[0]["value"][1] == (
                "1500"
            )
            assert query(f'aiops_findings{{{churn},severity="critical"}}')[0]["value"][1] == "2"
            # every series Prometheus holds is one `aiops metrics` exposes, with its value
            got = {
                (
                    r["metric"]["__name__"],
                    tuple(sorted((k, v) for k, v in r["metric"].items()
                                 if k not in ("__name__", "job", "instance"))),
                ): float(r["value"][1])
                for r in query('{__name__=~"aiops_.+"}')
            }  # fmt: skip
            expected = _expected(store, cfg)
            assert got.keys() == expected.keys()
            assert all(math.isclose(got[k], expected[k], rel_tol=1e-12) for k in expected)
            assert all(r["metric"]["job"] == "aiops" for r in query("aiops_drift_share"))
            # the Grafana dashboard's queries parse and answer, "All" tenants and models chosen
            exposed = {name for name, _ in expected}
            for title, expr in _dashboard_queries():
                promql = expr.replace("$tenant", ".*").replace("$model", ".*")
                names = set(re.findall(r"\baiops_[a-z0-9_]+", expr))
                assert bool(query(promql)) == (names <= exposed), (title, promql)
            tenants = requests.get(
                f"{api}/label/tenant/values", params={"match[]": "aiops_findings"}, timeout=10
            ).json()["data"]
            assert tenants == ["acme", "globex"]
        finally:
            prom.terminate()
            try:
                prom.wait(timeout=30)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(timeout=30)


# -- the same gauges over OTLP -----------------------------------------------------------------


def _snapshot(store: MonitoringStore, cfg: AppConfig) -> CachedPage[Snapshot]:
    def build() -> Snapshot:
        return Snapshot.of(
            gauge_samples(store, cfg, alerts=store.alerts(), deliveries=store.deliveries())
        )

    return CachedPage(build, store.change_marker)


def test_otlp_gauges_are_the_prometheus_gauges_from_one_read_per_collection(world) -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    _, cfg, store = world
    snapshot = _snapshot(store, cfg)
    reader = InMemoryMetricReader()
    export = GaugeExport(snapshot, [reader])
    try:
        data = reader.get_metrics_data()
        got: Series = {}
        for rm in data.resource_metrics:
            assert rm.resource.attributes["service.name"] == "aiops-pipelines"
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    assert metric.description == FAMILIES[metric.name]
                    for p in metric.data.data_points:
                        key = (metric.name, tuple(sorted(p.attributes.items())))
                        got[key] = p.value
        expected = _expected(store, cfg)
        assert got == expected
        assert ("aiops_drift_share", (("model", "churn"), ("tenant", "acme"))) in got
        assert snapshot.builds == 1  # every gauge of the collection observed one read
    finally:
        export.shutdown()


def test_aiops_metrics_otlp_pushes_the_gauges_to_a_real_otlp_endpoint(
    world, tmp_path: Path
) -> None:
    path, cfg, store = world
    receiver = OtlpReceiver()
    try:
        args = ("--otlp-endpoint", receiver.url, "--otlp-interval", "1")
        with _aiops_metrics(path, *args, log=tmp_path / "otlp.log") as lines:
            assert f"exporting to {receiver.url}/v1/metrics every 1 s" in lines()
            _wait("an OTLP export", lambda: receiver.posts, 60, tmp_path / "otlp.log")
        assert {p for p, _ in receiver.posts} == {"/v1/metrics"}
        attributes = receiver.metric_requests()[-1].resource_metrics[0].resource.attributes
        resource = {a.key: a.value.string_value for a in attributes}
        assert resource["service.name"] == "aiops-pipelines"
        got = receiver.gauges()
        assert got == _expected(store, cfg)
        churn = (("model", "churn"), ("tenant", "acme"))
        assert got[("aiops_drift_share", churn)] == 0.5
        q95 = tuple(sorted((*churn, ("quantile", "0.95"))))
        assert got[("aiops_latency_seconds", q95)] == 0.085
    finally:
        receiver.close()


def test_aiops_metrics_serves_and_exports_one_read_and_exports_once_more_when_stopped(
    world, tmp_path: Path, monkeypatch
) -> None:
    """--serve with --otlp, the endpoint from OTEL_EXPORTER_OTLP_ENDPOINT: the scrape and the
    OTLP export carry the same series; an hour's interval has not passed, yet SIGTERM makes a
    last export."""
    path, _, _ = world
    receiver = OtlpReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)  # the CLI inherits it
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    args = ("--serve", "0", "--otlp", "--otlp-interval", "3600")
    try:
        with _aiops_metrics(path, *args, log=tmp_path / "both.log") as lines:
            assert f"exporting to {receiver.url}/v1/metrics every 3600 s" in lines()
            url = re.search(r"http://127\.0\.0\.1:\d+/metrics", lines()).group()
            scraped = requests.get(url, timeout=30).text
            assert not receiver.posts
        assert len(receiver.metric_requests()) == 1
        page = {(n, tuple(sorted(labels))): v for n, labels, v in parse_exposition(scraped)}
        assert receiver.gauges() == page
    finally:
        receiver.close()


def test_aiops_metrics_otlp_without_an_endpoint_says_where_to_set_one(
    world, monkeypatch, capsys
) -> None:
    from aiops_pipelines.cli import main

    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    path, _, _ = world
    assert main(["metrics", "--config", str(path), "--otlp"]) != 0
    err = capsys.readouterr().err
    assert "--otlp-endpoint" in err and "telemetry.otlp_endpoint" in err


# -- traces: on only when configured ---------------------------------------------------------


def test_no_telemetry_configured_means_no_span_and_no_exporter(monkeypatch) -> None:
    for var in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(telemetry, "_providers", {})
    with telemetry.asset_span(
        TelemetryConfig(),
        run_id=str(uuid.uuid4()),
        asset="drift_report",
        tenant="acme",
        model="churn",
        partition="2026-03-14",
    ) as span:
        assert not span.is_recording()
        span.set_attribute("aiops.rows", 1)  # what publish does: a no-op
    assert telemetry._providers == {}


def test_where_spans_and_gauges_go(monkeypatch) -> None:
    for var in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
    ):
        monkeypatch.delenv(var, raising=False)
    on = TelemetryConfig(otlp_endpoint="http://collector:4318/")
    assert telemetry.traces_endpoint(on) == "http://collector:4318/v1/traces"
    assert telemetry.metrics_endpoint(on) == "http://collector:4318/v1/metrics"
    assert telemetry.metrics_endpoint(on, "http://other:4318") == "http://other:4318/v1/metrics"
    assert (
        telemetry.traces_endpoint(TelemetryConfig(otlp_endpoint="http://c:4318", traces=False))
        is None
    )
    assert telemetry.traces_endpoint(TelemetryConfig()) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")
    assert telemetry.traces_endpoint(TelemetryConfig()) == "http://env:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/v1/traces")
    assert telemetry.traces_endpoint(TelemetryConfig()) == "http://tempo:4318/v1/traces"
    assert telemetry.traces_endpoint(on) == "http://collector:4318/v1/traces"  # config first
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert telemetry.traces_endpoint(on) is None
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry.traces_endpoint(on) is None and telemetry.metrics_endpoint(on) is None
    with pytest.raises(ValueError, match="telemetry.otlp_endpoint must be an http"):
        TelemetryConfig(otlp_endpoint="collector:4317")


def test_a_step_in_another_process_joins_the_run_trace() -> None:
    """The trace id comes from the run id alone: any process running a step of the run
    computes the same one."""
    run_id = str(uuid.uuid4())
    assert telemetry.trace_id_of_run(run_id) == uuid.UUID(run_id).int
    assert telemetry.trace_id_of_run("not-a-uuid") == telemetry.trace_id_of_run("not-a-uuid")
    assert 0 < telemetry.trace_id_of_run("not-a-uuid") < 2**128


# -- adding a gauge ------------------------------------------------------------------------------


def test_a_history_gauge_is_one_table_line(world, monkeypatch) -> None:
    """A new family from a stored metric: one `HistoryGauge`, per column when asked."""
    import aiops_pipelines.views.prometheus as prom

    _, cfg, store = world
    store.replace_partition(
        "acme", "churn", LAST, "fairness_report",
        metrics={("demographic_parity_difference", "SEX"): 0.12,
                 ("demographic_parity_difference", "AGE_BAND"): 0.03},
        findings=[],
    )  # fmt: skip
    gauge = HistoryGauge(
        "aiops_fairness_demographic_parity_difference",
        "fairness_report",
        "demographic_parity_difference",
        "Demographic parity difference by sensitive attribute (latest fairness_report).",
        column_label="attribute",
    )
    monkeypatch.setattr(prom, "HISTORY_GAUGES", (*HISTORY_GAUGES, gauge))
    monkeypatch.setattr(prom, "FAMILIES", {**FAMILIES, gauge.name: gauge.help})
    s = parse_exposition(render_metrics(store, cfg))
    got = {dict(labels)["attribute"]: v for n, labels, v in s if n == gauge.name}
    assert got == {"SEX": 0.12, "AGE_BAND": 0.03}


def test_entries_of_one_family_share_their_help() -> None:
    helps: dict[str, set[str]] = {}
    for g in HISTORY_GAUGES:
        helps.setdefault(g.name, set()).add(g.help)
    assert all(len(h) == 1 for h in helps.values()), helps
    assert all(FAMILIES[g.name] == g.help for g in HISTORY_GAUGES)


# -- the Grafana dashboard ---------------------------------------------------------------------


def _panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def _every_family(store: MonitoringStore, cfg: AppConfig) -> Gauges:
    """The families the small store's page carries once its last ops day has a unit cost and
    the outbox holds alerts and deliveries (what a live store has)."""
    history = store.metric_history("globex", "eta", start=LAST, end=LAST)
    # a cost on the ops day; an SLO, fairness and multivariate drift on the same day
    extra = {
        "ops_report": {("cost_per_1000", ""): 0.42},
        "slo_report": {("slo_budget_remaining", "fast"): 0.78, ("slo_burn_rate_1h", "fast"): 2.0},
        "drift_report": {("domain_auc", ""): 0.52},
        "performance_report": {("disparate_impact_ratio", "region"): 0.9},
    }
    for asset, more in extra.items():
        rows = history[history["asset"] == asset]
        metrics = {(r.metric, r.column): r.value for r in rows.itertuples()}
        store.replace_partition(
            "globex", "eta", LAST, asset, metrics={**metrics, **more}, findings=[]
        )
    return gauge_samples(store, cfg, alerts=_alerts(), deliveries=_deliveries())


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the shipped dashboard."""
    dashboard = json.loads((GRAFANA / "dashboards" / "aiops.json").read_text())
    return [
        (panel["title"], t["expr"])
        for panel in _panels(dashboard)
        for t in panel.get("targets", [])
    ]


def test_the_grafana_dashboard_asks_only_for_gauges_we_expose(world) -> None:
    _, cfg, store = world
    dashboard = json.loads((GRAFANA / "dashboards" / "aiops.json").read_text())
    gauges = _every_family(store, cfg)
    exposed = set(gauges.samples)
    per_model = {n for n in exposed if all("tenant" in labels for labels, _ in gauges.series(n))}
    exprs = _dashboard_queries()
    assert len(exprs) >= 10
    used = set()
    for title, expr in exprs:
        names = set(re.findall(r"\baiops_[a-z0-9_]+", expr))
        assert names, f"panel {title!r} queries no aiops gauge: {expr}"
        assert names <= exposed, f"panel {title!r} asks for {names - exposed}"
        used |= names
    # the gauges an on-call engineer reads first are all on it
    assert {"aiops_drift_share", "aiops_performance", "aiops_latency_seconds",
            "aiops_error_rate", "aiops_alerts_firing", "aiops_findings",
            "aiops_last_partition_timestamp_seconds"} <= used  # fmt: skip
    # every panel reads the provisioned datasource through the variable
    for panel in _panels(dashboard):
        if panel.get("type") != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("tenant", "model"):
        v = variables[name]
        assert v["type"] == "query" and v["multi"] and v["includeAll"]
        label_values = re.fullmatch(r"label_values\((aiops_[a-z_]+)(\{.*\})?, *(\w+)\)",
                                    v["query"]["query"])  # fmt: skip
        assert label_values and label_values.group(3) == name
        assert label_values.group(1) in exposed
    assert "$tenant" in variables["model"]["query"]["query"]  # models of the chosen tenants
    # every query of a per-model gauge is filtered by both variables
    for title, expr in exprs:
        if set(re.findall(r"\baiops_[a-z0-9_]+", expr)) & per_model:
            assert 'tenant=~"$tenant"' in expr and 'model=~"$model"' in expr, (title, expr)


def test_the_grafana_provisioning_points_at_the_dashboard_and_a_prometheus_datasource() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "aiops.yaml").read_text())
    (ds,) = sources["datasources"]
    assert ds["type"] == "prometheus" and ds["access"] == "proxy" and ds["url"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "aiops.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).name == "dashboards"
    dashboard = json.loads((GRAFANA / "dashboards" / "aiops.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and "id" not in dashboard
