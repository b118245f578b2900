"""The console's records in the store, on SQLite and PostgreSQL: tokens kept hashed and
revocable, the data-access audit, silences in force by time, one acknowledgement per episode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from aiops_pipelines.core.errors import AiopsError
from aiops_pipelines.io.access import ALL_TENANTS, access_row
from aiops_pipelines.io.store import MonitoringStore

ALERT = {
    "fingerprint": "fp-1",
    "tenant": "acme",
    "model": "churn",
    "signal": "feature_drift",
    "column": "age",
    "first_seen": "2026-03-12",
}

# `store`: an open store on each backend (tests/conftest.py)


def test_a_token_is_stored_hashed_and_names_its_tenant_and_role(store: MonitoringStore) -> None:
    ident, token = store.create_token(tenant="acme", role="operator", name="on-call")
    who = store.caller(token)
    assert who is not None
    assert (who.token_id, who.name, who.role, who.scope) == (ident, "on-call", "operator", "acme")
    assert who.can_mutate and not who.is_admin and who.sees("acme") and not who.sees("globex")
    with store.engine.connect() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(sa.text("SELECT * FROM api_tokens"))]
    assert not any(token in cell for row in rows for cell in row)  # only its digest is kept
    assert "token_hash" not in store.tokens().columns
    assert store.caller(token + "x") is None and store.caller("") is None


def test_an_admin_reads_every_tenant_and_other_roles_one(store: MonitoringStore) -> None:
    _, admin = store.create_token(tenant=None, role="admin")
    who = store.caller(admin)
    assert who is not None and who.tenant == ALL_TENANTS and who.scope is None
    with pytest.raises(AiopsError, match="leave out --tenant"):
        store.create_token(tenant="acme", role="admin")
    with pytest.raises(AiopsError, match="give --tenant"):
        store.create_token(tenant=None, role="viewer")
    with pytest.raises(AiopsError, match="--role 'root'"):
        store.create_token(tenant="acme", role="root")


def test_a_revoked_token_is_refused_from_then_on(store: MonitoringStore) -> None:
    ident, token = store.create_token(tenant="acme", role="viewer")
    assert store.revoke_token(ident)
    assert store.caller(token) is None
    assert not store.revoke_token(ident)  # already revoked
    (row,) = store.tokens().to_dict("records")
    assert row["revoked_at"] is not None


def test_the_access_log_keeps_every_request_newest_first(store: MonitoringStore) -> None:
    _, token = store.create_token(tenant="acme", role="viewer")
    who = store.caller(token)
    store.record_accesses([access_row(None, "GET", "/api/v1/models", "", 401)])
    store.record_accesses(
        [access_row(who, "GET", "/api/v1/models/acme/churn", "days=7", 200, "acme.churn")]
    )
    log = store.access_log()
    assert list(log["actor"]) == [who.actor, "anonymous"]
    assert list(log["status"]) == [200, 401]
    assert log.iloc[0]["tenant"] == "acme" and log.iloc[0]["target"] == "acme.churn"
    assert list(store.access_log(tenant="acme")["path"]) == ["/api/v1/models/acme/churn"]


def test_a_silence_is_in_force_between_its_start_and_end_or_until_lifted(
    store: MonitoringStore,
) -> None:
    start = datetime(2026, 5, 1, 9, tzinfo=UTC)
    ident = store.add_silence(
        ALERT, starts_at=start, ends_at=start + timedelta(hours=2), comment="vendor", created_by="x"
    )
    assert store.active_silences("acme", "churn", start - timedelta(seconds=1)) == []
    (s,) = store.active_silences("acme", "churn", start + timedelta(hours=1))
    assert (s.id, s.fingerprint, s.comment) == (ident, "fp-1", "vendor")
    assert store.active_silences("acme", "churn", start + timedelta(hours=2)) == []
    assert store.active_silences("globex", "churn", start + timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="before it starts"):
        store.add_silence(ALERT, starts_at=start, ends_at=start, comment="", created_by="x")
    now = datetime.now(UTC)
    live = store.add_silence(ALERT, ends_at=now + timedelta(hours=1), comment="", created_by="x")
    assert not store.expire_silence(live, by="y", tenant="globex")  # not that tenant's
    assert store.expire_silence(live, by="y", tenant="acme")
    assert store.active_silences("acme", "churn") == []
    assert not store.expire_silence(live, by="y")


def test_an_episode_is_acknowledged_once(store: MonitoringStore) -> None:
    first, new = store.acknowledge(ALERT, comment="on it", created_by="a")
    again, new_again = store.acknowledge(ALERT, comment="me too", created_by="b")
    assert new and not new_again and first == again
    later = {**ALERT, "first_seen": "2026-04-01"}
    assert store.acknowledge(later, comment="", created_by="b")[1]
    assert store.acknowledged_episodes("acme", "churn") == {
        ("fp-1", "2026-03-12"),
        ("fp-1", "2026-04-01"),
    }
    assert store.acknowledgements("globex").empty


def test_console_records_are_not_models_of_the_store(store: MonitoringStore) -> None:
    store.add_silence(
        {**ALERT, "tenant": "t9", "model": "m9"},
        ends_at=datetime.now(UTC) + timedelta(hours=1),
        comment="",
        created_by="x",
    )
    assert store.models() == []


def test_the_models_of_one_tenant_are_selected_by_the_query(store: MonitoringStore) -> None:
    for tenant, model in (("acme", "churn"), ("globex", "eta")):
        store.replace_partition(
            tenant, model, "2026-03-01", "drift_report", metrics={}, findings=[]
        )
        store.record_action("cli", "retrain", tenant, model)
    assert store.models("acme") == [("acme", "churn")]
    assert store.models() == [("acme", "churn"), ("globex", "eta")]
