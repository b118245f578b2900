"""The outbox: pending notifications claimed, grouped and delivered, each route on its own.

`deliver` claims the pending deliveries atomically, groups them per route, tenant and model
into one message, and sends each route's messages in a worker of its own, all within one time
budget (`delivery_budget_seconds`): a route that hangs or refuses delays only its own
messages. A message is retried with exponential backoff (`max_attempts`), except after a
timeout: the receiver may have processed it, and one that did not answer in time seldom does a
second later, so the next delivery re-sends it (same Idempotency-Key). A route's circuit
breaker (`breaker`) stops attempts across deliveries once it keeps failing.

Nothing is lost: a message that was refused, not attempted for lack of time, or held back by
an open breaker stays pending for the next delivery. A delivery is marked sent only after the
receiver accepted it; a crash between the two re-sends it (at least once), so every message
carries its event keys for receivers that de-duplicate. A summary of the held-back
notifications (events too old to send) goes out the same way when one was requested
(`MonitoringStore.request_held_summaries`).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

from aiops_pipelines.alerting.breaker import RouteState, route_states
from aiops_pipelines.alerting.channels import (
    DeliveryError,
    build_held_summary,
    build_message,
    send,
)
from aiops_pipelines.core.config import AlertingConfig, Route
from aiops_pipelines.core.process import claim_token
from aiops_pipelines.io.store import MonitoringStore

log = logging.getLogger("aiops.alerts")

#: An attempt is not started with less time left than this (or the route's timeout if
#: shorter): it could only time out, and would count against the route.
MIN_ATTEMPT_SECONDS = 1.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class DeliveryReport:
    """What one `deliver` call did, per route."""

    sent: dict[str, int] = field(default_factory=dict)  # route -> alert events delivered
    messages: dict[str, int] = field(default_factory=dict)  # route -> alert messages accepted
    summarised: dict[str, int] = field(default_factory=dict)  # route -> held ones told of
    summaries: dict[str, int] = field(default_factory=dict)  # route -> summaries accepted
    failed: dict[str, int] = field(default_factory=dict)  # route -> refused, left waiting
    errors: dict[str, str] = field(default_factory=dict)  # route -> last error
    attempts: dict[str, int] = field(default_factory=dict)  # route -> requests made
    deferred: dict[str, int] = field(default_factory=dict)  # route -> left unattempted
    open: dict[str, datetime] = field(default_factory=dict)  # route -> open until
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.deferred

    def metadata(self) -> dict[str, Any]:
        """The numbers a delivery run shows (Dagster metadata, logs)."""
        return {
            "notifications_sent": sum(self.sent.values()),
            "messages_sent": sum(self.messages.values()),
            "held_back_summarised": sum(self.summarised.values()),
            "notifications_failed": sum(self.failed.values()),
            "notifications_deferred": sum(self.deferred.values()),
            "attempts": sum(self.attempts.values()),
            "routes_open": len(self.open),
            "seconds": round(self.seconds, 3),
            "sent_per_route": dict(self.sent),
            "errors": dict(self.errors),
            "open_until": {r: t.isoformat(timespec="seconds") for r, t in self.open.items()},
        }


@dataclass
class _Outgoing:
    """One message for one route: alerts of a tenant and model, or a held-back summary."""

    kind: Literal["alerts", "held"]
    ids: list[int]
    message: dict[str, Any]
    what: str


@dataclass
class _Result:
    route: str
    outgoing: _Outgoing
    attempts: int
    error: str | None
    state: RouteState


def deliver(
    store: MonitoringStore,
    cfg: AlertingConfig,
    *,
    now: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], None] = time.sleep,
    until_partition: str | None = None,
) -> DeliveryReport:
    """Send every pending delivery, grouped per (route, tenant, model), and each requested
    summary of held-back notifications: every route concurrently, within
    `delivery_budget_seconds` of wall time; a route whose breaker is open is skipped. `now` is
    the breaker's clock. `until_partition`: only the notifications of that day and before (a
    replay that ran days ahead delivers as of each day, as the daemon did then).

    Deliveries for a route no longer in the config stay pending (and visible) until it is
    configured again or they are removed by hand.
    """
    started = time.monotonic()
    deadline = started + cfg.delivery_budget_seconds
    report = DeliveryReport()
    routes = {r.name: r for r in cfg.routes}
    states = route_states(store, cfg)
    at = now()
    skipped = {name for name, st in states.items() if st.is_open(at)}
    summarise = {
        name
        for name, st in states.items()
        if st.summary_requested_at is not None and name not in skipped
    }
    if skipped:
        for name, (until, n) in outbox_state(store, cfg, at).open.items():
            report.open[name] = until
            _add(report.deferred, name, n)
    claim = claim_token()  # names this process: released at once if it dies
    plans = _plan(store, cfg, claim, routes, skipped, summarise, report, until_partition)
    for name in sorted(summarise - {n for n, outs in plans.items() if _has_held(outs)}):
        _clear_summary_request(store, states[name])  # nothing was left to summarise
    if plans:
        _run_routes(store, cfg, claim, routes, states, plans, deadline, now, sleep, report)
    report.seconds = time.monotonic() - started
    return report


def _add(counts: dict[str, int], route: str, n: int) -> None:
    counts[route] = counts.get(route, 0) + n


def _has_held(outgoing: list[_Outgoing]) -> bool:
    return any(o.kind == "held" for o in outgoing)


def _clear_summary_request(store: MonitoringStore, state: RouteState) -> None:
    if state.summary_requested_at is not None:
        store.clear_held_summary_request(state.route, state.summary_requested_at)


def _plan(
    store: MonitoringStore,
    cfg: AlertingConfig,
    claim: str,
    routes: dict[str, Route],
    skipped: set[str],
    summarise: set[str],
    report: DeliveryReport,
    until_partition: str | None = None,
) -> dict[str, list[_Outgoing]]:
    """Claim what is to be sent now and build each route's messages, alerts first (a route
    removed from the config gives its claim back at once, with the reason)."""
    plans: dict[str, list[_Outgoing]] = {}
    claimed = store.claim_deliveries(claim, skip_routes=skipped, until_partition=until_partition)
    for (route_name, tenant, model), group in claimed.groupby(
        ["route", "tenant", "model"], sort=True
    ):
        ids = [int(i) for i in group["id"]]
        name = str(route_name)
        route = routes.get(name)
        if route is None:
            error = f"route '{name}' not configured"
            store.finish_deliveries(ids, claim, attempts=0, sent=False, error=error)
            _add(report.failed, name, len(ids))
            report.errors[name] = "not configured"
            continue
        message = build_message(
            route, str(tenant), str(model), group.to_dict("records"), _message_id(ids)
        )
        plans.setdefault(name, []).append(_Outgoing("alerts", ids, message, f"{tenant}/{model}"))
    held = store.claim_held(claim, routes=summarise)
    for (route_name, tenant), group in held.groupby(["route", "tenant"], sort=True):
        ids = [int(i) for i in group["id"]]
        name = str(route_name)
        message = build_held_summary(
            routes[name],
            str(tenant),
            group.to_dict("records"),
            _message_id(ids, "held"),
            cfg.max_event_age_days,
        )
        plans.setdefault(name, []).append(_Outgoing("held", ids, message, f"{tenant} (held)"))
    return plans


def _run_routes(
    store: MonitoringStore,
    cfg: AlertingConfig,
    claim: str,
    routes: dict[str, Route],
    states: dict[str, RouteState],
    plans: dict[str, list[_Outgoing]],
    deadline: float,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    report: DeliveryReport,
) -> None:
    """One worker per route sends; this thread alone writes the store, as results come in (a
    message accepted is marked sent at once, not when the slowest route is done)."""
    results: queue.Queue[_Result] = queue.Queue()
    unsettled: set[str] = set()  # routes with a held-back summary refused or left
    with ThreadPoolExecutor(max_workers=len(plans), thread_name_prefix="aiops-route") as pool:
        futures = {
            name: pool.submit(
                _deliver_route,
                routes[name],
                outgoing,
                states[name],
                cfg,
                deadline,
                now,
                sleep,
                results.put,
            )
            for name, outgoing in sorted(plans.items())
        }
        running = set(futures.values())
        while running or not results.empty():
            try:
                result = results.get(timeout=0.05)
            except queue.Empty:
                running = {f for f in running if not f.done()}
                continue
            _record(store, claim, result, report)
            if result.outgoing.kind == "held" and result.error is not None:
                unsettled.add(result.route)
        for name, future in futures.items():
            left = future.result()  # re-raises a bug in a worker
            if left:
                store.release_claim([i for o in left for i in o.ids], claim)
                _add(report.deferred, name, sum(len(o.ids) for o in left))
                if _has_held(left):
                    unsettled.add(name)
    for name, outgoing in plans.items():
        if _has_held(outgoing) and name not in unsettled:
            _clear_summary_request(store, states[name])


def _record(store: MonitoringStore, claim: str, result: _Result, report: DeliveryReport) -> None:
    """Store a message's outcome and the route's breaker; count it in the report."""
    out, name, n = result.outgoing, result.route, len(result.outgoing.ids)
    message_id = out.message["message_id"]
    ok = result.error is None
    if out.kind == "alerts":
        store.finish_deliveries(
            out.ids,
            claim,
            attempts=result.attempts,
            sent=ok,
            error=result.error,
            message_id=message_id if ok else None,
        )
        if ok:
            _add(report.sent, name, n)
            _add(report.messages, name, 1)
    else:
        store.finish_held(
            out.ids,
            claim,
            attempts=result.attempts,
            message_id=message_id if ok else None,
            error=result.error,
        )
        if ok:
            _add(report.summarised, name, n)
            _add(report.summaries, name, 1)
    if not ok:
        _add(report.failed, name, n)
        report.errors[name] = str(result.error)
    _add(report.attempts, name, result.attempts)
    result.state.save(store)
    if result.state.open_until is not None:
        report.open[name] = result.state.open_until
    else:
        report.open.pop(name, None)


def _deliver_route(
    route: Route,
    outgoing: list[_Outgoing],
    state: RouteState,
    cfg: AlertingConfig,
    deadline: float,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    emit: Callable[[_Result], None],
) -> list[_Outgoing]:
    """Send one route's messages in order until done, out of time, or its breaker opens;
    returns those not attempted. A tripped route (its cool-down over) gets one trial message
    with one attempt first."""
    for i, out in enumerate(outgoing):
        attempts = 1 if state.tripped else cfg.max_attempts
        tries, error, timed_out = _send_with_retries(
            route, out.message, cfg, attempts, deadline, sleep, out
        )
        if tries == 0:  # no time left
            return outgoing[i:]
        state = state.after(error, now(), cfg, timed_out=timed_out)
        emit(_Result(route.name, out, tries, error, state))
        if state.tripped:
            log.warning("route %s: %s", route.name, state.describe(now()))
            return outgoing[i + 1 :]
    return []


def _message_id(ids: list[int], prefix: str = "") -> str:
    """The same deliveries give the same id, also when a later run retries them."""
    text = prefix + ",".join(map(str, sorted(ids)))
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _send_with_retries(
    route: Route,
    message: dict,
    cfg: AlertingConfig,
    max_attempts: int,
    deadline: float,
    sleep: Callable[[float], None],
    out: _Outgoing,
) -> tuple[int, str | None, bool]:
    """Send with up to `max_attempts` tries and exponential backoff, each try bounded by the
    time left before `deadline`: (attempts, last error, whether it timed out). No retry after
    a timeout or a configuration error; none started when too little time is left (0
    attempts)."""
    attempts, error, timed_out = 0, None, False
    for attempt in range(max_attempts):
        left = deadline - time.monotonic()
        if left < min(MIN_ATTEMPT_SECONDS, route.timeout_seconds):
            break
        attempts += 1
        try:
            send(route, message, timeout=min(route.timeout_seconds, left))
            return attempts, None, False
        except Exception as exc:  # noqa: BLE001 - one route must never abort the others
            error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "route %s: attempt %d/%d for %s failed: %s",
                route.name,
                attempt + 1,
                max_attempts,
                out.what,
                error,
            )
            timed_out = isinstance(exc, DeliveryError) and exc.timed_out
            if timed_out or (isinstance(exc, DeliveryError) and not exc.retryable):
                break
            delay = cfg.backoff_seconds * 2**attempt
            if attempt + 1 < max_attempts:
                if time.monotonic() + delay >= deadline:
                    break
                sleep(delay)
    return attempts, error, timed_out


@dataclass
class OutboxState:
    """What waits in the outbox, per configured route: `due` to be sent by a delivery now
    (its route closed, or its cool-down over), or held back by an `open` route (until when,
    how many)."""

    due: dict[str, int] = field(default_factory=dict)
    open: dict[str, tuple[datetime, int]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{n} for route '{r}'" for r, n in sorted(self.due.items())]
        parts += [
            f"{n} wait for route '{r}', open until {t.isoformat(timespec='seconds')}"
            for r, (t, n) in sorted(self.open.items())
        ]
        return "; ".join(parts) or "nothing to deliver"


def outbox_state(
    store: MonitoringStore, cfg: AlertingConfig, now: datetime | None = None
) -> OutboxState:
    """What a delivery would send now (pending notifications, requested summaries) and what
    waits for an open route. Routes no longer configured are left out: nothing can send them."""
    at = now or _utcnow()
    states = route_states(store, cfg)
    state = OutboxState()
    waiting: pd.DataFrame = store.outbox_waiting()
    for row in waiting.to_dict("records"):
        route = states.get(str(row["route"]))
        if route is None:
            continue
        n = int(row["pending"])
        if route.summary_requested_at is not None:
            n += int(row["held_untold"])
        if not n:
            continue
        if route.is_open(at):
            assert route.open_until is not None
            state.open[route.route] = (route.open_until, n)
        else:
            state.due[route.route] = n
    return state
