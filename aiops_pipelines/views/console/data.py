"""What the console shows, read from the store for one caller's tenant scope.

Every function takes `scope`: the one tenant the caller reads, or None for an admin. It is
passed to the store's queries (`tenant=`), so another tenant's rows are never read, not read and
then dropped. The results are plain JSON-ready dicts and lists: the pages and `/api/v1` serve
the same data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import AppConfig
from aiops_pipelines.core.findings import Asset, Severity
from aiops_pipelines.core.findings import jsonable as plain_json
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.signals.profile.profiles import DatasetProfile
from aiops_pipelines.views.charts import decay_limits, load_window
from aiops_pipelines.views.overview import (
    MonitoredModel,
    days_ending,
    feed,
    health_summary,
    model_level,
    monitored_models,
    severity_rank,
)

SEVERITIES = tuple(s.value for s in Severity)
MAX_WINDOW_DAYS = 366


class NotFound(LookupError):
    """Nothing of that name in the caller's scope (another tenant's is not found either)."""


def jsonable(value: Any) -> Any:
    """`core.findings.jsonable` (numpy scalars to Python, NaN and infinities to None), with
    timestamps as ISO text and NaT as None."""
    if isinstance(value, pd.Timestamp | dt.datetime):
        return None if pd.isna(value) else value.isoformat()
    if value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return plain_json(value)


def records(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    cols = list(columns) if columns is not None else list(frame.columns)
    return [
        {c: jsonable(v) for c, v in zip(cols, row, strict=True)}
        for row in frame[cols].itertuples(index=False, name=None)
    ]


def latest_day(store: MonitoringStore, scope: str | None) -> str | None:
    """The latest day with results in the caller's scope."""
    return store.latest_partition(scope)


def models(store: MonitoringStore, cfg: AppConfig, scope: str | None) -> list[dict[str, Any]]:
    """The caller's models: configured ones first, then anything else stored for its tenant."""
    out = []
    for m in monitored_models(store, cfg, tenant=scope):
        c = m.config
        out.append(
            {
                "tenant": m.tenant,
                "model": m.name,
                "key": m.key,
                "configured": c is not None,
                "task": str(c.task) if c else None,
                "primary_metric": str(c.primary_metric) if c else None,
                "features": list(c.features.all) if c else [],
            }
        )
    return out


def find_model(
    store: MonitoringStore, cfg: AppConfig, scope: str | None, tenant: str, model: str
) -> MonitoredModel:
    if scope is not None and tenant != scope:
        raise NotFound(f"no model {tenant}.{model}")
    found = monitored_models(store, cfg, tenant=tenant, model=model)
    if not found:
        raise NotFound(f"no model {tenant}.{model}")
    return found[0]


def alerts(
    store: MonitoringStore, scope: str | None, *, now: dt.datetime, model: str | None = None
) -> list[dict[str, Any]]:
    """The alert states, most severe first, each with the console silence in force (`muted`,
    `silence`) and its episode's acknowledgement (`acknowledgement`)."""
    frame = store.alerts(tenant=scope, model=model)
    silences = store.silences(scope, model, active_at=now)
    acks = store.acknowledgements(scope, model)
    by_fp = {s["fingerprint"]: s for s in records(silences)[::-1]}  # the latest wins
    acked = {(a["fingerprint"], a["episode_start"]): a for a in records(acks)}
    out = []
    for a in records(frame):
        silence = by_fp.get(a["fingerprint"])
        ack = acked.get((a["fingerprint"], a["first_seen"]))
        out.append(
            {
                **a,
                "key": f"{a['tenant']}.{a['model']}",
                "muted": bool(a["silenced"]) or silence is not None,
                "silence": silence,
                "acknowledgement": ack,
            }
        )
    return out


def alert(store: MonitoringStore, scope: str | None, fingerprint: str, *, now: dt.datetime):
    """One alert with its notification history and deliveries."""
    found = [a for a in alerts(store, scope, now=now) if a["fingerprint"] == fingerprint]
    if not found:
        raise NotFound(f"no alert {fingerprint}")
    a = found[0]
    events = store.alert_events(a["tenant"], a["model"], fingerprint=fingerprint)
    deliveries = store.deliveries(a["tenant"], a["model"])
    deliveries = deliveries[deliveries["fingerprint"] == fingerprint]
    return {
        **a,
        "events": records(events, ["id", "kind", "severity", "partition", "episode_start"]),
        "deliveries": records(
            deliveries,
            ["id", "route", "event", "partition", "status", "attempts", "last_error", "sent_at"],
        ),
    }


def overview(
    store: MonitoringStore, cfg: AppConfig, scope: str | None, *, day: str | None, now: dt.datetime
) -> dict[str, Any]:
    """Health per model now: status, drift, primary metric vs reference with coverage,
    throughput, latency, errors, canary and firing alerts, plus the firing alerts themselves."""
    day = day or latest_day(store, scope)
    if day is None:
        return {"day": None, "models": [], "firing": [], "tenants": []}
    al = alerts(store, scope, now=now)
    health = health_summary(store, cfg, day=day, alerts=store.alerts(tenant=scope), tenant=scope)
    rows = records(health)
    muted = {a["fingerprint"] for a in al if a["muted"]}
    firing = [a for a in al if a["state"] == "firing"]
    for r in rows:
        own = [a for a in firing if a["tenant"] == r["tenant"] and a["model"] == r["model"]]
        r["alerts_muted"] = sum(a["fingerprint"] in muted for a in own)
    tenants = sorted({r["tenant"] for r in rows})
    return {
        "day": day,
        "generated_at": now.isoformat(),
        "tenants": [
            {
                "tenant": t,
                "status": min(
                    (r["status"] for r in rows if r["tenant"] == t),
                    key=lambda s: ("critical", "warning", "ok", "no data").index(s),
                ),
                "models": sum(r["tenant"] == t for r in rows),
            }
            for t in tenants
        ],
        "models": rows,
        "firing": firing,
    }


def overview_valid_until(view: dict[str, Any]) -> dt.datetime | None:
    """When the overview stops holding with nothing stored changing: the end of the first
    console silence among its firing alerts (their `muted` count changes then)."""
    ends = [
        dt.datetime.fromisoformat(str(a["silence"]["ends_at"]))
        for a in view.get("firing", [])
        if a.get("silence") and a["silence"].get("ends_at")
    ]
    return min(ends) if ends else None


def _drift(window: Any, days: list[str]) -> dict[str, Any]:
    drift = window.metrics[window.metrics["asset"] == Asset.DRIFT_REPORT]
    stats = drift[drift["metric"].str.startswith("drift_") & (drift["column"] != "")]
    p_values = {
        (r.partition, r.column): r.value
        for r in drift[drift["metric"] == "p_value"].itertuples(index=False)
    }
    statistic = {
        (r.partition, r.column): (r.metric, r.value) for r in stats.itertuples(index=False)
    }
    level: dict[tuple[str, str], int] = {}
    for f in window.findings[window.findings["asset"] == Asset.DRIFT_REPORT].itertuples(
        index=False
    ):
        k = (f.partition, f.column)
        level[k] = max(level.get(k, -1), severity_rank(f.severity))
    configured = window.model.config.features.all if window.model.config else []
    present = list(dict.fromkeys(stats["column"]))
    columns = [c for c in configured if c in present] + sorted(set(present) - set(configured))
    z, text = [], []
    for c in columns:
        zr, tr = [], []
        for d in days:
            if (d, c) not in statistic:
                zr.append(None)
                tr.append(f"{c} {d}: not tested")
                continue
            name, value = statistic[(d, c)]
            p = p_values.get((d, c), math.nan)
            zr.append(level.get((d, c), -1))
            tr.append(
                f"{c} {d}: {name.removeprefix('drift_')} {value:.4g}"
                + (f", p {p:.3g}" if math.isfinite(p) else "")
                + f", {['ok', 'info', 'warning', 'critical'][level.get((d, c), -1) + 1]}"
            )
        z.append(zr)
        text.append(tr)
    shares = {
        r.partition: r.value
        for r in model_level(drift).itertuples(index=False)
        if r.metric == "drift_share"
    }
    return {
        "features": columns,
        "days": days,
        "level": z,
        "text": text,
        "drift_share": [jsonable(shares.get(d)) for d in days],
    }


def _performance(window: Any, days: list[str]) -> dict[str, Any]:
    metric = window.primary
    by_day: dict[str, dict[str, float]] = {}
    for r in window.performance.itertuples(index=False):
        by_day.setdefault(r.partition, {})[r.metric] = r.value
    ref = window.reference
    limits = decay_limits(window.model.config, metric, ref) if metric else []
    return {
        "metric": metric,
        "days": days,
        "value": [jsonable(by_day.get(d, {}).get(metric)) if metric else None for d in days],
        "coverage": [jsonable(by_day.get(d, {}).get("coverage")) for d in days],
        "n_labelled": [jsonable(by_day.get(d, {}).get("n_labelled")) for d in days],
        "reference": jsonable(ref),
        "limits": {name: jsonable(v) for name, v in limits},
    }


_OPS_SERIES = {
    "latency_p95": "latency p95 (ms)",
    "throughput_day": "throughput",
    "error_rate": "error rate",
}


def _ops(window: Any, days: list[str]) -> dict[str, Any]:
    ops = model_level(window.metrics, Asset.OPS_REPORT)
    series = {}
    for metric in _OPS_SERIES:
        rows = ops[ops["metric"] == metric]
        values = dict(zip(rows["partition"], rows["value"], strict=True))
        series[metric] = [jsonable(values.get(d)) for d in days]
    found = window.findings[window.findings["asset"] == Asset.OPS_REPORT]
    events = [
        {
            "day": f.partition,
            "signal": f.signal,
            "column": f.column,
            "severity": f.severity,
            "message": f.message,
            "onset": jsonable((f.evidence or {}).get("onset")),
        }
        for f in found.itertuples(index=False)
        if severity_rank(f.severity) >= Severity.WARNING.rank
    ]
    return {"days": days, "series": series, "labels": _OPS_SERIES, "anomalies": events}


def _canary(window: Any) -> dict[str, Any]:
    rows = window.metrics[window.metrics["asset"] == Asset.CANARY_REPORT]
    found = window.findings[window.findings["asset"] == Asset.CANARY_REPORT]
    return {
        "metrics": records(rows, ["partition", "metric", "column", "value"]),
        "verdicts": records(found, ["partition", "signal", "severity", "message"]),
    }


def model_detail(
    store: MonitoringStore,
    cfg: AppConfig,
    scope: str | None,
    tenant: str,
    model: str,
    *,
    day: str | None,
    days: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """One model's page: health, drift heat map (feature x day), performance trend with its
    limits and label coverage, ops series with their anomalies and change points, canary
    comparison, alerts and actions."""
    m = find_model(store, cfg, scope, tenant, model)
    days = max(1, min(int(days), MAX_WINDOW_DAYS))
    day = day or store.latest_partition(m.tenant, m.name)
    base = {"tenant": m.tenant, "model": m.name, "key": m.key, "day": day}
    if day is None:
        return {**base, "health": None, "window": []}
    window_days = days_ending(day, days)
    w = load_window(store, m, window_days)
    health = health_summary(
        store, cfg, day=day, alerts=store.alerts(m.tenant, m.name), tenant=m.tenant, model=m.name
    )
    acts = store.actions(m.tenant, m.name)
    return {
        **base,
        "window": window_days,
        "health": records(health)[0] if len(health) else None,
        "features": list(m.config.features.all) if m.config else [],
        "drift": _drift(w, window_days),
        "performance": _performance(w, window_days),
        "ops": _ops(w, window_days),
        "canary": _canary(w),
        "alerts": alerts(store, m.tenant, now=now, model=m.name),
        "actions": records(acts, ["id", "ts", "actor", "action", "partition", "details"])[::-1],
    }


def _bins(edges: Sequence[float]) -> list[str]:
    if not edges:
        return []
    out = [f"< {edges[0]:.4g}"]
    out += [f"[{a:.4g}, {b:.4g})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [*out, f">= {edges[-1]:.4g}"]


def _shares(counts: Sequence[float]) -> list[float | None]:
    total = float(sum(counts))
    return [float(c) / total if total else None for c in counts]


def feature_distribution(
    store: MonitoringStore,
    cfg: AppConfig,
    scope: str | None,
    tenant: str,
    model: str,
    feature: str,
    *,
    day: str,
) -> dict[str, Any]:
    """A feature's distribution on the reference's bins (or vocabulary): the reference's
    shares next to the day's, from the stored profiles."""
    m = find_model(store, cfg, scope, tenant, model)
    ref = store.load_profile(m.tenant, m.name, "reference", REFERENCE_PARTITION)
    cur = store.load_profile(m.tenant, m.name, "daily", day)
    if ref is None:
        raise NotFound(f"no reference profile for {m.key}")
    if cur is None:
        raise NotFound(f"no profile of {m.key} on {day}")
    rc = DatasetProfile.from_dict(ref["profile"]).columns.get(feature)
    dc = DatasetProfile.from_dict(cur["profile"]).columns.get(feature)
    if rc is None or dc is None:
        raise NotFound(f"no feature {feature!r} in the profiles of {m.key}")
    if rc.kind == "categorical":
        names = list(rc.counts)
        ref_counts = [rc.counts[n] for n in names]
        day_counts = [dc.counts.get(n, 0) for n in names]
        # values the reference never had: the most frequent by name, the rest pooled
        for value, n in sorted(dc.unseen.items(), key=lambda kv: (-kv[1], kv[0])):
            names.append(value)
            ref_counts.append(0)
            day_counts.append(n)
        if dc.unseen_other:
            names.append("(other unseen values)")
            ref_counts.append(0)
            day_counts.append(dc.unseen_other)
    else:
        names = _bins([float(e) for e in rc.edges])
        ref_counts, day_counts = list(rc.counts), list(dc.counts)
    return {
        "tenant": m.tenant,
        "model": m.name,
        "feature": feature,
        "day": day,
        "kind": rc.kind,
        "bins": names,
        "reference": _shares(ref_counts),
        "current": _shares(day_counts),
        "n_reference": int(rc.count),
        "n_current": int(dc.count),
        "missing_reference": rc.null_rate,
        "missing_current": dc.null_rate,
    }


def feed_rows(
    store: MonitoringStore,
    scope: str | None,
    *,
    day: str | None,
    days: int,
    tenant: str | None = None,
    model: str | None = None,
    signal: str | None = None,
    severity: str | None = None,
) -> dict[str, Any]:
    """The anomaly feed, filtered by tenant, model, signal, minimum severity and days."""
    if scope is not None and tenant not in (None, scope):
        return {"day": day, "rows": []}
    tenant = scope or tenant
    day = day or latest_day(store, tenant)
    if day is None:
        return {"day": None, "rows": []}
    days = max(1, min(int(days), MAX_WINDOW_DAYS))
    frame = feed(
        store,
        day=day,
        days=days,
        alerts=store.alerts(tenant=tenant, model=model),
        tenant=tenant,
        model=model,
    )
    if signal:
        frame = frame[frame["signal"] == signal]
    if severity:
        floor = Severity(severity).rank
        frame = frame[[severity_rank(s) >= floor for s in frame["severity"]]]
    return {"day": day, "days": days, "rows": records(frame)}
