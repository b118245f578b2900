"""`aiops report`'s default: one readable summary per model over the chosen days.

The full history (every metric of every partition, hourly series included) is what the CSV and
JSON formats are for; a terminal gets the numbers an engineer looks at first: traffic, drift,
the primary metric against the reference, label coverage, errors and latency, and the findings
by signal with the latest few spelled out.
"""

from __future__ import annotations

import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.values import fmt_count, fmt_number, fmt_percent, one_line

HOURLY_SUFFIX = "_hour"
"""Metrics stored per hour (their column is the hour): left out unless asked for."""


def without_hourly(history: pd.DataFrame) -> pd.DataFrame:
    """The history without the hourly series."""
    if history.empty:
        return history
    return history[~history["metric"].str.endswith(HOURLY_SUFFIX)]


def _series(history: pd.DataFrame, asset: str, metric: str) -> pd.Series:
    rows = history[
        (history["asset"] == asset) & (history["metric"] == metric) & (history["column"] == "")
    ]
    return rows.set_index("partition")["value"].sort_index()


def _line(label: str, s: pd.Series, fmt, *, best: str = "max") -> str | None:  # noqa: ANN001
    s = s.dropna()
    if s.empty:
        return None
    worst_day = s.idxmax() if best == "max" else s.idxmin()
    word = "max" if best == "max" else "min"
    return (
        f"  {label:<18} last {fmt(s.iloc[-1])}, median {fmt(s.median())}, "
        f"{word} {fmt(s[worst_day])} on {worst_day}"
    )


def model_summary(
    model: ModelConfig, history: pd.DataFrame, findings: pd.DataFrame, *, latest: int = 5
) -> str:
    """A few lines on one model: its days, its numbers, its findings."""
    h = without_hourly(history)
    days = sorted(h["partition"].unique()) if not h.empty else []
    days = [d for d in days if d != "reference"]
    if not days:
        return f"{model.key}\n  no days monitored in this range"
    out = [f"{model.key}  {days[0]} .. {days[-1]} ({len(days)} days)"]
    primary = str(model.primary_metric)
    lines = [
        _line("rows a day", _series(h, "feature_profile", "rows"), fmt_count, best="min"),
        _line("drift share", _series(h, "drift_report", "drift_share"), fmt_percent),
        _line(
            f"{primary}",
            _series(h, "performance_report", primary),
            lambda v: fmt_number(v, ".4g"),
            best="min" if model.primary_metric.higher_is_better else "max",
        ),
        _line("label coverage", _series(h, "performance_report", "coverage"), fmt_percent),
        _line("error rate", _series(h, "ops_report", "error_rate"), fmt_percent),
        _line(
            "latency p95 (ms)",
            _series(h, "ops_report", "latency_p95"),
            lambda v: fmt_number(v, ".4g"),
        ),
    ]
    out += [x for x in lines if x]
    if findings.empty:
        out.append("  findings           none")
        return "\n".join(out)
    raised = findings[findings["severity"].isin(["warning", "critical"])]
    by_signal = raised.groupby("signal").size().sort_values(ascending=False)
    counts = ", ".join(f"{s} {n}" for s, n in by_signal.items())
    n_crit = int((raised["severity"] == "critical").sum())
    out.append(
        f"  findings           {len(raised)} raised ({n_crit} critical) on "
        f"{raised['partition'].nunique()} days: {counts or 'none'}"
    )
    for _, f in raised.sort_values(["partition", "id"]).tail(latest).iterrows():
        out.append(f"    {f['partition']} {f['severity']:<8} {one_line(f['message'], 110)}")
    return "\n".join(out)
