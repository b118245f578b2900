"""Operational signals and their anomalies, per day and model."""

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from aiops_pipelines.orchestration.partitions import date_x_model, split_key
from aiops_pipelines.orchestration.resources import MlflowResource, MonitoringConfig, StoreResource
from aiops_pipelines.signals.anomaly import anomaly_findings, detect
from aiops_pipelines.signals.operations.day import ops_for_day
from assets.monitoring import GROUP, OWNERS

MIN_HISTORY_DAYS = 7
"""Days of history before anomalies are looked for: the baseline is warming up before."""

SERIES = {  # stored hourly metric -> anomaly kind
    "throughput_hour": "throughput",
    "latency_p95_hour": "latency",
    "errors_hour": "errors",  # counts, not rates: a rate hides how few requests it rests on
}


def _hourly(frame: pd.DataFrame) -> pd.Series:
    if frame.empty:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    index = pd.to_datetime(frame["column"] + ":00:00+00:00", utc=True)
    return pd.Series(frame["value"].to_numpy(dtype=float), index=index).sort_index()


@dg.asset(
    partitions_def=date_x_model,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "throughput",
            asset="ops_report",
            description="no throughput drop or spike against the seasonal baseline",
        ),
        dg.AssetCheckSpec(
            "latency",
            asset="ops_report",
            description="no latency p95 regression against the seasonal baseline",
        ),
        dg.AssetCheckSpec(
            "error_rate",
            asset="ops_report",
            description="no error-rate jump against the seasonal baseline",
        ),
    ],
)
def ops_report(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Latency p50/p95/p99, throughput per hour and per day, error rate, per model and
    version, and cost per 1,000 predictions when the config gives a unit cost; hourly series
    tested against a robust hour-of-day x weekday baseline of the previous weeks."""
    day, key = split_key(context)
    cfg = monitoring_config.load()
    model = cfg.model(key)
    ops = ops_for_day(model, day)
    metrics = ops.metrics()
    db = store.open(cfg)
    first = (date.fromisoformat(day) - timedelta(days=model.ops.history_days)).isoformat()
    last = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    anomalies: dict[str, list[Any]] = {}
    stored = db.metric_history(
        model.tenant, model.name, metric=list(SERIES), asset="ops_report", start=first, end=last
    )
    warming: list[str] = []
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
        )
    # one finding per (signal, direction) and day: the strongest episode, the others counted
    strongest: dict[tuple[str, str], Any] = {}
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
    db.replace_partition(
        model.tenant, model.name, day, "ops_report", metrics=metrics, findings=findings
    )
    total = ops.total
    tracker = mlflow.tracker(cfg)
    if tracker:
        with tracker.partition_run(model.key, "ops_report", day) as run:
            run.log_metrics({m: v for (m, c), v in metrics.items() if not c})
    checks = []
    for name, kind in (
        ("throughput", "throughput"),
        ("latency", "latency"),
        ("error_rate", "errors"),
    ):
        found = anomalies[kind]
        checks.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not found,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "anomalies": "; ".join(
                        f"{a.direction} {a.start:%H:%M}-{a.end:%H:%M} z={a.peak_z:.1f}"
                        for a in found
                    )
                    or "none"
                },
            )
        )
    metadata: dict[str, Any] = {
        "throughput_day": int(total.n),
        "error_rate": float(total.error_rate),
        "latency_p50": float(total.latency(0.50)),
        "latency_p95": float(total.latency(0.95)),
        "latency_p99": float(total.latency(0.99)),
        "peak_hour_requests": int(ops.hourly_requests.max()),
        "versions": ", ".join(f"v{v}: {o.n}" for v, o in sorted(ops.versions.items())),
        "n_anomalies": len(findings),
        "baseline_warming_up": ", ".join(warming) or "no",
    }
    if ops.cost_per_1000 is not None:
        metadata["cost_per_1000"] = float(ops.cost_per_1000)
    return dg.MaterializeResult(metadata=metadata, check_results=checks)
