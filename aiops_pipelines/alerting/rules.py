"""Alert rules over findings: the state machine that turns facts into alerts.

Findings are facts about one day; alerts are what a person is told. Every finding has a
fingerprint (tenant, model, signal, column): "the same problem" across days. For each
fingerprint, `evaluate` replays the days of the look-back horizon up to the evaluated day:

- **pending → firing** after `persistence_days` consecutive days with a finding at or above the
  rule's `min_severity` (Prometheus' ``for:``). A pending alert whose finding goes away is
  dropped without a word.
- **keep firing / hysteresis**: a firing alert stays firing through `keep_firing_days` days
  without a finding, and resolves on the next one. Label-based signals (performance decay,
  residual anomalies) keep firing for `LABEL_SIGNAL_KEEP_FIRING_DAYS` by default: a day without
  a finding may just be a day whose labels are not in yet.
- **repeat**: a firing alert is notified when it fires, again when its severity rises, and every
  `repeat_interval_days` while it keeps firing; a resolved notification follows a notified one.
- **inhibition**: a firing critical alert mutes warning alerts of the same tenant, model and
  signal (another column); `inhibit` rules in the config add pairs of signals.
- **silences** from the config mute matching alerts between two days; an alert that is still
  firing when its silence ends is notified then. A silence set from the console mutes one alert
  while it is in force (wall-clock time): every evaluation made meanwhile sends nothing for it.
- **acknowledged**: an episode acknowledged from the console gets no repeat notifications (an
  escalation and the resolution still go out); a new episode is not acknowledged.
- **held back**: an event more than `max_event_age_days` before "now" (a backfill of last
  year) is recorded with its deliveries held, not sent; `outbox.deliver` later sends each
  route one summary line about them, when one is requested.

The replay is a pure function of the stored findings (and the events already notified), so
evaluating a day twice gives the same state and no second notification: events are stored
under a unique key, and each event gets one delivery row per matching route (the outbox).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import (
    LABEL_SIGNAL_KEEP_FIRING_DAYS,
    AlertingConfig,
    Route,
    Silence,
)
from aiops_pipelines.core.findings import Severity, Signal, jsonable
from aiops_pipelines.io.schema import ALERT_COLUMNS
from aiops_pipelines.io.store import MonitoringStore

#: Signals whose findings arrive with the labels, days after the partition.
LABEL_SIGNALS = frozenset({Signal.PERFORMANCE_DECAY.value, Signal.RESIDUAL_ANOMALY.value})


@dataclass(frozen=True)
class Rule:
    persistence_days: int
    keep_firing_days: int
    repeat_interval_days: int
    min_rank: int


def rule_for(cfg: AlertingConfig, signal: str) -> Rule:
    """The alert rule of a signal: the config's defaults with the signal's overrides."""
    o = cfg.signals.get(signal)
    keep = cfg.keep_firing_days
    if signal in LABEL_SIGNALS:
        keep = max(keep, LABEL_SIGNAL_KEEP_FIRING_DAYS)
    return Rule(
        persistence_days=(o and o.persistence_days) or cfg.persistence_days,
        keep_firing_days=keep if o is None or o.keep_firing_days is None else o.keep_firing_days,
        repeat_interval_days=(o and o.repeat_interval_days) or cfg.repeat_interval_days,
        min_rank=Severity((o and o.min_severity) or cfg.min_severity).rank,
    )


def _day(s: str) -> date:
    return date.fromisoformat(s)


def _days(start: str, end: str) -> list[str]:
    a, b = _day(start), _day(end)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def silence_for(
    silences: Sequence[Silence], tenant: str, model: str, signal: str, column: str, day: str
) -> Silence | None:
    """The first silence covering this alert on this day, if any."""
    for s in silences:
        if not (s.starts <= day <= s.ends):
            continue
        pairs = ((s.tenant, tenant), (s.model, model), (s.signal, signal), (s.column, column))
        if all(fnmatch.fnmatchcase(v, pat) for pat, v in pairs):
            return s
    return None


@dataclass
class AlertState:
    """One alert (fingerprint) as of the evaluated day."""

    fingerprint: str
    tenant: str
    model: str
    signal: str
    column: str
    rule: Rule
    state: str = "inactive"  # inactive | pending | firing | resolved
    severity: str = "warning"
    first_seen: str = ""
    last_seen: str = ""
    fired_on: str | None = None
    resolved_on: str | None = None
    silenced: bool = False
    inhibited: bool = False
    acknowledged: bool = False
    streak: int = 0
    quiet: int = 0
    message: str = ""
    value: float | None = None
    threshold: float | None = None
    notified: int = 0
    last_notified_day: str | None = None
    last_notified_rank: int = -1
    emitted: bool = False  # a notification of this episode was sent (not held back)
    resume_after: str = ""  # a carried-over episode's state holds until after this day
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rank(self) -> int:
        return Severity(self.severity).rank

    def row(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "tenant": self.tenant,
            "model": self.model,
            "signal": self.signal,
            "column": self.column,
            "severity": self.severity,
            "state": self.state,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "fired_on": self.fired_on,
            "resolved_on": self.resolved_on,
            "silenced": self.silenced,
            "inhibited": self.inhibited,
            "notified": self.notified,
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
        }


@dataclass
class Evaluation:
    day: str
    alerts: list[AlertState]
    events: list[dict[str, Any]]

    @property
    def firing(self) -> list[AlertState]:
        return [a for a in self.alerts if a.state == "firing"]


def _observations(findings: pd.DataFrame, cfg: AlertingConfig) -> dict[str, dict[str, dict]]:
    """fingerprint -> day -> the most severe finding of that day at/above the rule's floor."""
    out: dict[str, dict[str, dict]] = {}
    if findings.empty:
        return out
    for rec in findings.to_dict("records"):
        rule = rule_for(cfg, rec["signal"])
        if Severity(rec["severity"]).rank < rule.min_rank:
            continue
        days = out.setdefault(rec["fingerprint"], {})
        have = days.get(rec["partition"])
        if have is None or Severity(rec["severity"]).rank > Severity(have["severity"]).rank:
            days[rec["partition"]] = rec
    return out


def _event(
    a: AlertState, kind: str, day: str, episode_start: str, *, held: bool = False
) -> dict[str, Any]:
    payload = {
        "fingerprint": a.fingerprint,
        "tenant": a.tenant,
        "model": a.model,
        "signal": a.signal,
        "column": a.column,
        "kind": kind,
        "severity": a.severity,
        "day": day,
        "first_seen": a.first_seen,
        "last_seen": a.last_seen,
        "fired_on": a.fired_on,
        "resolved_on": a.resolved_on if kind == "resolved" else None,
        "message": a.message,
        "value": a.value,
        "threshold": a.threshold,
    }
    if held:
        payload["held_back"] = True
    return {
        "held": held,
        "event_key": f"{a.fingerprint}:{episode_start}:{kind}:{day}",
        "fingerprint": a.fingerprint,
        "tenant": a.tenant,
        "model": a.model,
        "signal": a.signal,
        "column": a.column,
        "kind": kind,
        "severity": a.severity,
        "partition": day,
        "episode_start": episode_start,
        "payload": jsonable(payload),
    }


def evaluate(
    findings: pd.DataFrame,
    cfg: AlertingConfig,
    *,
    day: str,
    notified: pd.DataFrame | None = None,
    today: str | None = None,
    silenced: Iterable[str] = (),
    acknowledged: Iterable[tuple[str, str]] = (),
) -> Evaluation:
    """Replay the alert rules over one model's findings up to `day` (inclusive).

    Events more than `max_event_age_days` before `today` (the clock's day; default `day`)
    are returned with `held=True`: stored, but not sent (a backfill of last year records what
    fired without paging anyone about last year). A resolution is held too when nobody was
    sent the episode's firing.

    `findings` are the model's stored findings (any partitions; later ones are ignored);
    `notified` the alert events already stored for the model: an episode that was notified is
    not notified again when a re-run moves its first day (late labels) or the day is evaluated
    twice. `silenced`: fingerprints muted now (the console's silences in force);
    `acknowledged`: (fingerprint, episode start) of acknowledged episodes, not repeated.
    Returns every alert's state as of `day` and the events due up to `day`.
    """
    muted, acked = set(silenced), set(acknowledged)
    start = (_day(day) - timedelta(days=cfg.horizon_days - 1)).isoformat()
    if not findings.empty:
        findings = findings[(findings["partition"] >= start) & (findings["partition"] <= day)]
    obs = _observations(findings, cfg)
    # episodes notified before the horizon and not resolved go on from their stored state
    alerts = _carried_over(notified, cfg, start=start, day=day, observed=set(obs))
    for fp in alerts:
        obs.setdefault(fp, {})
    if not obs:
        return Evaluation(day, [], [])
    first = min([start] if alerts else [min(days) for days in obs.values()])
    for fp, days in obs.items():
        if fp in alerts:
            continue
        rec = next(iter(days.values()))
        alerts[fp] = AlertState(
            fingerprint=fp,
            tenant=rec["tenant"],
            model=rec["model"],
            signal=rec["signal"],
            column=rec["column"],
            rule=rule_for(cfg, rec["signal"]),
        )
    sent = _sent_by_fingerprint(notified)
    inhibit_pairs = {(r.source, r.target): Severity(r.source_severity).rank for r in cfg.inhibit}
    now = max(day, today) if today else day
    min_event_day = (_day(now) - timedelta(days=cfg.max_event_age_days)).isoformat()
    events: list[dict[str, Any]] = []

    for d in _days(first, day):
        for fp, a in alerts.items():
            if d > a.resume_after:
                _step(a, obs[fp].get(d), d)
        for a in alerts.values():
            if a.state == "resolved" and a.resolved_on == d:
                _notify_resolved(a, d, sent.get(a.fingerprint), events, min_event_day)
        firing = [a for a in alerts.values() if a.state == "firing"]
        for a in alerts.values():
            if a.state != "firing":
                continue
            a.inhibited = any(
                b is not a
                and b.tenant == a.tenant
                and b.model == a.model
                and (
                    (b.signal == a.signal and b.rank == 2 and a.rank < 2)
                    or b.rank >= inhibit_pairs.get((b.signal, a.signal), 99)
                )
                for b in firing
            )
            a.silenced = a.fingerprint in muted or (
                silence_for(cfg.silences, a.tenant, a.model, a.signal, a.column, d) is not None
            )
            a.acknowledged = (a.fingerprint, a.first_seen) in acked
            _notify(a, d, sent.get(a.fingerprint), events, min_event_day)

    states = [a for a in alerts.values() if a.state in ("pending", "firing", "resolved")]
    return Evaluation(day, states, events)


def _carried_over(
    notified: pd.DataFrame | None,
    cfg: AlertingConfig,
    *,
    start: str,
    day: str,
    observed: set[str] | frozenset[str] = frozenset(),
) -> dict[str, AlertState]:
    """Alerts whose notified episode was not resolved by `day` and that the horizon's
    findings cannot rebuild: it began before the horizon, or its findings are gone (`observed`
    are the fingerprints with findings; a re-run that fixed a failed day removes its finding).

    The replay only sees the horizon's findings; without this an episode longer than the
    horizon would start afresh (and be notified again), and one whose last finding left the
    horizon or was removed would vanish without its resolution. A vanished episode resumes
    after its last day seen (`resume_after`): quiet from then on, it resolves by keep-firing.
    """
    out: dict[str, AlertState] = {}
    if notified is None or notified.empty:
        return out
    past = notified[notified["partition"] <= day].sort_values(["partition", "id"])
    for fp, group in past.groupby("fingerprint", sort=False):
        last = group.iloc[-1]
        vanished = last["episode_start"] >= start and fp not in observed
        if last["kind"] == "resolved" or (last["episode_start"] >= start and not vanished):
            continue
        episode = group[group["episode_start"] == last["episode_start"]]
        payload = last["payload"] if isinstance(last["payload"], dict) else {}
        last_seen = str(payload.get("last_seen") or last["partition"])
        rule = rule_for(cfg, str(last["signal"]))
        quiet = 0 if vanished else max(0, (_day(start) - _day(last_seen)).days - 1)
        out[str(fp)] = AlertState(
            fingerprint=str(fp),
            tenant=str(last["tenant"]),
            model=str(last["model"]),
            signal=str(last["signal"]),
            column=str(last["column"]),
            rule=rule,
            state="firing",
            severity=str(last["severity"]),
            first_seen=str(last["episode_start"]),
            last_seen=last_seen,
            fired_on=str(payload.get("fired_on") or episode["partition"].iloc[0]),
            streak=0 if quiet else rule.persistence_days,
            quiet=quiet,
            message=str(payload.get("message") or ""),
            value=_num(payload.get("value")),
            threshold=_num(payload.get("threshold")),
            notified=len(episode),
            last_notified_day=str(last["partition"]),
            last_notified_rank=max(Severity(x).rank for x in episode["severity"]),
            emitted=not all(isinstance(p, dict) and p.get("held_back") for p in episode["payload"]),
            resume_after=last_seen if vanished else "",
        )
    return out


Sent = list[tuple[str, str, str, bool]]
"""(day, kind, severity, held) of a fingerprint's stored events, oldest first."""


def _sent_by_fingerprint(notified: pd.DataFrame | None) -> dict[str, Sent]:
    """fingerprint -> its stored events (`Sent`)."""
    out: dict[str, Sent] = {}
    if notified is None or notified.empty:
        return out
    for rec in notified.sort_values("partition").to_dict("records"):
        payload = rec.get("payload")
        held = bool(isinstance(payload, dict) and payload.get("held_back"))
        out.setdefault(rec["fingerprint"], []).append(
            (rec["partition"], rec["kind"], rec["severity"], held)
        )
    return out


def _step(a: AlertState, finding: Mapping[str, Any] | None, d: str) -> None:
    """Advance one alert by one day."""
    rule = a.rule
    if finding is not None:
        a.streak += 1
        a.quiet = 0
        a.last_seen = d
        a.severity = str(finding["severity"])
        value = _num(finding.get("value"))
        # a day that only carries the state forward (a decay on a day without labels yet has
        # no value) keeps the last measured message
        if value is not None or not a.message:
            a.message = str(finding["message"])
            a.value = value
            a.threshold = _num(finding.get("threshold"))
    else:
        a.streak = 0
        a.quiet += 1
    if a.state in ("inactive", "resolved", "pending"):
        if finding is None:
            if a.state == "pending":
                a.state = "inactive"
            return
        if a.state != "pending":
            a.state = "pending"
            a.first_seen = d
            a.fired_on = a.resolved_on = None
            a.notified, a.last_notified_day, a.last_notified_rank = 0, None, -1
            a.emitted = False
        if a.streak >= rule.persistence_days:
            a.state = "firing"
            a.fired_on = d
        return
    # firing
    if finding is None and a.quiet > rule.keep_firing_days:
        a.state = "resolved"
        a.resolved_on = d
        a.silenced = a.inhibited = False


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v == v and abs(v) != float("inf") else None


def _episode_history(a: AlertState, sent: Sent | None) -> Sent:
    if not sent:
        return []
    end = a.resolved_on or "9999-12-31"
    return [s for s in sent if a.first_seen <= s[0] <= end]


def _notify(
    a: AlertState,
    d: str,
    sent: Sent | None,
    events: list[dict[str, Any]],
    min_event_day: str,
) -> None:
    """Emit a firing/repeat event for a firing alert on day `d` when one is due."""
    history = [s for s in _episode_history(a, sent) if s[1] != "resolved"]
    stored_upto = [s for s in history if s[0] <= d]
    if stored_upto:  # what was already notified (or held) in this episode counts as notified
        last = stored_upto[-1]
        a.emitted = a.emitted or any(not s[3] for s in stored_upto)
        a.notified = max(a.notified, len(stored_upto))
        if a.last_notified_day is None or last[0] >= a.last_notified_day:
            a.last_notified_day = last[0]
            a.last_notified_rank = max(a.last_notified_rank, Severity(last[2]).rank)
    if any(s[0] > d for s in history):
        return  # a later day of this episode was already notified: never re-notify the past
    if a.silenced or a.inhibited:
        return
    if a.last_notified_day is None:
        kind = "firing"
    elif a.rank > a.last_notified_rank:
        kind = "firing"  # escalated
    elif a.acknowledged:
        return  # someone is on it: no repeats of this episode
    elif (_day(d) - _day(a.last_notified_day)).days >= a.rule.repeat_interval_days:
        kind = "repeat"
    else:
        return
    if a.last_notified_day == d:
        return
    a.notified += 1
    a.last_notified_day = d
    a.last_notified_rank = max(a.last_notified_rank, a.rank) if kind == "repeat" else a.rank
    held = d < min_event_day
    a.emitted = a.emitted or not held
    events.append(_event(a, kind, d, a.first_seen, held=held))


def _notify_resolved(
    a: AlertState,
    d: str,
    sent: Sent | None,
    events: list[dict[str, Any]],
    min_event_day: str,
) -> None:
    history = _episode_history(a, sent)
    if not a.notified and not history:
        return  # never notified (silenced, inhibited, or resolved while pending)
    # sent only when someone was sent the firing, and not too old itself
    told = a.emitted or any(not s[3] for s in history if s[1] != "resolved")
    held = d < min_event_day or not told
    # the resolution goes wherever the worst notification of the episode went
    rank = max([a.last_notified_rank, *(Severity(s[2]).rank for s in history)])
    ev = _event(a, "resolved", d, a.first_seen, held=held)
    ev["severity"] = ev["payload"]["severity"] = [s.value for s in Severity][max(rank, 0)]
    events.append(ev)


def route_matches(route: Route, event: Mapping[str, Any]) -> bool:
    """Does `route` take this event (tenant, model, signal globs and minimum severity)?"""

    def any_glob(patterns: Iterable[str], value: str) -> bool:
        return any(fnmatch.fnmatchcase(value, p) for p in patterns)

    return (
        any_glob(route.tenants, event["tenant"])
        and any_glob(route.models, event["model"])
        and any_glob(route.signals, event["signal"])
        and Severity(event["severity"]).rank >= Severity(route.min_severity).rank
        and (route.send_resolved or event["kind"] != "resolved")
    )


def evaluate_and_store(
    store: MonitoringStore,
    cfg: AlertingConfig,
    tenant: str,
    model: str,
    day: str,
    *,
    today: str | None = None,
    now: datetime | None = None,
) -> Evaluation:
    """Evaluate one model's alerts as of `day`, store their states and the new events with
    one delivery per matching route: pending, or held for an event too old relative to
    `today` (see `evaluate`). The console's silences in force at `now` (default the wall
    clock) and its acknowledged episodes are honoured. Idempotent: a second call stores
    nothing new."""
    start = (_day(day) - timedelta(days=cfg.horizon_days - 1)).isoformat()
    findings = store.findings(tenant, model, start=start, end=day)
    notified = store.alert_events(tenant, model)
    result = evaluate(
        findings,
        cfg,
        day=day,
        notified=notified,
        today=today,
        silenced=[s.fingerprint for s in store.active_silences(tenant, model, now)],
        acknowledged=store.acknowledged_episodes(tenant, model),
    )
    store.save_alert_states(tenant, model, day, [a.row() for a in result.alerts])

    def routes_for(ev: Mapping[str, Any]) -> list[str]:
        return [r.name for r in cfg.routes if route_matches(r, ev)]

    store.add_alert_events(result.events, routes_for)
    return result


def alerts_as_of(
    store: MonitoringStore,
    cfg: AlertingConfig,
    day: str,
    *,
    tenant: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Every model's alert states as they were on `day` (the store's `alerts()` columns):
    the rules replayed over the findings up to `day` and the events notified by then.

    The stored states are those of the latest day evaluated; after a backfill, `aiops status
    --day D` must show D's, not today's. (Findings re-judged later with more labels are
    read as they are stored now.)
    """
    start = (_day(day) - timedelta(days=cfg.horizon_days - 1)).isoformat()
    rows: list[dict[str, Any]] = []
    for t, m in store.models():
        if (tenant is not None and t != tenant) or (model is not None and m != model):
            continue
        findings = store.findings(t, m, start=start, end=day)
        events = store.alert_events(t, m)
        events = events[events["partition"] <= day]
        result = evaluate(findings, cfg, day=day, notified=events, today=day)
        rows += [{**a.row(), "as_of": day, "updated_at": None} for a in result.alerts]
    frame = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    for name in ("value", "threshold"):
        frame[name] = frame[name].astype("float64")
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    rank = [-Severity(s).rank for s in frame["severity"]]
    order = frame.assign(_rank=rank).sort_values(
        ["_rank", "tenant", "model", "signal", "column"], kind="stable"
    )
    return order.drop(columns="_rank").reset_index(drop=True)
