"""The overview's data: health per model and the anomaly/incident feed, read from the store.

Everything here reads the monitoring store (and, when given, the alert states and deliveries)
and writes nothing. What people read is built on it: the HTML page (`views.page`), the
terminal table (`views.status`) and the Prometheus gauges (`views.prometheus`).

- `feed`: what happened in a window of days, newest first: warning and critical findings
  (drift, decay, canary, operational anomalies, failed runs), audit-trail actions (retrain,
  rollback, promotion...) and alert state changes.
- `health_summary`: one row per (tenant, model) for a day: a status (critical, warning, ok,
  no data) from that day's findings and the firing alerts, and the key numbers behind it.

The performance numbers of a day come from the latest day up to it whose primary metric is
known: labels arrive days late, so the newest days usually have too few to say anything.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import AppConfig, ModelConfig
from aiops_pipelines.core.findings import Asset, Severity, Signal
from aiops_pipelines.core.values import as_number, as_text, fmt_percent
from aiops_pipelines.io.schema import ALERT_COLUMNS, DELIVERY_COLUMNS
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore

FEED_COLUMNS = [
    "when",
    "ts",
    "tenant",
    "model",
    "kind",
    "severity",
    "signal",
    "column",
    "message",
    "value",
    "threshold",
    "source",
]

HEALTH_COLUMNS = [
    "tenant",
    "model",
    "key",
    "status",
    "last_partition",
    "drift_share",
    "n_drifted",
    "primary_metric",
    "primary_value",
    "performance_partition",
    "reference_value",
    "coverage",
    "n_labelled",
    "throughput",
    "latency_p95_ms",
    "error_rate",
    "slo_budget_remaining",
    "slo_budget_slo",
    "canary",
    "canary_version",
    "alerts_firing",
    "findings_critical",
    "findings_warning",
    "issues",
    "missing_assets",
]

STATUSES = ("critical", "warning", "ok", "no data")
# Primary metrics in the order a model without a config is guessed to use them.
_DEFAULT_PRIMARY = ("roc_auc", "macro_f1", "mae")
LOWER_IS_BETTER = {"log_loss", "calibration_error", "mae", "rmse", "mape"}
CANARY_SIGNALS = {Signal.CANARY_FAIL.value: "fail", Signal.CANARY_PASS.value: "pass"}


def severity_rank(severity: Any) -> int:
    try:
        return Severity(str(severity)).rank
    except ValueError:
        return -1


def check_day(day: str) -> str:
    try:
        return dt.date.fromisoformat(str(day)).isoformat()
    except ValueError:
        raise ValueError(f"day {day!r} is not a date (YYYY-MM-DD)") from None


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def days_ending(day: str, days: int) -> list[str]:
    """The `days` partitions ending with `day`, oldest first."""
    if days < 1:
        raise ValueError(f"a window needs at least one day, got {days}")
    return [_shift(day, -i) for i in range(days - 1, -1, -1)]


def model_key(tenant: str, model: str) -> str:
    # failed runs that name no known model are stored under tenant "" and model "pipeline"
    return f"{tenant}.{model}" if tenant else model


def _frame(data: pd.DataFrame | None, columns: Sequence[str]) -> pd.DataFrame:
    """A copy with at least `columns` (missing ones filled with None); None -> empty."""
    if data is None or len(data) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = data.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = None
    return out.reset_index(drop=True)


def normalize_alerts(alerts: pd.DataFrame | None) -> pd.DataFrame:
    """Alert states with every expected column; flags as bool, `notified` as int."""
    out = _frame(alerts, ALERT_COLUMNS)
    for name in ("silenced", "inhibited"):
        out[name] = out[name].fillna(False).astype(bool)
    out["notified"] = pd.to_numeric(out["notified"], errors="coerce").fillna(0).astype(int)
    out["updated_at"] = pd.to_datetime(out["updated_at"], utc=True)
    for name in ("tenant", "model", "column", "message"):
        out[name] = out[name].fillna("").astype(str)
    return out


def normalize_deliveries(deliveries: pd.DataFrame | None) -> pd.DataFrame:
    """Deliveries with every expected column; `attempts` as int."""
    out = _frame(deliveries, DELIVERY_COLUMNS)
    out["attempts"] = pd.to_numeric(out["attempts"], errors="coerce").fillna(0).astype(int)
    out["route"] = out["route"].fillna("").astype(str)
    out["status"] = out["status"].fillna("").astype(str)
    return out


def latest_partition(
    store: MonitoringStore,
    tenant: str | None = None,
    model: str | None = None,
    *,
    end: str | None = None,
    asset: str | None = None,
) -> str | None:
    """The latest day (at most `end`) with any metric stored (see the store's method)."""
    return store.latest_partition(
        tenant, model, end=None if end is None else check_day(end), asset=asset
    )


def reference_performance_value(
    store: MonitoringStore, tenant: str, model: str, metric: str
) -> float:
    """The champion's reference value of `metric` (NaN when no labelled reference is stored)."""
    payload = store.load_profile(tenant, model, "reference", REFERENCE_PARTITION) or {}
    perf = payload.get("performance") or {}
    return as_number((perf.get("metrics") or {}).get(metric))


@dataclass(frozen=True)
class MonitoredModel:
    """A (tenant, model) to show, with its config when it is configured."""

    tenant: str
    name: str
    config: ModelConfig | None

    @property
    def key(self) -> str:
        return model_key(self.tenant, self.name)


def daily_assets(model: ModelConfig) -> list[str]:
    """The assets that store a model's results for every day it is run (canary_report only
    while a canary is live, so not one of them)."""
    assets = [Asset.FEATURE_PROFILE, Asset.DRIFT_REPORT, Asset.OPS_REPORT]
    if model.outcomes is not None:
        assets.append(Asset.PERFORMANCE_REPORT)
    if model.slos:
        assets.append(Asset.SLO_REPORT)
    return [str(a) for a in assets]


def missing_assets(model: MonitoredModel, metrics: pd.DataFrame) -> list[str]:
    """The daily assets without results in a day that has some (`metrics`: the day's metric
    history): a run that stopped part-way (killed, or failed at that asset). Each asset
    replaces its rows in one transaction, so a stored asset is whole; a day is half-done only
    by the assets it lacks. A day with nothing stored is not run, not incomplete."""
    if model.config is None or metrics.empty:
        return []
    have = set(metrics["asset"])
    return [a for a in daily_assets(model.config) if a not in have]


def monitored_models(
    store: MonitoringStore,
    cfg: AppConfig | None,
    tenant: str | None = None,
    model: str | None = None,
) -> list[MonitoredModel]:
    """The configured models in config order, then anything else the store holds (a model
    removed from the config, failed runs of no known model), so nothing stored is hidden."""
    out = [MonitoredModel(m.tenant, m.name, m) for m in (cfg.models if cfg else [])]
    known = {(m.tenant, m.name) for m in out}
    out += [MonitoredModel(t, m, None) for t, m in store.models(tenant) if (t, m) not in known]
    return [
        m
        for m in out
        if (tenant is None or m.tenant == tenant) and (model is None or m.name == model)
    ]


def primary_metric_of(model: MonitoredModel, perf: pd.DataFrame) -> str | None:
    """The configured primary metric; without a config, the first default one stored."""
    if model.config is not None:
        return str(model.config.primary_metric)
    present = set(perf["metric"]) if len(perf) else set()
    return next((m for m in _DEFAULT_PRIMARY if m in present), None)


def model_level(frame: pd.DataFrame, asset: str | None = None) -> pd.DataFrame:
    keep = frame["column"] == ""
    if asset is not None:
        keep &= frame["asset"] == asset
    return frame[keep]


def metric_value(frame: pd.DataFrame, asset: str, metric: str) -> float:
    rows = frame[(frame["asset"] == asset) & (frame["metric"] == metric) & (frame["column"] == "")]
    return float(rows["value"].iloc[-1]) if len(rows) else math.nan


def least_budget(metrics: pd.DataFrame) -> tuple[float, str]:
    """The smallest share of error budget left among the model's SLOs on the day (the
    `slo_budget_remaining` rows of `slo_report`) and that SLO's name; (NaN, "") without one."""
    rows = metrics[
        (metrics["asset"] == Asset.SLO_REPORT) & (metrics["metric"] == "slo_budget_remaining")
    ].dropna(subset=["value"])
    if rows.empty:
        return math.nan, ""
    least = rows.loc[rows["value"].idxmin()]
    return float(least["value"]), str(least["column"])


def budget_text(row: Any) -> str:
    """An SLO budget cell: "<slo> <share left>", "-" without an SLO."""
    if not row["slo_budget_slo"]:
        return "-"
    return f"{row['slo_budget_slo']} {fmt_percent(row['slo_budget_remaining'])}"


def _latest_evaluated(perf: pd.DataFrame, metric: str | None) -> tuple[str | None, pd.DataFrame]:
    """The latest performance partition whose `metric` is known, and its model-level rows."""
    if metric is None or perf.empty:
        return None, perf.iloc[0:0]
    known = perf[(perf["metric"] == metric) & perf["value"].notna()]
    if known.empty:
        return None, perf.iloc[0:0]
    day = str(known["partition"].max())
    return day, perf[perf["partition"] == day]


def performance_history(
    store: MonitoringStore, model: MonitoredModel, day: str, days: int
) -> pd.DataFrame:
    """Model-level performance_report rows up to `day`, over `days` days or the label
    window, whichever is longer (the latest day with a known metric may be that old)."""
    lookback = model.config.performance.label_window_days + 1 if model.config else 31
    frame = store.metric_history(
        model.tenant,
        model.name,
        asset=Asset.PERFORMANCE_REPORT,
        start=_shift(day, -max(days, lookback)),
        end=day,
    )
    return model_level(frame)


def action_message(actor: str, action: str, details: Any) -> tuple[str, str]:
    """(column, message) of an audit entry: the version it concerns and why."""
    d = details if isinstance(details, dict) else {}
    version = as_text(d.get("version"))
    parts = [f"{action} by {actor}"]
    if version:
        parts.append(f"version {version}")
    if d.get("dry_run"):
        parts.append("(dry run)")
    text = " ".join(parts)
    why = d.get("reason") or d.get("message")
    if isinstance(why, str) and why:
        text += f": {why}"
    elif "count" in d:
        text += f": {d['count']}"
    if isinstance(d.get("beats_champion"), bool):
        text += "; beats the champion" if d["beats_champion"] else "; does not beat the champion"
    return version, text


def _alert_events(
    alerts: pd.DataFrame, first: str, day: str, said: Mapping[tuple[str, str], str]
) -> list[dict[str, Any]]:
    """Feed rows for the alert state changes in [first, day]. Each row quotes the finding of
    the day it is dated (`said`: (fingerprint, partition) -> message), not the alert's latest:
    a row dated the day an alert fired says what was seen that day."""
    rows: list[dict[str, Any]] = []
    for a in alerts.itertuples(index=False):
        flags = [f for f in ("silenced", "inhibited") if bool(getattr(a, f))]
        suffix = f" ({', '.join(flags)})" if flags else ""
        events = []
        if a.state == "pending" and first <= as_text(a.first_seen) <= day:
            events.append(("pending", as_text(a.first_seen)))
        if first <= as_text(a.fired_on) <= day:
            events.append(("firing", as_text(a.fired_on)))
        if first <= as_text(a.resolved_on) <= day:
            events.append(("resolved", as_text(a.resolved_on)))
        for event, when in events:
            current = event == a.state
            fp = as_text(a.fingerprint)
            if event == "resolved":
                seen = as_text(a.last_seen)
                quote = said.get((fp, seen))
                text = f"last seen {seen}: {quote}" if quote else as_text(a.message)
            else:
                text = said.get((fp, when)) or as_text(a.message)
            rows.append(
                {
                    "when": when,
                    # only the current state's change has a known time
                    "ts": a.updated_at if current else pd.NaT,
                    "tenant": as_text(a.tenant),
                    "model": as_text(a.model),
                    "kind": "alert",
                    "severity": as_text(a.severity),
                    "signal": as_text(a.signal),
                    "column": as_text(a.column),
                    "message": f"alert {event}{suffix}: {text}",
                    "value": as_number(a.value),
                    "threshold": as_number(a.threshold),
                    "source": event,
                }
            )
    return rows


def feed(
    store: MonitoringStore,
    *,
    day: str,
    days: int = 7,
    alerts: pd.DataFrame | None = None,
    tenant: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """The anomaly/incident feed of the `days` days ending with `day`, newest first.

    Rows (`FEED_COLUMNS`): warning and critical findings (kind 'finding'; a failed run's
    column is the failed asset), audit-trail actions (kind 'action', severity 'info'; `signal` is
    the action) and alert state changes when `alerts` is given (kind 'alert'; `source` is the
    event: pending, firing or resolved). `when` is the partition the entry is about (an action
    without one: the day it was taken); `ts` the time it was recorded, when known.
    """
    day = check_day(day)
    first = days_ending(day, days)[0]
    rows: list[dict[str, Any]] = []
    al = normalize_alerts(alerts)
    if tenant is not None:
        al = al[al["tenant"] == tenant]
    if model is not None:
        al = al[al["model"] == model]
    # one read: the window's findings, and back to the last finding a resolved row quotes
    resolving = al.loc[[first <= as_text(r) <= day for r in al["resolved_on"]]]
    horizon = min([first, *(as_text(x) for x in resolving["last_seen"] if as_text(x))])
    seen = store.findings(tenant, model, start=horizon, end=day, min_severity=Severity.WARNING)
    found = seen[seen["partition"] >= first]
    for f in found.itertuples(index=False):
        rows.append(
            {
                "when": f.partition,
                "ts": f.created_at,
                "tenant": f.tenant,
                "model": f.model,
                "kind": "finding",
                "severity": f.severity,
                "signal": f.signal,
                "column": f.column,
                "message": f.message,
                "value": f.value,
                "threshold": f.threshold,
                "source": f.asset,
            }
        )
    acts = store.actions(tenant, model)
    for a in acts.itertuples(index=False):
        when = a.partition if isinstance(a.partition, str) and a.partition else a.ts.date()
        when = str(when)
        if not first <= when <= day:
            continue
        column, message = action_message(a.actor, a.action, a.details)
        rows.append(
            {
                "when": when,
                "ts": a.ts,
                "tenant": a.tenant,
                "model": a.model,
                "kind": "action",
                "severity": Severity.INFO.value,
                "signal": a.action,
                "column": column,
                "message": message,
                "value": math.nan,
                "threshold": math.nan,
                "source": a.actor,
            }
        )
    said = {(f.fingerprint, f.partition): f.message for f in seen.itertuples(index=False)}
    rows += _alert_events(al, first, day, said)

    out = pd.DataFrame(rows, columns=FEED_COLUMNS)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    for name in ("value", "threshold"):
        out[name] = out[name].astype("float64")
    out["severity_rank"] = [severity_rank(s) for s in out["severity"]]
    out = out.sort_values(
        ["when", "ts", "severity_rank"], ascending=False, na_position="last", kind="stable"
    )
    return out.drop(columns="severity_rank").reset_index(drop=True)


def _health_row(
    store: MonitoringStore, model: MonitoredModel, day: str, alerts: pd.DataFrame
) -> dict[str, Any]:
    t, m = model.tenant, model.name
    metrics = store.metric_history(t, m, start=day, end=day)
    found = store.findings(t, m, start=day, end=day)
    perf = performance_history(store, model, day, 1)
    primary = primary_metric_of(model, perf)
    perf_day, perf_rows = _latest_evaluated(perf, primary)

    error_rate = metric_value(metrics, Asset.OPS_REPORT, "error_rate")
    if not math.isfinite(error_rate):  # ops_report not run: the profile counts errors too
        error_rate = metric_value(metrics, Asset.FEATURE_PROFILE, "error_rate")

    canary, canary_version = "", ""
    canary_rows = metrics[metrics["asset"] == Asset.CANARY_REPORT]
    if len(canary_rows):
        verdicts = [CANARY_SIGNALS[s] for s in found["signal"] if s in CANARY_SIGNALS]
        canary = "fail" if "fail" in verdicts else (verdicts[0] if verdicts else "inconclusive")
        versions = canary_rows.loc[canary_rows["metric"] == "canary_n", "column"]
        canary_version = str(versions.iloc[0]) if len(versions) else ""

    bad = found[found["severity"].map(severity_rank) >= Severity.WARNING.rank]
    firing = alerts[
        (alerts["tenant"] == t) & (alerts["model"] == m) & (alerts["state"] == "firing")
    ]
    worst = max(
        [severity_rank(s) for s in bad["severity"]]
        + [severity_rank(s) for s in firing["severity"]]
        + [-1]
    )
    if worst >= Severity.CRITICAL.rank:
        status = "critical"
    elif worst >= Severity.WARNING.rank:
        status = "warning"
    elif len(metrics) or len(found):
        status = "ok"
    else:
        status = "no data"
    slo_budget, slo_name = least_budget(metrics)
    missing = missing_assets(model, metrics)
    issues = ["day incomplete"] if missing else []
    issues += dict.fromkeys(
        bad.sort_values("severity", key=lambda s: s.map(severity_rank), ascending=False)["signal"]
    )
    return {
        "tenant": t,
        "model": m,
        "key": model.key,
        "status": status,
        "last_partition": latest_partition(store, t, m, end=day),
        "drift_share": metric_value(metrics, Asset.DRIFT_REPORT, "drift_share"),
        "n_drifted": metric_value(metrics, Asset.DRIFT_REPORT, "n_drifted"),
        "primary_metric": primary or "",
        "primary_value": metric_value(perf_rows, Asset.PERFORMANCE_REPORT, primary)
        if primary
        else math.nan,
        "performance_partition": perf_day,
        "reference_value": (
            reference_performance_value(store, t, m, primary) if primary else math.nan
        ),
        "coverage": metric_value(perf_rows, Asset.PERFORMANCE_REPORT, "coverage"),
        "n_labelled": metric_value(perf_rows, Asset.PERFORMANCE_REPORT, "n_labelled"),
        "throughput": metric_value(metrics, Asset.OPS_REPORT, "throughput_day"),
        "latency_p95_ms": metric_value(metrics, Asset.OPS_REPORT, "latency_p95"),
        "error_rate": error_rate,
        "slo_budget_remaining": slo_budget,
        "slo_budget_slo": slo_name,
        "canary": canary,
        "canary_version": canary_version,
        "alerts_firing": len(firing),
        "findings_critical": int(sum(severity_rank(s) == 2 for s in bad["severity"])),
        "findings_warning": int(sum(severity_rank(s) == 1 for s in bad["severity"])),
        "issues": ", ".join(str(i) for i in issues),
        "missing_assets": ", ".join(missing),
    }


def health_summary(
    store: MonitoringStore,
    cfg: AppConfig | None,
    *,
    day: str,
    alerts: pd.DataFrame | None = None,
    tenant: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """One row per (tenant, model) for `day` (`HEALTH_COLUMNS`).

    `status`: 'critical' or 'warning' when a finding of that day or a firing alert is that
    severe; 'ok' when the day has results and nothing worse than info; 'no data' when nothing
    was stored for the day. Drift, throughput, latency (ms), error rate and the canary verdict
    are the day's; the primary metric, its reference value and the label coverage come from
    the latest day up to `day` with a known primary metric (`performance_partition`).
    `missing_assets`: the daily assets a day with results lacks (a run that stopped part-way);
    `issues` then starts with "day incomplete".
    """
    day = check_day(day)
    al = normalize_alerts(alerts)
    rows = [_health_row(store, m, day, al) for m in monitored_models(store, cfg, tenant, model)]
    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)
