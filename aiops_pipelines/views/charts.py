"""The page's inline SVG charts: the drift heat map (column x day) and the performance trend
with its warning and critical limits. Drawn by hand from the stored numbers: a few dozen shapes
per chart, no JavaScript, so the page stays one file that opens offline."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.findings import Asset, Severity, level_name
from aiops_pipelines.core.values import (
    as_number,
    as_text,
    fmt_count,
    fmt_number,
    fmt_percent,
    is_finite,
)
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.overview import (
    LOWER_IS_BETTER,
    MonitoredModel,
    model_level,
    performance_history,
    primary_metric_of,
    reference_performance_value,
    severity_rank,
)

_CELL_FILL = {-1: "c-ok", 0: "c-info", 1: "c-warning", 2: "c-critical"}


def escape(value: Any) -> str:
    return html.escape(as_text(value), quote=True)


@dataclass
class ModelWindow:
    """One model's stored results over the page's window."""

    model: MonitoredModel
    metrics: pd.DataFrame
    findings: pd.DataFrame
    performance: pd.DataFrame
    primary: str | None
    reference: float


def load_window(store: MonitoringStore, model: MonitoredModel, days: list[str]) -> ModelWindow:
    t, m = model.tenant, model.name
    metrics = store.metric_history(t, m, start=days[0], end=days[-1])
    # hourly series are for anomaly detection; the page shows days
    metrics = metrics[~metrics["metric"].str.endswith("_hour")].reset_index(drop=True)
    found = store.findings(t, m, start=days[0], end=days[-1])
    perf = performance_history(store, model, days[-1], len(days))
    perf = perf[perf["partition"] >= days[0]]
    primary = primary_metric_of(model, perf)
    ref = reference_performance_value(store, t, m, primary) if primary else math.nan
    return ModelWindow(model, metrics, found, perf, primary, ref)


def _day_ticks(days: list[str], x0: float, step: float, y: float) -> str:
    # "MM-DD" is about 28 px wide at 10 px: label every few days so labels never overlap
    every = max(1, math.ceil(len(days) / 10), math.ceil(32 / step))
    first = (len(days) - 1) % every  # so the last day, the one the page is about, is labelled
    out = []
    for i in range(first, len(days), every):
        x = x0 + i * step + step / 2
        out.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{escape(days[i][5:])}</text>'
        )
    return "".join(out)


def drift_heatmap(w: ModelWindow, days: list[str]) -> str:
    drift = w.metrics[w.metrics["asset"] == Asset.DRIFT_REPORT]
    stats = drift[drift["metric"].str.startswith("drift_") & (drift["column"] != "")]
    if stats.empty:
        return '<p class="muted">no drift results in the window</p>'
    p_values = {
        (r.partition, r.column): r.value
        for r in drift[drift["metric"] == "p_value"].itertuples(index=False)
    }
    shares = {
        r.partition: r.value
        for r in model_level(drift).itertuples(index=False)
        if r.metric == "drift_share"
    }
    severity: dict[tuple[str, str], int] = {}
    for f in w.findings[w.findings["asset"] == Asset.DRIFT_REPORT].itertuples(index=False):
        k = (f.partition, f.column)
        severity[k] = max(severity.get(k, -1), severity_rank(f.severity))
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
        if rank < 1 and limit and is_finite(r.value) and r.value >= limit / 2:
            css = "c-near"
        tip = f"{r.column} {r.partition}: {method} {fmt_number(r.value, '.4g')}"
        p = p_values.get((r.partition, r.column))
        if p is not None and is_finite(p):
            tip += f", p={fmt_number(p, '.2g')}"
        if rank >= 1:
            tip += f", {Severity(list(Severity)[rank]).value}"
        cells[(r.partition, r.column)] = (css, tip)

    label_w = min(max(len(c) for c in [*columns, "drift share"]) * 6.2 + 10, 170)
    cw, ch = 16, 14
    width = label_w + cw * len(days) + 18
    height = ch * (len(columns) + 1) + 22
    parts = [
        f'<svg role="img" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" aria-label="drift heat map {escape(w.model.key)}">'
    ]
    rows = [("drift share", None), *((c, c) for c in columns)]
    for i, (label, column) in enumerate(rows):
        y = 4 + i * ch
        shown = label if len(label) * 6.2 + 10 <= label_w else label[: int(label_w / 6.2) - 2] + "…"
        parts.append(
            f'<text x="{label_w - 4:.0f}" y="{y + 11}" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
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
                    tip = f"{d}: drift share {fmt_number(share, '.2f')}"
            else:
                css, tip = cells.get((d, column), ("c-none", f"{column} {d}: no result"))
            parts.append(
                f'<rect class="{css}" x="{x}" y="{y}" width="{cw - 1}" height="{ch - 1}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    parts.append(_day_ticks(days, label_w, cw, height - 6))
    parts.append("</svg>")
    return "".join(parts)


def decay_limits(
    model: ModelConfig | None, metric: str, reference: float
) -> list[tuple[str, float]]:
    """The warning and critical limits of the decay rule (floors and relative drop), without
    the sampling band, which depends on each day's number of labels."""
    if model is None:
        return []
    higher = metric not in LOWER_IS_BETTER
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


def performance_chart(w: ModelWindow, days: list[str]) -> str:
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
    lines += decay_limits(w.model.config, metric, w.reference)
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
        f'{height}" aria-label="performance trend {escape(w.model.key)}">',
        f'<rect x="{left}" y="{top}" width="{step * len(days):.1f}" height="{plot_h}" '
        'fill="#fafafa" stroke="#e0e0e0"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{fmt_number(hi, ".3g")}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{fmt_number(lo, ".3g")}</text>',
    ]
    colours = {"reference": "#1d4ed8", "warning": "#ef8a00", "critical": "#c62828"}
    for name, v in lines:
        parts.append(
            f'<line x1="{left}" x2="{left + step * len(days):.1f}" y1="{y(v):.1f}" '
            f'y2="{y(v):.1f}" stroke="{colours[name]}" stroke-dasharray="4 3">'
            f"<title>{escape(name)} {fmt_number(v, '.4g')}</title></line>"
            f'<text x="{left + step * len(days) + 4:.1f}" y="{y(v) + 3:.1f}">'
            f"{escape(name)} {fmt_number(v, '.3g')}</text>"
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
        code = row.get("decay_level", math.nan)
        level = level_name(code) if is_finite(code) else "unknown"
        coverage = row.get("coverage", math.nan)
        tip = (
            f"{d}: {metric} {fmt_number(v, '.4g')}, {level}, coverage {fmt_percent(coverage)}, "
            f"{fmt_count(row.get('n_labelled'))} labels"
        )
        if math.isfinite(v):
            parts.append(
                f'<circle class="l-{level}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.2">'
                f"<title>{escape(tip)}</title></circle>"
            )
        if math.isfinite(as_number(coverage)):
            bar = max(0.0, min(1.0, coverage)) * cov_h
            parts.append(
                f'<rect x="{x(i) - step * 0.35:.1f}" y="{cov_top + cov_h - bar:.1f}" '
                f'width="{step * 0.7:.1f}" height="{bar:.1f}" fill="#90a4ae">'
                f"<title>{escape(tip)}</title></rect>"
            )
    parts.append(
        f'<line x1="{left}" x2="{left + step * len(days):.1f}" y1="{cov_top + cov_h}" '
        f'y2="{cov_top + cov_h}" stroke="#bdbdbd"/>'
        f'<text x="{left - 4}" y="{cov_top + cov_h}" text-anchor="end">coverage</text>'
    )
    parts.append(_day_ticks(days, left, step, height - 4))
    parts.append("</svg>")
    return "".join(parts)
