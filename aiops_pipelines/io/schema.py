"""The monitoring store's tables, and the engine setup that makes SQLite safe to share.

SQLAlchemy Core keeps one schema for SQLite (the local default, a single file) and PostgreSQL
(shared deployments). JSON payloads are stored as Text so both backends, and any tool reading the
tables directly, see the same thing. Timestamps are UTC.

SQLite runs in WAL mode with a busy timeout, and write transactions take the write lock up front
(`BEGIN IMMEDIATE`): a Dagster run writing and a CLI reading at the same moment then neither fail
with "database is locked" nor see a half-written partition.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aiops_pipelines.core.findings import Severity

SQLITE_BUSY_TIMEOUT_MS = 30_000


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC when read back.

    SQLite keeps no zone and PostgreSQL returns the session's zone; normalising here means
    callers compare and display the same instant on both backends.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timestamps in UTC")
        value = value.astimezone(dt.UTC)
        # SQLite stores the text as given; drop the zone so the text sorts chronologically.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _id_type() -> sa.types.TypeEngine[int]:
    """BIGINT ids on PostgreSQL; INTEGER on SQLite, where only that type aliases the rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _key(name: str) -> sa.Column[str]:
    # "partition" and "column" are SQL keywords on some backends: always quote them.
    return sa.Column(name, sa.String(), nullable=False, quote=name in ("partition", "column"))


metadata = sa.MetaData()

profiles_table = sa.Table(
    "profiles",
    metadata,
    _key("tenant"),
    _key("model"),
    _key("kind"),
    _key("partition"),
    sa.Column("n_rows", sa.BigInteger(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant", "model", "kind", "partition", name="uq_profiles_key"),
    sa.CheckConstraint("kind IN ('reference', 'daily')", name="ck_profiles_kind"),
)

metric_history_table = sa.Table(
    "metric_history",
    metadata,
    _key("tenant"),
    _key("model"),
    _key("partition"),
    _key("asset"),
    _key("metric"),
    _key("column"),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint(
        "tenant", "model", "partition", "asset", "metric", "column", name="uq_metric_history_key"
    ),
    # The dashboard/trend read: one model's metric over a partition range.
    sa.Index("ix_metric_history_model_metric_partition", "tenant", "model", "metric", "partition"),
)

findings_table = sa.Table(
    "findings",
    metadata,
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    _key("tenant"),
    _key("model"),
    _key("partition"),
    _key("asset"),
    _key("signal"),
    _key("column"),
    sa.Column("severity", sa.String(), nullable=False),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("threshold", sa.Float(), nullable=True),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("evidence", sa.Text(), nullable=False),
    sa.Column("fingerprint", sa.String(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint(
        "tenant", "model", "partition", "asset", "signal", "column", name="uq_findings_key"
    ),
    sa.CheckConstraint(
        "severity IN (" + ", ".join(f"'{s.value}'" for s in Severity) + ")",
        name="ck_findings_severity",
    ),
    # Alerting looks up "the same problem" across days by fingerprint.
    sa.Index("ix_findings_fingerprint", "fingerprint"),
)

audit_log_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("action", sa.String(), nullable=False),
    _key("tenant"),
    _key("model"),
    sa.Column("partition", sa.String(), nullable=True, quote=True),
    sa.Column("details", sa.Text(), nullable=False),
    sa.Index("ix_audit_log_model_ts", "tenant", "model", "ts"),
)

alerts_table = sa.Table(
    "alerts",
    metadata,
    # The current state of each alert (one per fingerprint), as of the latest evaluated day.
    sa.Column("fingerprint", sa.String(), primary_key=True),
    _key("tenant"),
    _key("model"),
    _key("signal"),
    _key("column"),
    sa.Column("severity", sa.String(), nullable=False),
    sa.Column("state", sa.String(), nullable=False),
    sa.Column("first_seen", sa.String(), nullable=False),
    sa.Column("last_seen", sa.String(), nullable=False),
    sa.Column("fired_on", sa.String(), nullable=True),
    sa.Column("resolved_on", sa.String(), nullable=True),
    sa.Column("silenced", sa.Boolean(), nullable=False),
    sa.Column("inhibited", sa.Boolean(), nullable=False),
    sa.Column("notified", sa.Integer(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("threshold", sa.Float(), nullable=True),
    sa.Column("as_of", sa.String(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("state IN ('pending', 'firing', 'resolved')", name="ck_alerts_state"),
    sa.Index("ix_alerts_model", "tenant", "model"),
)

alert_events_table = sa.Table(
    "alert_events",
    metadata,
    # What was (to be) notified: an alert firing, repeating or resolving on a day. Unique, so
    # evaluating a day twice never notifies twice.
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("event_key", sa.String(), nullable=False, unique=True),
    sa.Column("fingerprint", sa.String(), nullable=False),
    _key("tenant"),
    _key("model"),
    _key("signal"),
    _key("column"),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("severity", sa.String(), nullable=False),
    sa.Column("partition", sa.String(), nullable=False, quote=True),
    sa.Column("episode_start", sa.String(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_alert_events_fingerprint", "fingerprint", "partition"),
)

DELIVERY_STATUSES = ("pending", "sending", "sent", "held")
DELIVERY_STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in DELIVERY_STATUSES))

alert_deliveries_table = sa.Table(
    "alert_deliveries",
    metadata,
    # The outbox: one row per (event, route), pending until the route accepted it; "held"
    # for an event too old to send (a backfill), its `message_id` the summary that told of it.
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.BigInteger(), nullable=False),
    sa.Column("route", sa.String(), nullable=False),
    _key("tenant"),
    _key("model"),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("claim", sa.String(), nullable=True),
    sa.Column("claimed_at", UTCDateTime(), nullable=True),
    sa.Column("message_id", sa.String(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("event_id", "route", name="uq_alert_deliveries_event_route"),
    sa.CheckConstraint(DELIVERY_STATUS_CHECK, name="ck_alert_deliveries_status"),
    sa.Index("ix_alert_deliveries_status", "status", "route"),
)

alert_routes_table = sa.Table(
    "alert_routes",
    metadata,
    # Each route's delivery state, shared by every run and process delivering: its circuit
    # breaker (consecutive failed messages; open until when, with the cool-down that doubles
    # while trials fail) and whether a summary of held-back notifications is due.
    sa.Column("route", sa.String(), primary_key=True),
    sa.Column("failures", sa.Integer(), nullable=False),
    sa.Column("open_until", UTCDateTime(), nullable=True),
    sa.Column("cooldown_seconds", sa.Float(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("last_failure_at", UTCDateTime(), nullable=True),
    sa.Column("last_success_at", UTCDateTime(), nullable=True),
    sa.Column("summary_requested_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

mlflow_outbox_table = sa.Table(
    "mlflow_outbox",
    metadata,
    # MLflow loggings that could not be made (MLflow unreachable): one row per (run key,
    # asset, partition), the latest attempt's metrics, params, tags and artifact files (kept
    # under the artifacts folder), replayed when MLflow answers again.
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("model_key", sa.String(), nullable=False),
    _key("asset"),
    _key("partition"),
    sa.Column("lock_key", sa.String(), nullable=False),
    sa.Column("token", sa.String(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("queued_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("model_key", "asset", "partition", name="uq_mlflow_outbox_key"),
)

registry_snapshots_table = sa.Table(
    "registry_snapshots",
    metadata,
    # The MLflow registry's aliases of a registered model as last read (and its canary's
    # first day): what the canary is judged with while the registry cannot be reached.
    sa.Column("name", sa.String(), primary_key=True),
    sa.Column("aliases", sa.Text(), nullable=False),
    sa.Column("canary_start", sa.String(), nullable=True),
    sa.Column("read_at", UTCDateTime(), nullable=False),
)

api_tokens_table = sa.Table(
    "api_tokens",
    metadata,
    # The console's credentials: a token is shown once when created; only its SHA-256 is kept.
    # `tenant` is the one tenant it reads ('*' for an admin, who reads every tenant).
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("token_hash", sa.String(), nullable=False, unique=True),
    sa.Column("prefix", sa.String(), nullable=False),
    sa.Column("tenant", sa.String(), nullable=False),
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("created_by", sa.String(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="ck_api_tokens_role"),
)

access_log_table = sa.Table(
    "access_log",
    metadata,
    # The data-access audit: every console request (reads, mutations, refused ones), who made
    # it with which tenant scope, what it asked for and what it got.
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Column("token_id", sa.BigInteger(), nullable=True),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("role", sa.String(), nullable=True),
    sa.Column("tenant", sa.String(), nullable=True),
    sa.Column("method", sa.String(), nullable=False),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("query", sa.Text(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("target", sa.Text(), nullable=True),
    sa.Index("ix_access_log_ts", "ts"),
    sa.Index("ix_access_log_tenant", "tenant", "ts"),
)

silences_table = sa.Table(
    "silences",
    metadata,
    # Silences set from the console: one alert (its fingerprint) muted until `ends_at`; the
    # alert rules honour them next to the config's. `expired_at` when lifted early.
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(), nullable=False),
    _key("tenant"),
    _key("model"),
    _key("signal"),
    _key("column"),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expired_at", UTCDateTime(), nullable=True),
    sa.Column("expired_by", sa.String(), nullable=True),
    sa.Index("ix_silences_model", "tenant", "model"),
)

acknowledgements_table = sa.Table(
    "acknowledgements",
    metadata,
    # "Someone is on it": an alert's episode (fingerprint, first day) acknowledged from the
    # console. The rules then send no repeat of that episode; an escalation still goes out.
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(), nullable=False),
    _key("tenant"),
    _key("model"),
    sa.Column("episode_start", sa.String(), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("fingerprint", "episode_start", name="uq_acknowledgements_episode"),
    sa.Index("ix_acknowledgements_model", "tenant", "model"),
)

TABLES = (
    profiles_table,
    metric_history_table,
    findings_table,
    audit_log_table,
    alerts_table,
    alert_events_table,
    alert_deliveries_table,
    alert_routes_table,
    mlflow_outbox_table,
    registry_snapshots_table,
    api_tokens_table,
    access_log_table,
    silences_table,
    acknowledgements_table,
)
#: What the console writes about the results (who may read them, who read them, who muted an
#: alert): not results of a model.
CONSOLE_TABLES = (api_tokens_table, access_log_table, silences_table, acknowledgements_table)
#: The tables holding rows of a tenant's model (the others are shared, e.g. route states).
MODEL_TABLES = tuple(
    t for t in TABLES if "tenant" in t.c and "model" in t.c and t not in CONSOLE_TABLES
)

METRIC_COLUMNS = ["tenant", "model", "partition", "asset", "metric", "column", "value"]
FINDING_COLUMNS = [c.name for c in findings_table.columns]
ACTION_COLUMNS = [c.name for c in audit_log_table.columns]
ALERT_COLUMNS = [c.name for c in alerts_table.columns]
EVENT_COLUMNS = [c.name for c in alert_events_table.columns]
ROUTE_COLUMNS = [c.name for c in alert_routes_table.columns]
TOKEN_COLUMNS = [c.name for c in api_tokens_table.columns if c.name != "token_hash"]
ACCESS_COLUMNS = [c.name for c in access_log_table.columns]
SILENCE_COLUMNS = [c.name for c in silences_table.columns]
ACK_COLUMNS = [c.name for c in acknowledgements_table.columns]

DELIVERY_COLUMNS = [
    "id",
    "route",
    "tenant",
    "model",
    "fingerprint",
    "event",
    "severity",
    "partition",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "sent_at",
    "message_id",
    "event_key",
]


def outdated(conn: Connection) -> list[str]:
    """What a store created by an older version lacks (empty when it is current). A table
    added since is not listed: `create_all` adds missing tables."""
    checks = sa.inspect(conn).get_check_constraints(alert_deliveries_table.name)
    status = [c for c in checks if c.get("name") == "ck_alert_deliveries_status"]
    if status and "'held'" not in str(status[0].get("sqltext", "")):
        return ["alert_deliveries.status: the 'held' state (notifications held back)"]
    return []


def upgrade(conn: Connection) -> list[str]:
    """Bring an older store up to date in the caller's write transaction; rows are kept
    (same ids). Returns what was changed."""
    changed = outdated(conn)
    if not changed:
        return []
    t = alert_deliveries_table
    if conn.dialect.name == "sqlite":
        # SQLite cannot alter a constraint: rebuild the table around the same rows
        conn.exec_driver_sql(f"ALTER TABLE {t.name} RENAME TO {t.name}_old")
        for index in t.indexes:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
        t.create(conn)
        cols = ", ".join(c.name for c in t.columns)
        conn.exec_driver_sql(f"INSERT INTO {t.name} ({cols}) SELECT {cols} FROM {t.name}_old")
        conn.exec_driver_sql(f"DROP TABLE {t.name}_old")
    else:
        conn.exec_driver_sql(f"ALTER TABLE {t.name} DROP CONSTRAINT ck_alert_deliveries_status")
        conn.exec_driver_sql(
            f"ALTER TABLE {t.name} ADD CONSTRAINT ck_alert_deliveries_status "
            f"CHECK ({DELIVERY_STATUS_CHECK})"
        )
    return changed


def _wal(cursor: Any) -> None:
    """Put the database in WAL mode (kept in the file: once set, every later connection finds
    it). Switching takes the file to itself and fails at once, busy timeout or not, while
    another connection holds it, as when several processes open a new store together: retried
    until the busy timeout has passed."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def prepare_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and explicit transaction control."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database
    if in_memory:
        # Every connection to ":memory:" is a new, empty database: share one connection.
        engine = sa.create_engine(
            parsed, poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        if not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions start (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            _wal(cursor)
            # WAL is crash-safe with NORMAL; FULL would fsync on every commit for no gain here.
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock at BEGIN, where the busy timeout applies; a deferred
        # transaction upgrading from read to write can fail at once with SQLITE_BUSY.
        write = conn.get_execution_options().get("aiops_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
