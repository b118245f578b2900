"""The overview page: one self-contained HTML file per day (inline CSS and SVG, nothing fetched,
so it opens offline and can be mailed or archived): health per tenant and model, drift heat map,
performance trends, canary status, the anomaly feed, alerts and deliveries, recent actions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aiops_pipelines.alerting.rules import alerts_as_of
from aiops_pipelines.core.config import AppConfig
from aiops_pipelines.core.files import replace_file
from aiops_pipelines.core.findings import Asset
from aiops_pipelines.core.values import as_text, fmt_count, fmt_number, fmt_percent, one_line
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.charts import (
    ModelWindow,
    drift_heatmap,
    escape,
    load_window,
    performance_chart,
)
from aiops_pipelines.views.overview import (
    CANARY_SIGNALS,
    STATUSES,
    action_message,
    budget_text,
    check_day,
    days_ending,
    feed,
    health_summary,
    metric_value,
    model_key,
    monitored_models,
    normalize_alerts,
    normalize_deliveries,
    severity_rank,
)
from aiops_pipelines.views.status import primary_text

_MAX_FEED_ROWS_HTML = 400
_MAX_ACTIONS_HTML = 60

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


def _badge(text: Any) -> str:
    word = as_text(text)
    css = re.sub(r"[^a-z]", "", word.lower())
    return f'<span class="badge b-{css}">{escape(word)}</span>' if word else ""


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
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
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
        attr = f' class="{escape(css)}"' if css else ""
        body.append(f"<tr{attr}>{''.join(tds)}</tr>")
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="sec-{ident}"><h2>{escape(title)}</h2>{body}</section>'


def _health_html(health: pd.DataFrame, alerts_known: bool) -> str:
    rows = []
    for _, r in health.iterrows():
        css = "status-" + r["status"].replace(" ", "")
        canary = r["canary"]
        if canary and r["canary_version"]:
            canary_html = f"{_badge(canary)} v{escape(r['canary_version'])}"
        else:
            canary_html = _badge(canary) or "-"
        ref = fmt_number(r["reference_value"], ".3f")
        rows.append(
            (
                css,
                [
                    f"<b>{escape(r['key'])}</b>",
                    _badge(r["status"]),
                    escape(as_text(r["last_partition"]) or "-"),
                    fmt_number(r["drift_share"], ".2f"),
                    escape(primary_text(r)),
                    ref,
                    fmt_percent(r["coverage"]),
                    fmt_count(r["throughput"]),
                    fmt_number(r["latency_p95_ms"], ".1f"),
                    fmt_percent(r["error_rate"], 2),
                    escape(budget_text(r)),
                    canary_html,
                    str(r["alerts_firing"]) if alerts_known else "-",
                    escape(r["issues"]) or "-",
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
        "SLO budget left",
        "Canary",
        "Firing alerts",
        "Issues of the day",
    ]
    return _html_table(
        headers, rows, table_id="health", numeric=(3, 5, 6, 7, 8, 9, 12), message=(13,)
    )


def _feed_html(events: pd.DataFrame) -> str:
    rows = []
    for r in events.head(_MAX_FEED_ROWS_HTML).itertuples(index=False):
        rows.append(
            (
                f"kind-{r.kind} sev-{r.severity}",
                [
                    escape(r.when),
                    escape(model_key(r.tenant, r.model)),
                    escape(r.kind),
                    _badge(r.severity),
                    escape(r.signal),
                    escape(one_line(r.column, 40)),
                    escape(r.message),
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
        _, message = action_message(a.actor, a.action, a.details)
        rows.append(
            (
                "",
                [
                    escape(a.ts.strftime("%Y-%m-%d %H:%M:%SZ")),
                    escape(model_key(a.tenant, a.model)),
                    escape(a.actor),
                    escape(a.action),
                    escape(a.partition if isinstance(a.partition, str) else "-"),
                    escape(message),
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


def _canary_html(windows: list[ModelWindow], days: list[str]) -> str:
    rows = []
    for w in windows:
        canary = w.metrics[w.metrics["asset"] == Asset.CANARY_REPORT]
        if canary.empty:
            continue
        verdicts: dict[str, str] = {}
        for f in w.findings.itertuples(index=False):
            if f.signal in CANARY_SIGNALS:
                verdicts[f.partition] = CANARY_SIGNALS[f.signal]
        canary_days = sorted(set(canary["partition"]))
        last = canary_days[-1]
        today = canary[canary["partition"] == last]

        def val(metric: str, frame: pd.DataFrame = today) -> float:
            return metric_value(frame, Asset.CANARY_REPORT, metric)

        version = today.loc[today["metric"] == "canary_n", "column"]
        champion = today.loc[today["metric"] == "champion_n", "column"]
        cw = 9
        strip = [
            f'<svg role="img" width="{cw * len(days)}" height="12" '
            f'aria-label="canary verdicts {escape(w.model.key)}">'
        ]
        for j, d in enumerate(days):
            verdict = verdicts.get(d, "inconclusive" if d in canary_days else None)
            css = {"fail": "c-critical", "pass": "l-ok", "inconclusive": "c-info"}.get(
                verdict or "", "c-none"
            )
            strip.append(
                f'<rect class="{css}" x="{j * cw}" y="1" width="{cw - 1}" height="10">'
                f"<title>{escape(d)}: {escape(verdict or 'no canary')}</title></rect>"
            )
        strip.append("</svg>")
        verdict = verdicts.get(last, "inconclusive")
        rows.append(
            (
                f"verdict-{verdict}",
                [
                    f"<b>{escape(w.model.key)}</b>",
                    escape(last),
                    escape(version.iloc[0] if len(version) else "-"),
                    escape(champion.iloc[0] if len(champion) else "-"),
                    _badge(verdict),
                    f"{fmt_number(val('canary_estimate'), '+.4f')} "
                    f"[{fmt_number(val('canary_lower'), '+.4f')}, "
                    f"{fmt_number(val('canary_upper'), '+.4f')}]",
                    fmt_percent(val("canary_share_cumulative")),
                    fmt_percent(val("canary_coverage")),
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
        _o=recent["state"].map(order).fillna(3), _r=[-severity_rank(s) for s in recent["severity"]]
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
                    escape(model_key(a.tenant, a.model)),
                    escape(a.signal),
                    escape(one_line(a.column, 40)),
                    _badge(a.severity),
                    _badge(a.state),
                    escape(a.first_seen),
                    escape(as_text(a.fired_on) or "-"),
                    escape(a.last_seen),
                    escape(as_text(a.resolved_on) or "-"),
                    str(int(a.notified)),
                    escape(flags or "-"),
                    escape(a.message),
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
                    last_error = as_text(failing.sort_values("attempts")["last_error"].iloc[-1])
                rows.append(
                    (
                        "route-failing" if len(failing) else "",
                        [
                            escape(route),
                            *(str(int((group["status"] == s).sum())) for s in statuses),
                            str(len(failing)),
                            escape(one_line(last_error, 200) or "-"),
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
    day = check_day(day)
    days = days_ending(day, window_days)
    now = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    models = monitored_models(store, cfg)
    health = health_summary(store, cfg, day=day, alerts=alerts)
    if events is None:  # the caller may pass the feed it already read
        events = feed(store, day=day, days=window_days, alerts=alerts)
    stored = store.models()
    windows = [load_window(store, m, days) for m in models if (m.tenant, m.name) in stored]

    counts = health["status"].value_counts()
    chips = " ".join(
        f"<span>{_badge(s)} {int(counts.get(s, 0))}</span>" for s in STATUSES if counts.get(s)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>aiops overview {escape(day)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>ML monitoring overview: {escape(day)}</h1>",
        f"<p>{len(models)} models &middot; window {escape(days[0])} to {escape(day)} "
        f"({window_days} days) &middot; generated {escape(now.strftime('%Y-%m-%d %H:%M:%S'))} UTC"
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
        f'<div class="card"><h3>{escape(w.model.key)}</h3>{drift_heatmap(w, days)}</div>'
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
        f'<div class="card"><h3>{escape(w.model.key)}: '
        f"{escape(w.primary or 'no primary metric')}</h3>"
        f"{performance_chart(w, days)}</div>"
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


@dataclass
class OverviewPage:
    """The day's page as written, with what it was built from."""

    path: Path
    alerts: pd.DataFrame
    deliveries: pd.DataFrame
    feed: pd.DataFrame

    def summary(self, day: str) -> dict[str, Any]:
        firing = self.alerts[self.alerts["state"] == "firing"]
        return {
            "feed_items_today": int((self.feed["when"] == day).sum()),
            "alerts_firing": len(firing),
            "alerts_firing_critical": int((firing["severity"] == "critical").sum()),
            "size_kb": round(self.path.stat().st_size / 1024, 1),
        }

    @property
    def tracked_metrics(self) -> dict[str, float]:
        return {
            "alerts_firing": float((self.alerts["state"] == "firing").sum()),
            "deliveries_pending": float((self.deliveries["status"] == "pending").sum()),
        }


def write_overview(
    store: MonitoringStore,
    cfg: AppConfig,
    day: str,
    *,
    window_days: int = 14,
    path: Path | None = None,
) -> OverviewPage:
    """Render the day's page to `path`, by default `<artifacts>/overview/overview_<day>.html`
    (alerts, deliveries and the feed read once for the whole page), as of `day`: the alert
    states of that day and the deliveries of events up to it."""
    alerts = alerts_as_of(store, cfg.alerting, day)
    deliveries = store.deliveries()
    deliveries = deliveries[deliveries["partition"] <= day].reset_index(drop=True)
    items = feed(store, day=day, days=window_days, alerts=alerts)
    html = render_overview(
        store,
        cfg,
        day=day,
        alerts=alerts,
        deliveries=deliveries,
        window_days=window_days,
        events=items,
    )
    path = path or cfg.artifacts_path / "overview" / f"overview_{day}.html"
    # another run of the day may be logging the page to MLflow or serving it right now
    replace_file(path, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    return OverviewPage(path, alerts, deliveries, items)
