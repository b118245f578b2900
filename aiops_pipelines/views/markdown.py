"""Short Markdown tables and verdicts for the Dagster UI's metadata panels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.signals.drift.compare import ColumnDrift
from aiops_pipelines.signals.performance.verdict import DayJudgement


def drift_table(drifted: Iterable[ColumnDrift]) -> str:
    """The drifted columns with the method, statistic, threshold and q-value that decided."""
    rows = list(drifted)
    if not rows:
        return "No column drifted."
    lines = [
        "| column | role | method | statistic | threshold | q-value | severity |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        q = "" if c.q_value is None else f"{c.q_value:.2g}"
        lines.append(
            f"| {c.column} | {c.role} | {c.method} | {c.statistic:.4f} | "
            f"{c.threshold:g} | {q} | {c.severity} |"
        )
    return "\n".join(lines)


def judgement(j: DayJudgement) -> str:
    """A day's performance verdict: value against the reference and its band, and why."""
    band = (
        f"[{fmt_number(j.band_low, '.4g')}, {fmt_number(j.band_high, '.4g')}]"
        if j.band_low is not None
        else fmt_number(None)
    )
    return (
        f"**{j.metric}** {fmt_number(j.value, '.4g')} vs reference {j.reference:.4g} "
        f"(band {band}, n={j.n_labelled}): **{j.level}**"
        + ("".join(f"\n- {r}" for r in j.reasons) if j.reasons else "")
    )


def alerts_table(firing: Iterable[Mapping[str, Any]]) -> str:
    """Firing alerts: severity, signal, column, since when, notified, muted."""
    rows = list(firing)
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
