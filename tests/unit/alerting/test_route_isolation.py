"""One dead alert route must delay only its own messages.

Real servers on loopback: a webhook that accepts the connection and never answers, a port
nobody listens on, one that answers 503, and a healthy receiver. Delivery runs each route on
its own within a time budget; a route's circuit breaker, stored with the outbox, stops attempts
across deliveries until its cool-down ends (an injected clock, no sleeping), then one trial
message closes it again. Evaluating a model's day sends nothing, so it never waits on a route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aiops_pipelines.alerting.breaker import route_states
from aiops_pipelines.alerting.day import alerts_for_day
from aiops_pipelines.alerting.outbox import deliver, outbox_state
from aiops_pipelines.alerting.rules import evaluate_and_store
from aiops_pipelines.io.store import MonitoringStore
from tests.servers import Silent, closed_port_url
from tests.unit.alerting import test_alerts
from tests.unit.alerting.test_alerts import Receiver, T, alerting, d, finding, put

# the main alert tests' HTTP receiver fixture; `store` is on each backend (tests/conftest.py)
receiver = test_alerts.receiver

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The breaker's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    yield s
    s.close()


def models_firing(store: MonitoringStore, cfg: Any, n: int) -> None:
    """`n` models with one firing alert each: one message per model and route."""
    for k in range(n):
        put(store, 0, finding(0, model=f"m{k}"), model=f"m{k}")
        evaluate_and_store(store, cfg, T, f"m{k}", d(0))


def test_a_dead_route_delays_only_its_own_messages(
    store: MonitoringStore, receiver: Receiver, silent: Silent
) -> None:
    """A route that never answers, one whose port is closed and a healthy one, four models:
    the healthy route gets all four messages in the same delivery, which ends within its
    budget however many messages wait on the dead routes."""
    budget = 3.0
    cfg = alerting(
        routes=[
            {"name": "a-silent", "type": "webhook", "url": silent.url, "timeout_seconds": 1},
            {"name": "b-closed", "type": "webhook", "url": closed_port_url()},
            {"name": "c-hook", "type": "webhook", "url": f"{receiver.url}/hook"},
        ],
        max_attempts=3,
        backoff_seconds=0,
        delivery_budget_seconds=budget,
        breaker_failures=3,
    )
    models_firing(store, cfg, 4)
    started = time.monotonic()
    report = deliver(store, cfg)
    elapsed = time.monotonic() - started
    assert report.sent["c-hook"] == 4 and report.messages["c-hook"] == 4
    assert len(receiver.accepted) == 4 and "c-hook" not in report.errors
    assert elapsed < 2 * budget  # one budget for all routes, not one timeout per message
    # the closed port refuses each message 3 times; the third failed message opens its
    # breaker and the fourth waits, unattempted
    assert report.attempts["b-closed"] == 9 and report.failed["b-closed"] == 3
    assert report.deferred["b-closed"] == 1 and "b-closed" in report.open
    # the silent route: each message tried once (a timeout is not retried in the same
    # delivery), until its budget ran out; what it did not reach waits
    assert report.attempts["a-silent"] == len(silent.keys) <= 3
    assert len(set(silent.keys)) == len(silent.keys)
    assert report.failed["a-silent"] + report.deferred["a-silent"] == 4
    pending = store.deliveries(status="pending")
    assert set(pending["route"]) == {"a-silent", "b-closed"} and len(pending) == 8
    assert set(store.deliveries(route="c-hook")["status"]) == {"sent"}


def test_the_breaker_opens_after_repeated_failures_and_waits_for_its_cool_down(
    store_url: str, receiver: Receiver
) -> None:
    """503 on every message: the third failed delivery opens the route for 10 minutes, stored
    (a new process sees it); no request goes out until then, one trial after it, twice the
    cool-down (capped) after a failed trial, and an accepted trial closes it and sends the
    rest in the same delivery."""
    clock = Clock()
    cfg = alerting(
        routes=[{"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook"}],
        max_attempts=2,
        backoff_seconds=0,
        breaker_failures=3,
        breaker_cooldown_seconds=600,
        breaker_max_cooldown_seconds=1500,
    )
    receiver.default = 503
    with MonitoringStore(store_url) as store:
        models_firing(store, cfg, 1)
        for _ in range(3):
            report = deliver(store, cfg, now=clock)
            clock.advance(seconds=30)
        assert len(receiver.requests) == 6  # 3 deliveries x max_attempts
        assert report.open == {"hook": T0 + timedelta(seconds=60 + 600)}
    with MonitoringStore(store_url) as store:  # another run, another process: still open
        (state,) = route_states(store, cfg).values()
        assert state.failures == 3 and state.open_until == T0 + timedelta(seconds=660)
        assert "HTTP 503" in (state.last_error or "")
        clock.advance(minutes=5)
        report = deliver(store, cfg, now=clock)
        assert len(receiver.requests) == 6  # not attempted while open
        assert report.deferred == {"hook": 1} and report.attempts == {}
        (row,) = store.deliveries().to_dict("records")
        assert (row["status"], row["attempts"]) == ("pending", 6)
        waiting = outbox_state(store, cfg, clock.now)
        assert waiting.due == {} and waiting.open == {"hook": (state.open_until, 1)}
        # the model's next evaluation says its notification waits on the open route
        day = alerts_for_day(store, cfg, T, "m0", d(1), now=clock.now)
        (check,) = day.checks()
        assert not check.passed and "open until 2026-03-01T12:11:00+00:00" in check.message

        clock.advance(minutes=6)  # the cool-down is over: one trial, one attempt; it fails
        deliver(store, cfg, now=clock)
        assert len(receiver.requests) == 7
        (state,) = route_states(store, cfg).values()
        assert state.open_until == clock.now + timedelta(seconds=1200)  # doubled
        clock.advance(seconds=1201)
        deliver(store, cfg, now=clock)
        assert len(receiver.requests) == 8
        (state,) = route_states(store, cfg).values()
        assert state.open_until == clock.now + timedelta(seconds=1500)  # capped

        put(store, 1, finding(1, model="m1"), model="m1")  # more waits meanwhile
        evaluate_and_store(store, cfg, T, "m1", d(1))
        receiver.default = 200
        clock.advance(seconds=1501)
        report = deliver(store, cfg, now=clock)
        assert report.sent == {"hook": 2} and report.messages == {"hook": 2}
        assert len(receiver.requests) == 10 and not report.open
        (state,) = route_states(store, cfg).values()
        assert (state.failures, state.open_until, state.last_error) == (0, None, None)
        assert set(store.deliveries()["status"]) == {"sent"}


def test_a_receiver_that_never_answers_is_not_sent_the_same_message_again_and_again(
    store: MonitoringStore, silent: Silent
) -> None:
    """It may have processed what it never answered: a delivery sends the message once (no
    retry after a timeout), and the timeout opens the route at once (a receiver that does
    not answer costs its whole timeout per message): nothing more until the cool-down, then
    one trial with the same Idempotency-Key."""
    clock = Clock()
    route = {"name": "hook", "type": "webhook", "url": silent.url, "timeout_seconds": 0.5}
    cfg = alerting(routes=[route], max_attempts=3, backoff_seconds=0, breaker_failures=3)
    models_firing(store, cfg, 2)
    for _ in range(5):
        deliver(store, cfg, now=clock)
        clock.advance(minutes=1)
    assert len(silent.keys) == 1  # the first model's message timed out: the second waits
    clock.advance(seconds=cfg.breaker_cooldown_seconds)
    deliver(store, cfg, now=clock)  # the trial: one message, one attempt
    assert len(silent.keys) == 2 and len(set(silent.keys)) == 1
    rows = store.deliveries().sort_values("attempts").to_dict("records")
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 0), ("pending", 2)]
    assert "timed out" in rows[1]["last_error"]


def test_evaluating_a_day_sends_nothing_and_never_waits_on_a_route(
    store: MonitoringStore, silent: Silent
) -> None:
    """A model's alert step stores its notifications and returns; delivery is another step."""
    route = {"name": "hook", "type": "webhook", "url": silent.url, "timeout_seconds": 5}
    cfg = alerting(routes=[route])
    models_firing(store, cfg, 2)  # another model's notification already waits
    put(store, 0, finding(0))
    started = time.monotonic()
    day = alerts_for_day(store, cfg, T, "churn", d(0))
    assert time.monotonic() - started < 5
    assert silent.keys == []
    assert day.summary()["new_events"] == 1 and day.summary()["notifications_pending"] == 1
    assert len(store.deliveries(status="pending")) == 3
    (check,) = day.checks()
    assert check.passed  # nothing failed yet: the route is not known to be down
