"""Lifecycle actions on a real MLflow sqlite registry, audited in a real MonitoringStore.

The registry database is created once per module (MLflow's migrations take seconds) and copied
per test; versions are registered with `create_model_version` on a local folder, which is all
the alias and tag logic needs (no model has to be loaded).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.lifecycle.actions import (
    evidence_tag,
    promote_canary,
    restore_previous_champion,
    rollback_canary,
    start_canary,
)
from aiops_pipelines.lifecycle.registry import (
    TAG_CANARY_START,
    TAG_PROMOTED_AT,
    TAG_PROMOTION_EVIDENCE,
    TAG_REPLACED_BY,
    TAG_ROLLBACK_EVIDENCE,
    TAG_ROLLED_BACK,
    TAG_ROLLED_BACK_AT,
    TAG_VALUE_LIMIT,
    LifecycleError,
    RolledBackError,
    aliases,
)

NAME = "acme.churn"
AUDIT = {"tenant": "acme", "model": "churn"}
EVIDENCE = {"verdict": "rollback", "delta": -0.031, "cs": [-0.05, -0.012], "n": 4200}


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite database with its tables created (once: migrations are slow)."""
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    return path


@pytest.fixture
def uri(empty_registry: Path, tmp_path: Path) -> str:
    """A private registry: acme.churn v1 (champion), v2 (challenger), v3 (no alias)."""
    shutil.copy(empty_registry, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    source = tmp_path / "model"
    source.mkdir()
    client.create_registered_model(NAME)
    for _ in range(3):
        client.create_model_version(NAME, source=str(source), run_id=None)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")
    return uri


def _tags(uri: str, version: str) -> dict[str, str]:
    return dict(
        MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(NAME, version).tags
    )


def _actions(store: MonitoringStore) -> list[str]:
    return list(store.actions("acme", "churn")["action"])


# ------------------------------------------------------------------------------ aliases / start


def test_aliases_are_strings_and_an_unregistered_model_has_none(uri: str) -> None:
    assert aliases(uri, NAME) == {"champion": "1", "challenger": "2"}
    assert aliases(uri, "acme.unknown") == {}


def test_start_canary_defaults_to_the_challenger_tags_the_day_and_is_idempotent(
    uri: str, store: MonitoringStore
) -> None:
    global_uri = mlflow.get_tracking_uri()
    first = start_canary(uri, NAME, store=store, partition_day="2026-03-01")
    assert first.changed and not first.noop and first.version == "2"
    assert aliases(uri, NAME) == {"champion": "1", "challenger": "2", "canary": "2"}
    assert first.aliases_after == aliases(uri, NAME)
    assert _tags(uri, "2")[TAG_CANARY_START] == "2026-03-01"
    acts = store.actions("acme", "churn")
    assert list(acts["action"]) == ["start_canary"]
    assert acts["actor"][0] == "cli" and acts["partition"][0] == "2026-03-01"
    assert acts["details"][0]["version"] == "2"
    assert acts["details"][0]["champion_version"] == "1"
    assert first.audit_id == int(acts["id"][0])

    # the same version again (a later day): no-op, the analysis window keeps its start
    again = start_canary(uri, NAME, "2", store=store, partition_day="2026-03-05")
    assert again.noop and not again.changed and again.audit_id is None
    assert "already the canary" in again.message and "2026-03-01" in again.message
    assert _tags(uri, "2")[TAG_CANARY_START] == "2026-03-01"
    assert _actions(store) == ["start_canary"]  # no row for a no-op
    assert mlflow.get_tracking_uri() == global_uri  # MLflow's global URI is never touched


def test_start_canary_defaults_to_today(uri: str) -> None:
    from datetime import UTC, datetime

    start_canary(uri, NAME, "3")
    assert _tags(uri, "3")[TAG_CANARY_START] == datetime.now(UTC).date().isoformat()


def test_start_canary_refusals_are_clear_and_audited(uri: str, store: MonitoringStore) -> None:
    with pytest.raises(LifecycleError, match="is the champion"):
        start_canary(uri, NAME, "1", store=store, partition_day="2026-03-01")
    start_canary(uri, NAME, "2", store=store, partition_day="2026-03-01")
    with pytest.raises(LifecycleError, match="version 2 is the live canary"):
        start_canary(uri, NAME, "3", store=store, partition_day="2026-03-02")
    with pytest.raises(LifecycleError, match="no such model version"):
        start_canary(uri, NAME, "9", store=store, partition_day="2026-03-02")
    with pytest.raises(LifecycleError, match="not an ISO date"):
        start_canary(uri, NAME, "3", store=store, partition_day="yesterday")
    assert aliases(uri, NAME)["canary"] == "2"
    assert TAG_CANARY_START not in _tags(uri, "3")
    acts = store.actions("acme", "churn", action="start_canary_refused")
    assert [d["version"] for d in acts["details"]] == ["1", "3"]
    assert "live canary" in acts["details"][1]["reason"]


def test_start_canary_without_a_challenger(uri: str) -> None:
    MlflowClient(tracking_uri=uri, registry_uri=uri).delete_registered_model_alias(
        NAME, "challenger"
    )
    with pytest.raises(LifecycleError, match="no `challenger` alias"):
        start_canary(uri, NAME)


# ------------------------------------------------------------------------------ rollback


def test_rollback_removes_the_alias_tags_the_version_and_audits_once(
    uri: str, store: MonitoringStore
) -> None:
    start_canary(uri, NAME, store=store, **AUDIT, partition_day="2026-03-01")
    result = rollback_canary(uri, NAME, "2", EVIDENCE, store=store, partition_day="2026-03-04")
    assert result.changed and result.version == "2"
    # the challenger alias goes too: nothing may offer a rolled-back version again
    assert aliases(uri, NAME) == {"champion": "1"}
    tags = _tags(uri, "2")
    assert tags[TAG_ROLLED_BACK] == "true"
    assert tags[TAG_ROLLED_BACK_AT]
    assert json.loads(tags[TAG_ROLLBACK_EVIDENCE]) == EVIDENCE
    acts = store.actions("acme", "churn", action="rollback_canary")
    assert len(acts) == 1
    assert acts["actor"][0] == "rollback_canary" and acts["partition"][0] == "2026-03-04"
    details = acts["details"][0]
    assert details["evidence"] == EVIDENCE and details["was_canary"] is True
    assert details["aliases_before"]["canary"] == "2" and "canary" not in details["aliases_after"]

    again = rollback_canary(uri, NAME, "2", {"verdict": "rollback", "day": 2}, store=store)
    assert again.noop and not again.changed and "already rolled back" in again.message
    assert _tags(uri, "2") == tags  # the first rollback's time and evidence are kept
    assert _actions(store) == ["start_canary", "rollback_canary"]


def test_a_rolled_back_version_is_never_promoted_or_restarted(
    uri: str, store: MonitoringStore
) -> None:
    start_canary(uri, NAME, "2", partition_day="2026-03-01")
    rollback_canary(uri, NAME, "2", EVIDENCE)
    before = aliases(uri, NAME)
    for dry_run in (False, True):
        with pytest.raises(RolledBackError, match="never promoted"):
            promote_canary(uri, NAME, "2", {"verdict": "pass"}, store=store, dry_run=dry_run)
    with pytest.raises(RolledBackError, match="cannot be a canary again"):
        start_canary(uri, NAME, "2", store=store, partition_day="2026-03-09")
    assert aliases(uri, NAME) == before
    assert TAG_PROMOTED_AT not in _tags(uri, "2")
    refused = store.actions("acme", "churn")
    assert list(refused["action"]) == [
        "promote_canary_refused",
        "promote_canary_refused",
        "start_canary_refused",
    ]
    assert [d["dry_run"] for d in refused["details"][:2]] == [False, True]
    assert refused["details"][0]["evidence"] == {"verdict": "pass"}


def test_rollback_of_an_old_canary_leaves_the_new_one_alone(uri: str) -> None:
    start_canary(uri, NAME, "3", partition_day="2026-03-01")
    result = rollback_canary(uri, NAME, "2", EVIDENCE)
    assert result.changed and "was not the canary" in result.message
    assert aliases(uri, NAME) == {"champion": "1", "canary": "3"}  # challenger v2 removed
    assert _tags(uri, "2")[TAG_ROLLED_BACK] == "true"
    assert TAG_ROLLED_BACK not in _tags(uri, "3")


def test_rollback_refuses_the_champion(uri: str, store: MonitoringStore) -> None:
    with pytest.raises(LifecycleError, match="restore_previous_champion"):
        rollback_canary(uri, NAME, "1", EVIDENCE, store=store)
    assert aliases(uri, NAME)["champion"] == "1"
    assert TAG_ROLLED_BACK not in _tags(uri, "1")
    assert _actions(store) == ["rollback_canary_refused"]


def test_rollback_evidence_is_truncated_to_valid_json(uri: str, store: MonitoringStore) -> None:
    huge = {"verdict": "rollback", "rows": "x" * (TAG_VALUE_LIMIT + 5000)}
    start_canary(uri, NAME, "2", partition_day="2026-03-01")
    rollback_canary(uri, NAME, "2", huge, store=store)
    tag = _tags(uri, "2")[TAG_ROLLBACK_EVIDENCE]
    assert len(tag) <= TAG_VALUE_LIMIT
    wrapped = json.loads(tag)
    assert wrapped["truncated"] is True and wrapped["chars"] > TAG_VALUE_LIMIT
    assert wrapped["head"].startswith('{"rows": "xxx')
    # the audit trail keeps the whole evidence
    assert store.actions("acme", "churn")["details"][0]["evidence"] == huge


def test_evidence_tag_fits_any_limit_and_keeps_small_evidence_whole() -> None:
    assert json.loads(evidence_tag(EVIDENCE)) == EVIDENCE
    assert json.loads(evidence_tag({"nan": float("nan")})) == {"nan": None}
    for limit in (80, 200, 1000):
        text = evidence_tag({"k": 'é"\\' * 500}, limit=limit)
        assert len(text) <= limit and json.loads(text)["truncated"] is True


# ------------------------------------------------------------------------------ promote


def test_promote_moves_champion_and_keeps_the_previous_one(
    uri: str, store: MonitoringStore
) -> None:
    start_canary(uri, NAME, partition_day="2026-03-01")
    evidence = {"verdict": "pass", "days": 9, "cs_lower": -0.004}
    result = promote_canary(uri, NAME, "2", evidence, store=store, partition_day="2026-03-10")
    assert result.changed and "v1 is previous_champion" in result.message
    assert aliases(uri, NAME) == {"champion": "2", "previous_champion": "1"}
    assert _tags(uri, "1")[TAG_REPLACED_BY] == "2"
    new = _tags(uri, "2")
    assert new[TAG_PROMOTED_AT] and json.loads(new[TAG_PROMOTION_EVIDENCE]) == evidence
    acts = store.actions("acme", "churn")
    assert list(acts["action"]) == ["promote_canary"]
    assert acts["actor"][0] == "promote_canary"
    assert acts["details"][0]["replaced_version"] == "1"
    assert acts["details"][0]["aliases_after"] == aliases(uri, NAME)

    again = promote_canary(uri, NAME, "2", evidence, store=store)
    assert again.noop and not again.changed and "already the champion" in again.message
    assert _tags(uri, "2") == new
    assert _actions(store) == ["promote_canary"]

    # the next canary replaces v2; v1 is no longer kept
    start_canary(uri, NAME, "3", partition_day="2026-03-11")
    promote_canary(uri, NAME, "3", evidence)
    assert aliases(uri, NAME) == {"champion": "3", "previous_champion": "2"}
    assert _tags(uri, "2")[TAG_REPLACED_BY] == "3"


def test_promote_refuses_a_version_that_is_not_the_canary(uri: str, store: MonitoringStore) -> None:
    with pytest.raises(LifecycleError, match="there is no canary"):
        promote_canary(uri, NAME, "2", {"verdict": "pass"}, store=store)
    start_canary(uri, NAME, "3", partition_day="2026-03-01")
    with pytest.raises(LifecycleError, match="v3 is"):
        promote_canary(uri, NAME, "2", {"verdict": "pass"}, store=store)
    assert aliases(uri, NAME) == {"champion": "1", "challenger": "2", "canary": "3"}
    assert _actions(store) == ["promote_canary_refused"] * 2


def test_an_interrupted_promotion_is_finished_by_the_next_call(uri: str) -> None:
    start_canary(uri, NAME, "2", partition_day="2026-03-01")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # the aliases moved, then the process died before the tags and the canary removal
    client.set_registered_model_alias(NAME, "previous_champion", "1")
    client.set_registered_model_alias(NAME, "champion", "2")
    result = promote_canary(uri, NAME, "2", {"verdict": "pass"})
    assert result.changed
    assert aliases(uri, NAME) == {"champion": "2", "previous_champion": "1"}
    assert TAG_PROMOTED_AT in _tags(uri, "2")
    assert promote_canary(uri, NAME, "2", {"verdict": "pass"}).noop


# ------------------------------------------------------------------------------ dry run


def test_dry_runs_change_nothing_and_record_what_they_would_do(
    uri: str, store: MonitoringStore
) -> None:
    start_canary(uri, NAME, "2", partition_day="2026-03-01")
    before, tags_before = aliases(uri, NAME), _tags(uri, "2")

    rb = rollback_canary(uri, NAME, "2", EVIDENCE, store=store, dry_run=True)
    assert rb.dry_run and not rb.changed and not rb.noop
    assert rb.message == "dry run, nothing changed; planned: canary v2 rolled back"
    assert rb.aliases_after == {"champion": "1"}  # the plan, not the registry
    assert set(rb.tags["2"]) == {TAG_ROLLED_BACK, TAG_ROLLED_BACK_AT, TAG_ROLLBACK_EVIDENCE}

    pr = promote_canary(uri, NAME, "2", {"verdict": "pass"}, store=store, dry_run=True)
    assert pr.dry_run and not pr.changed
    assert pr.aliases_after == {"champion": "2", "previous_champion": "1"}

    assert aliases(uri, NAME) == before and _tags(uri, "2") == tags_before
    assert TAG_REPLACED_BY not in _tags(uri, "1")
    acts = store.actions("acme", "churn")
    assert list(acts["action"]) == ["rollback_canary_dry_run", "promote_canary_dry_run"]
    assert all(d["dry_run"] for d in acts["details"])
    assert "remove alias canary (was v2)" in acts["details"][0]["steps"]

    # a dry run of something already in effect is a no-op too: no row
    rollback_canary(uri, NAME, "2", EVIDENCE)
    assert rollback_canary(uri, NAME, "2", EVIDENCE, store=store, dry_run=True).noop
    assert len(store.actions("acme", "churn")) == 2


# ------------------------------------------------------------------------------ restore


def test_restore_previous_champion_is_the_manual_rollback(uri: str, store: MonitoringStore) -> None:
    with pytest.raises(LifecycleError, match="no `previous_champion`"):
        restore_previous_champion(uri, NAME, store=store)
    start_canary(uri, NAME, "2", partition_day="2026-03-01")
    promote_canary(uri, NAME, "2", {"verdict": "pass"})

    result = restore_previous_champion(uri, NAME, store=store, evidence={"reason": "p95 latency"})
    assert result.changed and result.version == "1"
    assert aliases(uri, NAME) == {"champion": "1", "previous_champion": "1"}
    demoted = _tags(uri, "2")
    assert demoted[TAG_ROLLED_BACK] == "true" and demoted[TAG_REPLACED_BY] == "1"
    assert json.loads(demoted[TAG_ROLLBACK_EVIDENCE])["reason"] == "p95 latency"
    acts = store.actions("acme", "churn")
    assert list(acts["action"]) == [
        "restore_previous_champion_refused",
        "restore_previous_champion",
    ]
    assert acts["actor"][1] == "cli" and acts["details"][1]["demoted_version"] == "2"

    again = restore_previous_champion(uri, NAME, store=store)
    assert again.noop and "already the champion" in again.message
    assert len(store.actions("acme", "churn")) == 2

    # the demoted version is now rolled back: no way back in through automation
    with pytest.raises(RolledBackError):
        start_canary(uri, NAME, "2", partition_day="2026-03-20")


# ------------------------------------------------------------------------------ audit keys


def test_audit_needs_tenant_and_model_when_the_name_does_not_carry_them(
    uri: str, store: MonitoringStore, tmp_path: Path
) -> None:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("churn_model")
    client.create_model_version("churn_model", source=str(tmp_path / "model"), run_id=None)
    with pytest.raises(ValueError, match="tenant= and model="):
        start_canary(uri, "churn_model", "1", store=store, partition_day="2026-03-01")
    assert aliases(uri, "churn_model") == {}  # refused before any registry write
    start_canary(
        uri,
        "churn_model",
        "1",
        store=store,
        tenant="acme",
        model="churn",
        partition_day="2026-03-01",
    )
    assert aliases(uri, "churn_model") == {"canary": "1"}
    assert _actions(store) == ["start_canary"]


# ------------------------------------------------------------------ registry unreachable


def test_the_canary_is_judged_with_the_aliases_last_read_while_the_registry_is_down(
    uri: str, store: MonitoringStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read live, the aliases are kept in the store; with MLflow refusing connections, the
    snapshot stands in (and says when it was read); a model never read has no canary."""
    from aiops_pipelines.io import tracking
    from aiops_pipelines.lifecycle.registry import live_canary_or_snapshot
    from tests.servers import free_port

    monkeypatch.setattr(tracking, "_down", {})
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    start_canary(uri, NAME, "2", store=store, **AUDIT, partition_day="2026-03-01")
    live, note = live_canary_or_snapshot(uri, NAME, store)
    assert note is None and (live.canary, live.champion, live.start) == ("2", "1", "2026-03-01")

    down = f"http://127.0.0.1:{free_port()}"
    cached, note = live_canary_or_snapshot(down, NAME, store)
    assert (cached.canary, cached.champion, cached.start) == ("2", "1", "2026-03-01")
    assert note and "unreachable" in note and "aliases as read at" in note
    never, note = live_canary_or_snapshot(down, "acme.other", store)
    assert never.aliases == {} and note and "never read before" in note
