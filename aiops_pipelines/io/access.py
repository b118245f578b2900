"""What the console keeps in the monitoring store besides the results: who may read them (API
tokens), who read or changed what (the data-access audit), and the alerts muted or
acknowledged from it.

Tokens are random (32 bytes, URL-safe) and shown once; the store keeps their SHA-256, which is
enough for secrets of that entropy (no salt or slow hash needed: nothing to brute-force). A
token's `tenant` is the only tenant it reads, `*` for an admin. Revoking stamps `revoked_at`;
nothing is deleted, so the audit rows keep naming the token they were made with.

`AccessRecords` is mixed into `MonitoringStore`: the same engine, transactions and schema.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aiops_pipelines.core.errors import AiopsError
from aiops_pipelines.io.schema import (
    ACCESS_COLUMNS,
    ACK_COLUMNS,
    SILENCE_COLUMNS,
    TOKEN_COLUMNS,
    access_log_table,
    acknowledgements_table,
    api_tokens_table,
    silences_table,
)

ROLES = ("viewer", "operator", "admin")
_TOKEN_QUERY = (
    "SELECT id, name, role, tenant, token_hash, revoked_at FROM api_tokens "
    "WHERE token_hash = {mark}"
)
ALL_TENANTS = "*"
TOKEN_PREFIX = "aiops_"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a request is made by: a live token's id, name, role and tenant scope."""

    token_id: int
    name: str
    role: str
    tenant: str
    """The one tenant it reads, or `ALL_TENANTS` (an admin)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_mutate(self) -> bool:
        return self.role in ("operator", "admin")

    @property
    def scope(self) -> str | None:
        """The tenant every query is filtered by (None: every tenant)."""
        return None if self.tenant == ALL_TENANTS else self.tenant

    @property
    def actor(self) -> str:
        return f"token:{self.name}#{self.token_id}"

    def sees(self, tenant: str) -> bool:
        return self.scope is None or self.scope == tenant


@dataclass(frozen=True)
class Silence:
    """A console silence: one alert muted from `starts_at` until `ends_at` (UTC)."""

    id: int
    fingerprint: str
    tenant: str
    model: str
    signal: str
    column: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    comment: str
    created_by: str


def access_row(
    caller: Caller | None,
    method: str,
    path: str,
    query: str,
    status: int,
    target: str | None = None,
) -> dict[str, Any]:
    """The data-access audit's row of one request, stamped now."""
    return {
        "ts": _now(),
        "token_id": caller.token_id if caller else None,
        "actor": caller.actor if caller else "anonymous",
        "role": caller.role if caller else None,
        "tenant": caller.tenant if caller else None,
        "method": method,
        "path": path,
        "query": query,
        "status": int(status),
        "target": target,
    }


class AccessRecords:
    """Tokens, the access audit, silences and acknowledgements (a `MonitoringStore` mixin)."""

    def _begin_write(  # provided by MonitoringStore
        self, *, ensure: bool = True, key: str | None = None
    ) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:  # provided by MonitoringStore
        raise NotImplementedError

    # -- tokens ------------------------------------------------------------------------------

    def create_token(
        self, *, tenant: str | None, role: str, name: str = "", created_by: str = "cli"
    ) -> tuple[int, str]:
        """A new token for `tenant` (None or `*` only for an admin, who reads every tenant):
        its id and the token itself, which is not stored and cannot be shown again."""
        if role not in ROLES:
            raise AiopsError(f"--role {role!r} is not one of {', '.join(ROLES)}")
        if role == "admin":
            if tenant not in (None, "", ALL_TENANTS):
                raise AiopsError(
                    f"an admin token reads every tenant: leave out --tenant (got {tenant!r})"
                )
            tenant = ALL_TENANTS
        elif not tenant or tenant == ALL_TENANTS:
            raise AiopsError(
                f"a {role} token reads one tenant: give --tenant T (every tenant: --role admin)"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {
            "name": name or f"{tenant}-{role}",
            "token_hash": token_digest(token),
            "prefix": token[: len(TOKEN_PREFIX) + 6],
            "tenant": tenant,
            "role": role,
            "created_by": created_by,
            "created_at": _now(),
            "revoked_at": None,
        }
        with self._begin_write() as conn:
            ident = conn.execute(api_tokens_table.insert(), row).inserted_primary_key[0]
        return int(ident), token

    def caller(self, token: str) -> Caller | None:
        """The live token's caller; None for an unknown or revoked token."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = token_digest(token)
        self.ensure_schema()
        # every console request asks this: one statement on a pooled DBAPI connection, without
        # SQLAlchemy's statement compilation and transaction events (a third of a request's
        # time in the load check went there)
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(_TOKEN_QUERY.format(mark=mark), (digest,))
            row = cursor.fetchone()
            cursor.close()
        finally:
            raw.close()
        if row is None:
            return None
        ident, name, role, tenant, stored, revoked = row
        # the row was found by its digest; compare again in constant time all the same
        if not hmac.compare_digest(stored, digest) or revoked is not None:
            return None
        return Caller(int(ident), name, role, tenant)

    def tokens(self) -> pd.DataFrame:
        """Every token ever created (never the token itself), oldest first."""
        t = api_tokens_table
        with self._read() as conn:
            rows = conn.execute(sa.select(*(t.c[c] for c in TOKEN_COLUMNS)).order_by(t.c.id))
            frame = pd.DataFrame([tuple(r) for r in rows], columns=TOKEN_COLUMNS)
        for name in ("created_at", "revoked_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame

    def revoke_token(self, token_id: int) -> bool:
        """Revoke a token (from its next request on); False when there is no such live token."""
        t = api_tokens_table
        with self._begin_write() as conn:
            done = conn.execute(
                t.update()
                .where(t.c.id == int(token_id), t.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return bool(done.rowcount)

    # -- the data-access audit ----------------------------------------------------------------

    def record_accesses(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append several requests' rows (`access_row`) in one transaction."""
        if rows:
            with self._begin_write() as conn:
                conn.execute(access_log_table.insert(), list(rows))

    def access_log(
        self, *, tenant: str | None = None, limit: int = 500, since_id: int | None = None
    ) -> pd.DataFrame:
        """The latest console requests, newest first (of one caller tenant scope, if given)."""
        t = access_log_table
        query = sa.select(t).order_by(t.c.id.desc()).limit(int(limit))
        if tenant is not None:
            query = query.where(t.c.tenant == tenant)
        if since_id is not None:
            query = query.where(t.c.id > int(since_id))
        with self._read() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=ACCESS_COLUMNS)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame

    # -- silences and acknowledgements -----------------------------------------------------

    def add_silence(
        self,
        alert: Mapping[str, Any],
        *,
        ends_at: dt.datetime,
        comment: str,
        created_by: str,
        starts_at: dt.datetime | None = None,
    ) -> int:
        """Mute one alert (`alert`: its fingerprint, tenant, model, signal, column) until
        `ends_at`; returns the silence's id."""
        start = starts_at or _now()
        if ends_at.tzinfo is None:
            raise ValueError(f"naive end time {ends_at!r}: give it in UTC")
        if ends_at <= start:
            raise ValueError(f"the silence ends ({ends_at.isoformat()}) before it starts")
        row = {
            **{k: str(alert[k]) for k in ("fingerprint", "tenant", "model", "signal", "column")},
            "starts_at": start,
            "ends_at": ends_at,
            "comment": comment,
            "created_by": created_by,
            "created_at": _now(),
            "expired_at": None,
            "expired_by": None,
        }
        with self._begin_write() as conn:
            return int(conn.execute(silences_table.insert(), row).inserted_primary_key[0])

    def expire_silence(self, silence_id: int, *, by: str, tenant: str | None = None) -> bool:
        """Lift a silence now (of `tenant` only, if given); False when none such is active."""
        t = silences_table
        now = _now()
        clauses = [t.c.id == int(silence_id), t.c.expired_at.is_(None), t.c.ends_at > now]
        if tenant is not None:
            clauses.append(t.c.tenant == tenant)
        with self._begin_write() as conn:
            done = conn.execute(t.update().where(*clauses).values(expired_at=now, expired_by=by))
            return bool(done.rowcount)

    def silences(
        self,
        tenant: str | None = None,
        model: str | None = None,
        *,
        active_at: dt.datetime | None = None,
    ) -> pd.DataFrame:
        """Console silences, newest first; with `active_at`, those in force then."""
        t = silences_table
        clauses = [t.c[k] == v for k, v in (("tenant", tenant), ("model", model)) if v is not None]
        if active_at is not None:
            clauses += [
                t.c.starts_at <= active_at,
                t.c.ends_at > active_at,
                sa.or_(t.c.expired_at.is_(None), t.c.expired_at > active_at),
            ]
        with self._read() as conn:
            rows = conn.execute(sa.select(t).where(*clauses).order_by(t.c.id.desc())).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=SILENCE_COLUMNS)
        for name in ("starts_at", "ends_at", "created_at", "expired_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame

    def active_silences(
        self, tenant: str, model: str, at: dt.datetime | None = None
    ) -> list[Silence]:
        """The model's console silences in force at `at` (default now)."""
        frame = self.silences(tenant, model, active_at=at or _now())
        return [
            Silence(
                int(r.id),
                r.fingerprint,
                r.tenant,
                r.model,
                r.signal,
                r.column,
                r.starts_at.to_pydatetime(),
                r.ends_at.to_pydatetime(),
                r.comment,
                r.created_by,
            )
            for r in frame.itertuples(index=False)
        ]

    def acknowledge(
        self, alert: Mapping[str, Any], *, comment: str, created_by: str
    ) -> tuple[int, bool]:
        """Acknowledge the alert's current episode (`alert`: fingerprint, tenant, model,
        first_seen): its id, and False when that episode was already acknowledged (the first
        acknowledgement stands)."""
        t = acknowledgements_table
        episode = str(alert["first_seen"])
        fp = str(alert["fingerprint"])
        with self._begin_write(key=f"ack/{fp}/{episode}") as conn:
            have = conn.execute(
                sa.select(t.c.id).where(t.c.fingerprint == fp, t.c.episode_start == episode)
            ).scalar_one_or_none()
            if have is not None:
                return int(have), False
            row = {
                "fingerprint": fp,
                "tenant": str(alert["tenant"]),
                "model": str(alert["model"]),
                "episode_start": episode,
                "comment": comment,
                "created_by": created_by,
                "created_at": _now(),
            }
            return int(conn.execute(t.insert(), row).inserted_primary_key[0]), True

    def acknowledgements(
        self,
        tenant: str | None = None,
        model: str | None = None,
    ) -> pd.DataFrame:
        """Acknowledged episodes, oldest first."""
        t = acknowledgements_table
        clauses = [t.c[k] == v for k, v in (("tenant", tenant), ("model", model)) if v is not None]
        with self._read() as conn:
            rows = conn.execute(sa.select(t).where(*clauses).order_by(t.c.id)).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=ACK_COLUMNS)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame

    def acknowledged_episodes(self, tenant: str, model: str) -> set[tuple[str, str]]:
        """(fingerprint, episode_start) of the model's acknowledged episodes."""
        frame = self.acknowledgements(tenant, model)
        return set(zip(frame["fingerprint"], frame["episode_start"], strict=True))
