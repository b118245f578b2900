"""Grading a pipeline against the demo world's ground truth, and the summaries `aiops demo`
prints.

`detection_summary(manifest, findings)` holds the findings against the manifest: what was
detected and how late, what was missed, and which alarms no incident explains. The world is
built so the grading is fair: feature distributions are stationary day to day (traffic volume
has hour-of-day and weekday seasonality, the feature mix does not), so a normal day stays far
below the default drift thresholds, while every injected drift clears them within its first
day.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import CanaryPolicy, PerformancePolicy
from aiops_pipelines.core.findings import Signal
from aiops_pipelines.demo.models import SPECS
from aiops_pipelines.demo.receiver import AlertReceiver
from aiops_pipelines.demo.world import MAX_LABEL_LAG_DAYS, WORLD_DB
from aiops_pipelines.signals.performance.residuals import RESIDUAL_PERSISTENCE_DAYS

#: The signals the pipeline raises (every `Signal`); an expected signal outside them would be
#: graded "not in scope yet".
GRADED_SIGNALS: frozenset[str] = frozenset(s.value for s in Signal)

#: Signals about the model as a whole: their findings carry no (or a non-feature) column.
MODEL_LEVEL_SIGNALS: frozenset[str] = frozenset(
    {
        Signal.DATASET_DRIFT.value,
        Signal.PREDICTION_DRIFT.value,
        Signal.PERFORMANCE_DECAY.value,
        Signal.ESTIMATED_PERFORMANCE_DECAY.value,
        Signal.CANARY_FAIL.value,  # their column names the canary version, not a feature
        Signal.CANARY_PASS.value,
        Signal.THROUGHPUT_ANOMALY.value,  # their column is the direction (drop, spike, ...)
        Signal.LATENCY_REGRESSION.value,
        Signal.ERROR_RATE_ANOMALY.value,
        Signal.RESIDUAL_ANOMALY.value,
        Signal.LEVEL_SHIFT.value,  # its column is the series (throughput, latency_p95, ...)
        Signal.PIPELINE_FAILURE.value,  # its column is the asset that failed
        Signal.MULTIVARIATE_DRIFT.value,  # the joint distribution: no column
        Signal.SEGMENT_DRIFT.value,  # its column is the segment value (region=west)
        Signal.FAIRNESS_VIOLATION.value,  # its column is the fairness metric
        Signal.SLO_BURN.value,  # their column is the SLO's name
        Signal.SLO_BUDGET.value,
    }
)

#: Signals judged on late labels, graded on the day they were raised (not the partition day),
#: with how many days after the incident's start still count as "detected": the label lag
#: plus the persistence window (decay) or the minimum canary duration (pass).
LABEL_SIGNALS: dict[str, int] = {
    Signal.PERFORMANCE_DECAY.value: MAX_LABEL_LAG_DAYS + PerformancePolicy().persistence,
    Signal.RESIDUAL_ANOMALY.value: MAX_LABEL_LAG_DAYS + RESIDUAL_PERSISTENCE_DAYS,
    Signal.CANARY_FAIL.value: MAX_LABEL_LAG_DAYS,
    Signal.CANARY_PASS.value: MAX_LABEL_LAG_DAYS + CanaryPolicy().min_days,
}

#: Findings that report good news: raised at severity info, still what the incident expects.
INFO_SIGNALS: frozenset[str] = frozenset({Signal.CANARY_PASS.value})
_RAISED = ("warning", "critical")


@dataclass(frozen=True)
class DemoSummary:
    """How a run of the pipeline did on the demo world.

    `incidents` has one row per (incident, expected signal[, column]) with `status` one of
    'detected' (first warning/critical finding on or the day after the start), 'late' (found
    later), 'missed', 'not in scope yet' (no asset produces the signal yet) or 'nothing
    expected'. `false_alarms` are raised drift findings no incident explains. `all_detected` is
    true when every in-scope row is 'detected' (rows 'not run yet' are left out), so a demo run
    can fail loudly when a detector regresses.
    """

    incidents: list[dict[str, Any]]
    false_alarms: list[dict[str, Any]]
    false_alarm_count: int
    all_detected: bool
    model_days: int = 0
    clean_model_days: int = 0

    def render(self) -> str:
        """A plain-text report: per model, what was injected when, what was found when."""
        lines = ["Demo world: injected incidents vs findings", ""]
        by_model: dict[str, list[dict[str, Any]]] = {}
        for row in self.incidents:
            by_model.setdefault(row["model"], []).append(row)
        head = (
            "#",
            "injected",
            "from",
            "to",
            "expected signal",
            "column",
            "detected",
            "lag",
            "status",
        )
        for model, rows in sorted(by_model.items()):
            table = [head] + [
                (
                    str(r["incident"]),
                    r["kind"],
                    r["start"],
                    r["end"] or "open",
                    r["signal"] or "-",
                    r["column"] or "-",
                    f"{r['first_detected']} ({r['severity']})" if r["first_detected"] else "-",
                    f"{r['lag_days']}d" if r["lag_days"] is not None else "-",
                    r["status"],
                )
                for r in rows
            ]
            widths = [max(len(t[i]) for t in table) for i in range(len(head))]
            lines.append(model)
            for t in table:
                cells = "  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True))
                lines.append(("  " + cells).rstrip())
            lines.append("")
        verdict = (
            "all in-scope incidents detected in time"
            if self.all_detected
            else "NOT all in-scope incidents detected in time"
        ) + (
            " (drift: within a day; on late labels: within the label lag plus the persistence "
            "window for decay, plus the minimum canary duration for a pass)"
        )
        lines.append(verdict)
        lines.append(
            f"False alarms: {self.false_alarm_count} (drift findings no incident explains; "
            f"{self.model_days} model-days monitored, {self.clean_model_days} of them with no "
            "injected data change)"
        )
        for fa in self.false_alarms:
            lines.append(
                f"  {fa['model']}  {fa['partition']}  {fa['signal']}  {fa['column'] or '-'}  "
                f"({fa['severity']})"
            )
        return "\n".join(lines).rstrip() + "\n"


def _findings_key(df: pd.DataFrame) -> pd.Series:
    """`tenant.model` of each finding (accepts a `model` column that already holds the key)."""
    keys = [
        m if not t or m.startswith(t + ".") else f"{t}.{m}"
        for t, m in zip(
            df["tenant"].fillna("").astype(str), df["model"].fillna("").astype(str), strict=True
        )
    ]
    return pd.Series(keys, index=df.index, dtype=object)


def detection_summary(
    manifest: dict[str, Any],
    findings: pd.DataFrame,
    *,
    monitored_days: Iterable[str] | None = None,
) -> DemoSummary:
    """Grade `findings` (tenant, model, partition, signal, column, severity) against the truth.

    An expected signal counts as detected when a warning or critical finding of it, on one of
    the incident's columns (any column for a model-level signal), falls on the start day or the
    day after. A performance decay is judged on late labels, so it is graded on the day it was
    raised (its evidence's `detected_at`) and counts as detected within the label lag plus the
    persistence window. `monitored_days` (partitions the pipeline ran), when given, marks
    incidents that start after the last monitored day as 'not run yet' instead of 'missed'.
    """
    need = {"tenant", "model", "partition", "signal", "column", "severity"}
    missing = need - set(findings.columns)
    if missing:
        raise ValueError(f"findings lack columns: {sorted(missing)}")
    f = findings.loc[:, sorted(need)].copy()
    # a finding on late labels is raised when its labels arrive: grade it on that date
    evidence = findings["evidence"] if "evidence" in findings.columns else None
    f["detected"] = [
        str(e.get("detected_at"))[:10]
        if evidence is not None and isinstance(e, dict) and e.get("detected_at")
        else str(p)[:10]
        for e, p in zip(
            evidence if evidence is not None else [None] * len(f), f["partition"], strict=True
        )
    ]
    f["key"] = _findings_key(f)
    f["column"] = f["column"].fillna("").astype(str)
    f["signal"] = f["signal"].astype(str)
    f["partition"] = f["partition"].astype(str).str[:10]
    f["severity"] = f["severity"].astype(str).str.lower()
    raised = f[
        f["severity"].isin(_RAISED) | (f["signal"].isin(INFO_SIGNALS) & (f["severity"] == "info"))
    ].copy()
    raised["day"] = pd.to_datetime(raised["partition"]).dt.date
    raised["detected_day"] = pd.to_datetime(raised["detected"]).dt.date
    monitored = sorted(str(d)[:10] for d in monitored_days) if monitored_days is not None else None

    rows: list[dict[str, Any]] = []
    for inc in manifest.get("incidents", []):
        start = date.fromisoformat(inc["start"])
        end = date.fromisoformat(inc["end"]) if inc.get("end") else None
        cols = list(inc.get("columns") or [])
        base = {
            "incident": inc["id"],
            "kind": inc["kind"],
            "model": inc["model"],
            "start": inc["start"],
            "end": inc.get("end"),
        }
        expected = list(inc.get("expected_signals") or [])
        if not expected:
            rows.append(
                {
                    **base,
                    "signal": "",
                    "column": "",
                    "status": "nothing expected",
                    "first_detected": None,
                    "lag_days": None,
                    "severity": None,
                }
            )
            continue
        for sig in expected:
            targets = [""] if sig in MODEL_LEVEL_SIGNALS or not cols else cols
            for col in targets:
                row = {
                    **base,
                    "signal": sig,
                    "column": col,
                    "first_detected": None,
                    "lag_days": None,
                    "severity": None,
                }
                if sig not in GRADED_SIGNALS:
                    rows.append({**row, "status": "not in scope yet"})
                    continue
                hit = raised[(raised["key"] == inc["model"]) & (raised["signal"] == sig)]
                if col:
                    hit = hit[hit["column"] == col]
                hit = hit[hit["day"] >= start]
                if end is not None:
                    hit = hit[hit["day"] <= end + timedelta(days=1)]
                if len(hit):
                    first = hit["detected_day"].min()
                    found = set(hit[hit["detected_day"] == first]["severity"])
                    sev = next(s for s in ("critical", "warning", "info") if s in found)
                    lag = (first - start).days
                    allowed = LABEL_SIGNALS.get(sig, 1)
                    status = "detected" if lag <= allowed else "late"
                    row.update(first_detected=first.isoformat(), lag_days=lag, severity=sev)
                elif monitored is not None and (not monitored or monitored[-1] < inc["start"]):
                    status = "not run yet"
                else:
                    status = "missed"
                rows.append({**row, "status": status})

    false_alarms = _false_alarms(manifest, raised)
    in_scope = [r for r in rows if r["signal"] in GRADED_SIGNALS and r["status"] != "not run yet"]
    days = pd.date_range(manifest["start"], manifest["end"], freq="D").date
    changed = {
        (inc["model"], d)
        for inc in manifest["incidents"]
        if set(inc["expected_signals"]) & GRADED_SIGNALS or inc["kind"].startswith("canary")
        for d in days
        if date.fromisoformat(inc["start"]) <= d
        and (inc["end"] is None or d <= date.fromisoformat(inc["end"]))
    }
    models = manifest.get("models") or {inc["model"] for inc in manifest["incidents"]}
    model_days = len(models) * len(days)
    return DemoSummary(
        incidents=rows,
        false_alarms=false_alarms,
        false_alarm_count=len(false_alarms),
        all_detected=all(r["status"] == "detected" for r in in_scope),
        model_days=model_days,
        clean_model_days=model_days - len(changed),
    )


def _false_alarms(manifest: dict[str, Any], raised: pd.DataFrame) -> list[dict[str, Any]]:
    """Raised drift findings on (model, day, signal, column) that no incident explains."""
    drift = raised[raised["signal"].isin(GRADED_SIGNALS)]
    drift = drift.drop_duplicates(["key", "partition", "signal", "column"])
    incidents = []
    for inc in manifest.get("incidents", []):
        incidents.append(
            (
                inc["model"],
                date.fromisoformat(inc["start"]),
                date.fromisoformat(inc["end"]) + timedelta(days=1) if inc.get("end") else None,
                set(inc.get("expected_signals") or []) | set(inc.get("allowed_signals") or []),
                set(inc.get("columns") or []),
            )
        )
    out: list[dict[str, Any]] = []
    for r in drift.sort_values(["key", "partition", "signal", "column"]).itertuples():
        explained = any(
            r.key == model
            and r.day >= lo
            and (hi is None or r.day <= hi)
            and r.signal in signals
            and (r.column in columns or r.signal in MODEL_LEVEL_SIGNALS)
            for model, lo, hi, signals, columns in incidents
        )
        if not explained:
            out.append(
                {
                    "model": r.key,
                    "partition": r.partition,
                    "signal": r.signal,
                    "column": r.column,
                    "severity": r.severity,
                }
            )
    return out


def label_lags(home: Path, sample: int = 20_000) -> dict[str, tuple[float, float]]:
    """Median and 90th percentile of label lag in days per model, from the world's tables."""
    out: dict[str, tuple[float, float]] = {}
    with closing(sqlite3.connect(home / WORLD_DB)) as con:
        for spec in SPECS:
            rows = con.execute(
                f"SELECT julianday(o.observed_at) - julianday(p.timestamp) "
                f"FROM {spec.prefix}_outcomes o JOIN {spec.prefix}_predictions p "
                f"ON o.request_id = p.request_id LIMIT {int(sample)}"
            ).fetchall()
            lags = np.array([r[0] for r in rows if r[0] is not None], dtype=float)
            if len(lags):
                out[spec.key] = (float(np.median(lags)), float(np.quantile(lags, 0.9)))
    return out


def actions_summary(home: Path, store: Any, tracking_uri: str) -> str:
    """What the sensors did: retrains requested and run, and the registry aliases now."""
    from aiops_pipelines.lifecycle.registry import aliases

    lines = ["Label lag (days from prediction to outcome): "]
    lags = label_lags(home)
    lines[0] += ", ".join(f"{k} median {m:.1f}, p90 {p:.1f}" for k, (m, p) in lags.items())
    acts = store.actions()
    lines.append("Actions:")
    if acts.empty:
        lines.append("  none")
    for a in acts.itertuples():
        d = a.details if isinstance(a.details, dict) else {}
        key = f"{a.tenant}.{a.model}"
        if a.action in ("retrain_requested", "retrain_dry_run"):
            lines.append(
                f"  {key:<13} {a.action:<17} trigger {d.get('reason')} on {d.get('trigger_day')}"
                f" ({d.get('run_key')})"
            )
        elif a.action == "retrain":
            w = d.get("window") or {}
            metric = d.get("primary_metric", "")
            cand = (d.get("candidate_metrics") or {}).get(metric)
            champ = (d.get("champion_metrics") or {}).get(metric)
            lines.append(
                f"  {key:<13} {'retrain':<17} version {d.get('version')} on "
                f"{w.get('start')}..{w.get('end')}: {metric} {cand:.3f} vs champion "
                f"{champ:.3f}, beats champion: {d.get('beats_champion')}"
                if cand is not None and champ is not None
                else f"  {key:<13} retrain version {d.get('version')}"
            )
        elif a.action.startswith(("rollback_canary", "promote_canary")):
            lines.append(
                f"  {key:<13} {a.action:<17} version {d.get('version')} on the verdict of "
                f"{a.partition}: aliases now {d.get('aliases_after')}"
            )
        else:
            lines.append(f"  {key:<13} {a.action}")
    lines.append("Registry aliases:")
    for spec in SPECS:
        live = aliases(tracking_uri, spec.key)
        if live:  # {} when the model is not registered
            shown = ", ".join(f"{k}=v{v}" for k, v in sorted(live.items()))
            lines.append(f"  {spec.key:<13} {shown}")
    return "\n".join(lines) + "\n"


def alerts_summary(store: Any, receiver: AlertReceiver | None = None) -> str:
    """Alert notifications per route (sent, pending) and what the local receiver got."""
    deliveries = store.deliveries()
    alerts = store.alerts()
    lines = ["Alerts", ""]
    if alerts.empty:
        lines.append("  no alert fired")
    else:
        by_state = alerts.groupby(["state", "severity"]).size()
        lines.append(
            "  alert states: "
            + ", ".join(f"{n} {sev} {state}" for (state, sev), n in by_state.items())
        )
    if deliveries.empty:
        lines.append("  no notification queued")
        return "\n".join(lines)
    lines.append(f"  {'route':<16}{'events':>8}{'sent':>8}{'pending':>9}  kinds")
    for route, g in deliveries.groupby("route"):
        kinds = ", ".join(f"{n} {k}" for k, n in g["event"].value_counts().sort_index().items())
        lines.append(
            f"  {route:<16}{len(g):>8}{int((g['status'] == 'sent').sum()):>8}"
            f"{int((g['status'] != 'sent').sum()):>9}  {kinds}"
        )
    if receiver is not None:
        got = {p: len(bodies) for p, bodies in sorted(receiver.received.items())}
        lines.append(
            f"  local webhook receiver: {sum(got.values())} messages accepted ("
            + ", ".join(f"{p}: {n}" for p, n in got.items())
            + ")"
        )
    return "\n".join(lines)
