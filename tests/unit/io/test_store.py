"""The monitoring store on SQLite and PostgreSQL: re-runs replace, failures roll back, tenants
stay apart.

Every test runs on both backends. The PostgreSQL cases need `AIOPS_TEST_POSTGRES_URL` (e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/test) and skip without it; each one gets a fresh
schema, dropped afterwards, so tests never see each other's rows and can run repeatedly.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.findings import Finding, Severity, Signal, fingerprint
from aiops_pipelines.io.schema import findings_table, metric_history_table
from aiops_pipelines.io.store import MonitoringStore

T, M, ASSET = "acme", "churn", "drift_report"

# `store`: an open store on each backend (tests/conftest.py)


def finding(
    partition: str = "2024-03-01",
    *,
    tenant: str = T,
    model: str = M,
    signal: str = Signal.FEATURE_DRIFT,
    column: str = "age",
    severity: Severity = Severity.WARNING,
    value: float = 0.2,
    asset: str = ASSET,
) -> Finding:
    return Finding(
        tenant=tenant,
        model=model,
        partition=partition,
        asset=asset,
        signal=signal,
        severity=severity,
        value=value,
        threshold=0.1,
        column=column,
        message=f"{column} drifted",
        evidence={"p_value": 0.001, "n_ref": 1000, "bins": [1, 2, float("nan")]},
    )


def write_day(
    store: MonitoringStore, partition: str, scale: float = 1.0, *, tenant: str = T
) -> None:
    """One drift_report run for a day: two metrics, one finding, and the daily profile."""
    store.replace_partition(
        tenant,
        M,
        partition,
        ASSET,
        metrics={("drift_share", ""): 0.25 * scale, ("wasserstein_normed", "age"): 0.2 * scale},
        findings=[finding(partition, tenant=tenant, value=0.2 * scale)],
        profile=("daily", {"columns": {"age": {"mean": 40.0 * scale}}}, int(100 * scale)),
    )


def raw_count(store: MonitoringStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_rerun_replaces_partition_never_duplicates(store: MonitoringStore) -> None:
    write_day(store, "2024-03-01", scale=1.0)
    write_day(store, "2024-03-01", scale=2.0)

    history = store.metric_history(T, M)
    assert len(history) == 2 == raw_count(store, metric_history_table)
    assert dict(zip(history["metric"], history["value"], strict=True)) == {
        "drift_share": 0.5,
        "wasserstein_normed": 0.4,
    }
    found = store.findings(T, M)
    assert len(found) == 1 == raw_count(store, findings_table)
    assert found.loc[0, "value"] == pytest.approx(0.4)
    assert store.load_profile(T, M, "daily", "2024-03-01") == {"columns": {"age": {"mean": 80.0}}}
    assert list(store.load_profiles(T, M, "daily")) == ["2024-03-01"]

    # A re-run that finds nothing clears the old findings instead of keeping them.
    store.replace_partition(
        T, M, "2024-03-01", ASSET, metrics={("drift_share", ""): 0.0}, findings=[]
    )
    assert store.findings(T, M).empty
    assert store.metric_history(T, M)["metric"].tolist() == ["drift_share"]


def test_writers_replacing_the_same_rows_at_once_all_succeed(store: MonitoringStore) -> None:
    """Two runs storing the same partition, failure finding and alert states at the same time
    (a range run twice at once): each delete-then-insert waits for the other's, none fails on
    a unique key, and one copy of the rows is left."""
    errors: list[BaseException] = []
    alert = {
        "fingerprint": "fp1",
        "signal": "feature_drift",
        "column": "age",
        "severity": "warning",
        "state": "firing",
        "first_seen": "2024-03-01",
        "last_seen": "2024-03-01",
        "silenced": False,
        "inhibited": False,
        "notified": 1,
        "message": "age drifted",
    }

    def writer(scale: float) -> None:
        try:
            with MonitoringStore(store.url) as mine:
                for _ in range(15):
                    write_day(mine, "2024-03-01", scale)
                    mine.record_finding(finding(asset="pipeline", signal="pipeline_failure"))
                    mine.save_alert_states(T, M, "2024-03-01", [alert])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1.0, 2.0, 3.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.metric_history(T, M)) == 2
    assert len(store.findings(T, M)) == 2
    assert len(store.alerts(T, M)) == 1


def test_other_partitions_and_assets_untouched(store: MonitoringStore) -> None:
    write_day(store, "2024-03-01")
    write_day(store, "2024-03-02")
    store.replace_partition(
        T, M, "2024-03-02", "feature_profile", metrics={("null_rate", "age"): 0.01}, findings=[]
    )

    store.replace_partition(T, M, "2024-03-02", ASSET, metrics={}, findings=[])

    history = store.metric_history(T, M)
    assert set(zip(history["partition"], history["asset"], strict=True)) == {
        ("2024-03-01", ASSET),
        ("2024-03-02", "feature_profile"),
    }
    assert store.findings(T, M)["partition"].tolist() == ["2024-03-01"]
    # No profile was passed, so the day's profile stays.
    assert store.load_profile(T, M, "daily", "2024-03-02") is not None


class _InjectedFailure(RuntimeError):
    pass


@pytest.mark.parametrize("failure", ["not_null_violation", "duplicate_finding", "profile_insert"])
def test_failure_mid_way_rolls_back_and_keeps_old_rows(
    store: MonitoringStore, failure: str
) -> None:
    write_day(store, "2024-03-01", scale=1.0)
    before = (
        store.metric_history(T, M),
        store.findings(T, M).drop(columns="created_at"),
        store.load_profile(T, M, "daily", "2024-03-01"),
    )

    findings = [finding("2024-03-01", column="income", value=9.0)]
    expected: type[Exception] = sa.exc.IntegrityError
    if failure == "not_null_violation":
        findings.append(finding("2024-03-01", signal=None))  # type: ignore[arg-type]
    elif failure == "duplicate_finding":
        findings.append(finding("2024-03-01", column="income", value=8.0))
    else:
        # The profile is the last insert: by then the deletes and the other inserts have run.
        def boom(conn, cursor, statement, parameters, context, executemany) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO PROFILES"):
                raise _InjectedFailure("disk full")

        sa.event.listen(store.engine, "before_cursor_execute", boom)
        expected = _InjectedFailure

    with pytest.raises(expected):
        store.replace_partition(
            T,
            M,
            "2024-03-01",
            ASSET,
            metrics={("drift_share", ""): 0.99, ("new_metric", ""): 1.0},
            findings=findings,
            profile=("daily", {"columns": {}}, 1),
        )
    if failure == "profile_insert":
        sa.event.remove(store.engine, "before_cursor_execute", boom)

    after = (
        store.metric_history(T, M),
        store.findings(T, M).drop(columns="created_at"),
        store.load_profile(T, M, "daily", "2024-03-01"),
    )
    pd.testing.assert_frame_equal(after[0], before[0])
    pd.testing.assert_frame_equal(after[1], before[1])
    assert after[2] == before[2]
    # The store is still usable after the failed transaction.
    write_day(store, "2024-03-01", scale=3.0)
    assert store.findings(T, M).loc[0, "value"] == pytest.approx(0.6)


def test_invalid_input_rejected_before_any_write(store: MonitoringStore) -> None:
    write_day(store, "2024-03-01")
    with pytest.raises(ValueError, match="belongs to"):
        store.replace_partition(
            T, M, "2024-03-01", ASSET, metrics={}, findings=[finding("2024-03-02")]
        )
    with pytest.raises(ValueError, match="kind"):
        store.replace_partition(
            T, M, "2024-03-01", ASSET, metrics={}, findings=[], profile=("weekly", {}, 1)
        )
    with pytest.raises(ValueError, match="partition"):
        store.replace_partition(T, M, "2024-3-1", ASSET, metrics={}, findings=[])
    assert len(store.metric_history(T, M)) == 2
    assert len(store.findings(T, M)) == 1


def test_non_finite_values_stored_as_null_read_as_nan(store: MonitoringStore) -> None:
    store.replace_partition(
        T,
        M,
        "2024-03-01",
        ASSET,
        metrics={("psi", "a"): float("nan"), ("psi", "b"): float("inf"), ("psi", "c"): 0.5},
        findings=[finding("2024-03-01", value=float("nan"))],
    )
    with store.engine.connect() as conn:
        t = metric_history_table
        raw = dict(conn.execute(sa.select(t.c.column, t.c.value)).all())
        raw_finding = conn.execute(sa.select(findings_table.c.value)).scalar_one()
    assert raw == {"a": None, "b": None, "c": 0.5}
    assert raw_finding is None

    history = store.metric_history(T, M, metric="psi")
    assert history["value"].dtype == "float64"
    values = dict(zip(history["column"], history["value"], strict=True))
    assert math.isnan(values["a"]) and math.isnan(values["b"]) and values["c"] == 0.5
    found = store.findings(T, M)
    assert math.isnan(found.loc[0, "value"])
    # Evidence NaN becomes JSON null, never a non-standard NaN token.
    assert found.loc[0, "evidence"] == {"p_value": 0.001, "n_ref": 1000, "bins": [1, 2, None]}


def test_profile_round_trip(store: MonitoringStore) -> None:
    ref = {
        "n_rows": 1000,
        "columns": {
            "age": {"kind": "numeric", "quantiles": [18.0, 40.5, 90.0], "null_rate": 0.0},
            "plan": {"kind": "categorical", "counts": {"basic": 600, "pro": 400}},
        },
        "schema_version": 1,
        "note": "ünïcode ok",
    }
    assert store.load_profile(T, M, "reference", "reference") is None
    store.save_profile(T, M, "reference", "reference", ref, 1000)
    assert store.load_profile(T, M, "reference", "reference") == ref

    store.save_profile(T, M, "reference", "reference", {"n_rows": 5}, 5)  # upsert replaces
    assert store.load_profile(T, M, "reference", "reference") == {"n_rows": 5}
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT n_rows FROM profiles").scalars().all() == [5]

    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        store.save_profile(T, M, "daily", day, {"day": day}, 10)
    assert list(store.load_profiles(T, M, "daily")) == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert store.load_profiles(T, M, "daily", "2024-03-02", dt.date(2024, 3, 3)) == {
        "2024-03-02": {"day": "2024-03-02"},
        "2024-03-03": {"day": "2024-03-03"},
    }
    assert list(store.load_profiles(T, M, "reference")) == ["reference"]
    assert store.load_profiles(T, M, "reference", start="2024-01-01") == {}


def test_tenants_are_isolated(store: MonitoringStore) -> None:
    # Same model name and partition under two tenants.
    write_day(store, "2024-03-01", scale=1.0, tenant="acme")
    write_day(store, "2024-03-01", scale=2.0, tenant="globex")
    store.record_action("alice", "retrain", "acme", M)
    store.replace_partition("globex", M, "2024-03-01", ASSET, metrics={}, findings=[])

    assert store.findings("globex", M).empty
    assert store.metric_history("globex", M).empty
    acme = store.metric_history("acme", M)
    assert set(acme["tenant"]) == {"acme"} and len(acme) == 2
    assert set(store.findings("acme", M)["tenant"]) == {"acme"}
    assert store.findings("acme", M)["fingerprint"].tolist() == [
        fingerprint("acme", M, Signal.FEATURE_DRIFT, "age")
    ]
    assert store.load_profile("acme", M, "daily", "2024-03-01") == {
        "columns": {"age": {"mean": 40.0}}
    }
    assert store.load_profile("globex", M, "daily", "2024-03-01") == {
        "columns": {"age": {"mean": 80.0}}
    }
    assert store.actions("globex").empty
    assert store.metric_history("initech").empty
    assert store.models() == [("acme", M), ("globex", M)]


def test_audit_trail_is_append_only_and_filterable(store: MonitoringStore) -> None:
    t0 = dt.datetime.now(dt.UTC)
    first = store.record_action(
        "dagster", "retrain", T, M, "2024-03-01", {"run_id": "abc", "score": float("nan")}
    )
    second = store.record_action("alice", "rollback", T, M, details={"to_version": 3})
    other = store.record_action("bob", "retrain", T, "fraud")
    assert first < second < other

    log = store.actions(T, M)
    assert log["id"].tolist() == [first, second]
    assert log["action"].tolist() == ["retrain", "rollback"]
    assert log["actor"].tolist() == ["dagster", "alice"]
    assert log.loc[0, "partition"] == "2024-03-01" and pd.isna(log.loc[1, "partition"])
    assert log["details"].tolist() == [{"run_id": "abc", "score": None}, {"to_version": 3}]
    assert str(log["ts"].dt.tz) == "UTC"
    assert log["ts"].min() >= t0 - dt.timedelta(seconds=5)
    assert store.actions(T, action="retrain")["model"].tolist() == [M, "fraud"]
    assert len(store.actions()) == 3
    assert store.models() == [(T, M), (T, "fraud")]


def test_metric_history_filters(store: MonitoringStore) -> None:
    for day in ("2024-03-03", "2024-03-01", "2024-03-02"):
        write_day(store, day)
    store.replace_partition(
        T, M, "2024-03-02", "feature_profile", metrics={("null_rate", "age"): 0.01}, findings=[]
    )
    store.replace_partition(
        T, M, "reference", "reference_profile", metrics={("null_rate", "age"): 0.0}, findings=[]
    )
    store.replace_partition(
        T, "fraud", "2024-03-02", ASSET, metrics={("drift_share", ""): 1.0}, findings=[]
    )

    everything = store.metric_history()
    assert " ".join(everything.columns) == "tenant model partition asset metric column value"
    assert everything["partition"].is_monotonic_increasing
    assert len(everything) == 3 * 2 + 1 + 1 + 1

    share = store.metric_history(T, M, metric="drift_share")
    assert share["partition"].tolist() == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert set(share["column"]) == {""}

    both = store.metric_history(T, M, metric=["drift_share", "null_rate"])  # one query
    assert sorted(set(both["metric"])) == ["drift_share", "null_rate"]
    assert len(both) == 3 + 2  # three days of drift share, null rate on a day and the reference
    assert store.latest_partition(T, M) == "2024-03-03"  # never "reference"
    assert store.latest_partition(T, M, end="2024-03-02", asset="feature_profile") == "2024-03-02"
    assert store.latest_partition("nobody") is None

    ranged = store.metric_history(
        T, M, metric="drift_share", start="2024-03-02", end=dt.date(2024, 3, 2)
    )
    assert ranged["partition"].tolist() == ["2024-03-02"]
    # A date range never picks up the reference partition.
    null_rate = store.metric_history(T, M, metric="null_rate", start="2024-01-01")
    assert null_rate["partition"].tolist() == ["2024-03-02"]
    null_rate = store.metric_history(T, M, metric="null_rate")
    assert null_rate["partition"].tolist() == ["2024-03-02", "reference"]
    assert store.metric_history(T, M, end="2024-03-01")["partition"].unique().tolist() == [
        "2024-03-01"
    ]
    by_column = store.metric_history(T, M, column="age", asset="feature_profile")
    assert by_column["metric"].tolist() == ["null_rate"]
    assert len(store.metric_history(model="fraud")) == 1
    assert store.metric_history(T, M, metric="nope").empty
    with pytest.raises(ValueError, match="partition"):
        store.metric_history(T, M, start="March")


def test_findings_filters(store: MonitoringStore) -> None:
    store.replace_partition(
        T,
        M,
        "2024-03-01",
        ASSET,
        metrics={},
        findings=[
            finding("2024-03-01", column="a", severity=Severity.INFO),
            finding("2024-03-01", column="b", severity=Severity.CRITICAL),
            finding(
                "2024-03-01", signal=Signal.DATASET_DRIFT, column="", severity=Severity.WARNING
            ),
        ],
    )
    store.replace_partition(
        T, M, "2024-03-02", ASSET, metrics={}, findings=[finding("2024-03-02", column="b")]
    )

    assert len(store.findings(T, M)) == 4
    at_least_warning = store.findings(T, M, min_severity="warning")
    assert sorted(at_least_warning["severity"]) == ["critical", "warning", "warning"]
    assert store.findings(T, M, min_severity=Severity.CRITICAL)["column"].tolist() == ["b"]
    assert store.findings(T, M, signal=Signal.DATASET_DRIFT)["column"].tolist() == [""]
    assert store.findings(T, M, start="2024-03-02")["partition"].tolist() == ["2024-03-02"]
    crit = store.findings(T, M, min_severity="critical").iloc[0]
    assert crit["fingerprint"] == fingerprint(T, M, Signal.FEATURE_DRIFT, "b")
    assert crit["threshold"] == 0.1 and crit["message"] == "b drifted"
    assert crit["created_at"].tzinfo is not None


def test_tables_persist_and_creation_is_idempotent(store_url: str) -> None:
    with MonitoringStore(store_url) as first:
        write_day(first, "2024-03-01")
        first.ensure_schema()
    with MonitoringStore(store_url) as second:  # create_all again finds the tables
        assert len(second.metric_history(T, M)) == 2
        assert second.models() == [(T, M)]
        assert sorted(sa.inspect(second.engine).get_table_names()) == sorted(
            [
                "access_log",
                "acknowledgements",
                "alert_deliveries",
                "alert_events",
                "alert_routes",
                "alerts",
                "api_tokens",
                "audit_log",
                "findings",
                "metric_history",
                "mlflow_outbox",
                "profiles",
                "registry_snapshots",
                "silences",
            ]
        )


def test_sqlite_wal_lets_a_reader_and_a_waiting_writer_through(tmp_path) -> None:
    """SQLite only: a CLI reading or writing while a run holds the write lock neither fails."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with MonitoringStore(url) as run, MonitoringStore(url) as cli:
        write_day(run, "2024-03-01")
        with cli.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000

        holding, release = threading.Event(), threading.Event()

        def long_run() -> None:
            with run._begin_write() as conn:  # a run mid-transaction, holding the write lock
                conn.execute(metric_history_table.delete())
                holding.set()
                release.wait(5)

        writer = threading.Thread(target=long_run)
        writer.start()
        assert holding.wait(5)
        # The reader is not blocked and still sees the last committed state.
        assert len(cli.metric_history(T, M)) == 2
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        cli.record_action("cli", "ack", T, M)  # waits for the lock instead of failing
        assert time.monotonic() - started >= 0.2
        writer.join(5)
        assert cli.metric_history(T, M).empty
        assert len(cli.actions(T, M)) == 1


def test_a_store_of_the_previous_version_is_upgraded_in_place(store_url: str) -> None:
    """Deliveries created before the 'held' state existed, and no route states: the first open
    rebuilds the constraint (SQLite: the table around its rows), keeping every row and id, and
    adds the route table."""
    from aiops_pipelines.io.schema import TABLES, alert_deliveries_table, outdated, prepare_engine

    old = sa.MetaData()
    for table in TABLES:
        if table.name != "alert_routes":
            table.to_metadata(old)
    (check,) = [
        c
        for c in old.tables[alert_deliveries_table.name].constraints
        if c.name == "ck_alert_deliveries_status"
    ]
    check.sqltext = sa.text("status IN ('pending', 'sending', 'sent')")
    engine = prepare_engine(store_url)  # SQLite: folders created, as the store does
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(
            old.tables["alert_deliveries"].insert(),
            [
                {"id": 7, "event_id": 1000, "route": "hook", "tenant": T, "model": M,
                 "status": "sent", "attempts": 1, "created_at": now},
            ],
        )  # fmt: skip
        assert outdated(conn)
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            conn.execute(
                old.tables["alert_deliveries"].insert(),
                [{"event_id": 2, "route": "hook", "tenant": T, "model": M, "status": "held",
                  "attempts": 0, "created_at": now}],
            )  # fmt: skip
    engine.dispose()
    with MonitoringStore(store_url) as store:
        before = store.deliveries()  # joined with events: none stored, so empty
        assert before.empty
        store.add_alert_events(
            [
                {"event_key": "k1", "fingerprint": "f", "tenant": T, "model": M, "signal": "s",
                 "column": "", "kind": "firing", "severity": "warning",
                 "partition": "2024-03-01", "episode_start": "2024-03-01", "payload": {},
                 "held": True},
            ],
            lambda ev: ["hook"],
        )  # fmt: skip
        with store.engine.connect() as conn:
            assert outdated(conn) == []
            rows = conn.execute(
                sa.select(alert_deliveries_table.c.id, alert_deliveries_table.c.status)
            ).all()
        assert (7, "sent") in {tuple(r) for r in rows}  # the old row, same id
        assert sorted(r[1] for r in rows) == ["held", "sent"]
        store.request_held_summaries(["hook"])
        assert store.route_states()["route"].tolist() == ["hook"]
