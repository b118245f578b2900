"""A model's alerts for a day: the rules evaluated, the states stored, the outbox delivered.

The entry point of alerting (`alerts_for_day`), run after the day's signals. Delivery covers
every pending notification (any model's), so a route that recovers gets what waited for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from aiops_pipelines.alerting.outbox import DeliveryReport, deliver, summarise_held
from aiops_pipelines.alerting.rules import Evaluation, evaluate_and_store
from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import AlertingConfig
from aiops_pipelines.io.store import MonitoringStore


@dataclass
class AlertsDay:
    """What evaluating and delivering did for one model and day."""

    evaluation: Evaluation
    delivery: DeliveryReport
    pending: pd.DataFrame
    """Every notification still pending after the delivery (all routes)."""
    held: DeliveryReport = field(default_factory=DeliveryReport)
    """The summaries of held-back notifications sent with this day (see `alerts_for_day`)."""

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
            "notifications_sent": sum(self.delivery.sent.values()),
            "held_back_summarised": sum(self.held.sent.values()),
            "notifications_pending": len(self.pending),
            "sent_per_route": dict(self.delivery.sent),
        }

    def checks(self) -> list[Check]:
        """A warning when a route did not accept its notifications (they stay pending)."""
        report = self.delivery
        failed = {**self.held.failed, **report.failed}
        return [
            Check(
                "alerts_delivered",
                report.ok and self.held.ok,
                "warn",
                {
                    "failed_per_route": failed,
                    "errors": {**self.held.errors, **report.errors},
                    "pending": len(self.pending),
                },
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
) -> AlertsDay:
    """Replay the model's alert rules up to `day`, store the states and new notifications
    (held, not sent, for events more than `max_event_age_days` before `today`, the clock's
    day), and deliver everything pending. When `day` itself is recent enough to page about
    (a backfill reaching the present, or a daily run), each route also gets one summary of
    what was held back since its last summary."""
    evaluation = evaluate_and_store(store, cfg, tenant, model, day, today=today)
    delivery = deliver(store, cfg)
    held = DeliveryReport()
    now = max(day, today or day)
    if date.fromisoformat(day) >= date.fromisoformat(now) - timedelta(cfg.max_event_age_days):
        held = summarise_held(store, cfg)
    return AlertsDay(evaluation, delivery, store.deliveries(status="pending"), held)
