"""The registry's vocabulary and what it says now: aliases, lifecycle tags, the live canary.

A model version moves only through MLflow registry aliases (stages are deprecated since MLflow
2.9), so serving code resolves `models:/<name>@champion` / `@canary` and a flip is instant:

* `challenger`: set by retraining (`training.retrain`) on a candidate that beat the champion.
* `canary`: the version serving a share of the traffic while the canary analysis judges it;
  its version carries `aiops.canary_start` (the first day of canary traffic) so the analysis
  knows where its data begins.
* `champion`: the version serving the rest of the traffic.
* `previous_champion`: the champion a promotion replaced, kept for a fast, analysis-free manual
  rollback (`actions.restore_previous_champion`).

The actions that move the aliases are in `actions`. Every registry call goes through an
`MlflowClient` built from the given URI; MLflow's global URI is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from aiops_pipelines.core.errors import AiopsError
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import (
    down_reason,
    is_unavailable,
    mark_down,
    prepare_tracking_store,
)
from aiops_pipelines.lifecycle.training import CHALLENGER, CHAMPION

try:  # the registry's own limit on a version tag's value (100 000 characters in MLflow 3)
    from mlflow.utils.validation import MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH as _MLFLOW_TAG_LIMIT
except ImportError:  # pragma: no cover - older/newer MLflow without the constant
    _MLFLOW_TAG_LIMIT = 5000


CANARY = "canary"


PREVIOUS_CHAMPION = "previous_champion"


LIFECYCLE_ALIASES = (CHAMPION, CANARY, CHALLENGER, PREVIOUS_CHAMPION)


#: First day (ISO date, UTC) of the version's canary traffic: where the canary analysis starts.
TAG_CANARY_START = "aiops.canary_start"


#: "true" on a version an automated or manual rollback judged bad: never promoted again.
TAG_ROLLED_BACK = "aiops.rolled_back"


TAG_ROLLED_BACK_AT = "aiops.rolled_back_at"


TAG_ROLLBACK_EVIDENCE = "aiops.rollback_evidence"


TAG_PROMOTED_AT = "aiops.promoted_at"


TAG_PROMOTION_EVIDENCE = "aiops.promotion_evidence"


#: On a champion that lost the alias: the version that took it.
TAG_REPLACED_BY = "aiops.replaced_by"


#: Evidence JSON longer than this is stored as a (valid JSON) truncated wrapper.
TAG_VALUE_LIMIT = int(_MLFLOW_TAG_LIMIT)


START_CANARY = "start_canary"


ROLLBACK_CANARY = "rollback_canary"


PROMOTE_CANARY = "promote_canary"


RESTORE_PREVIOUS_CHAMPION = "restore_previous_champion"


DRY_RUN_SUFFIX = "_dry_run"


REFUSED_SUFFIX = "_refused"


class LifecycleError(AiopsError):
    """A lifecycle action was refused or cannot run; the message says why and what to do."""

    def __init__(self, message: str, *, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        self.detail = message
        where = f"{name} v{version}" if version is not None else name
        super().__init__(f"[{where}] {message}")


class RolledBackError(LifecycleError):
    """The version is tagged rolled back: it must never serve again without a human decision."""


@dataclass(frozen=True)
class LifecycleChange:
    """What one lifecycle call did (or, in a dry run, would have done).

    `steps` lists the registry writes in the order performed; empty means the registry was
    already in the wanted state (`noop`). `changed` is True only when the registry was written
    (never in a dry run). `aliases_after` is the registry's aliases after the call, or the
    planned ones in a dry run. `tags` are the version tags set (or planned), keyed by version.
    `audit_id` is the id of the audit entry this call appended, None when none was.
    """

    action: str
    registered_model: str
    version: str | None
    changed: bool
    dry_run: bool
    message: str
    steps: tuple[str, ...] = ()
    aliases_before: dict[str, str] = field(default_factory=dict)
    aliases_after: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    audit_id: int | None = None

    @property
    def noop(self) -> bool:
        """True when nothing needed doing (the action is already in effect)."""
        return not self.steps


def client_for(tracking_uri: str) -> MlflowClient:
    """A client bound to `tracking_uri` for both tracking and registry (no global state)."""
    prepare_tracking_store(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def aliases_of(client: MlflowClient, name: str) -> dict[str, str]:
    """alias -> version (strings) of a registered model that must exist."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise LifecycleError("no such registered model", name=name) from None
        raise
    return {str(alias): str(version) for alias, version in sorted(model.aliases.items())}


def model_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """The registered version, or a LifecycleError naming it (instead of a bare MLflow error)."""
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise LifecycleError("no such model version", name=name, version=version) from None
        raise


def is_rolled_back(mv: ModelVersion) -> bool:
    return str((mv.tags or {}).get(TAG_ROLLED_BACK, "")).strip().lower() == "true"


def aliases(tracking_uri: str, name: str) -> dict[str, str]:
    """The registered model's aliases (alias -> version, strings); {} if it is not registered.

    An unregistered model simply has no aliases yet (a model monitored before its first
    retrain), which callers such as sensors treat like "no champion", not as a failure.
    """
    try:
        return aliases_of(client_for(tracking_uri), name)
    except LifecycleError:
        return {}


@dataclass(frozen=True)
class LiveCanary:
    """The registered model's aliases now, and the first day of the canary's traffic (its
    `aiops.canary_start` tag; None when untagged)."""

    aliases: dict[str, str]
    start: str | None = None

    @property
    def canary(self) -> str | None:
        return self.aliases.get(CANARY)

    @property
    def champion(self) -> str | None:
        return self.aliases.get(CHAMPION)

    def window_start(self, day: str) -> str | None:
        """The first day a canary judged on `day` is judged from; None when there is nothing
        to judge (no canary or no champion, or a canary that starts after `day`). An untagged
        canary is judged from `day` on."""
        if not (self.canary and self.champion):
            return None
        start = self.start or day
        return start if start <= day else None


def live_canary(tracking_uri: str, name: str) -> LiveCanary:
    """The aliases of `name` and, when a canary is live, where its traffic begins."""
    live = aliases(tracking_uri, name)
    if not (live.get(CANARY) and live.get(CHAMPION)):
        return LiveCanary(live)
    tags = model_version(client_for(tracking_uri), name, live[CANARY]).tags
    return LiveCanary(live, tags.get(TAG_CANARY_START) or None)


def live_canary_or_snapshot(
    tracking_uri: str, name: str, store: MonitoringStore
) -> tuple[LiveCanary, str | None]:
    """`live_canary`, kept in the store as the registry's snapshot; while MLflow cannot be
    reached, the snapshot last read instead, with a note saying so (None when read live).
    Without a snapshot the canary cannot be known: no aliases, and the note says why."""
    reason = down_reason(tracking_uri)
    if reason is None:
        try:
            live = live_canary(tracking_uri, name)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            mark_down(tracking_uri, reason)
        else:
            store.save_registry_snapshot(name, live.aliases, live.start)
            return live, None
    snapshot = store.registry_snapshot(name)
    if snapshot is None:
        return LiveCanary({}), (
            f"MLflow registry at {tracking_uri} unreachable ({reason}) and never read before: "
            "the canary is judged when it answers"
        )
    aliases_read, start, read_at = snapshot
    return LiveCanary(aliases_read, start), (
        f"MLflow registry at {tracking_uri} unreachable ({reason}): aliases as read at "
        f"{read_at.isoformat(timespec='seconds')}"
    )


def acted_on(store: MonitoringStore, tenant: str, model: str, version: str) -> str | None:
    """The canary action already taken on `version` (`ROLLBACK_CANARY` first: a rolled-back
    version is never promoted), or None. Read from the audit trail, so a reset sensor cursor
    that re-reads old verdicts acts on nothing twice."""
    acts = store.actions(tenant, model)
    done = {
        a
        for a, d in zip(acts["action"], acts["details"], strict=True)
        if a in (ROLLBACK_CANARY, PROMOTE_CANARY) and str(d.get("version")) == version
    }
    return next((a for a in (ROLLBACK_CANARY, PROMOTE_CANARY) if a in done), None)
