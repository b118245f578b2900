"""The overview: health per model, the anomaly/incident feed, and the HTML page and terminal
table that show them.

Everything here reads the monitoring store (and, when given, the alert states and deliveries)
and writes nothing. Three views share the same numbers:

- `feed`: what happened in a window of days, newest first: warning and critical findings
  (drift, decay, canary, operational anomalies, failed runs), audit-trail actions (retrain,
  rollback, promotion...) and alert state changes.
- `health_summary`: one row per (tenant, model) for a day: a status (critical, warning, ok,
  no data) from that day's findings and the firing alerts, and the key numbers behind it.
- `render_overview` (one self-contained HTML page: inline CSS and SVG, nothing fetched, so it
  opens offline and can be mailed or archived) and `status_text` (the same for a terminal).

The performance numbers of a day come from the latest day up to it whose primary metric is
known: labels arrive days late, so the newest days usually have too few to say anything.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import AppConfig, ModelConfig
from aiops_pipelines.core.findings import Severity, Signal

# the columns of store.alerts() and store.deliveries() (missing ones are filled with None)
from aiops_pipelines.io.schema import ALERT_COLUMNS, DELIVERY_COLUMNS
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore

__all__ = [
    "ALERT_COLUMNS",
    "DELIVERY_COLUMNS",
    "FEED_COLUMNS",
    "HEALTH_COLUMNS",
    "STATUSES",
    "MonitoredModel",
    "feed",
    "health_summary",
    "latest_partition",
    "monitored_models",
    "normalize_alerts",
    "normalize_deliveries",
    "performance_history",
    "primary_metric_of",
    "reference_performance_value",
    "render_overview",
    "status_text",
]

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
    "canary",
    "canary_version",
    "alerts_firing",
    "findings_critical",
    "findings_warning",
    "issues",
]
STATUSES = ("critical", "warning", "ok", "no data")

# Primary metrics in the order a model without a config is guessed to use them.
_DEFAULT_PRIMARY = ("roc_auc", "macro_f1", "mae")
_LOWER_IS_BETTER = {"log_loss", "calibration_error", "mae", "rmse", "mape"}
_LEVEL_NAMES = {-1.0: "insufficient", 0.0: "ok", 1.0: "warning", 2.0: "critical"}
_DRIFT_ASSET = "drift_report"
_CANARY_SIGNALS = {Signal.CANARY_FAIL.value: "fail", Signal.CANARY_PASS.value: "pass"}
_MAX_FEED_ROWS_HTML = 400
_MAX_ACTIONS_HTML = 60


def _rank(severity: Any) -> int:
    try:
        return Severity(str(severity)).rank
    except ValueError:
        return -1


def _check_day(day: str) -> str:
    try:
        return dt.date.fromisoformat(str(day)).isoformat()
    except ValueError:
        raise ValueError(f"day {day!r} is not a date (YYYY-MM-DD)") from None


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def _window(day: str, days: int) -> list[str]:
    """The `days` partitions ending with `day`, oldest first."""
    if days < 1:
        raise ValueError(f"a window needs at least one day, got {days}")
    return [_shift(day, -i) for i in range(days - 1, -1, -1)]


def _key(tenant: str, model: str) -> str:
    # failed runs that name no known model are stored under tenant "" and model "pipeline"
    return f"{tenant}.{model}" if tenant else model


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _finite(value: Any) -> bool:
    return math.isfinite(_num(value))


def _text(value: Any) -> str:
    """Display text of a cell: '' for None/NaN."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if value is pd.NaT:
        return ""
    return str(value)


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


# -- reads -----------------------------------------------------------------------------------


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
        tenant, model, end=None if end is None else _check_day(end), asset=asset
    )


def reference_performance_value(
    store: MonitoringStore, tenant: str, model: str, metric: str
) -> float:
    """The champion's reference value of `metric` (NaN when no labelled reference is stored)."""
    payload = store.load_profile(tenant, model, "reference", REFERENCE_PARTITION) or {}
    perf = payload.get("performance") or {}
    return _num((perf.get("metrics") or {}).get(metric))


@dataclass(frozen=True)
class MonitoredModel:
    """A (tenant, model) to show, with its config when it is configured."""

    tenant: str
    name: str
    config: ModelConfig | None

    @property
    def key(self) -> str:
        return _key(self.tenant, self.name)


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
    out += [MonitoredModel(t, m, None) for t, m in store.models() if (t, m) not in known]
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


def _model_level(frame: pd.DataFrame, asset: str | None = None) -> pd.DataFrame:
    keep = frame["column"] == ""
    if asset is not None:
        keep &= frame["asset"] == asset
    return frame[keep]


def _value(frame: pd.DataFrame, asset: str, metric: str) -> float:
    rows = frame[(frame["asset"] == asset) & (frame["metric"] == metric) & (frame["column"] == "")]
    return float(rows["value"].iloc[-1]) if len(rows) else math.nan


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
        asset="performance_report",
        start=_shift(day, -max(days, lookback)),
        end=day,
    )
    return _model_level(frame)


# -- the feed --------------------------------------------------------------------------------


def _action_message(actor: str, action: str, details: Any) -> tuple[str, str]:
    """(column, message) of an audit entry: the version it concerns and why."""
    d = details if isinstance(details, dict) else {}
    version = _text(d.get("version"))
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


def _alert_events(alerts: pd.DataFrame, first: str, day: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for a in alerts.itertuples(index=False):
        flags = [f for f in ("silenced", "inhibited") if bool(getattr(a, f))]
        suffix = f" ({', '.join(flags)})" if flags else ""
        events = []
        if a.state == "pending" and first <= _text(a.first_seen) <= day:
            events.append(("pending", _text(a.first_seen)))
        if first <= _text(a.fired_on) <= day:
            events.append(("firing", _text(a.fired_on)))
        if first <= _text(a.resolved_on) <= day:
            events.append(("resolved", _text(a.resolved_on)))
        for event, when in events:
            current = event == a.state
            rows.append(
                {
                    "when": when,
                    # only the current state's change has a known time
                    "ts": a.updated_at if current else pd.NaT,
                    "tenant": _text(a.tenant),
                    "model": _text(a.model),
                    "kind": "alert",
                    "severity": _text(a.severity),
                    "signal": _text(a.signal),
                    "column": _text(a.column),
                    "message": f"alert {event}{suffix}: {_text(a.message)}",
                    "value": _num(a.value),
                    "threshold": _num(a.threshold),
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
    column is its run id), audit-trail actions (kind 'action', severity 'info'; `signal` is
    the action) and alert state changes when `alerts` is given (kind 'alert'; `source` is the
    event: pending, firing or resolved). `when` is the partition the entry is about (an action
    without one: the day it was taken); `ts` the time it was recorded, when known.
    """
    day = _check_day(day)
    first = _window(day, days)[0]
    rows: list[dict[str, Any]] = []
    found = store.findings(tenant, model, start=first, end=day, min_severity=Severity.WARNING)
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
        column, message = _action_message(a.actor, a.action, a.details)
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
    al = normalize_alerts(alerts)
    if tenant is not None:
        al = al[al["tenant"] == tenant]
    if model is not None:
        al = al[al["model"] == model]
    rows += _alert_events(al, first, day)

    out = pd.DataFrame(rows, columns=FEED_COLUMNS)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    for name in ("value", "threshold"):
        out[name] = out[name].astype("float64")
    out["_rank"] = [_rank(s) for s in out["severity"]]
    out = out.sort_values(
        ["when", "ts", "_rank"], ascending=False, na_position="last", kind="stable"
    )
    return out.drop(columns="_rank").reset_index(drop=True)


# -- health ----------------------------------------------------------------------------------


def _health_row(
    store: MonitoringStore, model: MonitoredModel, day: str, alerts: pd.DataFrame
) -> dict[str, Any]:
    t, m = model.tenant, model.name
    metrics = store.metric_history(t, m, start=day, end=day)
    found = store.findings(t, m, start=day, end=day)
    perf = performance_history(store, model, day, 1)
    primary = primary_metric_of(model, perf)
    perf_day, perf_rows = _latest_evaluated(perf, primary)

    error_rate = _value(metrics, "ops_report", "error_rate")
    if not math.isfinite(error_rate):  # ops_report not run: the profile counts errors too
        error_rate = _value(metrics, "feature_profile", "error_rate")

    canary, canary_version = "", ""
    canary_rows = metrics[metrics["asset"] == "canary_report"]
    if len(canary_rows):
        verdicts = [_CANARY_SIGNALS[s] for s in found["signal"] if s in _CANARY_SIGNALS]
        canary = "fail" if "fail" in verdicts else (verdicts[0] if verdicts else "inconclusive")
        versions = canary_rows.loc[canary_rows["metric"] == "canary_n", "column"]
        canary_version = str(versions.iloc[0]) if len(versions) else ""

    bad = found[found["severity"].map(_rank) >= Severity.WARNING.rank]
    firing = alerts[
        (alerts["tenant"] == t) & (alerts["model"] == m) & (alerts["state"] == "firing")
    ]
    worst = max([_rank(s) for s in bad["severity"]] + [_rank(s) for s in firing["severity"]] + [-1])
    if worst >= Severity.CRITICAL.rank:
        status = "critical"
    elif worst >= Severity.WARNING.rank:
        status = "warning"
    elif len(metrics) or len(found):
        status = "ok"
    else:
        status = "no data"
    issues = list(
        dict.fromkeys(
            bad.sort_values("severity", key=lambda s: s.map(_rank), ascending=False)["signal"]
        )
    )
    return {
        "tenant": t,
        "model": m,
        "key": model.key,
        "status": status,
        "last_partition": latest_partition(store, t, m, end=day),
        "drift_share": _value(metrics, _DRIFT_ASSET, "drift_share"),
        "n_drifted": _value(metrics, _DRIFT_ASSET, "n_drifted"),
        "primary_metric": primary or "",
        "primary_value": _value(perf_rows, "performance_report", primary) if primary else math.nan,
        "performance_partition": perf_day,
        "reference_value": (
            reference_performance_value(store, t, m, primary) if primary else math.nan
        ),
        "coverage": _value(perf_rows, "performance_report", "coverage"),
        "n_labelled": _value(perf_rows, "performance_report", "n_labelled"),
        "throughput": _value(metrics, "ops_report", "throughput_day"),
        "latency_p95_ms": _value(metrics, "ops_report", "latency_p95"),
        "error_rate": error_rate,
        "canary": canary,
        "canary_version": canary_version,
        "alerts_firing": len(firing),
        "findings_critical": int(sum(_rank(s) == 2 for s in bad["severity"])),
        "findings_warning": int(sum(_rank(s) == 1 for s in bad["severity"])),
        "issues": ", ".join(str(i) for i in issues),
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
    """
    day = _check_day(day)
    al = normalize_alerts(alerts)
    rows = [_health_row(store, m, day, al) for m in monitored_models(store, cfg, tenant, model)]
    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)


# -- formatting ------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".3g") -> str:
    number = _num(value)
    return format(number, spec) if math.isfinite(number) else "-"


def _pct(value: Any, digits: int = 0) -> str:
    number = _num(value)
    return f"{number:.{digits}%}" if math.isfinite(number) else "-"


def _count(value: Any) -> str:
    number = _num(value)
    return f"{number:,.0f}" if math.isfinite(number) else "-"


def _one_line(text: Any, limit: int | None = None) -> str:
    """Collapse whitespace (a failed run's message has a traceback's newlines)."""
    out = re.sub(r"\s+", " ", _text(text)).strip()
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)] + "…"
    return out


def _primary_text(row: Any) -> str:
    if not row["primary_metric"]:
        return "-"
    text = f"{row['primary_metric']} {_fmt(row['primary_value'], '.3f')}"
    if _text(row["performance_partition"]):
        text += f" @{str(row['performance_partition'])[5:]}"
    return text


# -- terminal --------------------------------------------------------------------------------

_ANSI = {"critical": "\x1b[31;1m", "warning": "\x1b[33m", "ok": "\x1b[32m", "no data": "\x1b[2m"}


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()
) -> list[str]:
    right = set(right)
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _colour(text: str, status: str, width: int, color: bool) -> str:
    padded = text.ljust(width)
    return f"{_ANSI[status]}{padded}\x1b[0m" if color and status in _ANSI else padded


def status_text(
    store: MonitoringStore,
    cfg: AppConfig | None,
    *,
    day: str,
    alerts: pd.DataFrame | None = None,
    days: int = 7,
    limit: int = 50,
    color: bool = False,
    kinds: Collection[str] | None = None,
) -> str:
    """The health table and the feed (at most `limit` entries) as aligned plain text.

    `color=True` colours the status column with ANSI codes (for a terminal that shows them).
    `kinds` keeps only those feed entries ('finding', 'action', 'alert').
    """
    day = _check_day(day)
    health = health_summary(store, cfg, day=day, alerts=alerts)
    events = feed(store, day=day, days=days, alerts=alerts)
    if kinds is not None:
        events = events[events["kind"].isin(list(kinds))].reset_index(drop=True)
    lines = [f"aiops status for {day} (feed: {days} days to {day})", ""]
    if health.empty:
        lines.append("no models configured and nothing stored")
    else:
        rows = [
            [
                r["key"],
                r["status"],
                _text(r["last_partition"]) or "-",
                _fmt(r["drift_share"], ".2f"),
                _primary_text(r),
                _pct(r["coverage"]),
                _count(r["throughput"]),
                _fmt(r["latency_p95_ms"], ".1f"),
                _pct(r["error_rate"], 2),
                (f"{r['canary']} v{r['canary_version']}" if r["canary_version"] else r["canary"])
                or "-",
                str(r["alerts_firing"]) if alerts is not None else "-",
                _one_line(r["issues"], 60) or "-",
            ]
            for _, r in health.iterrows()
        ]
        headers = [
            "MODEL",
            "STATUS",
            "LAST",
            "DRIFT",
            "PRIMARY",
            "COVER",
            "PRED/DAY",
            "P95 MS",
            "ERRORS",
            "CANARY",
            "ALERTS",
            "ISSUES",
        ]
        table = _table(headers, rows, right=(3, 5, 6, 7, 8, 10))
        if color:
            # colour after aligning, so the escape codes do not break the column widths
            width = max(len("STATUS"), *(len(r[1]) for r in rows))
            start = len(table[0].split("STATUS")[0])
            table = [table[0]] + [
                line[:start] + _colour(r[1], r[1], width, True) + line[start + width :]
                for line, r in zip(table[1:], rows, strict=True)
            ]
        lines += table
    lines += ["", f"feed ({len(events)} entries, newest first)"]
    if events.empty:
        lines.append("  nothing to report")
    else:
        shown = events.head(limit)
        rows = [
            [
                r.when,
                r.kind,
                r.severity,
                _key(r.tenant, r.model),
                _text(r.signal),
                _one_line(r.column, 24),
                _one_line(r.message, 110),
            ]
            for r in shown.itertuples(index=False)
        ]
        lines += _table(["WHEN", "KIND", "SEVERITY", "MODEL", "SIGNAL", "COLUMN", "MESSAGE"], rows)
        if len(events) > limit:
            lines.append(f"... {len(events) - limit} older entries not shown")
    return "\n".join(lines) + "\n"


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
:root{--crit:#c62828;--warn:#ef8a00;--ok:#2e7d32;--none:#9e9e9e;--line:#e0e0e0;--ink:#1f2328}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--ink);margin:0;background:#f6f7f9}
header{background:#1f2937;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#cbd5e1}
nav{padding:6px 24px;background:#fff;border-bottom:1px solid var(--line);font-size:13px}
nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
main{padding:8px 24px 40px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;
margin:14px 0}
h2{font-size:16px;margin:0 0 10px}
h3{font-size:14px;margin:0 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f1f3f5;position:sticky;top:0;font-weight:600}
td.when{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.msg{max-width:640px;overflow-wrap:anywhere}
.scroll{max-height:560px;overflow:auto}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
color:#fff;background:var(--none);white-space:nowrap}
.b-critical,.b-fail,.b-firing{background:var(--crit)}
.b-warning,.b-pending{background:var(--warn)}
.b-ok,.b-pass,.b-resolved,.b-sent{background:var(--ok)}
.b-info,.b-action,.b-inconclusive{background:#546e7a}
.b-nodata{background:var(--none)}
tr.status-critical td:first-child{border-left:4px solid var(--crit)}
tr.status-warning td:first-child{border-left:4px solid var(--warn)}
tr.status-ok td:first-child{border-left:4px solid var(--ok)}
tr.status-nodata td:first-child{border-left:4px solid var(--none)}
tr.status-nodata td{color:#757575}
.chips span{display:inline-block;margin:0 10px 6px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(470px,1fr));gap:12px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow-x:auto}
.muted,.empty{color:#6b7280}
.empty{font-size:15px;padding:8px 0}
.legend span{display:inline-block;margin-right:10px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:3px;vertical-align:-1px}
svg text{font:10px system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
fill:#374151}
.c-none{fill:#f1f1f1}.c-ok{fill:#d7ecd9}.c-near{fill:#fff1b8}.c-warning{fill:#f6a04d}
.c-critical{fill:#d93025}.c-info{fill:#90caf9}
.l-ok{fill:var(--ok)}.l-warning{fill:var(--warn)}.l-critical{fill:var(--crit)}
.l-insufficient{fill:#fff;stroke:#9e9e9e}.l-unknown{fill:#607d8b}
footer{color:#6b7280;font-size:12px;padding:0 24px 24px}
"""

_CELL_FILL = {-1: "c-ok", 0: "c-info", 1: "c-warning", 2: "c-critical"}


def _e(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _badge(text: Any) -> str:
    word = _text(text)
    css = re.sub(r"[^a-z]", "", word.lower())
    return f'<span class="badge b-{css}">{_e(word)}</span>' if word else ""


def _html_table(
    headers: Sequence[str],
    rows: Sequence[tuple[str, Sequence[str]]],
    *,
    table_id: str | None = None,
    numeric: Iterable[int] = (),
    message: Iterable[int] = (),
    nowrap: Iterable[int] = (0,),
) -> str:
    """`rows` are (the row's class, its cells as already-escaped HTML)."""
    numeric, message, nowrap = set(numeric), set(message), set(nowrap)
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for css, cells in rows:
        tds = []
        for i, cell in enumerate(cells):
            klass = (
                ' class="num"'
                if i in numeric
                else ' class="msg"'
                if i in message
                else ' class="when"'
                if i in nowrap
                else ""
            )
            tds.append(f"<td{klass}>{cell}</td>")
        attr = f' class="{_e(css)}"' if css else ""
        body.append(f"<tr{attr}>{''.join(tds)}</tr>")
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass
class _Window:
    """One model's stored results over the page's window."""

    model: MonitoredModel
    metrics: pd.DataFrame
    findings: pd.DataFrame
    performance: pd.DataFrame
    primary: str | None
    reference: float


def _load_window(store: MonitoringStore, model: MonitoredModel, days: list[str]) -> _Window:
    t, m = model.tenant, model.name
    metrics = store.metric_history(t, m, start=days[0], end=days[-1])
    # hourly series are for anomaly detection; the page shows days
    metrics = metrics[~metrics["metric"].str.endswith("_hour")].reset_index(drop=True)
    found = store.findings(t, m, start=days[0], end=days[-1])
    perf = performance_history(store, model, days[-1], len(days))
    perf = perf[perf["partition"] >= days[0]]
    primary = primary_metric_of(model, perf)
    ref = reference_performance_value(store, t, m, primary) if primary else math.nan
    return _Window(model, metrics, found, perf, primary, ref)


def _day_ticks(days: list[str], x0: float, step: float, y: float) -> str:
    # "MM-DD" is about 28 px wide at 10 px: label every few days so labels never overlap
    every = max(1, math.ceil(len(days) / 10), math.ceil(32 / step))
    first = (len(days) - 1) % every  # so the last day, the one the page is about, is labelled
    out = []
    for i in range(first, len(days), every):
        x = x0 + i * step + step / 2
        out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{_e(days[i][5:])}</text>')
    return "".join(out)


def _drift_heatmap(w: _Window, days: list[str]) -> str:
    drift = w.metrics[w.metrics["asset"] == _DRIFT_ASSET]
    stats = drift[drift["metric"].str.startswith("drift_") & (drift["column"] != "")]
    if stats.empty:
        return '<p class="muted">no drift results in the window</p>'
    p_values = {
        (r.partition, r.column): r.value
        for r in drift[drift["metric"] == "p_value"].itertuples(index=False)
    }
    shares = {
        r.partition: r.value
        for r in _model_level(drift).itertuples(index=False)
        if r.metric == "drift_share"
    }
    severity: dict[tuple[str, str], int] = {}
    for f in w.findings[w.findings["asset"] == _DRIFT_ASSET].itertuples(index=False):
        k = (f.partition, f.column)
        severity[k] = max(severity.get(k, -1), _rank(f.severity))
    configured = w.model.config.features.all if w.model.config else []
    present = list(dict.fromkeys(stats["column"]))
    columns = [c for c in configured if c in present] + sorted(set(present) - set(configured))
    warn_at: dict[str, float] = {}
    if w.model.config is not None:
        for method in ("psi", "wasserstein", "jensenshannon"):
            warn_at[method] = getattr(w.model.config.thresholds, method)[0]

    cells: dict[tuple[str, str], tuple[str, str]] = {}
    for r in stats.itertuples(index=False):
        method = r.metric.removeprefix("drift_")
        rank = severity.get((r.partition, r.column), -1)
        css = _CELL_FILL[rank]
        limit = warn_at.get(method)
        if rank < 1 and limit and _finite(r.value) and r.value >= limit / 2:
            css = "c-near"
        tip = f"{r.column} {r.partition}: {method} {_fmt(r.value, '.4g')}"
        p = p_values.get((r.partition, r.column))
        if p is not None and _finite(p):
            tip += f", p={_fmt(p, '.2g')}"
        if rank >= 1:
            tip += f", {Severity(list(Severity)[rank]).value}"
        cells[(r.partition, r.column)] = (css, tip)

    label_w = min(max(len(c) for c in [*columns, "drift share"]) * 6.2 + 10, 170)
    cw, ch = 16, 14
    width = label_w + cw * len(days) + 18
    height = ch * (len(columns) + 1) + 22
    parts = [
        f'<svg role="img" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" aria-label="drift heat map {_e(w.model.key)}">'
    ]
    rows = [("drift share", None), *((c, c) for c in columns)]
    for i, (label, column) in enumerate(rows):
        y = 4 + i * ch
        shown = label if len(label) * 6.2 + 10 <= label_w else label[: int(label_w / 6.2) - 2] + "…"
        parts.append(
            f'<text x="{label_w - 4:.0f}" y="{y + 11}" text-anchor="end">'
            f"<title>{_e(label)}</title>{_e(shown)}</text>"
        )
        for j, d in enumerate(days):
            x = label_w + j * cw
            if column is None:
                share = shares.get(d)
                if share is None:
                    css, tip = "c-none", f"{d}: no drift report"
                else:
                    rank = severity.get((d, ""), -1)
                    css = _CELL_FILL[rank] if rank >= 1 else "c-ok"
                    tip = f"{d}: drift share {_fmt(share, '.2f')}"
            else:
                css, tip = cells.get((d, column), ("c-none", f"{column} {d}: no result"))
            parts.append(
                f'<rect class="{css}" x="{x}" y="{y}" width="{cw - 1}" height="{ch - 1}">'
                f"<title>{_e(tip)}</title></rect>"
            )
    parts.append(_day_ticks(days, label_w, cw, height - 6))
    parts.append("</svg>")
    return "".join(parts)


def _limits(model: ModelConfig | None, metric: str, reference: float) -> list[tuple[str, float]]:
    """The warning and critical limits of the decay rule (floors and relative drop), without
    the sampling band, which depends on each day's number of labels."""
    if model is None:
        return []
    higher = metric not in _LOWER_IS_BETTER
    policy = model.performance
    floors = policy.floors.get(metric)
    out = []
    for i, level in enumerate(("warning", "critical")):
        floor = floors[i] if floors else None
        drop = policy.relative_drop[i]
        rel = math.nan
        if math.isfinite(reference):
            rel = reference - drop * abs(reference) if higher else reference + drop * abs(reference)
        if floor is None:
            limit = rel
        elif not math.isfinite(rel):
            limit = floor
        else:
            limit = max(rel, floor) if higher else min(rel, floor)
        if math.isfinite(limit):
            out.append((level, limit))
    return out


def _performance_chart(w: _Window, days: list[str]) -> str:
    metric = w.primary
    if metric is None:
        return '<p class="muted">no performance results in the window</p>'
    perf = w.performance
    by_day: dict[str, dict[str, float]] = {}
    for r in perf.itertuples(index=False):
        by_day.setdefault(r.partition, {})[r.metric] = r.value
    values = {d: by_day[d].get(metric, math.nan) for d in days if d in by_day}
    lines: list[tuple[str, float]] = []
    if math.isfinite(w.reference):
        lines.append(("reference", w.reference))
    lines += _limits(w.model.config, metric, w.reference)
    finite = [v for v in values.values() if math.isfinite(v)] + [v for _, v in lines]
    if not by_day:
        return '<p class="muted">no performance results in the window</p>'
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 0.05
    lo, hi = lo - pad, hi + pad
    left, top, plot_h, step = 56, 8, 104, max(8.0, min(22.0, 400 / len(days)))
    width = left + step * len(days) + 92
    cov_top, cov_h = top + plot_h + 10, 26
    height = cov_top + cov_h + 20

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    def x(i: int) -> float:
        return left + i * step + step / 2

    parts = [
        f'<svg role="img" width="{width:.0f}" height="{height}" viewBox="0 0 {width:.0f} '
        f'{height}" aria-label="performance trend {_e(w.model.key)}">',
        f'<rect x="{left}" y="{top}" width="{step * len(days):.1f}" height="{plot_h}" '
        'fill="#fafafa" stroke="#e0e0e0"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{_fmt(hi, ".3g")}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{_fmt(lo, ".3g")}</text>',
    ]
    colours = {"reference": "#1d4ed8", "warning": "#ef8a00", "critical": "#c62828"}
    for name, v in lines:
        parts.append(
            f'<line x1="{left}" x2="{left + step * len(days):.1f}" y1="{y(v):.1f}" '
            f'y2="{y(v):.1f}" stroke="{colours[name]}" stroke-dasharray="4 3">'
            f"<title>{_e(name)} {_fmt(v, '.4g')}</title></line>"
            f'<text x="{left + step * len(days) + 4:.1f}" y="{y(v) + 3:.1f}">'
            f"{_e(name)} {_fmt(v, '.3g')}</text>"
        )
    points = [(i, values.get(d, math.nan)) for i, d in enumerate(days)]
    segment: list[str] = []
    for i, v in [*points, (len(days), math.nan)]:
        if math.isfinite(v):
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            continue
        if len(segment) > 1:
            parts.append(
                f'<polyline fill="none" stroke="#374151" stroke-width="1.5" '
                f'points="{" ".join(segment)}"/>'
            )
        segment = []
    for i, d in enumerate(days):
        row = by_day.get(d)
        if row is None:
            continue
        v = row.get(metric, math.nan)
        level = _LEVEL_NAMES.get(row.get("decay_level", math.nan), "unknown")
        coverage = row.get("coverage", math.nan)
        tip = (
            f"{d}: {metric} {_fmt(v, '.4g')}, {level}, coverage {_pct(coverage)}, "
            f"{_count(row.get('n_labelled'))} labels"
        )
        if math.isfinite(v):
            parts.append(
                f'<circle class="l-{level}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.2">'
                f"<title>{_e(tip)}</title></circle>"
            )
        if math.isfinite(_num(coverage)):
            bar = max(0.0, min(1.0, coverage)) * cov_h
            parts.append(
                f'<rect x="{x(i) - step * 0.35:.1f}" y="{cov_top + cov_h - bar:.1f}" '
                f'width="{step * 0.7:.1f}" height="{bar:.1f}" fill="#90a4ae">'
                f"<title>{_e(tip)}</title></rect>"
            )
    parts.append(
        f'<line x1="{left}" x2="{left + step * len(days):.1f}" y1="{cov_top + cov_h}" '
        f'y2="{cov_top + cov_h}" stroke="#bdbdbd"/>'
        f'<text x="{left - 4}" y="{cov_top + cov_h}" text-anchor="end">coverage</text>'
    )
    parts.append(_day_ticks(days, left, step, height - 4))
    parts.append("</svg>")
    return "".join(parts)


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="sec-{ident}"><h2>{_e(title)}</h2>{body}</section>'


def _health_html(health: pd.DataFrame, alerts_known: bool) -> str:
    rows = []
    for _, r in health.iterrows():
        css = "status-" + r["status"].replace(" ", "")
        canary = r["canary"]
        if canary and r["canary_version"]:
            canary_html = f"{_badge(canary)} v{_e(r['canary_version'])}"
        else:
            canary_html = _badge(canary) or "-"
        ref = _fmt(r["reference_value"], ".3f")
        rows.append(
            (
                css,
                [
                    f"<b>{_e(r['key'])}</b>",
                    _badge(r["status"]),
                    _e(_text(r["last_partition"]) or "-"),
                    _fmt(r["drift_share"], ".2f"),
                    _e(_primary_text(r)),
                    ref,
                    _pct(r["coverage"]),
                    _count(r["throughput"]),
                    _fmt(r["latency_p95_ms"], ".1f"),
                    _pct(r["error_rate"], 2),
                    canary_html,
                    str(r["alerts_firing"]) if alerts_known else "-",
                    _e(r["issues"]) or "-",
                ],
            )
        )
    headers = [
        "Model",
        "Status",
        "Last partition",
        "Drift share",
        "Primary metric",
        "Reference",
        "Label coverage",
        "Predictions/day",
        "Latency p95 (ms)",
        "Error rate",
        "Canary",
        "Firing alerts",
        "Issues of the day",
    ]
    return _html_table(
        headers, rows, table_id="health", numeric=(3, 5, 6, 7, 8, 9, 11), message=(12,)
    )


def _feed_html(events: pd.DataFrame) -> str:
    rows = []
    for r in events.head(_MAX_FEED_ROWS_HTML).itertuples(index=False):
        rows.append(
            (
                f"kind-{r.kind} sev-{r.severity}",
                [
                    _e(r.when),
                    _e(_key(r.tenant, r.model)),
                    _e(r.kind),
                    _badge(r.severity),
                    _e(r.signal),
                    _e(_one_line(r.column, 40)),
                    _e(r.message),
                ],
            )
        )
    table = _html_table(
        ["When", "Model", "Kind", "Severity", "Signal", "Column", "Message"],
        rows,
        table_id="feed",
        message=(6,),
    )
    more = ""
    if len(events) > _MAX_FEED_ROWS_HTML:
        more = f'<p class="muted">{len(events) - _MAX_FEED_ROWS_HTML} older entries not shown</p>'
    if events.empty:
        more = '<p class="muted">No warning or critical findings, actions or alerts.</p>'
    return f'<div class="scroll">{table}</div>{more}'


def _actions_html(store: MonitoringStore, days: list[str]) -> str:
    acts = store.actions()
    rows = []
    for a in acts.iloc[::-1].itertuples(index=False):
        when = a.partition if isinstance(a.partition, str) and a.partition else str(a.ts.date())
        if not days[0] <= when <= days[-1]:
            continue
        _, message = _action_message(a.actor, a.action, a.details)
        rows.append(
            (
                "",
                [
                    _e(a.ts.strftime("%Y-%m-%d %H:%M:%SZ")),
                    _e(_key(a.tenant, a.model)),
                    _e(a.actor),
                    _e(a.action),
                    _e(a.partition if isinstance(a.partition, str) else "-"),
                    _e(message),
                ],
            )
        )
        if len(rows) >= _MAX_ACTIONS_HTML:
            break
    if not rows:
        return '<p class="muted">No actions recorded in the window.</p>'
    return _html_table(
        ["Recorded (UTC)", "Model", "Actor", "Action", "Partition", "What"], rows, message=(5,)
    )


def _canary_html(windows: list[_Window], days: list[str]) -> str:
    rows = []
    for w in windows:
        canary = w.metrics[w.metrics["asset"] == "canary_report"]
        if canary.empty:
            continue
        verdicts: dict[str, str] = {}
        for f in w.findings.itertuples(index=False):
            if f.signal in _CANARY_SIGNALS:
                verdicts[f.partition] = _CANARY_SIGNALS[f.signal]
        canary_days = sorted(set(canary["partition"]))
        last = canary_days[-1]
        today = canary[canary["partition"] == last]

        def val(metric: str, frame: pd.DataFrame = today) -> float:
            return _value(frame, "canary_report", metric)

        version = today.loc[today["metric"] == "canary_n", "column"]
        champion = today.loc[today["metric"] == "champion_n", "column"]
        cw = 9
        strip = [
            f'<svg role="img" width="{cw * len(days)}" height="12" '
            f'aria-label="canary verdicts {_e(w.model.key)}">'
        ]
        for j, d in enumerate(days):
            verdict = verdicts.get(d, "inconclusive" if d in canary_days else None)
            css = {"fail": "c-critical", "pass": "l-ok", "inconclusive": "c-info"}.get(
                verdict or "", "c-none"
            )
            strip.append(
                f'<rect class="{css}" x="{j * cw}" y="1" width="{cw - 1}" height="10">'
                f"<title>{_e(d)}: {_e(verdict or 'no canary')}</title></rect>"
            )
        strip.append("</svg>")
        verdict = verdicts.get(last, "inconclusive")
        rows.append(
            (
                f"verdict-{verdict}",
                [
                    f"<b>{_e(w.model.key)}</b>",
                    _e(last),
                    _e(version.iloc[0] if len(version) else "-"),
                    _e(champion.iloc[0] if len(champion) else "-"),
                    _badge(verdict),
                    f"{_fmt(val('canary_estimate'), '+.4f')} "
                    f"[{_fmt(val('canary_lower'), '+.4f')}, {_fmt(val('canary_upper'), '+.4f')}]",
                    _pct(val("canary_share_cumulative")),
                    _pct(val("canary_coverage")),
                    "".join(strip),
                ],
            )
        )
    if not rows:
        return '<p class="muted">No canary ran in the window.</p>'
    headers = [
        "Model",
        "Last day",
        "Canary",
        "Champion",
        "Verdict",
        "Canary - champion [interval]",
        "Canary share",
        "Label coverage",
        "Verdict per day",
    ]
    return _html_table(headers, rows, numeric=(5, 6, 7))


def _alerts_html(
    alerts: pd.DataFrame | None, deliveries: pd.DataFrame | None, days: list[str]
) -> str:
    if alerts is None:
        return '<p class="muted">Alert states were not provided.</p>'
    al = normalize_alerts(alerts)
    recent = al[(al["state"] != "resolved") | (al["resolved_on"].fillna("") >= days[0])]
    order = {"firing": 0, "pending": 1, "resolved": 2}
    recent = recent.assign(
        _o=recent["state"].map(order).fillna(3), _r=[-_rank(s) for s in recent["severity"]]
    ).sort_values(["_o", "_r", "tenant", "model", "signal"], kind="stable")
    counts = al[al["state"] == "firing"]["severity"].value_counts()
    chips = " ".join(
        f"<span>{_badge(s)} {int(counts.get(s, 0))} firing</span>"
        for s in ("critical", "warning", "info")
    )
    parts = [f'<div class="chips">{chips}</div>']
    rows = []
    for a in recent.itertuples(index=False):
        flags = ", ".join(f for f in ("silenced", "inhibited") if bool(getattr(a, f)))
        rows.append(
            (
                f"alert-{a.state}",
                [
                    _e(_key(a.tenant, a.model)),
                    _e(a.signal),
                    _e(_one_line(a.column, 40)),
                    _badge(a.severity),
                    _badge(a.state),
                    _e(a.first_seen),
                    _e(_text(a.fired_on) or "-"),
                    _e(a.last_seen),
                    _e(_text(a.resolved_on) or "-"),
                    str(int(a.notified)),
                    _e(flags or "-"),
                    _e(a.message),
                ],
            )
        )
    if rows:
        headers = [
            "Model",
            "Signal",
            "Column",
            "Severity",
            "State",
            "First seen",
            "Fired",
            "Last seen",
            "Resolved",
            "Notified",
            "Muted",
            "Message",
        ]
        parts.append(
            '<div class="scroll">'
            + _html_table(headers, rows, table_id="alerts", numeric=(9,), message=(11,))
            + "</div>"
        )
    else:
        parts.append('<p class="muted">No active or recently resolved alerts.</p>')
    if deliveries is not None:
        parts.append("<h3>Deliveries per route</h3>")
        dl = normalize_deliveries(deliveries)
        if dl.empty:
            parts.append('<p class="muted">Nothing delivered yet.</p>')
        else:
            statuses = sorted(set(dl["status"]), key=lambda s: (s != "sent", s))
            rows = []
            for route, group in dl.groupby("route", sort=True):
                failing = group[(group["status"] != "sent") & group["last_error"].notna()]
                last_error = ""
                if len(failing):
                    last_error = _text(failing.sort_values("attempts")["last_error"].iloc[-1])
                rows.append(
                    (
                        "route-failing" if len(failing) else "",
                        [
                            _e(route),
                            *(str(int((group["status"] == s).sum())) for s in statuses),
                            str(len(failing)),
                            _e(_one_line(last_error, 200) or "-"),
                        ],
                    )
                )
            headers = ["Route", *statuses, "Failing", "Last error"]
            numeric = range(1, len(statuses) + 2)
            parts.append(
                _html_table(
                    headers,
                    rows,
                    table_id="deliveries",
                    numeric=numeric,
                    message=(len(headers) - 1,),
                )
            )
    return "".join(parts)


def render_overview(
    store: MonitoringStore,
    cfg: AppConfig | None,
    *,
    day: str,
    alerts: pd.DataFrame | None = None,
    deliveries: pd.DataFrame | None = None,
    window_days: int = 14,
    generated_at: dt.datetime | None = None,
    events: pd.DataFrame | None = None,
) -> str:
    """The overview of `day` as one self-contained HTML page (inline CSS and SVG only).

    Health per model (table id "health", a row per model with class `status-<status>`),
    alerts and deliveries per route when given, the feed of the `window_days` days (table id
    "feed"), a drift heat map (feature x day) and the performance trend (primary metric with
    its reference and decay limits, label coverage) per model, canary verdicts and the audit
    trail. All text is escaped. An empty store gives a page that says so.
    """
    day = _check_day(day)
    days = _window(day, window_days)
    now = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    models = monitored_models(store, cfg)
    health = health_summary(store, cfg, day=day, alerts=alerts)
    if events is None:  # the caller may pass the feed it already read
        events = feed(store, day=day, days=window_days, alerts=alerts)
    stored = store.models()
    windows = [_load_window(store, m, days) for m in models if (m.tenant, m.name) in stored]

    counts = health["status"].value_counts()
    chips = " ".join(
        f"<span>{_badge(s)} {int(counts.get(s, 0))}</span>" for s in STATUSES if counts.get(s)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>aiops overview {_e(day)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>ML monitoring overview: {_e(day)}</h1>",
        f"<p>{len(models)} models &middot; window {_e(days[0])} to {_e(day)} "
        f"({window_days} days) &middot; generated {_e(now.strftime('%Y-%m-%d %H:%M:%S'))} UTC"
        "</p></header>",
        '<nav><a href="#sec-health">Health</a><a href="#sec-alerts">Alerts</a>'
        '<a href="#sec-feed">Feed</a><a href="#sec-drift">Drift</a>'
        '<a href="#sec-performance">Performance</a><a href="#sec-canary">Canary</a>'
        '<a href="#sec-actions">Actions</a></nav><main>',
    ]
    if not stored:
        parts.append(
            '<p class="empty" id="no-data">No data: nothing is stored in the monitoring store '
            "yet. Run the daily assets (<code>aiops run</code>) to fill it.</p>"
        )
    health_body = f'<div class="chips">{chips}</div>' if chips else ""
    if health.empty:
        health_body += (
            '<table id="health"><tbody><tr class="status-nodata"><td>No models configured '
            "and nothing stored.</td></tr></tbody></table>"
        )
    else:
        health_body += '<div class="scroll">' + _health_html(health, alerts is not None) + "</div>"
    parts.append(_section("health", f"Health on {day}", health_body))
    parts.append(_section("alerts", "Alerts", _alerts_html(alerts, deliveries, days)))
    parts.append(_section("feed", f"Anomaly feed, {days[0]} to {day}", _feed_html(events)))

    legend = (
        '<p class="legend"><span><i class="c-ok" style="background:#d7ecd9"></i>no drift</span>'
        '<span><i style="background:#fff1b8"></i>over half the warning threshold</span>'
        '<span><i style="background:#f6a04d"></i>warning</span>'
        '<span><i style="background:#d93025"></i>critical</span>'
        '<span><i style="background:#f1f1f1"></i>no result</span></p>'
    )
    drift_cards = "".join(
        f'<div class="card"><h3>{_e(w.model.key)}</h3>{_drift_heatmap(w, days)}</div>'
        for w in windows
    )
    parts.append(
        _section(
            "drift",
            "Drift per feature and day",
            legend + (f'<div class="grid">{drift_cards}</div>' if drift_cards else ""),
        )
    )
    perf_cards = "".join(
        f'<div class="card"><h3>{_e(w.model.key)}: {_e(w.primary or "no primary metric")}</h3>'
        f"{_performance_chart(w, days)}</div>"
        for w in windows
    )
    perf_legend = (
        '<p class="legend"><span>points: the day\'s realized primary metric, coloured by its '
        "decay level (hollow: too few labels; grey: no level stored)</span><span>dashed: "
        "reference, warning and critical limits (floors and relative drop; the per-day "
        "sampling band is not drawn)"
        "</span><span>bars: label coverage</span></p>"
    )
    parts.append(
        _section(
            "performance",
            "Performance on late labels",
            perf_legend + (f'<div class="grid">{perf_cards}</div>' if perf_cards else ""),
        )
    )
    parts.append(_section("canary", "Canary analysis", _canary_html(windows, days)))
    parts.append(_section("actions", "Recent actions (audit trail)", _actions_html(store, days)))
    parts.append(
        "</main><footer>aiops-pipelines overview &middot; self-contained page, no external "
        "resources</footer></body></html>"
    )
    return "\n".join(parts)
