"""The channels a notification goes out on: log, file, webhook, Slack and email.

A message groups one route's events for a tenant and model; `send` raises `DeliveryError`
(retryable or not, timed out or not) when the receiver did not accept it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiops_pipelines.core.config import (
    Route,
)
from aiops_pipelines.core.findings import Severity

log = logging.getLogger("aiops.alerts")


class DeliveryError(Exception):
    """A route did not accept a message (the delivery stays pending). `retryable=False` for a
    configuration problem that another attempt in the same run cannot fix; `timed_out` when
    the receiver did not answer in time (it may still have processed the message)."""

    def __init__(self, message: str, *, retryable: bool = True, timed_out: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.timed_out = timed_out


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


def _url(route: Route) -> str:
    url = route.url or os.environ.get(route.url_env or "", "")
    if not url:
        raise DeliveryError(
            f"route '{route.name}': environment variable {route.url_env} unset", retryable=False
        )
    return url


def _summary(route: Route, tenant: str, model: str, events: list[dict[str, Any]]) -> str:
    firing = [e for e in events if e["kind"] != "resolved"]
    resolved = [e for e in events if e["kind"] == "resolved"]
    worst = max((Severity(e["severity"]) for e in firing), key=lambda s: s.rank, default=None)
    head = f"[{str(worst).upper()}] " if worst else "[RESOLVED] "
    parts = [f"{len(firing)} firing"] if firing else []
    if resolved:
        parts.append(f"{len(resolved)} resolved")
    return f"{head}{tenant}/{model}: " + ", ".join(parts)


def _lines(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        p = e["payload"]
        col = f" [{p['column']}]" if p.get("column") else ""
        out.append(
            f"- {e['kind'].upper()} {e['severity']} {p['signal']}{col} on {e['partition']} "
            f"(since {p.get('first_seen')}): {p.get('message', '')}"
        )
    return out


def _message_lines(message: dict[str, Any]) -> list[str]:
    """A message's alerts as lines (a held-back summary is its one line)."""
    if not message["alerts"]:
        return [message["summary"]]
    return _lines(
        [
            {"kind": a["kind"], "severity": a["severity"], "partition": a["day"], "payload": a}
            for a in message["alerts"]
        ]
    )


def build_message(
    route: Route, tenant: str, model: str, events: list[dict[str, Any]], message_id: str
) -> dict[str, Any]:
    """The JSON document a webhook route posts (Alertmanager-like: one group, its alerts)."""
    status = "firing" if any(e["kind"] != "resolved" for e in events) else "resolved"
    return {
        "version": "1",
        "message_id": message_id,
        "route": route.name,
        "group_key": f"{tenant}/{model}",
        "status": status,
        "tenant": tenant,
        "model": model,
        "summary": _summary(route, tenant, model, events),
        "alerts": [
            {"event_key": e["event_key"], "kind": e["kind"], **e["payload"]} for e in events
        ],
        "sent_at": datetime.now(UTC).isoformat(),
    }


def build_held_summary(
    route: Route,
    tenant: str,
    held: list[dict[str, Any]],
    message_id: str,
    max_age_days: int,
) -> dict[str, Any]:
    """One line telling a route what was held back for a tenant: notifications too old to
    send (a backfill's), recorded in the store instead. The document has the webhook
    message's keys, `status` "held_back", no `alerts`, and `held` with the counts."""
    kinds: dict[str, int] = {}
    for h in held:
        kinds[str(h["kind"])] = kinds.get(str(h["kind"]), 0) + 1
    days = sorted(str(h["partition"]) for h in held)
    models = sorted({str(h["model"]) for h in held})
    worst = max((Severity(h["severity"]) for h in held), key=lambda x: x.rank)
    parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    summary = (
        f"[HELD BACK] {tenant}: {len(held)} notification(s) about {days[0]} .. {days[-1]} "
        f"({parts}; worst {worst}; {len(models)} model(s)) were recorded, not sent: older than "
        f"{max_age_days} days. See `aiops status --day DAY` for the state on any day."
    )
    return {
        "version": "1",
        "message_id": message_id,
        "route": route.name,
        "group_key": f"{tenant}/held",
        "status": "held_back",
        "tenant": tenant,
        "model": "",
        "summary": summary,
        "alerts": [],
        "held": {
            "count": len(held),
            "kinds": kinds,
            "first_day": days[0],
            "last_day": days[-1],
            "models": models,
            "worst_severity": str(worst),
            "max_event_age_days": max_age_days,
        },
        "sent_at": datetime.now(UTC).isoformat(),
    }


def _post_json(route: Route, body: dict[str, Any], message_id: str, timeout: float) -> None:
    data = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "aiops-pipelines",
        "Idempotency-Key": message_id,
        **route.headers,
    }
    req = urllib.request.Request(_url(route), data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(
            f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}", timed_out=_timed_out(exc)
        ) from None
    except (http.client.HTTPException, ValueError) as exc:  # a broken answer, a bad URL/header
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def _slack_escape(text: str) -> str:
    """Slack's control characters: a message must not become a link or an @channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_body(route: Route, message: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook format: `text` (fallback) plus mrkdwn blocks."""
    lines = _message_lines(message)
    return {
        "text": _slack_escape(message["summary"]),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": message["summary"][:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _fit(lines, 2900)}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"aiops-pipelines · {message['message_id']}"}
                ],
            },
        ],
    }


def _fit(lines: list[str], limit: int) -> str:
    """Escaped lines within `limit` characters, with how many were left out."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        line = _slack_escape(line)[:500]
        more = f"\n… and {len(lines) - i} more"
        if used + len(line) + 1 + len(more) > limit:
            out.append(more.strip())
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def _send_email(route: Route, message: dict[str, Any], timeout: float) -> None:
    msg = EmailMessage()
    msg["Subject"] = f"[aiops] {message['summary']}"
    msg["From"] = route.sender or ""
    msg["To"] = ", ".join(route.to)
    msg["Message-ID"] = f"<{message['message_id']}@aiops-pipelines>"
    lines = _message_lines(message)
    msg.set_content(message["summary"] + "\n\n" + "\n".join(lines) + "\n")
    password = os.environ.get(route.password_env or "") if route.password_env else None
    smtp_cls = smtplib.SMTP_SSL if route.ssl else smtplib.SMTP
    try:
        with smtp_cls(route.smtp_host or "", route.smtp_port, timeout=timeout) as s:
            if route.starttls:
                s.starttls(context=ssl.create_default_context())
            if route.username:
                s.login(route.username, password or "")
            s.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"SMTP {type(exc).__name__}: {exc}", timed_out=_timed_out(exc)
        ) from None


def send(route: Route, message: dict[str, Any], *, timeout: float | None = None) -> None:
    """Deliver one grouped message over the route; raises DeliveryError when refused.
    `timeout` (seconds, default the route's `timeout_seconds`) bounds each network wait."""
    timeout = route.timeout_seconds if timeout is None else timeout
    if route.type == "log":
        level = logging.WARNING if message["status"] == "firing" else logging.INFO
        log.log(
            level,
            "%s\n%s",
            message["summary"],
            "\n".join(
                f"  {a['kind']} {a['severity']} {a['signal']} {a['column']}: {a['message']}"
                for a in message["alerts"]
            ),
        )
    elif route.type == "file":
        path = Path(route.path or "")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(message, sort_keys=True) + "\n")
        except OSError as exc:
            raise DeliveryError(f"file {path}: {exc}") from None
    elif route.type == "webhook":
        _post_json(route, message, message["message_id"], timeout)
    elif route.type == "slack":
        _post_json(route, _slack_body(route, message), message["message_id"], timeout)
    elif route.type == "email":
        _send_email(route, message, timeout)
    else:  # pragma: no cover - the config validates the type
        raise DeliveryError(f"unknown route type {route.type}")
