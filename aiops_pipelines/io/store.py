"""The monitoring store: profiles, metric history, findings and the audit trail, in one database.

Every asset writes its results for one (tenant, model, partition) through `replace_partition`,
which deletes what that asset stored for the partition and inserts the new rows in a single
transaction. So re-running a partition (a backfill, a fixed bug) replaces it and never duplicates
it, and a run that fails half-way leaves the previous results exactly as they were.

One code path serves SQLite and PostgreSQL (the tables and the engine setup are in `schema`).
Non-finite numbers are stored as NULL (SQL has no portable NaN) and come back as NaN in the
DataFrames.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from types import TracebackType
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aiops_pipelines.core.findings import Finding, Severity, jsonable
from aiops_pipelines.core.process import claimer
from aiops_pipelines.io.access import AccessRecords
from aiops_pipelines.io.locks import lock_for_write, partition_lock
from aiops_pipelines.io.schema import (
    ACTION_COLUMNS,
    ALERT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    FINDING_COLUMNS,
    METRIC_COLUMNS,
    MODEL_TABLES,
    ROUTE_COLUMNS,
    TABLES,
    alert_deliveries_table,
    alert_events_table,
    alert_routes_table,
    alerts_table,
    audit_log_table,
    findings_table,
    metadata,
    metric_history_table,
    mlflow_outbox_table,
    outdated,
    prepare_engine,
    profiles_table,
    registry_snapshots_table,
    upgrade,
)

ProfileKind = Literal["reference", "daily"]
PROFILE_KINDS: tuple[str, ...] = ("reference", "daily")
REFERENCE_PARTITION = "reference"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _finite(value: Any) -> float | None:
    """NaN/inf to None: SQL has no portable NaN, and NULL reads back as NaN in pandas."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _to_json(payload: Any) -> str:
    """Strict JSON text (no NaN tokens) so any client can parse what the store wrote."""
    return json.dumps(jsonable(payload), allow_nan=False)


def _check_partition(partition: str) -> str:
    """A partition is an ISO date or "reference"; anything else would break the range filters."""
    if partition == REFERENCE_PARTITION:
        return partition
    if isinstance(partition, str) and _DATE.match(partition):
        try:
            dt.date.fromisoformat(partition)
        except ValueError:
            pass
        else:
            return partition
    raise ValueError(f"partition {partition!r} is neither 'YYYY-MM-DD' nor {REFERENCE_PARTITION!r}")


def _bound(value: str | dt.date | None) -> str | None:
    """A range bound as the 'YYYY-MM-DD' text the partitions are stored as."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    if value == REFERENCE_PARTITION:
        raise ValueError("range bounds are dates; select the reference partition by kind")
    return _check_partition(value)


def _check_kind(kind: str) -> str:
    if kind not in PROFILE_KINDS:
        raise ValueError(f"profile kind {kind!r} is not one of {PROFILE_KINDS}")
    return kind


def _where(
    table: sa.Table,
    *,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    **equals: Any,
) -> list[sa.ColumnElement[bool]]:
    """Equality filters for the given non-None values, plus an inclusive date range.

    A date range never matches the "reference" partition: it is not a day, and as text it
    would sort after every date.
    """
    clauses: list[sa.ColumnElement[bool]] = [
        table.c[name] == value for name, value in equals.items() if value is not None
    ]
    lo, hi = _bound(start), _bound(end)
    if lo is not None or hi is not None:
        clauses.append(table.c.partition != REFERENCE_PARTITION)
    if lo is not None:
        clauses.append(table.c.partition >= lo)
    if hi is not None:
        clauses.append(table.c.partition <= hi)
    return clauses


class MonitoringStore(AccessRecords):
    """Read and write the monitoring tables for every tenant and model in one database.

    `url` is a SQLAlchemy URL: `sqlite:////abs/path/store.db` (the default deployment, folders
    are created) or `postgresql+psycopg://user@host/db`. Tables are created on first use.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = prepare_engine(url)
        self._schema_ready = False

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release pooled connections (SQLite file handles, PostgreSQL sessions)."""
        self.engine.dispose()

    def __enter__(self) -> MonitoringStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MonitoringStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def ensure_schema(self) -> None:
        """Create the tables if missing (idempotent; called by every method on first use)."""
        if self._schema_ready:
            return
        # Look before taking the write lock: a reader must not queue behind a running writer
        # (SQLite) just to find out that the tables already exist.
        with self.engine.connect() as conn:
            inspector = sa.inspect(conn)
            missing = [t.name for t in TABLES if not inspector.has_table(t.name)]
            # an older store may both lack a newer table and need an upgrade of another
            stale = alert_deliveries_table.name not in missing and outdated(conn)
        if stale:  # created by an older version: upgrade in place, once
            with self._begin_write(ensure=False) as conn:
                upgrade(conn)
        if not missing:
            self._schema_ready = True
            return
        try:
            self._create_all()
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
            # Another process created the tables between our check and our CREATE
            # (PostgreSQL reports that as a duplicate); the second look finds them.
            self._create_all()
        self._schema_ready = True

    def _create_all(self) -> None:
        with self._begin_write(ensure=False) as conn:
            metadata.create_all(conn, checkfirst=True)

    def partition_lock(self, key: str, *, timeout: float) -> AbstractContextManager[None]:
        """Hold the lock of `key` (an asset and its partition) for a block: a second holder
        waits up to `timeout` seconds, then gets `LockTimeout`. See `io.locks`."""
        return partition_lock(self.engine, key, timeout=timeout)

    @contextmanager
    def _begin_write(self, *, ensure: bool = True, key: str | None = None) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any exception. With
        `key` (what it deletes and re-inserts), other writers of that key wait for it."""
        if ensure:
            self.ensure_schema()
        with self.engine.connect() as conn:
            conn.execution_options(aiops_write=True)
            with conn.begin():
                if key is not None:
                    lock_for_write(conn, key)
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only connection; one snapshot for the whole read."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            yield conn

    # -- profiles ------------------------------------------------------------------------------

    def save_profile(
        self,
        tenant: str,
        model: str,
        kind: ProfileKind,
        partition: str,
        profile_dict: Mapping[str, Any],
        n_rows: int,
    ) -> None:
        """Store a profile, replacing any stored for the same (tenant, model, kind, partition)."""
        row = self._profile_row(tenant, model, kind, partition, profile_dict, n_rows, _now())
        with self._begin_write(key=f"profile/{tenant}/{model}/{kind}/{partition}") as conn:
            self._delete_profile(conn, tenant, model, kind, partition)
            conn.execute(profiles_table.insert(), row)

    def load_profile(
        self, tenant: str, model: str, kind: ProfileKind, partition: str
    ) -> dict[str, Any] | None:
        """The stored profile dict, or None when that partition was never profiled."""
        t = profiles_table
        query = sa.select(t.c.payload).where(
            *_where(t, tenant=tenant, model=model, kind=_check_kind(kind), partition=partition)
        )
        with self._read() as conn:
            payload = conn.execute(query).scalar_one_or_none()
        return None if payload is None else json.loads(payload)

    def load_profiles(
        self,
        tenant: str,
        model: str,
        kind: ProfileKind,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Profiles of one model by partition, in partition order; `start`/`end` inclusive."""
        t = profiles_table
        query = sa.select(t.c.partition, t.c.payload).where(
            *_where(t, start=start, end=end, tenant=tenant, model=model, kind=_check_kind(kind))
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {p: json.loads(payload) for p, payload in sorted(rows)}

    @staticmethod
    def _profile_row(
        tenant: str,
        model: str,
        kind: str,
        partition: str,
        profile_dict: Mapping[str, Any],
        n_rows: int,
        now: dt.datetime,
    ) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "model": model,
            "kind": _check_kind(kind),
            "partition": _check_partition(partition),
            "n_rows": int(n_rows),
            "payload": _to_json(dict(profile_dict)),
            "created_at": now,
        }

    @staticmethod
    def _delete_profile(
        conn: Connection, tenant: str, model: str, kind: str, partition: str
    ) -> None:
        t = profiles_table
        conn.execute(
            t.delete().where(*_where(t, tenant=tenant, model=model, kind=kind, partition=partition))
        )

    # -- one asset's results for one partition ---------------------------------------------------

    def replace_partition(
        self,
        tenant: str,
        model: str,
        partition: str,
        asset: str,
        *,
        metrics: Mapping[tuple[str, str], float],
        findings: Sequence[Finding],
        profile: tuple[ProfileKind, Mapping[str, Any], int] | None = None,
    ) -> None:
        """Replace everything `asset` stored for (tenant, model, partition), atomically.

        `metrics` maps (metric, column) to a value ("" column for model-level metrics).
        `profile` is (kind, profile_dict, n_rows) when this asset also owns a profile.
        All rows are built and checked before the transaction opens; inside it the old
        metrics, findings (and the profile) are deleted and the new ones inserted, so a
        failure at any point leaves the previously stored results untouched.
        """
        now = _now()
        _check_partition(partition)
        metric_rows = [
            {
                "tenant": tenant,
                "model": model,
                "partition": partition,
                "asset": asset,
                "metric": metric,
                "column": column,
                "value": _finite(value),
                "created_at": now,
            }
            for (metric, column), value in metrics.items()
        ]
        finding_rows = [
            self._finding_row(f, tenant, model, partition, asset, now) for f in findings
        ]
        profile_row = None
        if profile is not None:
            kind, profile_dict, n_rows = profile
            profile_row = self._profile_row(
                tenant, model, kind, partition, profile_dict, n_rows, now
            )

        scope = {"tenant": tenant, "model": model, "partition": partition, "asset": asset}
        with self._begin_write(key=f"partition/{tenant}/{model}/{partition}/{asset}") as conn:
            for table in (metric_history_table, findings_table):
                conn.execute(table.delete().where(*_where(table, **scope)))
            if profile_row is not None:
                self._delete_profile(conn, tenant, model, profile_row["kind"], partition)
            if metric_rows:
                conn.execute(metric_history_table.insert(), metric_rows)
            if finding_rows:
                conn.execute(findings_table.insert(), finding_rows)
            if profile_row is not None:
                conn.execute(profiles_table.insert(), profile_row)

    def record_finding(self, finding: Finding) -> None:
        """Store one finding outside a partition's replace (events such as a failed run):
        the same (tenant, model, partition, asset, signal, column) replaces, never duplicates."""
        now = _now()
        row = self._finding_row(
            finding, finding.tenant, finding.model, finding.partition, finding.asset, now
        )
        key = {k: row[k] for k in ("tenant", "model", "partition", "asset", "signal", "column")}
        with self._begin_write(key="finding/" + "/".join(map(str, key.values()))) as conn:
            conn.execute(findings_table.delete().where(*_where(findings_table, **key)))
            conn.execute(findings_table.insert(), [row])

    def clear_findings(
        self, tenant: str, model: str, partition: str, *, asset: str, signal: str, column: str
    ) -> int:
        """Remove what `record_finding` stored under this exact key (a failure that a later
        run fixed). Returns the number of findings removed."""
        key = {
            "tenant": tenant,
            "model": model,
            "partition": _check_partition(partition),
            "asset": asset,
            "signal": signal,
            "column": column,
        }
        # plain equality, not `_where`: a None there would drop its filter and widen the delete
        clauses = [findings_table.c[name] == value for name, value in key.items()]
        with self._begin_write() as conn:
            return conn.execute(findings_table.delete().where(*clauses)).rowcount

    @staticmethod
    def _finding_row(
        f: Finding, tenant: str, model: str, partition: str, asset: str, now: dt.datetime
    ) -> dict[str, Any]:
        # A finding stored under another key than its own would escape the next re-run's delete.
        expected = (tenant, model, partition, asset)
        if (f.tenant, f.model, f.partition, f.asset) != expected:
            raise ValueError(
                f"finding {f.signal!r} on column {f.column!r} belongs to "
                f"{(f.tenant, f.model, f.partition, f.asset)}, not {expected}"
            )
        return {
            "tenant": f.tenant,
            "model": f.model,
            "partition": f.partition,
            "asset": f.asset,
            "signal": None if f.signal is None else str(f.signal),
            "column": f.column,
            "severity": Severity(f.severity).value,
            "value": _finite(f.value),
            "threshold": _finite(f.threshold),
            "message": f.message,
            "evidence": f.evidence_json(),
            "fingerprint": f.fingerprint,
            "created_at": now,
        }

    # -- reads -----------------------------------------------------------------------------------

    def metric_history(
        self,
        tenant: str | None = None,
        model: str | None = None,
        *,
        metric: str | Sequence[str] | None = None,
        column: str | None = None,
        asset: str | None = None,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
    ) -> pd.DataFrame:
        """Stored metrics as a DataFrame sorted by partition; NULL values come back as NaN.

        Columns: tenant, model, partition, asset, metric, column, value. `None` filters are
        not applied; `metric` may name several metrics (one query); `start`/`end` are
        inclusive dates.
        """
        t = metric_history_table
        several = metric is not None and not isinstance(metric, str)
        clauses = _where(
            t,
            start=start,
            end=end,
            tenant=tenant,
            model=model,
            metric=None if several else metric,
            column=column,
            asset=asset,
        )
        if several:
            clauses.append(t.c.metric.in_(list(metric)))
        query = sa.select(*(t.c[name] for name in METRIC_COLUMNS)).where(*clauses)
        with self._read() as conn:
            rows = conn.execute(query).all()
        # sorted as tuples: the key is unique and never NULL, and Python orders text by code
        # point as pandas does (`_sorted`), at a tenth of its cost on the few hundred rows of
        # a model's history (every daily signal reads some)
        rows.sort(key=_METRIC_ORDER)
        frame = pd.DataFrame([tuple(r) for r in rows], columns=METRIC_COLUMNS)
        frame["value"] = frame["value"].astype("float64")
        return frame

    def latest_partition(
        self,
        tenant: str | None = None,
        model: str | None = None,
        *,
        end: str | dt.date | None = None,
        asset: str | None = None,
    ) -> str | None:
        """The latest day (at most `end`) with any metric stored, or None when there is none."""
        t = metric_history_table
        clauses = _where(t, end=end, tenant=tenant, model=model, asset=asset)
        clauses.append(t.c.partition != REFERENCE_PARTITION)
        # dates as 'YYYY-MM-DD' sort the same under every collation
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.max(t.c.partition)).where(*clauses)).scalar()

    def findings(
        self,
        tenant: str | None = None,
        model: str | None = None,
        *,
        signal: str | None = None,
        min_severity: Severity | str | None = None,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
    ) -> pd.DataFrame:
        """Stored findings, sorted by partition, with `evidence` decoded to a dict.

        `min_severity="warning"` returns warnings and criticals.
        """
        t = findings_table
        clauses = _where(t, start=start, end=end, tenant=tenant, model=model, signal=signal)
        if min_severity is not None:
            floor = Severity(min_severity).rank
            clauses.append(t.c.severity.in_([s.value for s in Severity if s.rank >= floor]))
        with self._read() as conn:
            rows = conn.execute(sa.select(t).where(*clauses)).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=FINDING_COLUMNS)
        for name in ("value", "threshold"):
            frame[name] = frame[name].astype("float64")
        frame["evidence"] = [json.loads(e) for e in frame["evidence"]]
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return _sorted(frame, ["partition", "id"])

    # -- audit trail -----------------------------------------------------------------------------

    def record_action(
        self,
        actor: str,
        action: str,
        tenant: str,
        model: str,
        partition: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one action (who did what to which model) and return its id.

        The trail is append-only: there is deliberately no update or delete.
        """
        row = {
            "ts": _now(),
            "actor": actor,
            "action": action,
            "tenant": tenant,
            "model": model,
            "partition": partition,
            "details": _to_json(dict(details or {})),
        }
        with self._begin_write() as conn:
            result = conn.execute(audit_log_table.insert(), row)
            return int(result.inserted_primary_key[0])

    def actions(
        self, tenant: str | None = None, model: str | None = None, *, action: str | None = None
    ) -> pd.DataFrame:
        """The audit trail, oldest first, with `details` decoded to a dict."""
        t = audit_log_table
        query = sa.select(t).where(*_where(t, tenant=tenant, model=model, action=action))
        with self._read() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=ACTION_COLUMNS)
        frame["details"] = [json.loads(d) for d in frame["details"]]
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return _sorted(frame, ["id"])

    # -- alerts ----------------------------------------------------------------------------------

    def save_alert_states(
        self, tenant: str, model: str, as_of: str, states: Sequence[Mapping[str, Any]]
    ) -> int:
        """Replace one model's alert states with those evaluated as of `as_of`.

        When the model was already evaluated as of a later day nothing is written (evaluating
        an old day, a backfill, never rolls the state back). Otherwise active alerts no longer
        in `states` (a pending alert that did not persist) are dropped, resolved ones are kept
        as history, and every row of the model is marked as of `as_of`. Returns rows written.
        """
        _check_partition(as_of)
        now = _now()
        rows = []
        for st in states:
            row = {c.name: st.get(c.name) for c in alerts_table.columns}
            row.update(tenant=tenant, model=model, as_of=as_of, updated_at=now)
            row["value"], row["threshold"] = _finite(row["value"]), _finite(row["threshold"])
            row["severity"] = Severity(row["severity"]).value
            rows.append(row)
        t = alerts_table
        with self._begin_write(key=f"alerts/{tenant}/{model}") as conn:
            newer = conn.execute(
                sa.select(sa.func.count()).where(
                    *_where(t, tenant=tenant, model=model), t.c.as_of > as_of
                )
            ).scalar_one()
            if newer:  # the model was evaluated as of a later day: that state stands
                return 0
            mine = _where(t, tenant=tenant, model=model)
            # replace what was evaluated now and drop active alerts the rules no longer see (a
            # pending one that did not persist); resolved alerts stay as history
            fps = [r["fingerprint"] for r in rows]
            conn.execute(
                t.delete().where(
                    *mine, sa.or_(t.c.fingerprint.in_(fps), t.c.state.in_(["pending", "firing"]))
                )
            )
            if rows:
                conn.execute(t.insert(), rows)
            conn.execute(t.update().where(*mine).values(as_of=as_of))
        return len(rows)

    def alerts(
        self, tenant: str | None = None, model: str | None = None, *, state: str | None = None
    ) -> pd.DataFrame:
        """Alert states (one row per fingerprint), most severe and most recent first."""
        t = alerts_table
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t).where(*_where(t, tenant=tenant, model=model, state=state))
            ).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=ALERT_COLUMNS)
        for name in ("value", "threshold"):
            frame[name] = frame[name].astype("float64")
        for name in ("silenced", "inhibited"):
            frame[name] = frame[name].astype(bool)
        frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
        frame["_rank"] = [-Severity(s).rank for s in frame["severity"]]
        frame = _sorted(frame, ["_rank", "tenant", "model", "signal", "column"])
        return frame.drop(columns="_rank")

    def alert_events(
        self, tenant: str | None = None, model: str | None = None, *, fingerprint: str | None = None
    ) -> pd.DataFrame:
        """Alert events (firing, repeat, resolved), oldest first, `payload` decoded."""
        t = alert_events_table
        clauses = _where(t, tenant=tenant, model=model, fingerprint=fingerprint)
        with self._read() as conn:
            rows = conn.execute(sa.select(t).where(*clauses)).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=EVENT_COLUMNS)
        frame["payload"] = [json.loads(p) for p in frame["payload"]]
        return _sorted(frame, ["id"])

    def add_alert_events(self, events: Sequence[Mapping[str, Any]], routes_for: Any) -> list[int]:
        """Store new events (an `event_key` already stored is skipped) and one delivery per
        route that `routes_for(event)` names (pending; held when the event says `held`), in one
        transaction.
        Returns the ids of the events inserted now."""
        if not events:
            return []
        now = _now()
        e, d = alert_events_table, alert_deliveries_table
        keys = [ev["event_key"] for ev in events]
        for attempt in (1, 2):
            try:
                with self._begin_write() as conn:
                    have = {
                        k
                        for (k,) in conn.execute(
                            sa.select(e.c.event_key).where(e.c.event_key.in_(keys))
                        )
                    }
                    inserted: list[int] = []
                    for ev in events:
                        if ev["event_key"] in have:
                            continue
                        row = {c.name: ev.get(c.name) for c in e.columns if c.name != "id"}
                        row["payload"] = _to_json(dict(ev.get("payload") or {}))
                        row["created_at"] = now
                        event_id = int(conn.execute(e.insert(), row).inserted_primary_key[0])
                        inserted.append(event_id)
                        have.add(ev["event_key"])
                        deliveries = [
                            {
                                "event_id": event_id,
                                "route": route,
                                "tenant": ev["tenant"],
                                "model": ev["model"],
                                "status": "held" if ev.get("held") else "pending",
                                "attempts": 0,
                                "created_at": now,
                            }
                            for route in routes_for(ev)
                        ]
                        if deliveries:
                            conn.execute(d.insert(), deliveries)
                    return inserted
            except sa.exc.IntegrityError:
                # a concurrent evaluation stored the same event first: look again
                if attempt == 2:
                    raise
        return []

    def release_dead_claims(self) -> int:
        """Give back the deliveries claimed by a process known to be dead (`claim_token`
        names the claimer; one on this host that is gone will never finish): 'sending' ones
        become pending again, held ones unclaimed. Returns the number released.

        Claims of living processes, of other hosts and without a claimer are left to the
        `stale_after` of `claim_deliveries` and `claim_held`."""
        d = alert_deliveries_table
        query = (
            sa.select(d.c.claim)
            .where(d.c.status.in_(["sending", "held"]), d.c.claim.is_not(None))
            .distinct()
        )
        with self._read() as conn:
            claims = [c for (c,) in conn.execute(query)]
        dead = [c for c in claims if (p := claimer(c)) is not None and p.is_dead()]
        if not dead:
            return 0
        released = 0
        with self._begin_write() as conn:
            for status, values in (("sending", {"status": "pending"}), ("held", {})):
                released += conn.execute(
                    d.update()
                    .where(d.c.claim.in_(dead), d.c.status == status)
                    .values(claim=None, claimed_at=None, **values)
                ).rowcount
        return released

    def claim_deliveries(
        self,
        claim: str,
        *,
        stale_after: dt.timedelta = dt.timedelta(minutes=10),
        skip_routes: Iterable[str] = (),
        until_partition: str | None = None,
    ) -> pd.DataFrame:
        """Atomically take every pending delivery (and any left 'sending' by a run that died:
        at once when its claim names a dead process, see `release_dead_claims`, else after
        `stale_after`), except those of `skip_routes` and, with `until_partition`, those of
        later days (a replay delivering as of a past day), for sending under `claim`; returns
        them with their event.

        Two runs delivering at once therefore never send the same row twice."""
        self.release_dead_claims()
        now = _now()
        d, e = alert_deliveries_table, alert_events_table
        skip = sorted(set(skip_routes))
        until = (
            [d.c.event_id.in_(sa.select(e.c.id).where(e.c.partition <= until_partition))]
            if until_partition is not None
            else []
        )
        with self._begin_write() as conn:
            conn.execute(
                d.update()
                .where(
                    sa.or_(
                        d.c.status == "pending",
                        sa.and_(d.c.status == "sending", d.c.claimed_at < now - stale_after),
                    ),
                    *([d.c.route.not_in(skip)] if skip else []),
                    *until,
                )
                .values(status="sending", claim=claim, claimed_at=now)
            )
        query = (
            sa.select(
                d.c.id,
                d.c.route,
                d.c.attempts,
                e.c.id.label("event_id"),
                e.c.event_key,
                e.c.tenant,
                e.c.model,
                e.c.kind,
                e.c.severity,
                e.c.partition,
                e.c.payload,
            )
            .select_from(d.join(e, d.c.event_id == e.c.id))
            .where(d.c.claim == claim, d.c.status == "sending")
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        cols = ["id", "route", "attempts", "event_id", "event_key", "tenant", "model", "kind"]
        cols += ["severity", "partition", "payload"]
        frame = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        frame["payload"] = [json.loads(p) for p in frame["payload"]]
        return _sorted(frame, ["route", "tenant", "model", "event_id"])

    def claim_held(
        self,
        claim: str,
        *,
        stale_after: dt.timedelta = dt.timedelta(minutes=10),
        routes: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Atomically take the held deliveries no summary has told of yet (and any claimed by
        a run that died: at once when known dead, else after `stale_after`), of `routes` if
        given, with their event's tenant, model, kind, severity and partition; `finish_held`
        ends the claim."""
        self.release_dead_claims()
        now = _now()
        d, e = alert_deliveries_table, alert_events_table
        only = None if routes is None else sorted(set(routes))
        if only == []:
            return pd.DataFrame(
                columns=["id", "route", "tenant", "model", "kind", "severity", "partition"]
            )
        with self._begin_write() as conn:
            conn.execute(
                d.update()
                .where(
                    d.c.status == "held",
                    d.c.message_id.is_(None),
                    sa.or_(d.c.claim.is_(None), d.c.claimed_at < now - stale_after),
                    *([] if only is None else [d.c.route.in_(only)]),
                )
                .values(claim=claim, claimed_at=now)
            )
        cols = ["id", "route", "tenant", "model", "kind", "severity", "partition"]
        query = (
            sa.select(d.c.id, d.c.route, e.c.tenant, e.c.model, e.c.kind, e.c.severity)
            .add_columns(e.c.partition)
            .select_from(d.join(e, d.c.event_id == e.c.id))
            .where(d.c.claim == claim, d.c.status == "held")
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return _sorted(pd.DataFrame([tuple(r) for r in rows], columns=cols), ["route", "id"])

    def finish_held(
        self,
        ids: Sequence[int],
        claim: str,
        *,
        attempts: int,
        message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """End a `claim_held`: with `message_id` the summary that told of them was accepted
        (they stay held: each was never sent on its own), else the error is kept for later."""
        if not ids:
            return
        d = alert_deliveries_table
        values: dict[str, Any] = {
            "attempts": d.c.attempts + attempts,
            "claim": None,
            "last_error": None if message_id else (error or "failed")[:4000],
        }
        if message_id:
            values.update(message_id=message_id, sent_at=_now())
        with self._begin_write() as conn:
            conn.execute(
                d.update().where(d.c.id.in_(list(ids)), d.c.claim == claim).values(**values)
            )

    def finish_deliveries(
        self,
        ids: Sequence[int],
        claim: str,
        *,
        attempts: int,
        sent: bool,
        error: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """Mark claimed deliveries sent, or give them back as pending with the error."""
        if not ids:
            return
        d = alert_deliveries_table
        values: dict[str, Any] = {
            "status": "sent" if sent else "pending",
            "attempts": d.c.attempts + attempts,
            "claim": None,
            "last_error": None if sent else (error or "failed")[:4000],
        }
        if sent:
            values.update(sent_at=_now(), message_id=message_id)
        with self._begin_write() as conn:
            conn.execute(
                d.update().where(d.c.id.in_(list(ids)), d.c.claim == claim).values(**values)
            )

    def release_claim(self, ids: Sequence[int], claim: str) -> None:
        """Give claimed deliveries back untouched (not attempted: no time left, or their route
        opened meanwhile): pending again, or held as they were, attempts and error unchanged."""
        if not ids:
            return
        d = alert_deliveries_table
        status = sa.case((d.c.status == "sending", "pending"), else_=d.c.status)
        with self._begin_write() as conn:
            conn.execute(
                d.update()
                .where(d.c.id.in_(list(ids)), d.c.claim == claim)
                .values(status=status, claim=None)
            )

    def outbox_waiting(self) -> pd.DataFrame:
        """Per route: `pending` deliveries (with any claimed by a delivery in progress) and
        `held_untold`, held ones no summary has told of yet. Routes with neither are absent."""
        d = alert_deliveries_table
        waiting = sa.or_(d.c.status.in_(["pending", "sending"]), d.c.message_id.is_(None))
        query = (
            sa.select(
                d.c.route,
                sa.func.sum(sa.case((d.c.status.in_(["pending", "sending"]), 1), else_=0)),
                sa.func.sum(sa.case((d.c.status == "held", 1), else_=0)),
            )
            .where(d.c.status != "sent", waiting)
            .group_by(d.c.route)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(
            [(r, int(p or 0), int(h or 0)) for r, p, h in rows],
            columns=["route", "pending", "held_untold"],
        )
        return _sorted(frame, ["route"])

    # -- alert routes: circuit breaker and summary requests ------------------------------------

    def route_states(self) -> pd.DataFrame:
        """Every route's stored delivery state (a route never failed nor asked for a summary
        may have no row): failures, open_until, cooldown_seconds, last_error, last_failure_at,
        last_success_at, summary_requested_at, updated_at."""
        with self._read() as conn:
            rows = conn.execute(sa.select(alert_routes_table)).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=ROUTE_COLUMNS)
        return _sorted(frame, ["route"])

    def save_route_state(
        self,
        route: str,
        *,
        failures: int,
        open_until: dt.datetime | None,
        cooldown_seconds: float | None,
        last_error: str | None,
        last_failure_at: dt.datetime | None,
        last_success_at: dt.datetime | None,
    ) -> None:
        """Store a route's circuit-breaker state (its summary request is left as it is)."""
        values = {
            "failures": int(failures),
            "open_until": open_until,
            "cooldown_seconds": cooldown_seconds,
            "last_error": None if last_error is None else last_error[:4000],
            "last_failure_at": last_failure_at,
            "last_success_at": last_success_at,
        }
        self._upsert_routes([route], values)

    def request_held_summaries(self, routes: Iterable[str], at: dt.datetime | None = None) -> None:
        """Ask the next delivery to send each of `routes` its summary of the held-back
        notifications no summary has told of yet."""
        self._upsert_routes(sorted(set(routes)), {"summary_requested_at": at or _now()})

    def clear_held_summary_request(self, route: str, requested_at: dt.datetime) -> None:
        """The summary asked for at `requested_at` went out: clear the request, unless a newer
        one came in meanwhile."""
        r = alert_routes_table
        with self._begin_write() as conn:
            conn.execute(
                r.update()
                .where(r.c.route == route, r.c.summary_requested_at <= requested_at)
                .values(summary_requested_at=None, updated_at=_now())
            )

    def _upsert_routes(self, routes: Sequence[str], values: Mapping[str, Any]) -> None:
        if not routes:
            return
        r = alert_routes_table
        now = _now()
        for attempt in (1, 2):
            try:
                with self._begin_write() as conn:
                    for route in routes:
                        changed = conn.execute(
                            r.update().where(r.c.route == route).values(**values, updated_at=now)
                        ).rowcount
                        if not changed:
                            conn.execute(
                                r.insert(),
                                {"failures": 0, **values, "route": route, "updated_at": now},
                            )
                return
            except sa.exc.IntegrityError:
                # another process inserted the same route first: update it now
                if attempt == 2:
                    raise

    def deliveries(
        self,
        tenant: str | None = None,
        model: str | None = None,
        *,
        route: str | None = None,
        status: str | None = None,
    ) -> pd.DataFrame:
        """The outbox with each delivery's event: id, route, tenant, model, fingerprint, event
        (kind), severity, partition, status, attempts, last_error, created_at, sent_at."""
        d, e = alert_deliveries_table, alert_events_table
        clauses = _where(d, tenant=tenant, model=model, route=route, status=status)
        query = (
            sa.select(
                d.c.id,
                d.c.route,
                d.c.tenant,
                d.c.model,
                e.c.fingerprint,
                e.c.kind.label("event"),
                e.c.severity,
                e.c.partition,
                d.c.status,
                d.c.attempts,
                d.c.last_error,
                d.c.created_at,
                d.c.sent_at,
                d.c.message_id,
                e.c.event_key,
            )
            .select_from(d.join(e, d.c.event_id == e.c.id))
            .where(*clauses)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=DELIVERY_COLUMNS)
        for name in ("created_at", "sent_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return _sorted(frame, ["id"])

    def change_marker(self) -> tuple[Any, ...]:
        """A value that changes whenever anything stored changes: per table its row count and
        latest write time (every write stamps one: created, updated, claimed or sent), and the
        outbox's attempts. One query; a reader caching what it built from the store compares
        it to know when to rebuild."""
        t = {tb.name: tb for tb in TABLES}
        d = alert_deliveries_table
        parts: list[Any] = []
        for name, stamp in (
            ("profiles", "created_at"),
            ("metric_history", "created_at"),
            ("findings", "created_at"),
            ("audit_log", "ts"),
            ("alerts", "updated_at"),
            ("alert_events", "created_at"),
            ("silences", "created_at"),
            ("acknowledgements", "created_at"),
        ):
            table = t[name]
            parts += [
                sa.select(sa.func.count()).select_from(table).scalar_subquery(),
                sa.select(sa.func.max(table.c[stamp])).scalar_subquery(),
            ]
        parts += [
            sa.select(sa.func.max(t["silences"].c.expired_at)).scalar_subquery(),
            sa.select(sa.func.max(alerts_table.c.as_of)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(d).scalar_subquery(),
            sa.select(sa.func.max(d.c.claimed_at)).scalar_subquery(),
            sa.select(sa.func.max(d.c.sent_at)).scalar_subquery(),
            sa.select(sa.func.sum(d.c.attempts)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(mlflow_outbox_table).scalar_subquery(),
            sa.select(sa.func.max(mlflow_outbox_table.c.updated_at)).scalar_subquery(),
        ]
        with self._read() as conn:
            return tuple(conn.execute(sa.select(*parts)).one())

    # -- MLflow: loggings queued while it is unreachable, the registry as last read ---------

    def queue_tracking(
        self,
        model_key: str,
        asset: str,
        partition: str,
        *,
        lock_key: str,
        token: str,
        payload: Mapping[str, Any],
        error: str,
    ) -> str | None:
        """Queue the MLflow logging of (model_key, asset, partition), replacing one queued
        before (only the latest attempt is logged). Returns the replaced row's token (its
        files can go), else None."""
        o = mlflow_outbox_table
        now = _now()
        key = (o.c.model_key == model_key, o.c.asset == asset, o.c.partition == partition)
        with self._begin_write(key=f"mlflow_outbox:{model_key}:{asset}:{partition}") as conn:
            old = conn.execute(sa.select(o.c.token, o.c.attempts).where(*key)).first()
            conn.execute(o.delete().where(*key))
            conn.execute(
                o.insert(),
                {
                    "model_key": model_key,
                    "asset": asset,
                    "partition": partition,
                    "lock_key": lock_key,
                    "token": token,
                    "payload": json.dumps(payload, sort_keys=True),
                    "queued_at": now,
                    "attempts": 1 + (old.attempts if old else 0),
                    "last_error": error,
                    "updated_at": now,
                },
            )
        return old.token if old else None

    def queued_tracking(
        self, model_key: str | None = None, asset: str | None = None, partition: str | None = None
    ) -> list[dict[str, Any]]:
        """The queued MLflow loggings (optionally of one key), oldest first: id, model_key,
        asset, partition, lock_key, token, payload (a dict), queued_at, attempts, last_error."""
        o = mlflow_outbox_table
        wanted = {"model_key": model_key, "asset": asset, "partition": partition}
        clauses = [o.c[name] == value for name, value in wanted.items() if value is not None]
        with self._read() as conn:
            rows = conn.execute(sa.select(o).where(*clauses).order_by(o.c.id)).mappings().all()
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]

    def tracking_backlog(self) -> tuple[int, dt.datetime | None, str | None]:
        """How many MLflow loggings wait, since when, and the latest error."""
        o = mlflow_outbox_table
        with self._read() as conn:
            n, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(o.c.queued_at))).one()
            last = conn.execute(
                sa.select(o.c.last_error).order_by(o.c.updated_at.desc()).limit(1)
            ).scalar()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        return int(n), oldest, last

    def tracking_logged(self, row_id: int, token: str) -> bool:
        """Remove a queued logging once MLflow has it, unless a newer attempt replaced it
        meanwhile (another token). Returns whether it was removed."""
        o = mlflow_outbox_table
        with self._begin_write() as conn:
            return bool(
                conn.execute(o.delete().where(o.c.id == row_id, o.c.token == token)).rowcount
            )

    def tracking_failed(self, row_id: int, error: str) -> None:
        o = mlflow_outbox_table
        with self._begin_write() as conn:
            conn.execute(
                o.update()
                .where(o.c.id == row_id)
                .values(attempts=o.c.attempts + 1, last_error=error, updated_at=_now())
            )

    def drop_queued_tracking(self, model_key: str, asset: str, partition: str) -> list[str]:
        """Forget what was queued for a key MLflow now has from a newer attempt; returns the
        tokens removed (their files can go). One read when nothing is queued."""
        o = mlflow_outbox_table
        key = (o.c.model_key == model_key, o.c.asset == asset, o.c.partition == partition)
        with self._read() as conn:
            if conn.execute(sa.select(o.c.id).where(*key).limit(1)).first() is None:
                return []
        with self._begin_write() as conn:
            tokens = [t for (t,) in conn.execute(sa.select(o.c.token).where(*key))]
            conn.execute(o.delete().where(*key))
        return tokens

    def save_registry_snapshot(
        self, name: str, aliases: Mapping[str, str], canary_start: str | None
    ) -> None:
        """Keep the registered model's aliases as just read (written only when they changed)."""
        r = registry_snapshots_table
        text = json.dumps(dict(aliases), sort_keys=True)
        with self._read() as conn:
            have = conn.execute(
                sa.select(r.c.aliases, r.c.canary_start).where(r.c.name == name)
            ).first()
        if have is not None and (have.aliases, have.canary_start) == (text, canary_start):
            return
        row = {"aliases": text, "canary_start": canary_start, "read_at": _now()}
        with self._begin_write(key=f"registry_snapshots:{name}") as conn:
            if not conn.execute(r.update().where(r.c.name == name).values(**row)).rowcount:
                conn.execute(r.insert(), {"name": name, **row})

    def registry_snapshot(self, name: str) -> tuple[dict[str, str], str | None, dt.datetime] | None:
        """The aliases last read of `name`, its canary's first day and when they were read."""
        r = registry_snapshots_table
        with self._read() as conn:
            row = conn.execute(sa.select(r).where(r.c.name == name)).first()
        if row is None:
            return None
        return json.loads(row.aliases), row.canary_start, row.read_at

    def models(self, tenant: str | None = None) -> list[tuple[str, str]]:
        """Every (tenant, model) with anything stored (of `tenant` only, if given), sorted."""
        query = sa.union(
            *(
                sa.select(t.c.tenant, t.c.model).where(*_where(t, tenant=tenant))
                for t in MODEL_TABLES
            )
        )
        with self._read() as conn:
            return sorted((tenant, model) for tenant, model in conn.execute(query))


_METRIC_KEY = ("partition", "tenant", "model", "asset", "metric", "column")
_METRIC_ORDER = itemgetter(*(METRIC_COLUMNS.index(c) for c in _METRIC_KEY))
"""metric_history's sort key of a row, by position in METRIC_COLUMNS."""


def _sorted(frame: pd.DataFrame, by: Iterable[str]) -> pd.DataFrame:
    """Sort in pandas, not SQL: the database collation may order text differently per backend."""
    return frame.sort_values(list(by), kind="stable").reset_index(drop=True)
