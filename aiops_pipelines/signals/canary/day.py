"""Champion vs canary on every prediction since the canary started, with the outcomes known
now: the entry point of the canary signal (`canary_for_day`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.findings import Finding, jsonable
from aiops_pipelines.io.labels import outcomes_source
from aiops_pipelines.io.sources import Source, StringCap, day_window
from aiops_pipelines.signals.canary.statistics import ArmStats, arm_stats
from aiops_pipelines.signals.canary.verdict import CanaryVerdict, canary_findings, canary_verdict


@dataclass
class CanaryWindow:
    """Per-version statistics of every prediction since the canary started, labels as of now."""

    arms: dict[str, ArmStats]
    days: int
    daily_rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def arm(self, version: str) -> ArmStats:
        """The version's statistics; empty when it served nothing in the window."""
        return self.arms.get(version) or ArmStats.empty()

    def coverage(self, version: str) -> float:
        """Share of the version's predictions labelled so far (0 without predictions)."""
        arm = self.arm(version)
        return arm.n_labelled / arm.n if arm.n else 0.0


def canary_window(
    model: ModelConfig,
    start_day: str,
    end_day: str,
    as_of: datetime,
    versions: set[str],
) -> CanaryWindow:
    """Stream the predictions of [start_day, end_day] once, join the outcomes observed by
    `as_of`, and accumulate mergeable per-version statistics (per prediction, not per day).

    Recomputed from the sources on every run, so labels that arrived late for early canary
    days count without re-materializing those days.
    """
    c = model.columns
    start, _ = day_window(start_day)
    _, end = day_window(end_day)
    labels: dict[str, Any] = {}
    if model.outcomes is not None and as_of > start:
        until = min(as_of, end + timedelta(days=model.performance.label_window_days + 1))
        for chunk in outcomes_source(model).iter_window(
            c.label_timestamp, start, until, [c.request_id, c.label, c.label_timestamp]
        ):
            chunk = chunk.sort_values(c.label_timestamp)  # the latest label of a request wins
            labels.update(zip(chunk[c.request_id].astype(str), chunk[c.label], strict=True))
    cols = [c.request_id, c.timestamp, c.version, c.prediction] + [
        x for x in (c.latency_ms, c.status) if x
    ]
    arms: dict[str, ArmStats] = {}
    daily: dict[str, dict[str, int]] = {}
    # versions become keys of the stored evidence: cut as feature_profile cuts (and reports)
    # them; predictions stay whole, they are compared with the labels
    src = Source(model.predictions, strings=StringCap(model.max_string_length, (c.version,)))
    for chunk in src.iter_window(c.timestamp, start, end, cols):
        chunk = chunk.assign(
            **{
                c.version: chunk[c.version].astype(str),
                c.label: chunk[c.request_id].astype(str).map(labels),
            }
        )
        days = chunk[c.timestamp].dt.strftime("%Y-%m-%d")
        for (day, version), n in chunk.groupby([days, c.version]).size().items():
            daily.setdefault(str(day), {})[str(version)] = int(n)
        for version, rows in chunk.groupby(c.version):
            if str(version) not in versions:
                continue
            stats = arm_stats(
                rows,
                task=model.task,
                prediction_col=c.prediction,
                label_col=c.label,
                latency_col=c.latency_ms,
                status_col=c.status,
            )
            key = str(version)
            arms[key] = arms[key].merge(stats) if key in arms else stats
    n_days = (date.fromisoformat(end_day) - date.fromisoformat(start_day)).days + 1
    return CanaryWindow(arms=arms, days=n_days, daily_rows=daily)


@dataclass
class CanaryDay:
    """The day's verdict on the canary, on everything both versions served since it started."""

    partition: str
    canary: str
    champion: str
    start: str
    as_of: datetime
    window: CanaryWindow
    verdict: CanaryVerdict
    findings: list[Finding]

    @property
    def canary_arm(self) -> ArmStats:
        return self.window.arm(self.canary)

    @property
    def champion_arm(self) -> ArmStats:
        return self.window.arm(self.champion)

    @property
    def coverage(self) -> float:
        return self.window.coverage(self.canary)

    @property
    def cumulative_share(self) -> float:
        c, s = self.canary_arm, self.champion_arm
        return c.n / ((c.n + s.n) or 1)

    @property
    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows of the store's metric history (per-arm rows carry the version as column)."""
        today = self.window.daily_rows.get(self.partition, {})
        v = self.verdict
        out: dict[tuple[str, str], float] = {
            ("canary_share_day", ""): today.get(self.canary, 0) / (sum(today.values()) or 1),
            ("canary_share_cumulative", ""): self.cumulative_share,
            ("canary_estimate", ""): v.estimate,
            ("canary_lower", ""): v.lower,
            ("canary_upper", ""): v.upper,
            ("canary_coverage", ""): self.coverage,
        }
        arms = (
            ("canary", self.canary, self.canary_arm),
            ("champion", self.champion, self.champion_arm),
        )
        for role, version, arm in arms:
            out.update(
                {
                    (f"{role}_n", version): float(arm.n),
                    (f"{role}_n_labelled", version): float(arm.n_labelled),
                    (f"{role}_mean", version): arm.mean,
                    (f"{role}_error_rate", version): arm.error_rate,
                    (f"{role}_latency_p95", version): arm.latency_p95,
                }
            )
        return out

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        return {k if not c else f"{k}.v{c}": v for (k, c), v in self.metrics.items()}

    @property
    def mlflow_tags(self) -> dict[str, str]:
        return {
            "verdict": self.verdict.verdict,
            "canary_version": self.canary,
            "champion_version": self.champion,
        }

    def summary(self, model: ModelConfig) -> dict[str, Any]:
        v = self.verdict
        return {
            "verdict": v.verdict,
            "canary_version": self.canary,
            "champion_version": self.champion,
            "canary_start": self.start,
            "days": self.window.days,
            "estimate": float(v.estimate),
            "lower": float(v.lower),
            "upper": float(v.upper),
            "margin": float(model.canary.margin),
            "canary_share_cumulative": float(self.cumulative_share),
            "coverage": float(self.coverage),
            "n_canary": int(self.canary_arm.n),
            "n_champion": int(self.champion_arm.n),
            "as_of": self.as_of.isoformat(),
            "evidence": jsonable(v.to_dict()),
        }

    def checks(self) -> list[Check]:
        """The verdict: an error when the canary fails (it is rolled back)."""
        v = self.verdict
        return [
            Check(
                "canary_verdict",
                v.verdict != "fail",
                "error",
                {"verdict": v.verdict, "reasons": "; ".join(v.reasons)},
            )
        ]


def no_canary_check(aliases: dict[str, str], note: str | None = None) -> Check:
    """The canary check of a day without a canary to judge: passed, and why (`note`: the
    registry could not be read)."""
    metadata = {"status": "no canary", "aliases": json.dumps(aliases)}
    if note:
        metadata["registry"] = note
    return Check("canary_verdict", True, "error", metadata, message=note or "")


def canary_for_day(
    model: ModelConfig,
    day: str,
    as_of: datetime,
    *,
    canary: str,
    champion: str,
    start: str,
) -> CanaryDay:
    """Canary vs champion on every prediction each served from `start` to `day`, with the
    outcomes observed by `as_of`: the anytime-valid verdict and its findings."""
    window = canary_window(model, start, day, as_of, {canary, champion})
    verdict = canary_verdict(
        window.arm(canary),
        window.arm(champion),
        policy=model.canary,
        days=window.days,
        coverage=window.coverage(canary),
    )
    findings = canary_findings(
        verdict,
        tenant=model.tenant,
        model=model.name,
        partition=day,
        canary_version=canary,
        champion_version=champion,
    )
    for f in findings:
        f.evidence["detected_at"] = as_of.isoformat()
    return CanaryDay(day, canary, champion, start, as_of, window, verdict, findings)
