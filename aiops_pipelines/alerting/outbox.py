"""The outbox: pending notifications claimed, grouped and delivered, with retries.

`deliver` claims the pending deliveries atomically, groups them per route, tenant and model
into one message, and sends it with retries and exponential backoff. A route that still fails
keeps its rows pending, with the error, for the next run: nothing is lost. A delivery is marked
sent only after the receiver accepted it; a crash between the two re-sends it (at least once),
so every message carries its event keys for receivers that de-duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiops_pipelines.alerting.channels import (
    DeliveryError,
    build_held_summary,
    build_message,
    send,
)
from aiops_pipelines.core.config import AlertingConfig, Route
from aiops_pipelines.io.store import MonitoringStore

log = logging.getLogger("aiops.alerts")


@dataclass
class DeliveryReport:
    """What one `deliver` call did, per route."""

    sent: dict[str, int] = field(default_factory=dict)  # route -> alert events delivered
    messages: dict[str, int] = field(default_factory=dict)  # route -> messages accepted
    failed: dict[str, int] = field(default_factory=dict)  # route -> events left pending
    errors: dict[str, str] = field(default_factory=dict)  # route -> last error

    @property
    def ok(self) -> bool:
        return not self.failed


def deliver(
    store: MonitoringStore,
    cfg: AlertingConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send every pending delivery, grouped per (route, tenant, model), with retries.

    Deliveries for a route no longer in the config stay pending (and visible) until it is
    configured again or they are removed by hand.
    """
    routes = {r.name: r for r in cfg.routes}
    claim = uuid.uuid4().hex
    claimed = store.claim_deliveries(claim)
    report = DeliveryReport()
    if claimed.empty:
        return report
    for (route_name, tenant, model), group in claimed.groupby(
        ["route", "tenant", "model"], sort=True
    ):
        ids = [int(i) for i in group["id"]]
        route = routes.get(str(route_name))
        if route is None:
            store.finish_deliveries(
                ids, claim, attempts=0, sent=False, error=f"route '{route_name}' not configured"
            )
            report.failed[str(route_name)] = report.failed.get(str(route_name), 0) + len(ids)
            report.errors[str(route_name)] = "not configured"
            continue
        events = group.to_dict("records")
        message_id = _message_id(ids)
        message = build_message(route, str(tenant), str(model), events, message_id)
        attempts, error = _send_with_retries(route, message, cfg, sleep, f"{tenant}/{model}")
        name = route.name
        if error is None:
            store.finish_deliveries(ids, claim, attempts=attempts, sent=True, message_id=message_id)
            report.sent[name] = report.sent.get(name, 0) + len(ids)
            report.messages[name] = report.messages.get(name, 0) + 1
        else:
            store.finish_deliveries(ids, claim, attempts=attempts, sent=False, error=error)
            report.failed[name] = report.failed.get(name, 0) + len(ids)
            report.errors[name] = error
    return report


def summarise_held(
    store: MonitoringStore,
    cfg: AlertingConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """One summary message per route and tenant about the notifications held back since the
    last summary (events too old to send, e.g. a backfill's): how many, of which kinds, the
    days and models they cover. The held rows stay held, stamped with the summary's id; a
    route that fails keeps them for the next call. `report.sent` counts the held
    notifications told of, `report.messages` the summaries."""
    routes = {r.name: r for r in cfg.routes}
    claim = uuid.uuid4().hex
    held = store.claim_held(claim)
    report = DeliveryReport()
    for (route_name, tenant), group in held.groupby(["route", "tenant"], sort=True):
        ids = [int(i) for i in group["id"]]
        route = routes.get(str(route_name))
        name = str(route_name)
        if route is None:
            store.finish_held(ids, claim, attempts=0, error=f"route '{name}' not configured")
            report.failed[name] = report.failed.get(name, 0) + len(ids)
            report.errors[name] = "not configured"
            continue
        message_id = _message_id(ids, "held")
        message = build_held_summary(
            route, str(tenant), group.to_dict("records"), message_id, cfg.max_event_age_days
        )
        attempts, error = _send_with_retries(route, message, cfg, sleep, f"{tenant} (held)")
        if error is None:
            store.finish_held(ids, claim, attempts=attempts, message_id=message_id)
            report.sent[name] = report.sent.get(name, 0) + len(ids)
            report.messages[name] = report.messages.get(name, 0) + 1
        else:
            store.finish_held(ids, claim, attempts=attempts, error=error)
            report.failed[name] = report.failed.get(name, 0) + len(ids)
            report.errors[name] = error
    return report


def _message_id(ids: list[int], prefix: str = "") -> str:
    """The same deliveries give the same id, also when a later run retries them."""
    text = prefix + ",".join(map(str, sorted(ids)))
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _send_with_retries(
    route: Route,
    message: dict,
    cfg: AlertingConfig,
    sleep: Callable[[float], None],
    what: str,
) -> tuple[int, str | None]:
    """Send with up to `max_attempts` tries and exponential backoff: (attempts, last error)."""
    attempts, error = 0, None
    for attempt in range(cfg.max_attempts):
        attempts += 1
        try:
            send(route, message)
            return attempts, None
        except Exception as exc:  # noqa: BLE001 - one route must never abort the others
            error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "route %s: attempt %d/%d for %s failed: %s",
                route.name,
                attempt + 1,
                cfg.max_attempts,
                what,
                error,
            )
            if isinstance(exc, DeliveryError) and not exc.retryable:
                break
            if attempt + 1 < cfg.max_attempts:
                sleep(cfg.backoff_seconds * 2**attempt)
    return attempts, error
