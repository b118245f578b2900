"""Alerts per day and model, and the daily AI-Ops overview page."""

from typing import Any

import dagster as dg

from aiops_pipelines.alerting.outbox import deliver
from aiops_pipelines.alerting.rules import evaluate_and_store
from aiops_pipelines.orchestration.partitions import daily_partitions, date_x_model, split_key
from aiops_pipelines.orchestration.resources import MlflowResource, MonitoringConfig, StoreResource
from assets.monitoring import GROUP, OWNERS, drift_report
from assets.ops import ops_report
from assets.performance import performance_report

#: The overview's MLflow experiment (it covers every tenant and model).
OVERVIEW_KEY = "all.overview"
#: Days of feed, drift heat map and trends on each page.
OVERVIEW_DAYS = 14


def _alerts_md(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No alert firing."
    lines = ["| severity | signal | column | since | fired | notified | muted |", "|---" * 7 + "|"]
    for r in rows:
        muted = "silenced" if r["silenced"] else "inhibited" if r["inhibited"] else ""
        lines.append(
            f"| {r['severity']} | {r['signal']} | {r['column'] or '-'} | {r['first_seen']} | "
            f"{r['fired_on']} | {r['notified']} | {muted} |"
        )
    return "\n".join(lines)


@dg.asset(
    partitions_def=date_x_model,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql"},
    # Not canary_report: it materializes only while a canary is live, and Dagster skips the
    # downstream steps of an optional output that did not materialize. Canary findings are read
    # from the store like every other (a canary report of the same run that finishes after this
    # step is evaluated with the next day).
    deps=[drift_report, performance_report, ops_report],
    check_specs=[
        dg.AssetCheckSpec(
            "alerts_delivered",
            asset="model_alerts",
            description="every pending alert notification was accepted by its route",
        )
    ],
)
def model_alerts(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
) -> dg.MaterializeResult:
    """The alert rules replayed over the model's findings up to this day (persistence,
    keep-firing, repeat, inhibition, silences from the config), the alert states stored, new
    notifications queued per route, and every pending notification delivered (grouped per
    route, tenant and model, with retries). A route that fails keeps its notifications pending
    for the next run; the check turns yellow."""
    day, key = split_key(context)
    cfg = monitoring_config.load()
    model = cfg.model(key)
    db = store.open(cfg)
    result = evaluate_and_store(db, cfg.alerting, model.tenant, model.name, day)
    report = deliver(db, cfg.alerting)
    for route, error in report.errors.items():
        context.log.warning(f"alert route '{route}' failed, notifications kept pending: {error}")
    pending = db.deliveries(status="pending")
    firing = [a.row() for a in result.firing]
    by_sev = {s: sum(1 for a in firing if a["severity"] == s) for s in ("warning", "critical")}
    metadata: dict[str, Any] = {
        "firing": len(firing),
        "firing_critical": by_sev["critical"],
        "firing_warning": by_sev["warning"],
        "pending_alerts": sum(1 for a in result.alerts if a.state == "pending"),
        "new_events": len(result.events),
        "notifications_sent": sum(report.sent.values()),
        "notifications_pending": len(pending),
        "alerts": dg.MetadataValue.md(_alerts_md(firing)),
        "sent_per_route": dg.MetadataValue.json(report.sent),
    }
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="alerts_delivered",
                passed=report.ok,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "failed_per_route": dg.MetadataValue.json(report.failed),
                    "errors": dg.MetadataValue.json(report.errors),
                    "pending": len(pending),
                },
            )
        ],
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "html", "mlflow"},
    # each day depends on every model's alerts of that day (Dagster maps the date dimension)
    deps=[model_alerts],
)
def ops_overview(
    context: dg.AssetExecutionContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """One self-contained HTML page for the day: health per tenant and model, drift heat map,
    performance trend with thresholds, canary status, the anomaly feed, alerts and deliveries,
    recent actions. Written under the artifacts folder and logged to MLflow."""
    from aiops_pipelines.views.overview import feed
    from aiops_pipelines.views.page import render_overview

    day = context.partition_key
    cfg = monitoring_config.load()
    db = store.open(cfg)
    alerts, deliveries = db.alerts(), db.deliveries()
    items = feed(db, day=day, days=OVERVIEW_DAYS, alerts=alerts)  # read once, for both
    html = render_overview(
        db,
        cfg,
        day=day,
        alerts=alerts,
        deliveries=deliveries,
        window_days=OVERVIEW_DAYS,
        events=items,
    )
    out_dir = cfg.artifacts_path / "overview"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"overview_{day}.html"
    path.write_text(html, encoding="utf-8")
    uri = ""
    tracker = mlflow.tracker(cfg)
    if tracker:
        with tracker.partition_run(OVERVIEW_KEY, "ops_overview", day) as run:
            uri = run.log_artifact(path)
            run.log_metrics(
                {
                    "alerts_firing": float((alerts["state"] == "firing").sum()),
                    "deliveries_pending": float((deliveries["status"] == "pending").sum()),
                }
            )
    firing = alerts[alerts["state"] == "firing"]
    return dg.MaterializeResult(
        metadata={
            "overview": dg.MetadataValue.url(path.resolve().as_uri()),
            "path": dg.MetadataValue.path(str(path)),
            "mlflow_artifact": uri,
            "feed_items_today": int((items["when"] == day).sum()),
            "alerts_firing": len(firing),
            "alerts_firing_critical": int((firing["severity"] == "critical").sum()),
            "size_kb": round(path.stat().st_size / 1024, 1),
        }
    )
