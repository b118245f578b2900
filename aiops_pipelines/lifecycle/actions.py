"""Model lifecycle actions: canary start, rollback, promotion and manual restore, by registry
aliases (named in `registry`).

Rules every action enforces (they are what makes automation safe to leave running):

* A version tagged `aiops.rolled_back=true` is never promoted, restarted as a canary or
  restored: an automated verdict, once it said "worse", is final unless a human deletes the
  tag in MLflow. Refusals raise `LifecycleError` (`RolledBackError` for this one) and, with a
  store, append a `<action>_refused` entry to the audit trail.
* Every action is idempotent and converges: it compares the registry with the wanted end
  state and only performs the missing steps. A second call is a no-op that says so
  (`LifecycleChange.noop`, `message`); a call that finds an interrupted earlier attempt
  finishes it. MLflow has no transaction across registry calls, so the steps are ordered to
  stop canary traffic first and to leave a state that a re-run completes.
* Audit trail (`MonitoringStore.record_action`): a change appends one `<action>` entry; a dry
  run that would change something appends one `<action>_dry_run` entry per call (each call is
  an observation of what the automation would have done then: that is what shadow mode is
  for); a refusal appends `<action>_refused` per call; a no-op appends nothing, so retries
  and sensors re-evaluating the same state do not pile up rows. The entry is written after
  the registry writes (an entry never claims a change that did not happen); the details hold
  the steps, the aliases before and after, the tags set and the evidence.
* The registry has no lock: the daily canary job and a human at the CLI are expected to be
  the only writers, and the checks run right before the writes.

Sensors, jobs, the CLI and the tests call these functions; MLflow's global URI is never touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from mlflow import MlflowClient

from aiops_pipelines.core.findings import jsonable
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.lifecycle.registry import (
    CANARY,
    DRY_RUN_SUFFIX,
    PREVIOUS_CHAMPION,
    PROMOTE_CANARY,
    REFUSED_SUFFIX,
    RESTORE_PREVIOUS_CHAMPION,
    ROLLBACK_CANARY,
    START_CANARY,
    TAG_CANARY_START,
    TAG_PROMOTED_AT,
    TAG_PROMOTION_EVIDENCE,
    TAG_REPLACED_BY,
    TAG_ROLLBACK_EVIDENCE,
    TAG_ROLLED_BACK,
    TAG_ROLLED_BACK_AT,
    TAG_VALUE_LIMIT,
    LifecycleChange,
    LifecycleError,
    RolledBackError,
    aliases_of,
    client_for,
    is_rolled_back,
    model_version,
    now_text,
)
from aiops_pipelines.lifecycle.training import CHALLENGER, CHAMPION


def _plain(evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    """Evidence as plain JSON data (dates and other objects as strings) for the audit trail."""
    return json.loads(json.dumps(jsonable(dict(evidence or {})), default=str))


def evidence_tag(evidence: Mapping[str, Any], limit: int = TAG_VALUE_LIMIT) -> str:
    """Evidence as a JSON tag value that fits MLflow's limit and still parses as JSON.

    Cutting a JSON text at the limit would leave unparseable text in the registry; an
    oversized payload is stored instead as `{"truncated": true, "chars": n, "head": "..."}`.
    The complete evidence is always in the audit trail.
    """
    text = json.dumps(jsonable(dict(evidence)), sort_keys=True, default=str)
    if len(text) <= limit:
        return text
    head_len = max(0, limit - 100)
    while True:
        wrapped = json.dumps({"truncated": True, "chars": len(text), "head": text[:head_len]})
        if len(wrapped) <= limit or head_len == 0:
            return wrapped
        head_len = max(0, head_len - (len(wrapped) - limit) - 16)


def _day(partition_day: str | date | None, *, name: str) -> str:
    """An ISO day (UTC today by default); anything else would break the analysis window."""
    if partition_day is None:
        return datetime.now(UTC).date().isoformat()
    if isinstance(partition_day, date):
        return partition_day.isoformat()
    try:
        return date.fromisoformat(str(partition_day)).isoformat()
    except ValueError:
        raise LifecycleError(
            f"partition_day {partition_day!r} is not an ISO date (YYYY-MM-DD)", name=name
        ) from None


def _audit_key(name: str, tenant: str | None, model: str | None) -> tuple[str, str]:
    """The (tenant, model) of the audit entry: given, else from a 'tenant.model' registry name."""
    if tenant and model:
        return tenant, model
    t, sep, m = name.partition(".")
    if not sep or not t or not m:
        raise ValueError(
            f"registered model {name!r} is not named 'tenant.model': pass tenant= and model= "
            "for the audit trail"
        )
    return tenant or t, model or m


@dataclass
class _Plan:
    """Registry writes still needed, computed from the current state before any is made."""

    name: str
    version: str | None
    before: dict[str, str]
    after: dict[str, str] = field(default_factory=dict)
    set_alias: list[tuple[str, str]] = field(default_factory=list)
    delete_alias: list[str] = field(default_factory=list)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.after = dict(self.before)

    def alias(self, alias: str, version: str) -> None:
        if self.after.get(alias) != version:
            self.set_alias.append((alias, version))
            self.after[alias] = version

    def unalias(self, alias: str, *, only_if: str | None = None) -> None:
        current = self.after.get(alias)
        if current is not None and (only_if is None or current == only_if):
            self.delete_alias.append(alias)
            del self.after[alias]

    def tag(self, version: str, key: str, value: str) -> None:
        self.tags.setdefault(version, {})[key] = value

    def steps(self) -> tuple[str, ...]:
        return (
            *(f"alias {a} -> v{v}" for a, v in self.set_alias),
            *(f"remove alias {a} (was v{self.before[a]})" for a in self.delete_alias),
            *(f"tag v{v} {k}" for v, kv in self.tags.items() for k in kv),
        )


def _apply(client: MlflowClient, plan: _Plan, order: tuple[str, ...]) -> None:
    """Perform the plan's writes; `order` sequences 'delete', 'alias' and 'tags'."""
    for stage in order:
        if stage == "delete":
            for alias in plan.delete_alias:
                client.delete_registered_model_alias(plan.name, alias)
        elif stage == "alias":
            for alias, version in plan.set_alias:
                client.set_registered_model_alias(plan.name, alias, version)
        elif stage == "tags":
            for version, kv in plan.tags.items():
                for key, value in kv.items():
                    client.set_model_version_tag(plan.name, version, key, value)


def _finish(
    action: str,
    plan: _Plan,
    *,
    client: MlflowClient,
    order: tuple[str, ...],
    dry_run: bool,
    noop_message: str,
    done_message: str,
    store: MonitoringStore | None,
    tenant: str | None,
    model: str | None,
    actor: str,
    partition: str | None,
    details: Mapping[str, Any],
) -> LifecycleChange:
    """Apply (or only describe) the plan, audit it, and say what happened."""
    steps = plan.steps()
    if not steps:
        return LifecycleChange(
            action,
            plan.name,
            plan.version,
            changed=False,
            dry_run=dry_run,
            message=noop_message,
            aliases_before=plan.before,
            aliases_after=plan.before,
        )
    if not dry_run:
        _apply(client, plan, order)
        after = aliases_of(client, plan.name)
    else:
        after = dict(sorted(plan.after.items()))
    audit_id = None
    if store is not None:
        t, m = _audit_key(plan.name, tenant, model)
        audit_id = store.record_action(
            actor,
            action + (DRY_RUN_SUFFIX if dry_run else ""),
            t,
            m,
            partition=partition,
            details={
                "registered_model": plan.name,
                "version": plan.version,
                "dry_run": dry_run,
                "steps": list(steps),
                "aliases_before": plan.before,
                "aliases_after": after,
                "tags": plan.tags,
                **details,
            },
        )
    message = ("dry run, nothing changed; planned: " if dry_run else "") + done_message
    return LifecycleChange(
        action,
        plan.name,
        plan.version,
        changed=not dry_run,
        dry_run=dry_run,
        message=message,
        steps=steps,
        aliases_before=plan.before,
        aliases_after=after,
        tags=plan.tags,
        audit_id=audit_id,
    )


def _refuse(
    error: LifecycleError,
    action: str,
    *,
    store: MonitoringStore | None,
    tenant: str | None,
    model: str | None,
    actor: str,
    partition: str | None,
    details: Mapping[str, Any],
) -> LifecycleError:
    """Record the refusal in the audit trail (an automation asking twice is worth seeing)."""
    if store is not None:
        t, m = _audit_key(error.name, tenant, model)
        store.record_action(
            actor,
            action + REFUSED_SUFFIX,
            t,
            m,
            partition=partition,
            details={
                "registered_model": error.name,
                "version": error.version,
                "reason": error.detail,
                **details,
            },
        )
    return error


def start_canary(
    tracking_uri: str,
    name: str,
    version: str | None = None,
    *,
    store: MonitoringStore | None = None,
    tenant: str | None = None,
    model: str | None = None,
    actor: str = "cli",
    partition_day: str | date | None = None,
) -> LifecycleChange:
    """Put the `canary` alias on `version` (default: the `challenger`) from `partition_day`.

    The version is tagged `aiops.canary_start` = the day (default: today, UTC): the canary
    analysis counts traffic from there. Refused (LifecycleError) for a version tagged rolled
    back, for the current champion, and while another version is the canary (one canary at a
    time: two would share the canary traffic and neither verdict would mean anything; roll it
    back or promote it first). The same version already canary is a no-op that keeps its
    original start day (moving it would silently change the analysis window); a missing start
    tag is healed. The `challenger` alias stays until the canary is promoted or rolled back.
    """
    if store is not None:  # fail before any registry write, not after it when auditing
        _audit_key(name, tenant, model)
    client = client_for(tracking_uri)
    day = _day(partition_day, name=name)
    refuse: dict[str, Any] = {
        "store": store,
        "tenant": tenant,
        "model": model,
        "actor": actor,
        "partition": day,
        "details": {"canary_start": day},
    }
    before = aliases_of(client, name)
    if version is None:
        if CHALLENGER not in before:
            raise _refuse(
                LifecycleError(
                    "no version given and no `challenger` alias to start as canary", name=name
                ),
                START_CANARY,
                **refuse,
            )
        version = before[CHALLENGER]
    version = str(version)
    mv = model_version(client, name, version)
    if is_rolled_back(mv):
        raise _refuse(
            RolledBackError(
                "is tagged rolled back and cannot be a canary again "
                f"(rolled back at {mv.tags.get(TAG_ROLLED_BACK_AT, '?')}; delete the "
                f"`{TAG_ROLLED_BACK}` tag in MLflow to override)",
                name=name,
                version=version,
            ),
            START_CANARY,
            **refuse,
        )
    if before.get(CHAMPION) == version:
        raise _refuse(
            LifecycleError(
                "is the champion: a canary must be a different version", name=name, version=version
            ),
            START_CANARY,
            **refuse,
        )
    live = before.get(CANARY)
    if live is not None and live != version:
        raise _refuse(
            LifecycleError(
                f"version {live} is the live canary: roll it back or promote it first",
                name=name,
                version=version,
            ),
            START_CANARY,
            **refuse,
        )

    plan = _Plan(name, version, before)
    start = (mv.tags or {}).get(TAG_CANARY_START)
    if live != version:
        # a fresh canary starts today even if an earlier, interrupted call left a start tag
        if start != day:
            plan.tag(version, TAG_CANARY_START, day)
        plan.alias(CANARY, version)
    elif not start:
        plan.tag(version, TAG_CANARY_START, day)  # heal a canary alias without its start day
    since = plan.tags.get(version, {}).get(TAG_CANARY_START, start)
    return _finish(
        START_CANARY,
        plan,
        client=client,
        # tag first: the analysis must never see a canary alias without its start day
        order=("tags", "alias"),
        dry_run=False,
        noop_message=f"v{version} is already the canary (since {start})",
        done_message=f"v{version} is the canary from {since}",
        store=store,
        tenant=tenant,
        model=model,
        actor=actor,
        partition=day,
        details={"canary_start": since, "champion_version": before.get(CHAMPION)},
    )


def rollback_canary(
    tracking_uri: str,
    name: str,
    version: str,
    evidence: Mapping[str, Any],
    *,
    store: MonitoringStore | None = None,
    tenant: str | None = None,
    model: str | None = None,
    actor: str = "rollback_canary",
    dry_run: bool = False,
    partition_day: str | date | None = None,
) -> LifecycleChange:
    """Stop the canary `version` and mark it bad for good.

    The `canary` alias is removed only if it still points at `version` (a verdict about an
    old canary must not stop a newer one); the version is tagged `aiops.rolled_back=true`,
    `aiops.rolled_back_at` and `aiops.rollback_evidence` (JSON, truncated to MLflow's tag
    limit; the audit entry keeps it whole) whether or not it was still the canary, so it can
    never be promoted later. A `challenger` alias on it is removed too, so nothing offers it
    again. The alias goes first: stopping bad traffic matters more than the tags, and a re-run
    adds whatever an interruption left out. Already rolled back and not canary: a no-op (the
    first rollback's time and evidence are kept). Refused for the champion (that is
    `restore_previous_champion`). `partition_day` is the audit entry's partition (the
    analysis day), optional.
    """
    if store is not None:  # fail before any registry write, not after it when auditing
        _audit_key(name, tenant, model)
    client = client_for(tracking_uri)
    version = str(version)
    day = None if partition_day is None else _day(partition_day, name=name)
    before = aliases_of(client, name)
    mv = model_version(client, name, version)
    if before.get(CHAMPION) == version:
        raise _refuse(
            LifecycleError(
                "is the champion, not a canary: use restore_previous_champion to roll back "
                "a champion",
                name=name,
                version=version,
            ),
            ROLLBACK_CANARY,
            store=store,
            tenant=tenant,
            model=model,
            actor=actor,
            partition=day,
            details={"dry_run": dry_run, "evidence": _plain(evidence)},
        )
    plan = _Plan(name, version, before)
    plan.unalias(CANARY, only_if=version)
    plan.unalias(CHALLENGER, only_if=version)
    if not is_rolled_back(mv):
        plan.tag(version, TAG_ROLLED_BACK, "true")
        plan.tag(version, TAG_ROLLED_BACK_AT, now_text())
        plan.tag(version, TAG_ROLLBACK_EVIDENCE, evidence_tag(evidence))
    was_canary = before.get(CANARY) == version
    return _finish(
        ROLLBACK_CANARY,
        plan,
        client=client,
        order=("delete", "tags"),
        dry_run=dry_run,
        noop_message=f"v{version} is already rolled back and not the canary",
        done_message=(
            f"canary v{version} rolled back"
            if was_canary
            else f"v{version} marked rolled back (it was not the canary"
            + (f"; v{before[CANARY]} is" if CANARY in before else "")
            + ")"
        ),
        store=store,
        tenant=tenant,
        model=model,
        actor=actor,
        partition=day,
        details={"was_canary": was_canary, "evidence": _plain(evidence)},
    )


def promote_canary(
    tracking_uri: str,
    name: str,
    version: str,
    evidence: Mapping[str, Any],
    *,
    store: MonitoringStore | None = None,
    tenant: str | None = None,
    model: str | None = None,
    actor: str = "promote_canary",
    dry_run: bool = False,
    partition_day: str | date | None = None,
) -> LifecycleChange:
    """Make the canary `version` the champion, keeping the replaced one as `previous_champion`.

    The replaced champion gets the `previous_champion` alias and the tag `aiops.replaced_by`;
    the new champion gets `aiops.promoted_at` and `aiops.promotion_evidence`; the `canary`
    (and a `challenger`) alias on it is removed. A version tagged rolled back is NEVER
    promoted: RolledBackError, with a `promote_canary_refused` audit entry (also in a dry
    run). Only the live canary can be promoted (an evidence-backed verdict is about the
    canary; a human promotes a challenger by starting it as canary first). Already champion:
    a no-op, except that an interrupted promotion (canary alias still on the new champion)
    is finished.
    """
    if store is not None:  # fail before any registry write, not after it when auditing
        _audit_key(name, tenant, model)
    client = client_for(tracking_uri)
    version = str(version)
    day = None if partition_day is None else _day(partition_day, name=name)
    refuse: dict[str, Any] = {
        "store": store,
        "tenant": tenant,
        "model": model,
        "actor": actor,
        "partition": day,
        "details": {"dry_run": dry_run, "evidence": evidence},
    }
    before = aliases_of(client, name)
    mv = model_version(client, name, version)
    if is_rolled_back(mv):
        raise _refuse(
            RolledBackError(
                "is tagged rolled back and is never promoted "
                f"(rolled back at {mv.tags.get(TAG_ROLLED_BACK_AT, '?')})",
                name=name,
                version=version,
            ),
            PROMOTE_CANARY,
            **refuse,
        )
    champion = before.get(CHAMPION)
    if champion != version and before.get(CANARY) != version:
        live = before.get(CANARY)
        raise _refuse(
            LifecycleError(
                "is not the canary ("
                + (f"v{live} is" if live else "there is no canary")
                + "): start it as canary before promoting it",
                name=name,
                version=version,
            ),
            PROMOTE_CANARY,
            **refuse,
        )

    plan = _Plan(name, version, before)
    promoted = {TAG_PROMOTED_AT: now_text(), TAG_PROMOTION_EVIDENCE: evidence_tag(evidence)}
    if champion != version:
        if champion is not None:
            plan.tag(champion, TAG_REPLACED_BY, version)
            plan.alias(PREVIOUS_CHAMPION, champion)
        plan.alias(CHAMPION, version)
        for key, value in promoted.items():
            plan.tag(version, key, value)
    elif before.get(CANARY) == version and TAG_PROMOTED_AT not in (mv.tags or {}):
        for key, value in promoted.items():  # finish a promotion interrupted before its tags
            plan.tag(version, key, value)
    plan.unalias(CANARY, only_if=version)
    plan.unalias(CHALLENGER, only_if=version)
    return _finish(
        PROMOTE_CANARY,
        plan,
        client=client,
        # previous_champion before champion: a crash in between still leaves a way back;
        # the canary alias last, so the version keeps serving canary traffic until it is champion
        order=("alias", "tags", "delete"),
        dry_run=dry_run,
        noop_message=f"v{version} is already the champion",
        done_message=f"v{version} promoted to champion"
        + (f" (v{champion} is previous_champion)" if champion and champion != version else ""),
        store=store,
        tenant=tenant,
        model=model,
        actor=actor,
        partition=day,
        details={
            "replaced_version": champion if champion != version else None,
            "evidence": _plain(evidence),
        },
    )


def restore_previous_champion(
    tracking_uri: str,
    name: str,
    *,
    store: MonitoringStore | None = None,
    tenant: str | None = None,
    model: str | None = None,
    actor: str = "cli",
    evidence: Mapping[str, Any] | None = None,
) -> LifecycleChange:
    """The manual rollback: `champion` <- the `previous_champion` version, no re-analysis.

    The demoted champion is tagged rolled back (with `aiops.replaced_by` and the optional
    `evidence`, e.g. {"reason": "..."}): a human undid its promotion, so no automation may
    promote it again. `previous_champion` keeps pointing at the restored version, so a second
    call is a no-op (and there is no "restore the restore": promoting again goes through a
    canary). A live canary is left alone. Refused without a `previous_champion`, or when that
    version is itself tagged rolled back.
    """
    if store is not None:  # fail before any registry write, not after it when auditing
        _audit_key(name, tenant, model)
    client = client_for(tracking_uri)
    refuse: dict[str, Any] = {
        "store": store,
        "tenant": tenant,
        "model": model,
        "actor": actor,
        "partition": None,
        "details": {"evidence": _plain(evidence)},
    }
    before = aliases_of(client, name)
    previous = before.get(PREVIOUS_CHAMPION)
    if previous is None:
        raise _refuse(
            LifecycleError("has no `previous_champion` to restore", name=name),
            RESTORE_PREVIOUS_CHAMPION,
            **refuse,
        )
    mv = model_version(client, name, previous)
    champion = before.get(CHAMPION)
    if champion == previous:
        plan = _Plan(name, previous, before)
    else:
        if is_rolled_back(mv):
            raise _refuse(
                RolledBackError(
                    "is the previous champion but tagged rolled back: refusing to restore it",
                    name=name,
                    version=previous,
                ),
                RESTORE_PREVIOUS_CHAMPION,
                **refuse,
            )
        plan = _Plan(name, previous, before)
        if champion is not None:
            demoted = model_version(client, name, champion)
            plan.tag(champion, TAG_REPLACED_BY, previous)
            if not is_rolled_back(demoted):
                plan.tag(champion, TAG_ROLLED_BACK, "true")
                plan.tag(champion, TAG_ROLLED_BACK_AT, now_text())
                plan.tag(
                    champion,
                    TAG_ROLLBACK_EVIDENCE,
                    evidence_tag(
                        {
                            "action": RESTORE_PREVIOUS_CHAMPION,
                            "actor": actor,
                            "restored_version": previous,
                            **dict(evidence or {}),
                        }
                    ),
                )
        plan.alias(CHAMPION, previous)
    return _finish(
        RESTORE_PREVIOUS_CHAMPION,
        plan,
        client=client,
        order=("alias", "tags"),  # serve the good version first
        dry_run=False,
        noop_message=f"v{previous} (previous_champion) is already the champion",
        done_message=f"restored v{previous} as champion"
        + (f" (v{champion} demoted and tagged rolled back)" if champion else ""),
        store=store,
        tenant=tenant,
        model=model,
        actor=actor,
        partition=None,
        details={"demoted_version": champion, "evidence": _plain(evidence)},
    )
