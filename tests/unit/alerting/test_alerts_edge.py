"""Edge cases of the alert rules and the outbox, against a real store and real local servers.

Rules: severity flip-flops, silences and inhibition together, zero keep-firing, gaps under
persistence, per-signal overrides, the look-back horizon, old events of a first backfill.
Delivery: stale claims, unicode and very long bodies (email, Slack), a webhook that hangs or
answers with a broken HTTP response, a route removed from the config.

"""

from __future__ import annotations

import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from aiops_pipelines.alerting.outbox import deliver
from aiops_pipelines.alerting.rules import evaluate_and_store
from aiops_pipelines.core.findings import Finding
from aiops_pipelines.core.process import Process, claim_token
from aiops_pipelines.io.store import MonitoringStore
from tests.servers import Silent
from tests.unit.alerting import test_alerts
from tests.unit.alerting.test_alerts import (
    FlakySMTP,
    M,
    Receiver,
    T,
    alerting,
    d,
    events,
    finding,
    put,
    run_days,
    smtp_server,
)

BIG = "critical"

# the same fixtures as the main alert tests: a store on each backend (tests/conftest.py), an
# HTTP receiver
receiver = test_alerts.receiver


@pytest.fixture
def smtp() -> Iterator[tuple[FlakySMTP, int]]:
    with smtp_server(fail=0) as server:
        yield server


def routed(store: MonitoringStore, model: str = M) -> dict[str, list[tuple[str, str, str]]]:
    """route -> [(kind, day, severity)] of the queued deliveries."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for r in store.deliveries(T, model).to_dict("records"):
        out.setdefault(r["route"], []).append((r["event"], r["partition"], r["severity"]))
    return out


# -- rules ---------------------------------------------------------------------------------------


def test_severity_flip_flop_notifies_the_escalation_once(store: MonitoringStore) -> None:
    cfg = alerting(
        routes=[
            {"name": "all", "type": "log"},
            {"name": "crit", "type": "log", "min_severity": BIG},
        ],
        repeat_interval_days=30,
    )
    for i in range(6):  # warning, critical, warning, critical, ...
        put(store, i, finding(i, severity=BIG if i % 2 else "warning"))
    run_days(store, cfg, range(9))
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("firing", d(1), "age", BIG),  # escalated once; the flip-flops after it are quiet
        ("resolved", d(7), "age", BIG),  # at the worst severity notified
    ]
    assert routed(store)["crit"] == [("firing", d(1), BIG), ("resolved", d(7), BIG)]


def test_resolution_reaches_the_routes_that_got_the_critical_firing(
    store: MonitoringStore,
) -> None:
    cfg = alerting(
        routes=[
            {"name": "all", "type": "log"},
            {"name": "crit", "type": "log", "min_severity": BIG},
        ],
        repeat_interval_days=30,
    )
    for i, sev in enumerate(["warning", BIG, "warning"]):
        put(store, i, finding(i, severity=sev), finding(i, "null_rate_drift"))
    run_days(store, cfg, range(6))
    assert routed(store) == {
        "all": [
            ("firing", d(0), "warning"),
            ("firing", d(0), "warning"),
            ("firing", d(1), BIG),
            ("resolved", d(4), BIG),
            ("resolved", d(4), "warning"),
        ],
        # the de-escalated alert's resolution still reaches the critical route; the other
        # alert (never critical) does not
        "crit": [("firing", d(1), BIG), ("resolved", d(4), BIG)],
    }


def test_a_silence_over_the_whole_episode_sends_nothing_not_even_resolved(
    store: MonitoringStore,
) -> None:
    cfg = alerting(silences=[{"column": "age", "starts": d(0), "ends": d(3)}])
    for i in range(3):  # resolves on day 4, the day after the silence ended
        put(store, i, finding(i))
    put(store, 0, finding(0), finding(0, column="other"))
    run_days(store, cfg, range(8))
    assert [e for e in events(store) if e[2] == "age"] == []
    assert [e[:3] for e in events(store)] == [
        ("firing", d(0), "other"),
        ("resolved", d(2), "other"),
    ]


def test_a_silenced_critical_still_inhibits_warnings_of_the_same_signal(
    store: MonitoringStore,
) -> None:
    """As in Alertmanager: silencing the critical column mutes the problem, not just a column;
    the warnings come back when the critical resolves."""
    cfg = alerting(silences=[{"column": "a", "starts": d(0), "ends": d(9)}])
    for i in range(3):
        put(store, i, finding(i, column="a", severity=BIG), finding(i, column="b"))
    for i in range(3, 6):
        put(store, i, finding(i, column="b"))
    run_days(store, cfg, range(6))
    assert [e[:3] for e in events(store)] == [("firing", d(4), "b")]


def test_inhibition_never_crosses_models(store: MonitoringStore) -> None:
    cfg = alerting(inhibit=[{"source": "dataset_drift", "target": "feature_drift"}])
    for i in range(2):
        put(store, i, finding(i, column="a", severity=BIG), finding(i, "dataset_drift", "", BIG))
        put(store, i, finding(i, column="b", model="eta"), model="eta")
    run_days(store, cfg, range(2))
    run_days(store, cfg, range(2), model="eta")
    assert events(store, "eta") == [("firing", d(0), "b", "warning")]
    assert not store.alerts(T, "eta")["inhibited"].any()


def test_keep_firing_zero_resolves_on_the_first_clean_day(store: MonitoringStore) -> None:
    cfg = alerting(keep_firing_days=0, repeat_interval_days=30)
    for i in (0, 1, 3):
        put(store, i, finding(i))
    run_days(store, cfg, range(5))
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("resolved", d(2), "age", "warning"),
        ("firing", d(3), "age", "warning"),  # a new episode
        ("resolved", d(4), "age", "warning"),
    ]


def test_persistence_restarts_after_a_gap(store: MonitoringStore) -> None:
    cfg = alerting(persistence_days=3)
    for i in (0, 1, 3, 4, 5):  # two days, a gap, three days
        put(store, i, finding(i))
    run_days(store, cfg, range(6))
    assert events(store) == [("firing", d(5), "age", "warning")]
    (row,) = store.alerts(T, M).to_dict("records")
    assert (row["first_seen"], row["fired_on"]) == (d(3), d(5))


def test_per_signal_overrides(store: MonitoringStore) -> None:
    cfg = alerting(
        signals={
            "feature_drift": {"min_severity": BIG},
            "performance_decay": {"keep_firing_days": 0},  # below the label-signal default
        },
        repeat_interval_days=30,
    )
    put(store, 0, finding(0), finding(0, "null_rate_drift"))
    put(store, 1, finding(1, severity=BIG))
    decay = finding(0, "performance_decay", column="", asset="performance_report")
    store.replace_partition(T, M, d(0), "performance_report", metrics={}, findings=[decay])
    run_days(store, cfg, range(2))
    assert sorted(e[:3] for e in events(store)) == [
        ("firing", d(0), ""),  # performance decay
        ("firing", d(0), "age"),  # null rate drift
        ("firing", d(1), "age"),  # the critical feature drift, not the warning of day 0
        ("resolved", d(1), ""),  # decay resolved at once
    ]
    ev = store.alert_events(T, M)
    assert set(ev[ev["column"] == "age"]["signal"]) == {"feature_drift", "null_rate_drift"}


def test_max_event_age_zero_sends_only_the_evaluated_day(store: MonitoringStore) -> None:
    cfg = alerting(max_event_age_days=0, repeat_interval_days=2)
    for i in range(5):
        put(store, i, finding(i))
        put(store, i, finding(i, model="eta"), model="eta")
    run_days(store, cfg, range(5))  # daily: every event on its own day
    evaluate_and_store(store, cfg, T, "eta", d(4))  # once: only the last day's
    assert [e[:2] for e in events(store)] == [
        ("firing", d(0)),
        ("repeat", d(2)),
        ("repeat", d(4)),
    ]
    assert [e[:2] for e in events(store, "eta")] == [("repeat", d(4))]


def test_no_resolution_for_a_firing_too_old_to_be_sent(store: MonitoringStore) -> None:
    cfg = alerting(max_event_age_days=5, repeat_interval_days=30)
    for i in range(25):
        put(store, i, finding(i))
    evaluate_and_store(store, cfg, T, M, d(29))  # a first backfill: resolved on day 26
    assert events(store) == []
    # recorded, held: the firing is too old, and its recent resolution told nobody anything
    assert [e[0] for e in events(store, held=True)] == ["firing", "resolved"]
    assert set(store.deliveries(T, M)["status"]) == {"held"}


def test_an_episode_longer_than_the_horizon_is_not_renotified(store: MonitoringStore) -> None:
    cfg = alerting(horizon_days=5, repeat_interval_days=30)
    for i in range(10):
        put(store, i, finding(i))
    run_days(store, cfg, range(10))
    assert events(store) == [("firing", d(0), "age", "warning")]


def test_a_short_horizon_still_resolves(store: MonitoringStore) -> None:
    cfg = alerting(horizon_days=2, keep_firing_days=1)
    put(store, 0, finding(0))
    run_days(store, cfg, range(4))
    assert events(store) == [
        ("firing", d(0), "age", "warning"),
        ("resolved", d(2), "age", "warning"),
    ]


def test_a_backfill_does_not_resurrect_a_firing_alert(store: MonitoringStore) -> None:
    cfg = alerting(horizon_days=3)
    for i in range(2):
        put(store, i, finding(i))
    run_days(store, cfg, range(10))  # fired, resolved on day 3, out of the horizon by day 6
    assert list(store.alerts(T, M)["state"]) == ["resolved"]  # kept as history
    evaluate_and_store(store, cfg, T, M, d(1))  # a backfill of day 1
    assert store.alerts(T, M, state="firing").empty


def test_a_model_without_findings_stores_nothing_and_leaves_others_alone(
    store: MonitoringStore,
) -> None:
    cfg = alerting()
    for i in range(2):
        put(store, i, finding(i, model="eta"), model="eta")
    run_days(store, cfg, range(2), model="eta")
    before = store.alerts(T, "eta")
    deliveries = len(store.deliveries())
    result = evaluate_and_store(store, cfg, T, M, d(1))
    assert (result.alerts, result.events, result.firing) == ([], [], [])
    assert store.alerts(T, M).empty and store.alert_events(T, M).empty
    after = store.alerts(T, "eta")
    assert after.drop(columns="updated_at").equals(before.drop(columns="updated_at"))
    assert len(store.deliveries()) == deliveries


# -- delivery ------------------------------------------------------------------------------------


def test_a_stale_claim_is_reclaimed_only_after_stale_after(store: MonitoringStore) -> None:
    cfg = alerting()
    put(store, 0, finding(0), finding(0, column="b"))
    evaluate_and_store(store, cfg, T, M, d(0))
    dead = store.claim_deliveries("dead-run")  # a run that dies before finishing
    ids = sorted(int(i) for i in dead["id"])
    assert len(ids) == 2 and set(store.deliveries()["status"]) == {"sending"}
    assert deliver(store, cfg).sent == {}  # a live claim is left alone...
    assert store.claim_deliveries("early", stale_after=timedelta(hours=1)).empty
    time.sleep(0.05)
    rescue = store.claim_deliveries("rescue", stale_after=timedelta(milliseconds=10))
    assert sorted(int(i) for i in rescue["id"]) == ids  # ...a stale one is taken over
    store.finish_deliveries(ids, "dead-run", attempts=1, sent=True)  # the old claim is void
    assert set(store.deliveries()["status"]) == {"sending"}
    store.finish_deliveries(ids, "rescue", attempts=1, sent=True, message_id="m")
    assert set(store.deliveries()["status"]) == {"sent"}
    assert store.claim_deliveries("later", stale_after=timedelta(0)).empty


def test_a_claim_of_a_process_that_died_is_taken_over_at_once(store: MonitoringStore) -> None:
    """A claimer killed mid-send (here: a real process, killed): its 'sending' rows go to the
    next delivery at once, not after `stale_after`; a living claimer's rows stay its own."""
    cfg = alerting()
    put(store, 0, finding(0), finding(0, column="b"))
    put(store, 0, finding(0, model="eta"), model="eta")
    evaluate_and_store(store, cfg, T, M, d(0))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = f"{replace(Process.current(), pid=child.pid, started='')}/c0ffee"
    ids = sorted(int(i) for i in store.claim_deliveries(dead)["id"])
    evaluate_and_store(store, cfg, T, "eta", d(0))
    alive = store.claim_deliveries(claim_token())  # this process: alive
    assert len(ids) == 2 and len(alive) == 1
    assert deliver(store, cfg).sent == {}  # nothing free while both claimers live
    child.kill()
    child.wait()
    report = deliver(store, cfg)
    assert report.sent == {"log": 2}  # the dead one's, at once; the living one's stay
    rows = store.deliveries().set_index("id")
    assert set(rows.loc[ids, "status"]) == {"sent"}
    assert list(rows.loc[[int(alive["id"].iloc[0])], "status"]) == ["sending"]


def test_held_notifications_a_dead_summariser_claimed_are_summarised_at_once(
    store: MonitoringStore,
) -> None:
    cfg = alerting(max_event_age_days=5, repeat_interval_days=4)
    for i in range(12):
        put(store, i, finding(i))
    evaluate_and_store(store, cfg, T, M, d(11))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = f"{replace(Process.current(), pid=child.pid, started='')}/c0ffee"
    held = store.claim_held(dead)
    store.request_held_summaries(["log"])
    assert len(held) and deliver(store, cfg).summarised == {}  # its claimer lives
    store.request_held_summaries(["log"])
    child.kill()
    child.wait()
    assert deliver(store, cfg).summarised == {"log": len(held)}
    assert store.deliveries(status="held")["message_id"].notna().all()


def test_a_route_removed_from_the_config_keeps_its_deliveries(store: MonitoringStore) -> None:
    cfg = alerting(routes=[{"name": "log", "type": "log"}, {"name": "gone", "type": "log"}])
    put(store, 0, finding(0))
    evaluate_and_store(store, cfg, T, M, d(0))
    report = deliver(store, alerting())  # "gone" is no longer configured
    assert report.sent == {"log": 1} and report.failed == {"gone": 1} and not report.ok
    (row,) = store.deliveries(route="gone").to_dict("records")
    assert row["status"] == "pending" and "not configured" in row["last_error"]
    assert row["attempts"] == 0
    assert deliver(store, cfg).sent == {"gone": 1}  # configured again: delivered


def _tricky_message(i: int) -> Finding:
    text = "dérive 日本語 ✅ 🚨\r\nBcc: evil@example.com\r\nSubject: pwned\n" + "x" * 5000
    f = finding(i, severity=BIG)
    return Finding(**{**f.__dict__, "message": text})


def test_email_with_unicode_long_lines_and_newlines_in_the_message(
    store: MonitoringStore, smtp: tuple[FlakySMTP, int]
) -> None:
    handler, port = smtp
    mail = {
        "name": "mail",
        "type": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "sender": "aiops@localhost",
        "to": ["oncall@example.com"],
    }
    cfg = alerting(routes=[mail], backoff_seconds=0)
    put(store, 0, _tricky_message(0))
    evaluate_and_store(store, cfg, T, M, d(0))
    report = deliver(store, cfg)
    assert report.ok, report.errors
    ((rcpt, msg),) = handler.messages
    assert rcpt == ["oncall@example.com"]  # the Bcc line of the message is no header
    assert msg["Bcc"] is None and msg["Subject"] == f"[aiops] [CRITICAL] {T}/{M}: 1 firing"
    body = msg.get_payload(decode=True).decode(msg.get_content_charset())
    assert "dérive 日本語 ✅ 🚨" in body and "x" * 5000 in body


def test_slack_body_keeps_within_block_limits(store: MonitoringStore, receiver: Receiver) -> None:
    cfg = alerting(routes=[{"name": "slack", "type": "slack", "url": f"{receiver.url}/s"}])
    many = [
        Finding(**{**finding(0, column=f"c{k}").__dict__, "message": "🚨 é " * 200})
        for k in range(40)
    ]
    put(store, 0, *many)
    evaluate_and_store(store, cfg, T, M, d(0))
    assert deliver(store, cfg).sent == {"slack": 40}
    ((_, _, body),) = receiver.requests
    header, section, _ = body["blocks"]
    assert len(header["text"]["text"]) <= 150 and len(section["text"]["text"]) <= 3000
    assert body["text"] == f"[WARNING] {T}/{M}: 40 firing"
    assert "🚨 é" in section["text"]["text"]


def test_a_hanging_webhook_times_out_and_stays_pending(store: MonitoringStore) -> None:
    hang = Silent(hold_seconds=10)
    try:
        route = {"name": "hook", "type": "webhook", "url": hang.url, "timeout_seconds": 0.3}
        cfg = alerting(routes=[route], max_attempts=2, backoff_seconds=0)
        put(store, 0, finding(0))
        evaluate_and_store(store, cfg, T, M, d(0))
        t0 = time.monotonic()
        report = deliver(store, cfg)
        assert time.monotonic() - t0 < 5
    finally:
        hang.close()
    assert report.failed == {"hook": 1} and "timed out" in report.errors["hook"]
    # not retried in the same delivery: the receiver may have processed it (the next delivery
    # re-sends it with the same Idempotency-Key)
    assert hang.hits == 1
    (row,) = store.deliveries().to_dict("records")
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "timed out" in row["last_error"]


class BrokenHTTP:
    """A raw TCP server that reads one HTTP request and answers with fixed (broken) bytes."""

    def __init__(self, answer: bytes) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += self.request.recv(65536)
                self.request.sendall(answer)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok",  # cut short: IncompleteRead
        b"garbage\r\n\r\n",  # not HTTP: BadStatusLine
    ],
    ids=["truncated", "not-http"],
)
def test_a_broken_http_answer_fails_the_route_not_the_run(
    store: MonitoringStore, receiver: Receiver, answer: bytes
) -> None:
    broken = BrokenHTTP(answer)
    try:
        cfg = alerting(
            routes=[
                {"name": "a-broken", "type": "webhook", "url": broken.url},
                {"name": "b-hook", "type": "webhook", "url": f"{receiver.url}/hook"},
            ],
            max_attempts=2,
            backoff_seconds=0,
        )
        put(store, 0, finding(0))
        evaluate_and_store(store, cfg, T, M, d(0))
        report = deliver(store, cfg)
    finally:
        broken.close()
    assert report.failed == {"a-broken": 1} and report.sent == {"b-hook": 1}
    statuses = store.deliveries().set_index("route")["status"].to_dict()
    assert statuses == {"a-broken": "pending", "b-hook": "sent"}


def test_email_and_webhook_routes_share_one_evaluation(
    store: MonitoringStore, receiver: Receiver, smtp: tuple[FlakySMTP, int], tmp_path: Path
) -> None:
    """Escalation and resolution reach a critical-only webhook and an all-severity mailbox."""
    handler, port = smtp
    cfg = alerting(
        routes=[
            {"name": "hook", "type": "webhook", "url": f"{receiver.url}/h", "min_severity": BIG},
            {"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
             "sender": "aiops@localhost", "to": ["oncall@example.com"]},
            {"name": "jsonl", "type": "file", "path": str(tmp_path / "a.jsonl")},
        ],
        repeat_interval_days=30,
        backoff_seconds=0,
    )  # fmt: skip
    for i, sev in enumerate(["warning", BIG, "warning"]):
        put(store, i, finding(i, severity=sev))
    for i in range(6):
        evaluate_and_store(store, cfg, T, M, d(i))
        assert deliver(store, cfg).ok
    kinds = [(a["kind"], a["severity"]) for _, _, b in receiver.requests for a in b["alerts"]]
    assert kinds == [("firing", BIG), ("resolved", BIG)]
    assert [m["Subject"].split("] ", 1)[1] for _, m in handler.messages] == [
        f"[WARNING] {T}/{M}: 1 firing",
        f"[CRITICAL] {T}/{M}: 1 firing",
        f"[RESOLVED] {T}/{M}: 1 resolved",
    ]
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 3
