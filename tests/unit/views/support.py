"""The stored state the view tests read: ten days of two models in a real SQLite store (drift,
decay, a failed canary and its rollback, a throughput drop, a failed run), its config, and
the alert and delivery frames the outbox would hand the views."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from aiops_pipelines.core.findings import Finding, Severity, Signal
from aiops_pipelines.io.store import MonitoringStore

DAYS = [(dt.date(2026, 3, 5) + dt.timedelta(days=i)).isoformat() for i in range(10)]
LAST = DAYS[-1]  # 2026-03-14
RUN_ID = "0f3c9a7e-5b1d-4c2e-9f00-runfailed01"
SCRIPT = '<script>alert("pwned")</script>'
CHURN_AGE_DRIFT = {"2026-03-12": 0.14, "2026-03-13": 0.31, "2026-03-14": 0.35}
CHURN_AUC = {d: 0.90 - (0.03 * max(0, i - 5)) for i, d in enumerate(DAYS)}
CHURN_COVERAGE = {d: 0.9 for d in DAYS} | {"2026-03-13": 0.3, "2026-03-14": 0.0}


def _finding(tenant, model, day, asset, signal, severity, column="", message="", value=1.0):
    return Finding(
        tenant=tenant,
        model=model,
        partition=day,
        asset=asset,
        signal=signal,
        severity=Severity(severity),
        value=value,
        threshold=0.1,
        column=column,
        message=message or f"{signal} on {column or 'the model'}",
    )


def _config_dict(tmp_path: Path) -> dict:
    def model(name: str, task: str, numeric: list[str], **extra) -> dict:
        return {
            "name": name,
            "task": task,
            "features": {"numeric": numeric, "categorical": ["plan"]},
            "predictions": {"url": "sqlite:///world.db", "table": f"{name}_predictions"},
            "reference": {"url": "sqlite:///world.db", "table": f"{name}_reference"},
            **extra,
        }

    return {
        "storage": {
            "store_url": "sqlite:///store.db",
            "mlflow_tracking_uri": "sqlite:///mlflow.db",
            "artifacts_dir": "artifacts",
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    model(
                        "churn",
                        "binary_classification",
                        ["age", "tenure"],
                        columns={"score": "score"},
                        performance={"floors": {"roc_auc": [0.8, 0.7]}},
                    ),
                    model("fraud", "binary_classification", ["amount"]),
                ],
            },
            {"name": "globex", "models": [model("eta", "regression", ["distance"])]},
        ],
    }


def _fill(store: MonitoringStore) -> None:
    """Ten days of two models: acme.churn drifts on `age` and decays, runs a canary that fails
    and is rolled back; globex.eta has a throughput drop and a failed run. acme.fraud is
    configured but never ran."""
    store.save_profile(
        "acme",
        "churn",
        "reference",
        "reference",
        {"profile": {}, "performance": {"metrics": {"roc_auc": 0.9, "accuracy": 0.85}}},
        n_rows=5000,
    )
    for i, day in enumerate(DAYS):
        for tenant, name, rows in (("acme", "churn", 3000.0), ("globex", "eta", 1500.0)):
            store.replace_partition(
                tenant, name, day, "feature_profile", metrics={("rows", ""): rows}, findings=[]
            )
        age = CHURN_AGE_DRIFT.get(day, 0.02)
        sev = "critical" if age >= 0.25 else "warning" if age >= 0.1 else None
        drift_findings = []
        if sev:
            drift_findings.append(
                _finding("acme", "churn", day, "drift_report", Signal.FEATURE_DRIFT, sev, "age")
            )
        store.replace_partition(
            "acme",
            "churn",
            day,
            "drift_report",
            metrics={
                ("drift_share", ""): 0.5 if sev else 0.0,
                ("n_drifted", ""): 1.0 if sev else 0.0,
                ("n_features", ""): 3.0,
                ("drift_psi", "age"): age,
                ("drift_psi", "tenure"): 0.01,
                ("drift_chisquare", "plan"): 0.02,
                ("p_value", "plan"): 0.6,
            },
            findings=drift_findings,
        )
        perf_metrics = {
            ("coverage", ""): CHURN_COVERAGE[day],
            ("n_labelled", ""): 2700.0 * CHURN_COVERAGE[day],
            ("decay_level", ""): 2.0 if CHURN_AUC[day] < 0.8 else 0.0,
            ("estimated_roc_auc", ""): 0.88,
        }
        if CHURN_COVERAGE[day] > 0:
            perf_metrics[("roc_auc", "")] = CHURN_AUC[day]
            perf_metrics[("accuracy", "")] = 0.8
        decay = []
        if day in ("2026-03-12", "2026-03-13"):
            decay.append(
                _finding(
                    "acme",
                    "churn",
                    day,
                    "performance_report",
                    Signal.PERFORMANCE_DECAY,
                    "critical",
                    value=CHURN_AUC[day],
                )
            )
        store.replace_partition(
            "acme", "churn", day, "performance_report", metrics=perf_metrics, findings=decay
        )
        store.replace_partition(
            "acme",
            "churn",
            day,
            "ops_report",
            metrics={
                ("throughput_day", ""): 3000.0,
                ("latency_p50", ""): 20.0,
                ("latency_p95", ""): 85.0,
                ("latency_p99", ""): 140.0,
                ("error_rate", ""): 0.001,
                ("throughput_hour", f"{day}T00"): 125.0,
            },
            findings=[],
        )
        eta_findings = []
        if day == "2026-03-12":
            eta_findings.append(
                _finding(
                    "globex",
                    "eta",
                    day,
                    "ops_report",
                    Signal.THROUGHPUT_ANOMALY,
                    "warning",
                    "drop",
                    "throughput drop 02:00-06:00",
                    value=-6.5,
                )
            )
        store.replace_partition(
            "globex",
            "eta",
            day,
            "ops_report",
            metrics={
                ("throughput_day", ""): 800.0 if day == "2026-03-12" else 1500.0,
                ("latency_p50", ""): 10.0,
                ("latency_p95", ""): 42.5,
                ("latency_p99", ""): 60.0,
                ("error_rate", ""): 0.02,
            },
            findings=eta_findings,
        )
        store.replace_partition(
            "globex",
            "eta",
            day,
            "drift_report",
            metrics={("drift_share", ""): 0.0, ("drift_wasserstein", "distance"): 0.01},
            findings=[],
        )
        store.replace_partition(
            "globex",
            "eta",
            day,
            "performance_report",
            metrics={("mae", ""): 3.0 + 0.1 * i, ("coverage", ""): 0.5},
            findings=[],
        )
        if i >= 6:  # a canary from 2026-03-11 that fails on its last day
            canary_findings = []
            if day == LAST:
                canary_findings.append(
                    _finding("acme", "churn", day, "canary_report", "canary_fail", "critical", "3")
                )
            store.replace_partition(
                "acme",
                "churn",
                day,
                "canary_report",
                metrics={
                    ("canary_estimate", ""): -0.05,
                    ("canary_lower", ""): -0.08,
                    ("canary_upper", ""): -0.03,
                    ("canary_share_cumulative", ""): 0.1,
                    ("canary_coverage", ""): 0.6,
                    ("canary_n", "3"): 300.0,
                    ("champion_n", "2"): 2700.0,
                },
                findings=canary_findings,
            )
    store.record_finding(
        _finding(
            "globex",
            "eta",
            "2026-03-13",
            "pipeline",
            Signal.PIPELINE_FAILURE,
            "critical",
            RUN_ID,
            f"run {RUN_ID} of monitoring_job failed: ops_report: bad row {SCRIPT}\nTraceback",
        )
    )
    store.record_action(
        "canary_sensor",
        "rollback_canary",
        "acme",
        "churn",
        partition=LAST,
        details={"version": "3", "reason": "canary credibly worse than the champion"},
    )
    store.record_action(
        "retrain_job",
        "retrain",
        "acme",
        "churn",
        partition="2026-03-13",
        details={"version": "4", "reason": "critical decay", "beats_champion": True},
    )
    store.record_action(
        "cli", "start_canary", "acme", "churn", partition="2026-01-02", details={"version": "2"}
    )


def _alerts() -> pd.DataFrame:
    now = pd.Timestamp("2026-03-14T06:00:00Z")
    rows = [
        ("acme", "churn", "fp-age", "feature_drift", "age", "critical", "firing", "2026-03-12",
         "2026-03-14", "2026-03-13", None, False, False, 1, "age drifted (psi 0.35)", 0.35, 0.25),
        ("acme", "churn", "fp-decay", "performance_decay", "", "critical", "pending",
         "2026-03-14", "2026-03-14", None, None, False, False, 0, "roc_auc decayed", 0.78, 0.8),
        ("globex", "eta", "fp-drop", "throughput_anomaly", "drop", "warning", "resolved",
         "2026-03-11", "2026-03-12", "2026-03-12", "2026-03-13", False, False, 2,
         "throughput drop", -6.5, -4.0),
    ]  # fmt: skip
    cols = [
        "tenant", "model", "fingerprint", "signal", "column", "severity", "state", "first_seen",
        "last_seen", "fired_on", "resolved_on", "silenced", "inhibited", "notified", "message",
        "value", "threshold",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols)
    frame["updated_at"] = now
    return frame


def _deliveries() -> pd.DataFrame:
    rows = [
        (1, "oncall-pager", "acme", "churn", "fp-age", "firing", "critical", "2026-03-13",
         "sent", 1, None),
        (2, "oncall-pager", "acme", "churn", "fp-age", "repeat", "critical", "2026-03-14",
         "pending", 3, "HTTP 500 from pager <gateway>"),
        (3, "team-slack", "globex", "eta", "fp-drop", "firing", "warning", "2026-03-12",
         "sent", 1, None),
        (4, 'ops "night" \\ team', "globex", "eta", "fp-drop", "resolved", "warning",
         "2026-03-13", "sent", 1, None),
    ]  # fmt: skip
    cols = [
        "id", "route", "tenant", "model", "fingerprint", "event", "severity", "partition",
        "status", "attempts", "last_error",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols)
    frame["created_at"] = pd.Timestamp("2026-03-14T06:00:00Z")
    frame["sent_at"] = [frame["created_at"][0], None, frame["created_at"][0], None]
    return frame
