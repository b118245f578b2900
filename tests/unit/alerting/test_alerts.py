"""Alert rules over stored findings, and delivery to real local HTTP and SMTP servers.

The rules (persistence, keep-firing, repeat, escalation, inhibition, silences) are replayed
over findings in a real store; delivery goes to a real HTTP server and a real SMTP server
(aiosmtpd) on loopback, including routes that fail first and succeed on a retry, and checks
that every alert event reaches every route exactly once.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from aiops_pipelines.alerting.day import alerts_for_day
from aiops_pipelines.alerting.outbox import deliver
from aiops_pipelines.alerting.rules import alerts_as_of, evaluate_and_store, route_matches
from aiops_pipelines.core.config import AlertingConfig
from aiops_pipelines.core.findings import Finding, Severity
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.overview import feed

T, M = "acme", "churn"
START = date(2025, 3, 1)


def d(i: int) -> str:
    return (START + timedelta(days=i)).isoformat()


def finding(
    i: int,
    signal: str = "feature_drift",
    column: str = "age",
    severity: str = "warning",
    *,
    model: str = M,
    asset: str = "drift_report",
) -> Finding:
    return Finding(
        tenant=T,
        model=model,
        partition=d(i),
        asset=asset,
        signal=signal,
        severity=Severity(severity),
        value=0.3,
        threshold=0.1,
        column=column,
        message=f"{signal} on {column} ({severity}) on {d(i)}",
    )


def put(store: MonitoringStore, i: int, *found: Finding, model: str = M) -> None:
    """Store one day's findings as the drift asset would (replacing that day)."""
    store.replace_partition(T, model, d(i), "drift_report", metrics={}, findings=list(found))


def alerting(**kw: Any) -> AlertingConfig:
    base: dict[str, Any] = {"routes": [{"name": "log", "type": "log"}]}
    return AlertingConfig.model_validate({**base, **kw})


def run_days(store: MonitoringStore, cfg: AlertingConfig, days: range, model: str = M) -> None:
    for i in days:
        evaluate_and_store(store, cfg, T, model, d(i))


def events(
    store: MonitoringStore, model: str = M, *, held: bool = False
) -> list[tuple[str, str, str, str]]:
    """The model's stored events to be sent (`held=True`: those recorded but held back)."""
    ev = store.alert_events(T, model)
    ev = ev[[bool(p.get("held_back")) == held for p in ev["payload"]]]
    return list(zip(ev["kind"], ev["partition"], ev["column"], ev["severity"], strict=True))


# `store`: an open store on each backend (tests/conftest.py)


# -- rules ---------------------------------------------------------------------------------------


def test_persistence_fires_only_after_consecutive_days(store: MonitoringStore) -> None:
    cfg = alerting(persistence_days=2)
    put(store, 0, finding(0))  # a one-day blip: pending, then dropped
    put(store, 3, finding(3))
    put(store, 4, finding(4))
    evaluate_and_store(store, cfg, T, M, d(0))
    (row,) = store.alerts(T, M).to_dict("records")
    assert (row["state"], row["first_seen"], row["fired_on"]) == ("pending", d(0), None)
    run_days(store, cfg, range(1, 5))
    (row,) = store.alerts(T, M).to_dict("records")
    assert (row["state"], row["first_seen"], row["fired_on"]) == ("firing", d(3), d(4))
    assert events(store) == [("firing", d(4), "age", "warning")]


def test_keep_firing_bridges_a_gap_then_resolves(store: MonitoringStore) -> None:
    cfg = alerting(keep_firing_days=1, repeat_interval_days=30)
    for i in (0, 1, 2, 4):  # one clean day (3) inside the episode
        put(store, i, finding(i))
    run_days(store, cfg, range(0, 8))
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("resolved", d(6), "age", "warning"),  # two clean days (5, 6) after the last finding
    ]
    (row,) = store.alerts(T, M).to_dict("records")
    assert (row["state"], row["first_seen"], row["last_seen"], row["resolved_on"]) == (
        "resolved",
        d(0),
        d(4),
        d(6),
    )
    # a new episode is a new alert notification
    put(store, 9, finding(9))
    run_days(store, cfg, range(8, 10))
    assert events(store)[-1] == ("firing", d(9), "age", "warning")


def test_repeat_interval_and_escalation(store: MonitoringStore) -> None:
    cfg = alerting(repeat_interval_days=3)
    for i in range(8):
        put(store, i, finding(i, severity="critical" if i >= 5 else "warning"))
    run_days(store, cfg, range(8))
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("repeat", d(3), "age", "warning"),
        ("firing", d(5), "age", "critical"),  # escalated: at once, not at the next repeat
    ]


def test_critical_inhibits_warning_of_the_same_signal(store: MonitoringStore) -> None:
    cfg = alerting(repeat_interval_days=30)
    for i in range(3):
        put(store, i, finding(i, column="a", severity="critical"), finding(i, column="b"))
    for i in range(3, 6):  # a recovers, b goes on
        put(store, i, finding(i, column="b"))
    run_days(store, cfg, range(6))
    assert events(store) == [
        ("firing", d(0), "a", "critical"),
        ("resolved", d(4), "a", "critical"),
        ("firing", d(4), "b", "warning"),  # muted while a fired, notified once a resolved
    ]
    states = store.alerts(T, M).set_index("column")
    assert not states.loc["b", "inhibited"]


def test_configured_inhibition_between_signals(store: MonitoringStore) -> None:
    cfg = alerting(inhibit=[{"source": "dataset_drift", "target": "feature_drift"}])
    for i in range(2):
        put(
            store,
            i,
            finding(i, "dataset_drift", column="", severity="critical"),
            finding(i, column="x"),
        )
    run_days(store, cfg, range(2))
    assert [e[:3] for e in events(store)] == [("firing", d(0), "")]
    states = store.alerts(T, M).set_index("column")
    assert states.loc["x", "inhibited"] and states.loc["x", "state"] == "firing"


def test_silence_mutes_until_it_ends(store: MonitoringStore) -> None:
    silence = {"model": "ch*", "signal": "feature_*", "starts": d(0), "ends": d(3)}
    cfg = alerting(silences=[silence], repeat_interval_days=30)
    for i in range(6):
        put(store, i, finding(i))
        put(store, i, finding(i, model="other"), model="other")
    run_days(store, cfg, range(6))
    run_days(store, cfg, range(6), model="other")
    assert events(store) == [("firing", d(4), "age", "warning")]  # the first unsilenced day
    assert events(store, "other") == [("firing", d(0), "age", "warning")]
    evaluate_and_store(store, cfg, T, M, d(2))  # an old day does not roll the state back
    (row,) = store.alerts(T, M).to_dict("records")
    assert row["as_of"] == d(5) and not row["silenced"]


def test_a_console_silence_mutes_its_alert_only_while_in_force(
    store: MonitoringStore,
) -> None:
    cfg = alerting(repeat_interval_days=30)
    for i in range(7):  # age drifts every day; tenure from day 4
        put(store, i, finding(i), *([finding(i, column="tenure")] if i >= 4 else []))
    evaluate_and_store(store, cfg, T, M, d(0))
    (alert,) = store.alerts(T, M).to_dict("records")
    start = datetime(2026, 5, 1, 9, tzinfo=UTC)
    store.add_silence(
        alert,
        starts_at=start,
        ends_at=start + timedelta(hours=2),
        comment="known: a new data vendor",
        created_by="token:ops#1",
    )
    run_days(store, cfg, range(1, 4))  # now (the wall clock) is after the silence: no effect
    assert events(store) == [("firing", d(0), "age", "warning")]
    for i in range(4, 6):  # evaluated while the silence is in force
        evaluate_and_store(store, cfg, T, M, d(i), now=start + timedelta(hours=1))
    rows = {r["column"]: r for r in store.alerts(T, M).to_dict("records")}
    assert rows["age"]["silenced"] and not rows["tenure"]["silenced"]
    assert events(store)[-1] == ("firing", d(4), "tenure", "warning")  # not muted
    evaluate_and_store(store, cfg, T, M, d(6), now=start + timedelta(hours=3))  # it ended
    rows = {r["column"]: r for r in store.alerts(T, M).to_dict("records")}
    assert not rows["age"]["silenced"]


def test_an_acknowledged_episode_gets_no_repeats_but_escalates_and_resolves(
    store: MonitoringStore,
) -> None:
    cfg = alerting(repeat_interval_days=2, keep_firing_days=0)
    for i in range(8):
        put(store, i, finding(i, severity="critical" if i >= 5 else "warning"))
    run_days(store, cfg, range(1))
    (alert,) = store.alerts(T, M).to_dict("records")
    _, new = store.acknowledge(alert, comment="on it", created_by="token:ops#1")
    assert new and store.acknowledge(alert, comment="me too", created_by="x")[1] is False
    run_days(store, cfg, range(1, 10))
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("firing", d(5), "age", "critical"),  # escalated: sent although acknowledged
        ("resolved", d(8), "age", "critical"),
    ]
    put(store, 11, finding(11))  # a new episode is not acknowledged
    put(store, 13, finding(13))
    for i in range(11, 14):
        put(store, i, finding(i))
    run_days(store, cfg, range(10, 14))
    assert events(store)[-2:] == [
        ("firing", d(11), "age", "warning"),
        ("repeat", d(13), "age", "warning"),
    ]


def test_same_events_whether_evaluated_daily_or_once_and_never_twice(
    store: MonitoringStore, tmp_path: Path
) -> None:
    cfg = alerting(persistence_days=2, keep_firing_days=1, repeat_interval_days=3)
    pattern = [0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1]
    for i, on in enumerate(pattern):
        if on:
            put(store, i, finding(i, severity="critical" if i in (8, 9) else "warning"))
    run_days(store, cfg, range(len(pattern)))
    daily = events(store)
    run_days(store, cfg, range(len(pattern)))  # every day evaluated a second time
    assert events(store) == daily
    # the same findings evaluated once, on the last day, in a fresh store
    with MonitoringStore(f"sqlite:///{tmp_path / 'once.db'}") as once:
        for i, on in enumerate(pattern):
            if on:
                put(once, i, finding(i, severity="critical" if i in (8, 9) else "warning"))
        evaluate_and_store(once, cfg, T, M, d(len(pattern) - 1))
        assert events(once) == daily
    assert daily == [
        ("firing", d(2), "age", "warning"),
        ("repeat", d(5), "age", "warning"),
        ("firing", d(8), "age", "critical"),
        ("resolved", d(11), "age", "critical"),  # two clean days: 10 and 11
        ("firing", d(14), "age", "warning"),
    ]


def test_late_finding_for_an_earlier_day_does_not_renotify(store: MonitoringStore) -> None:
    """Labels arrive late: a re-run adds a decay finding before the notified episode start."""
    cfg = alerting(repeat_interval_days=30)
    decay = "performance_decay"
    for i in (5, 6):
        store.replace_partition(
            T,
            M,
            d(i),
            "performance_report",
            metrics={},
            findings=[finding(i, decay, column="", asset="performance_report")],
        )
    evaluate_and_store(store, cfg, T, M, d(7))
    store.replace_partition(
        T,
        M,
        d(4),
        "performance_report",
        metrics={},
        findings=[finding(4, decay, column="", asset="performance_report")],
    )
    evaluate_and_store(store, cfg, T, M, d(8))
    assert events(store) == [("firing", d(5), "", "warning")]
    (row,) = store.alerts(T, M).to_dict("records")
    assert (row["first_seen"], row["state"]) == (d(4), "firing")  # kept firing: labels lag


def test_old_events_of_a_first_backfill_are_not_sent(store: MonitoringStore) -> None:
    cfg = alerting(max_event_age_days=5, repeat_interval_days=4)
    for i in range(30):
        put(store, i, finding(i))
    evaluate_and_store(store, cfg, T, M, d(29))
    # repeats every 4 days from day 0; only those of the last 5 days are sent
    assert events(store) == [
        ("repeat", d(24), "age", "warning"),
        ("repeat", d(28), "age", "warning"),
    ]
    # the older ones are recorded, their deliveries held (never claimed for sending)
    assert [e[:2] for e in events(store, held=True)] == [
        ("firing", d(0)),
        *(("repeat", d(i)) for i in (4, 8, 12, 16, 20)),
    ]
    status = store.deliveries(T, M).groupby("status")["partition"].apply(list).to_dict()
    assert status == {
        "held": [d(i) for i in (0, 4, 8, 12, 16, 20)],
        "pending": [d(24), d(28)],
    }
    # a replay delivering as of day 26 takes that day's and before; the later one waits
    assert sorted(store.claim_deliveries("c1", until_partition=d(26))["partition"]) == [d(24)]
    assert sorted(store.claim_deliveries("c2")["partition"]) == [d(28)]


def test_info_findings_and_route_filters(store: MonitoringStore) -> None:
    cfg = alerting(
        routes=[
            {"name": "all", "type": "log"},
            {"name": "crit", "type": "log", "min_severity": "critical"},
            {"name": "other-tenant", "type": "log", "tenants": ["globex"]},
            {"name": "no-resolved", "type": "log", "send_resolved": False},
        ],
        repeat_interval_days=30,
    )
    put(store, 0, finding(0, "canary_pass", column="", severity="info"), finding(0))
    run_days(store, cfg, range(3))
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("resolved", d(2), "age", "warning"),
    ]
    routes = store.deliveries(T, M).groupby("route")["event"].apply(list).to_dict()
    assert routes == {"all": ["firing", "resolved"], "no-resolved": ["firing"]}
    crit = {"tenant": T, "model": M, "signal": "x", "severity": "critical", "kind": "firing"}
    assert route_matches(cfg.routes[1], crit)


# -- delivery --------------------------------------------------------------------------------------


class Receiver:
    """A real HTTP server on loopback: answers with queued status codes (then 200) and keeps
    every request, and the bodies it accepted."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.ok: list[bool] = []
        self.accepted: list[dict[str, Any]] = []
        self.codes: list[int] = []
        self.default = 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers), body))
                    code = receiver.codes.pop(0) if receiver.codes else receiver.default
                    receiver.ok.append(code < 300)
                    if code < 300:
                        receiver.accepted.append(body)
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"unavailable")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def event_keys(self, path: str) -> list[str]:
        return [
            a["event_key"]
            for (p, _, body), ok in zip(self.requests, self.ok, strict=True)
            if p == path and ok
            for a in body.get("alerts", [])
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class FlakySMTP:
    """aiosmtpd handler: refuses the first `fail` messages with 451, then accepts."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.messages: list[Any] = []
        self.refused = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refused < self.fail:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@contextmanager
def smtp_server(fail: int) -> Iterator[tuple[FlakySMTP, int]]:
    """A real SMTP server on a free loopback port that refuses the first `fail` messages."""
    handler = FlakySMTP(fail=fail)
    with socket.socket() as s:  # a free port (the controller's self-test needs a real one)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[FlakySMTP, int]]:
    with smtp_server(fail=1) as server:
        yield server


def routes_for(receiver: Receiver, smtp_port: int, tmp_path: Path) -> list[dict[str, Any]]:
    return [
        {"name": "ops-log", "type": "log"},
        {"name": "jsonl", "type": "file", "path": str(tmp_path / "alerts.jsonl")},
        {"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook",
         "headers": {"Authorization": "Bearer t0ken"}},
        {"name": "slack", "type": "slack", "url": f"{receiver.url}/slack",
         "min_severity": "critical"},
        {"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
         "sender": "aiops@localhost", "to": ["oncall@example.com"], "tenants": ["acme"]},
    ]  # fmt: skip


def two_models_firing(store: MonitoringStore) -> None:
    for i in range(2):
        put(store, i, finding(i, column="a", severity="critical"), finding(i, "null_rate_drift"))
        put(store, i, finding(i, model="eta"), model="eta")


def test_every_route_gets_one_grouped_message_per_model(
    store: MonitoringStore,
    receiver: Receiver,
    smtp: tuple[FlakySMTP, int],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, port = smtp
    cfg = alerting(routes=routes_for(receiver, port, tmp_path), backoff_seconds=0)
    two_models_firing(store)
    for model in (M, "eta"):
        run_days(store, cfg, range(2), model=model)
    with caplog.at_level(logging.WARNING, logger="aiops.alerts"):
        report = deliver(store, cfg)
    assert report.ok, report.errors
    assert report.messages == {"hook": 2, "jsonl": 2, "mail": 2, "ops-log": 2, "slack": 1}
    assert report.sent == {"hook": 3, "jsonl": 3, "mail": 3, "ops-log": 3, "slack": 1}
    # the generic webhook: one JSON document per tenant/model group, with every alert
    hooks = {b["group_key"]: b for p, h, b in receiver.requests if p == "/hook"}
    assert set(hooks) == {"acme/churn", "acme/eta"}
    churn = hooks["acme/churn"]
    assert churn["status"] == "firing" and churn["summary"].startswith("[CRITICAL] acme/churn")
    assert sorted((a["signal"], a["column"]) for a in churn["alerts"]) == [
        ("feature_drift", "a"),
        ("null_rate_drift", "age"),
    ]
    headers = next(h for p, h, _ in receiver.requests if p == "/hook")
    assert headers["Authorization"] == "Bearer t0ken" and headers["Idempotency-Key"]
    # Slack: only the critical one, in Slack's incoming-webhook shape
    ((_, _, slack),) = [r for r in receiver.requests if r[0] == "/slack"]
    assert slack["text"].startswith("[CRITICAL] acme/churn: 1 firing")
    assert slack["blocks"][0]["type"] == "header" and "feature_drift [a]" in json.dumps(slack)
    # email: refused once with 451, accepted on the retry; one mail per group
    assert handler.refused == 1 and len(handler.messages) == 2
    mails = {m["Subject"]: (rcpt, m.get_payload()) for rcpt, m in handler.messages}
    assert set(mails) == {
        "[aiops] [CRITICAL] acme/churn: 2 firing",
        "[aiops] [WARNING] acme/eta: 1 firing",
    }
    rcpt, churn_body = mails["[aiops] [CRITICAL] acme/churn: 2 firing"]
    assert rcpt == ["oncall@example.com"]
    assert "feature_drift [a]" in churn_body and "null_rate_drift [age]" in churn_body
    assert "feature_drift [age]" in mails["[aiops] [WARNING] acme/eta: 1 firing"][1]
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 2 and {json.loads(x)["group_key"] for x in lines} == hooks.keys()
    assert "acme/churn" in caplog.text
    sent = store.deliveries()
    assert set(sent["status"]) == {"sent"}
    mail_churn = sent[(sent["route"] == "mail") & (sent["model"] == M)]
    assert set(mail_churn["attempts"]) == {2}  # refused once, then accepted
    # nothing left: a second delivery sends nothing, a re-evaluation queues nothing
    run_days(store, cfg, range(2))
    assert deliver(store, cfg).sent == {} and len(store.deliveries()) == len(sent)


def test_a_route_that_fails_first_succeeds_on_retry_without_duplicates(
    store: MonitoringStore, receiver: Receiver
) -> None:
    cfg = alerting(
        routes=[{"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook"}],
        backoff_seconds=0,
    )
    two_models_firing(store)
    run_days(store, cfg, range(2))
    receiver.codes = [500]  # the first POST fails, the retry is accepted
    report = deliver(store, cfg)
    assert report.ok and report.sent == {"hook": 2}
    assert [p for p, _, _ in receiver.requests] == ["/hook", "/hook"]
    first, second = (h["Idempotency-Key"] for _, h, _ in receiver.requests)
    assert first == second  # a retry is recognisably the same message
    keys = receiver.event_keys("/hook")
    assert len(keys) == 2 and len(set(keys)) == 2


def test_a_route_down_keeps_alerts_pending_until_it_is_back(
    store: MonitoringStore, receiver: Receiver
) -> None:
    cfg = alerting(
        routes=[
            {"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook"},
            {"name": "dead", "type": "webhook", "url": "http://127.0.0.1:9/nothing"},
        ],
        max_attempts=2,
        backoff_seconds=0,
    )
    two_models_firing(store)
    run_days(store, cfg, range(2))
    receiver.default = 503
    report = deliver(store, cfg)
    assert report.failed == {"dead": 2, "hook": 2} and "HTTP 503" in report.errors["hook"]
    assert "refused" in report.errors["dead"].lower() or "errno" in report.errors["dead"].lower()
    pending = store.deliveries(status="pending")
    assert len(pending) == 4 and set(pending["attempts"]) == {2}
    assert pending["last_error"].notna().all()
    assert len(receiver.accepted) == 0
    receiver.default = 200
    report = deliver(store, cfg)
    assert report.sent == {"hook": 2} and report.failed == {"dead": 2}
    keys = receiver.event_keys("/hook")
    assert sorted(keys) == sorted(store.alert_events(T, M)["event_key"])
    assert deliver(store, cfg).sent == {}  # delivered once, never again
    assert set(store.deliveries(route="hook")["status"]) == {"sent"}


def test_concurrent_deliveries_send_each_event_once(
    store: MonitoringStore, receiver: Receiver
) -> None:
    cfg = alerting(routes=[{"name": "hook", "type": "webhook", "url": f"{receiver.url}/h"}])
    for i in range(2):
        for k in range(6):
            put(store, i, finding(i, model=f"m{k}"), model=f"m{k}")
    for k in range(6):
        run_days(store, cfg, range(2), model=f"m{k}")
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(deliver(store, cfg))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = receiver.event_keys("/h")
    assert len(keys) == 6 and len(set(keys)) == 6
    assert sum(sum(r.sent.values()) for r in results) == 6


def test_a_route_url_from_an_unset_variable_waits_without_retrying(
    store: MonitoringStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = alerting(
        routes=[{"name": "hook", "type": "webhook", "url_env": "AIOPS_TEST_HOOK_URL"}],
        backoff_seconds=30,  # a retry would make this test hang: there must be none
    )
    monkeypatch.delenv("AIOPS_TEST_HOOK_URL", raising=False)
    put(store, 0, finding(0))
    evaluate_and_store(store, cfg, T, M, d(0))
    report = deliver(store, cfg)
    assert "AIOPS_TEST_HOOK_URL unset" in report.errors["hook"]
    (row,) = store.deliveries().to_dict("records")
    assert (row["status"], row["attempts"]) == ("pending", 1)
    monkeypatch.setenv("AIOPS_TEST_HOOK_URL", f"{receiver.url}/hook")
    assert deliver(store, cfg).sent == {"hook": 1}
    assert len(receiver.event_keys("/hook")) == 1


def test_an_alert_keeps_the_last_measured_message(store: MonitoringStore) -> None:
    """A decay finding on a day without labels yet carries the state, not a measurement."""
    decay = "performance_decay"
    for i, value in ((0, 0.71), (1, float("nan"))):
        f = finding(i, decay, column="", asset="performance_report")
        f = Finding(**{**f.__dict__, "value": value, "message": f"auc {value} on day {i}"})
        store.replace_partition(T, M, d(i), "performance_report", metrics={}, findings=[f])
    evaluate_and_store(store, alerting(), T, M, d(1))
    (row,) = store.alerts(T, M).to_dict("records")
    assert row["message"] == "auc 0.71 on day 0" and row["value"] == 0.71
    assert row["last_seen"] == d(1)


def test_a_backfill_updates_states_without_paging_about_the_past(
    store: MonitoringStore,
) -> None:
    """Events older than max_event_age_days before *today* (the clock), not before the day
    evaluated: a backfill of old days stores their states and sends nothing."""
    cfg = alerting(max_event_age_days=5, repeat_interval_days=4)
    for i in range(10):
        put(store, i, finding(i))
    today = (date.fromisoformat(d(9)) + timedelta(days=30)).isoformat()
    for i in range(10):
        evaluate_and_store(store, cfg, T, M, d(i), today=today)
    assert events(store) == []
    assert [e[:2] for e in events(store, held=True)] == [
        ("firing", d(0)),
        ("repeat", d(4)),
        ("repeat", d(8)),
    ]
    assert store.alerts(T, M)["state"].tolist() == ["firing"]
    # recorded once: judging the same day again, even with a replay's clock, pages nobody
    evaluate_and_store(store, cfg, T, M, d(9), today=d(9))
    assert events(store) == [] and len(events(store, held=True)) == 3


# -- backfills: held back, summarised, and the state as of a past day ---------------------------


def globex_finding(i: int) -> Finding:
    return Finding(
        tenant="globex",
        model="eta",
        partition=d(i),
        asset="drift_report",
        signal="feature_drift",
        severity=Severity.CRITICAL,
        value=0.5,
        threshold=0.1,
        column="km",
        message=f"km drifted on {d(i)}",
    )


def test_a_backfill_tells_each_route_once_what_it_held_back(
    store: MonitoringStore, receiver: Receiver, smtp: tuple[FlakySMTP, int], tmp_path: Path
) -> None:
    """30 old days of two tenants, delivered after each day: nothing is sent per event; each
    route gets one summary line per tenant when the backfill reaches a recent day, and a
    second call sends nothing."""
    handler, port = smtp
    routes = routes_for(receiver, port, tmp_path)
    cfg = alerting(routes=routes, max_event_age_days=5, repeat_interval_days=4, backoff_seconds=0)
    for i in range(30):
        put(store, i, finding(i), finding(i, column="b", severity="critical"))
        store.replace_partition(
            "globex", "eta", d(i), "drift_report", metrics={}, findings=[globex_finding(i)]
        )
    today = d(33)  # the wall clock: days 0..27 are older than 5 days
    for i in range(30):
        for tenant, model in ((T, M), ("globex", "eta")):
            res = alerts_for_day(store, cfg, tenant, model, d(i), today=today)
            assert res.summary_requested == (i >= 28)
        report = deliver(store, cfg)
        # the summary goes out with the first recent day (28), once: a line per tenant for
        # hook, jsonl, ops-log and slack (critical: both tenants), one for mail (acme only)
        assert sum(report.summaries.values()) == (9 if i == 28 else 0)
    held = store.deliveries(status="held")
    assert len(held) and set(held["partition"]) <= {d(i) for i in range(28)}
    assert held["message_id"].notna().all()
    summaries = [b for p, _, b in receiver.requests if p == "/hook" and b["status"] == "held_back"]
    assert {b["group_key"] for b in summaries} == {"acme/held", "globex/held"}
    acme = next(b for b in summaries if b["tenant"] == T)
    n_acme = int(((held["route"] == "hook") & (held["tenant"] == T)).sum())
    assert acme["held"]["count"] == n_acme and acme["held"]["first_day"] == d(0)
    assert acme["summary"].startswith(f"[HELD BACK] acme: {n_acme} notification(s) about {d(0)}")
    assert "max_event_age" not in acme["summary"] and "older than 5 days" in acme["summary"]
    # Slack (critical only: acme's column b and globex) and email (acme only) get one line too
    slack = [b for p, _, b in receiver.requests if p == "/slack" and "HELD BACK" in b["text"]]
    assert len(slack) == 2
    subjects = [m["Subject"] for _, m in handler.messages if "HELD BACK" in m["Subject"]]
    assert len(subjects) == 1 and "acme" in subjects[0]
    # no event of the backfill was sent on its own; the recent days' were
    hooked = [a["day"] for b in receiver.accepted for a in b.get("alerts", [])]
    assert hooked and min(hooked) >= d(28)
    # nothing more to tell, even when asked
    store.request_held_summaries([r.name for r in cfg.routes])
    assert deliver(store, cfg).summaries == {}


def test_a_held_back_summary_that_fails_is_sent_later(
    store: MonitoringStore, receiver: Receiver
) -> None:
    cfg = alerting(
        routes=[{"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook"}],
        max_event_age_days=2,
        max_attempts=2,
        backoff_seconds=0,
    )
    for i in range(6):
        put(store, i, finding(i))
    evaluate_and_store(store, cfg, T, M, d(5), today=d(20))
    n = len(store.deliveries(status="held"))
    assert n == 1  # the firing of day 0 (still firing on day 5)
    receiver.codes = [503, 503]
    store.request_held_summaries(["hook"])
    report = deliver(store, cfg)
    assert report.failed == {"hook": n} and "503" in report.errors["hook"]
    held = store.deliveries(status="held")
    assert held["message_id"].isna().all() and set(held["attempts"]) == {2}
    report = deliver(store, cfg)  # still asked for: the summary was not accepted
    assert report.summaries == {"hook": 1} and report.summarised == {"hook": n}
    assert store.deliveries(status="held")["message_id"].notna().all()


def test_alert_states_and_feed_as_of_a_past_day(store: MonitoringStore) -> None:
    """After the whole range ran, the state of day 2 is day 2's (firing), not the latest
    (resolved), and each feed row quotes the finding of the day it is dated."""
    cfg = alerting(keep_firing_days=1)
    for i in range(4):
        put(store, i, finding(i))
    run_days(store, cfg, range(10))
    assert store.alerts(T, M)["state"].tolist() == ["resolved"]
    then = alerts_as_of(store, cfg, d(2))
    assert then[["state", "fired_on", "last_seen"]].values.tolist() == [["firing", d(0), d(2)]]
    assert then["message"].tolist() == [f"feature_drift on age (warning) on {d(2)}"]
    assert alerts_as_of(store, cfg, d(9))["state"].tolist() == ["resolved"]
    assert alerts_as_of(store, cfg, d(9), tenant="globex").empty
    rows = feed(store, day=d(9), days=10, alerts=alerts_as_of(store, cfg, d(9)))
    alert_rows = rows[rows["kind"] == "alert"].set_index("source")["message"].to_dict()
    assert alert_rows["firing"] == f"alert firing: feature_drift on age (warning) on {d(0)}"
    assert alert_rows["resolved"] == (
        f"alert resolved: last seen {d(3)}: feature_drift on age (warning) on {d(3)}"
    )


def test_a_notified_episode_whose_findings_are_gone_still_resolves(
    store: MonitoringStore,
) -> None:
    """A re-run that fixed the day (a failed run re-run, corrected data) removes the finding
    of a notified episode: it resolves by keep-firing, it does not vanish without a word."""
    cfg = alerting(keep_firing_days=2)
    put(store, 0, finding(0))
    put(store, 1, finding(1))
    run_days(store, cfg, range(2))
    for i in (0, 1):
        put(store, i)  # re-run: nothing found any more
    run_days(store, cfg, range(2, 6))
    # quiet from the last sighting its notification recorded (day 0), 2 days kept firing
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("resolved", d(3), "age", "warning"),
    ]
    (row,) = store.alerts(T, M).to_dict("records")
    assert (row["state"], row["resolved_on"]) == ("resolved", d(3))
