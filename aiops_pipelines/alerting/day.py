"""A model's alerts for a day: the rules evaluated, the states stored, the outbox delivered.

The entry point of alerting (`alerts_for_day`), run after the day's signals. Delivery covers
every pending notification (any model's), so a route that recovers gets what waited for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from aiops_pipelines.alerting.outbox import DeliveryReport, deliver
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
            "new_events": len(self.evaluation.events),
            "notifications_sent": sum(self.delivery.sent.values()),
            "notifications_pending": len(self.pending),
            "sent_per_route": dict(self.delivery.sent),
        }

    def checks(self) -> list[Check]:
        """A warning when a route did not accept its notifications (they stay pending)."""
        report = self.delivery
        return [
            Check(
                "alerts_delivered",
                report.ok,
                "warn",
                {
                    "failed_per_route": dict(report.failed),
                    "errors": dict(report.errors),
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
    (none for events more than `max_event_age_days` before `today`, the clock's day), and
    deliver everything pending."""
    evaluation = evaluate_and_store(store, cfg, tenant, model, day, today=today)
    delivery = deliver(store, cfg)
    return AlertsDay(evaluation, delivery, store.deliveries(status="pending"))
