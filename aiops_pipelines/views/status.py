"""`aiops status`: the health table and the feed of a day, for a terminal.

The same numbers as the HTML page (`views.overview`); colour only when the output is a terminal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import AppConfig
from aiops_pipelines.core.values import as_text, fmt_count, fmt_number, fmt_percent, one_line
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.overview import (
    budget_text,
    check_day,
    feed,
    health_summary,
    model_key,
)


def primary_text(row: Any) -> str:
    if not row["primary_metric"]:
        return "-"
    text = f"{row['primary_metric']} {fmt_number(row['primary_value'], '.3f')}"
    if as_text(row["performance_partition"]):
        text += f" @{str(row['performance_partition'])[5:]}"
    return text


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
    day = check_day(day)
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
                as_text(r["last_partition"]) or "-",
                fmt_number(r["drift_share"], ".2f"),
                primary_text(r),
                fmt_percent(r["coverage"]),
                fmt_count(r["throughput"]),
                fmt_number(r["latency_p95_ms"], ".1f"),
                fmt_percent(r["error_rate"], 2),
                budget_text(r),
                (f"{r['canary']} v{r['canary_version']}" if r["canary_version"] else r["canary"])
                or "-",
                str(r["alerts_firing"]) if alerts is not None else "-",
                one_line(r["issues"], 60) or "-",
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
            "SLO BUDGET",
            "CANARY",
            "ALERTS",
            "ISSUES",
        ]
        table = _table(headers, rows, right=(3, 5, 6, 7, 8, 11))
        if color:
            # colour after aligning, so the escape codes do not break the column widths
            width = max(len("STATUS"), *(len(r[1]) for r in rows))
            start = len(table[0].split("STATUS")[0])
            table = [table[0]] + [
                line[:start] + _colour(r[1], r[1], width, True) + line[start + width :]
                for line, r in zip(table[1:], rows, strict=True)
            ]
        lines += table
        config = f" --config {cfg.path}" if cfg is not None else ""
        for r in health[health["missing_assets"] != ""].itertuples(index=False):
            lines.append(
                f"day incomplete: {r.key} {day} has no {r.missing_assets} (a run stopped "
                f"part-way): aiops run{config} --start {day} --end {day} --model {r.key}"
            )
    queued, since, error = store.tracking_backlog()
    if queued:
        lines.append(
            f"MLflow: {queued} logging(s) queued since {since:%Y-%m-%d %H:%M} UTC, logged when "
            f"it answers (last error: {one_line(error or '', 120)})"
        )
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
                model_key(r.tenant, r.model),
                as_text(r.signal),
                one_line(r.column, 24),
                one_line(r.message, 110),
            ]
            for r in shown.itertuples(index=False)
        ]
        lines += _table(["WHEN", "KIND", "SEVERITY", "MODEL", "SIGNAL", "COLUMN", "MESSAGE"], rows)
        if len(events) > limit:
            lines.append(f"... {len(events) - limit} older entries not shown")
    return "\n".join(lines) + "\n"
