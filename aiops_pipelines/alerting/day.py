"""A model's alerts for a day: the rules evaluated, the states and notifications stored.

The entry point of alerting (`alerts_for_day`), run after the day's signals. It sends
nothing: delivery (`outbox.deliver`) runs on its own, once for every model's notifications,
so a route that hangs never holds up a model's monitoring. The day reports how its
notifications stand: what waits, and for which route that is failing or open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from aiops_pipelines.alerting.breaker import RouteState, route_states
from aiops_pipelines.alerting.rules import Evaluation, evaluate_and_store
from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import AlertingConfig
from aiops_pipelines.io.store import MonitoringStore


@dataclass
class AlertsDay:
    """What evaluating one model's day did, and how its notifications stand."""

    evaluation: Evaluation
    pending: pd.DataFrame
    """The model's notifications waiting to be sent (every route)."""
    routes: dict[str, RouteState]
    """The configured routes' delivery state (circuit breakers) when the day was evaluated."""
    now: datetime
    summary_requested: bool = False
    """A summary of held-back notifications was asked of the next delivery."""

    @property
    def firing(self) -> list[dict[str, Any]]:
        return [a.row() for a in self.evaluation.firing]

    def summary(self) -> dict[str, Any]:
        firing = self.firing
        return {
            "firing": len(firing),
            "firing_critical": sum(1 for a in firing if a["severity"] == "critical"),
            "firing_warning": sum(1 for a in firing if a["severity"] == "warning"),
            "pending_alerts": sum(1 for a in self.evaluation.alerts if a.state == "pending"),
            "new_events": sum(1 for e in self.evaluation.events if not e["held"]),
            "held_back_events": sum(1 for e in self.evaluation.events if e["held"]),
            "notifications_pending": len(self.pending),
            "routes_open": sum(1 for s in self.routes.values() if s.is_open(self.now)),
        }

    def waiting_on(self) -> dict[str, str]:
        """Route -> why this model's notifications on it may not go out: the route is
        failing, open (until when), or no longer configured."""
        out: dict[str, str] = {}
        for route, n in self.pending.groupby("route").size().items():
            state = self.routes.get(str(route))
            if state is None:
                out[str(route)] = f"not configured; {n} notification(s) wait"
            elif state.failures or state.tripped:
                out[str(route)] = f"{state.describe(self.now)}; {n} notification(s) wait"
        return out

    def checks(self) -> list[Check]:
        """A warning when this model's notifications wait on a route that is failing, open
        or gone (they stay pending; the others' routes do not matter here)."""
        waiting = self.waiting_on()
        return [
            Check(
                "alerts_delivered",
                not waiting,
                "warn",
                {
                    "pending": len(self.pending),
                    "pending_per_route": {
                        str(r): int(n) for r, n in self.pending.groupby("route").size().items()
                    },
                    "routes": waiting,
                },
                message="; ".join(f"route '{r}' {why}" for r, why in sorted(waiting.items())),
            )
        ]


def alerts_for_day(
    store: MonitoringStore,
    cfg: AlertingConfig,
    tenant: str,
    model: str,
    day: str,
    *,
    today: str | None = None,
    now: datetime | None = None,
) -> AlertsDay:
    """Replay the model's alert rules up to `day` and store the states and new notifications
    (held, not sent, for events more than `max_event_age_days` before `today`, the clock's
    day). When `day` itself is recent enough to page about (a backfill reaching the present,
    or a daily run), the next delivery is asked to send each route one summary of what was
    held back since its last summary. `now` (default the wall clock) reads the breakers."""
    at = now or datetime.now(UTC)
    evaluation = evaluate_and_store(store, cfg, tenant, model, day, today=today, now=at)
    latest = max(day, today or day)
    recent = date.fromisoformat(day) >= date.fromisoformat(latest) - timedelta(
        cfg.max_event_age_days
    )
    if recent and cfg.routes:
        store.request_held_summaries([r.name for r in cfg.routes], at)
    pending = store.deliveries(tenant, model, status="pending")
    return AlertsDay(evaluation, pending, route_states(store, cfg), at, recent)
