"""Should a model be retrained now? The retrain policy, decided from the monitoring store.

Two triggers (`RetrainPolicy`): performance decay that the persistence rule has made firing at
the configured severity, or a critical dataset drift share once enough new labels exist to
train on. A cooldown keeps it to at most one retrain per model per window: the window is
aligned on the calendar (so the same trigger always maps to the same run key, even after a
sensor's cursor is reset) and the audit trail is checked for a request in the last
`cooldown_days`. Every decision carries its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.findings import Asset
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.lifecycle.registry import PROMOTE_CANARY, ROLLBACK_CANARY
from aiops_pipelines.signals.performance.day import decay_levels
from aiops_pipelines.signals.performance.verdict import decay_state

REQUESTED = "retrain_requested"
DRY_RUN = "retrain_dry_run"


@dataclass
class RetrainDecision:
    model: str
    retrain: bool
    reason: str
    trigger_day: str | None = None
    window_start: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def run_key(self) -> str:
        return f"retrain:{self.model}:{self.window_start}"


def cooldown_window(day: date, days: int) -> date:
    """The start of the calendar-aligned cooldown window holding `day`."""
    return date.fromordinal(day.toordinal() - day.toordinal() % days)


def _last_request(acts: pd.DataFrame, before: date) -> date | None:
    if acts.empty:
        return None
    acts = acts[acts["action"].isin([REQUESTED, DRY_RUN])]
    days = [
        date.fromisoformat(str(d["trigger_day"]))
        for d in acts["details"]
        if isinstance(d, dict) and d.get("trigger_day")
    ]
    days = [d for d in days if d <= before]
    return max(days) if days else None


def _waiting_challenger(acts: pd.DataFrame, episode_start: date) -> dict[str, Any] | None:
    """A retrain that already produced a winning candidate from this episode's data.

    Retraining again while that challenger waits for promotion would only pile up versions
    trained on the same problem: one retrain per episode, not one per cooldown window.
    """
    decided = {  # a challenger that was rolled back or promoted no longer waits
        str(d.get("version"))
        for a, d in zip(acts.get("action", []), acts.get("details", []), strict=True)
        if a in (ROLLBACK_CANARY, PROMOTE_CANARY) and isinstance(d, dict)
    }
    retrains = acts[acts["action"] == "retrain"] if not acts.empty else acts
    for details in reversed(list(retrains.get("details", []))):
        if not isinstance(details, dict) or not details.get("beats_champion"):
            continue
        if str(details.get("version")) in decided:
            continue
        end = (details.get("window") or {}).get("end")
        if end and date.fromisoformat(str(end)) >= episode_start:
            return details
    return None


def decide(store: MonitoringStore, model: ModelConfig) -> RetrainDecision:
    """The retrain decision for a model, from everything stored about it now."""
    policy = model.retrain
    if not policy.enabled:
        return RetrainDecision(model.key, False, "retraining disabled")
    trigger: tuple[str, str, dict[str, Any]] | None = None
    if policy.on_decay != "never":
        levels = decay_levels(store, model)
        if levels:
            state = decay_state(levels, model.performance)
            wanted = {"critical": ("critical",), "warning": ("warning", "critical")}
            if state.status == "firing" and state.severity in wanted[policy.on_decay]:
                last = [p for p, lvl in levels if lvl != "insufficient"][-1]
                trigger = (
                    "performance_decay",
                    last,
                    {
                        "decay_since": state.since,
                        "severity": state.severity,
                        "days": state.days[-7:],  # the recent ones; the episode can be long
                        "metric": str(model.primary_metric),
                    },
                )
    if trigger is None and policy.on_drift_share is not None:
        drift = store.metric_history(
            model.tenant, model.name, metric="drift_share", asset=Asset.DRIFT_REPORT
        )
        if not drift.empty:
            latest = drift.iloc[-1]
            if float(latest["value"]) >= policy.on_drift_share:
                since = (
                    date.fromisoformat(str(latest["partition"]))
                    - timedelta(days=policy.window_days)
                ).isoformat()
                labels = store.metric_history(
                    model.tenant,
                    model.name,
                    metric="n_labelled",
                    asset=Asset.PERFORMANCE_REPORT,
                    start=since,
                )
                n_labels = int(labels["value"].sum()) if not labels.empty else 0
                if n_labels >= policy.min_new_labels:
                    trigger = (
                        "dataset_drift",
                        str(latest["partition"]),
                        {
                            "drift_share": float(latest["value"]),
                            "threshold": policy.on_drift_share,
                            "labels_in_window": n_labels,
                        },
                    )
    if trigger is None:
        return RetrainDecision(model.key, False, "no trigger")
    reason, day, evidence = trigger
    trigger_day = date.fromisoformat(day)
    window = cooldown_window(trigger_day, policy.cooldown_days)
    episode = (
        evidence.get("decay_since")
        or (trigger_day - timedelta(days=policy.window_days)).isoformat()
    )
    acts = store.actions(model.tenant, model.name)  # the audit trail, read once
    waiting = _waiting_challenger(acts, date.fromisoformat(str(episode)))
    if waiting is not None:
        return RetrainDecision(
            model.key,
            False,
            f"challenger version {waiting.get('version')} from this episode's data awaits "
            "promotion",
            day,
            window.isoformat(),
            evidence,
        )
    last = _last_request(acts, trigger_day)
    if last is not None and (trigger_day - last).days < policy.cooldown_days:
        return RetrainDecision(
            model.key,
            False,
            f"cooldown: a retrain was requested for {last}, next one from "
            f"{last + timedelta(days=policy.cooldown_days)}",
            day,
            window.isoformat(),
            evidence,
        )
    return RetrainDecision(model.key, True, reason, day, window.isoformat(), evidence)


def record_decision(store: MonitoringStore, model: ModelConfig, decision: RetrainDecision) -> str:
    """Put a positive decision in the audit trail (`retrain_requested`, or `retrain_dry_run`
    in dry-run mode), once per run key however often a sensor re-reads it; the action name."""
    action = DRY_RUN if model.retrain.dry_run else REQUESTED
    seen = store.actions(model.tenant, model.name, action=action)
    if not any(d.get("run_key") == decision.run_key for d in seen.get("details", [])):
        store.record_action(
            "retrain_sensor",
            action,
            model.tenant,
            model.name,
            decision.trigger_day,
            {
                "run_key": decision.run_key,
                "reason": decision.reason,
                "trigger_day": decision.trigger_day,
                "evidence": decision.evidence,
            },
        )
    return action
