"""The demo world holds what its manifest says, and the summary grades findings correctly.

One small world (14 days x 400 rows, incident calendar scaled to fit) is built once for the
module, with MLflow, so the whole file stays fast.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from aiops_pipelines.core.config import TaskType, load_config
from aiops_pipelines.core.findings import Signal
from aiops_pipelines.demo.grading import detection_summary
from aiops_pipelines.demo.world import DemoWorld, build_world

END = date(2026, 3, 1)
DAYS = 14
TS_FORMAT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    home = tmp_path_factory.mktemp("aiops") / "demo"
    return build_world(home, days=DAYS, end_date=END, rows_per_day=400, reference_rows=3000)


def _read(world: DemoWorld, table: str) -> pd.DataFrame:
    with sqlite3.connect(world.world_db) as con:
        return pd.read_sql(f'SELECT * FROM "{table}"', con)


def _incident(world: DemoWorld, kind: str) -> dict:
    (inc,) = [i for i in world.manifest["incidents"] if i["kind"] == kind]
    return inc


def _predictions(world: DemoWorld, key: str) -> pd.DataFrame:
    df = _read(world, world.manifest["models"][key]["tables"]["predictions"])
    df["day"] = df["timestamp"].str[:10]
    return df


def test_config_loads_and_points_into_the_world(world: DemoWorld) -> None:
    cfg = load_config(world.config_path)
    assert sorted(m.key for m in cfg.models) == sorted(world.models)
    assert {t.name for t in cfg.tenants} == {"acme", "globex"}
    assert cfg.start_date == world.manifest["start"] == str(END - timedelta(days=DAYS - 1))
    assert cfg.storage.mlflow_tracking_uri == f"sqlite:///{world.home / 'mlflow.db'}"
    assert cfg.storage.store_url == f"sqlite:///{world.home / 'store.db'}"
    assert Path(cfg.storage.artifacts_dir) == world.home / "artifacts"
    tasks = {m.key: m.task for m in cfg.models}
    assert tasks == {
        "acme.churn": TaskType.BINARY,
        "acme.intent": TaskType.MULTICLASS,
        "globex.eta": TaskType.REGRESSION,
    }
    for m in cfg.models:
        assert m.registered_model == m.key
        assert m.predictions.url == f"sqlite:///{world.world_db}"
        assert set(m.segments) <= set(m.features.categorical) and m.segments
        if m.task.is_classification:
            assert m.columns.score == "score" and m.classes
        else:
            assert m.columns.score is None and m.classes is None
    churn = cfg.model("acme.churn")
    assert {"tenure_months", "monthly_charges", "support_calls"} <= set(churn.features.numeric)
    assert "channel" in cfg.model("acme.intent").features.categorical
    assert "distance_km" in cfg.model("globex.eta").features.numeric


def test_tables_follow_the_contract(world: DemoWorld) -> None:
    cfg = load_config(world.config_path)
    with sqlite3.connect(world.world_db) as con:
        indexes = {r[0] for r in con.execute("SELECT sql FROM sqlite_master WHERE type='index'")}
    for m in cfg.models:
        feats = m.features.all
        score = ["score"] if m.task.is_classification else []
        pred = _read(world, m.predictions.table)
        expected = [
            "request_id",
            "timestamp",
            "model_version",
            *feats,
            "prediction",
            *score,
            "latency_ms",
            "status",
        ]
        assert list(pred.columns) == expected
        assert list(_read(world, m.outcomes.table).columns) == [
            "request_id",
            "label",
            "observed_at",
        ]
        ref = _read(world, m.reference.table)
        assert list(ref.columns) == [*feats, "label", "prediction", *score]
        assert len(ref) == 3000 and ref["label"].notna().all()
        assert any(f'"{m.predictions.table}" ("timestamp")' in (s or "") for s in indexes)
        assert any(f'"{m.outcomes.table}" ("observed_at")' in (s or "") for s in indexes)
        assert set(pred["status"]) <= {"ok", "error"}
        err = pred["status"] == "error"
        assert 0 < err.mean() < 0.02
        assert pred["prediction"].notna().all()  # the engine requires an output on every row
        assert (pred["latency_ms"] > 0).all()
        if m.task is TaskType.BINARY:
            assert pred["prediction"].dtype.kind == "i" and set(pred["prediction"]) <= {0, 1}
            assert pred["score"].between(0, 1).all()
            assert ((pred["score"] >= 0.5) == (pred["prediction"] == 1)).all()
        elif m.task is TaskType.MULTICLASS:
            assert set(pred["prediction"]) <= set(m.classes or [])
            assert pred["score"].between(1 / len(m.classes or [1]), 1).all()
        else:
            assert pred["prediction"].dtype.kind == "f"


def test_timestamps_are_utc_and_inside_the_world(world: DemoWorld) -> None:
    start = world.manifest["start"]
    now = str(END + timedelta(days=1))
    all_ids: list[str] = []
    for key in world.models:
        tables = world.manifest["models"][key]["tables"]
        pred = _read(world, tables["predictions"])
        out = _read(world, tables["outcomes"])
        for col in (pred["timestamp"], out["observed_at"]):
            assert col.str.match(TS_FORMAT.pattern).all()
            parsed = pd.to_datetime(col)
            assert str(parsed.dt.tz) == "UTC"
        assert pred["timestamp"].min() >= start and pred["timestamp"].max() < now
        assert pred["timestamp"].is_monotonic_increasing
        assert out["observed_at"].max() < now  # only labels observed by the world's "now"
        assert set(pred["timestamp"].str[:10]) == {
            str(date.fromisoformat(start) + timedelta(days=d)) for d in range(DAYS)
        }
        all_ids += pred["request_id"].tolist()
    assert len(all_ids) == len(set(all_ids))


def test_outcomes_are_late_partial_and_known(world: DemoWorld) -> None:
    start = date.fromisoformat(world.manifest["start"])
    for key in world.models:
        tables = world.manifest["models"][key]["tables"]
        pred = _read(world, tables["predictions"])
        out = _read(world, tables["outcomes"])
        assert out["request_id"].is_unique
        joined = out.merge(pred[["request_id", "timestamp", "status"]], on="request_id")
        assert len(joined) == len(out)  # no label for an unknown request
        delay = pd.to_datetime(joined["observed_at"]) - pd.to_datetime(joined["timestamp"])
        assert delay.min() >= pd.Timedelta(days=1) and delay.max() <= pd.Timedelta(days=14)
        # coverage on the first week, whose labels have (nearly) all arrived
        early = pred[pred["timestamp"] < str(start + timedelta(days=7))]
        coverage = early["request_id"].isin(out["request_id"]).mean()
        assert 0.5 < coverage < 0.8, (key, coverage)
        last_day = pred[pred["timestamp"] >= str(END)]
        assert not last_day["request_id"].isin(out["request_id"]).any()


def test_manifest_names_real_signals_and_scaled_days(world: DemoWorld) -> None:
    on_disk = json.loads(world.manifest_path.read_text())
    assert on_disk == world.manifest
    incidents = on_disk["incidents"]
    assert {i["kind"] for i in incidents} == {
        "covariate_drift",
        "concept_shift",
        "null_rate",
        "unseen_category",
        "canary",
        "canary_good",
        "throughput_drop",
        "bad_batch",
    }
    start = date.fromisoformat(on_disk["start"])
    known = {s.value for s in Signal} | {"performance_decay", "canary_fail", "throughput_anomaly"}
    for inc in incidents:
        assert inc["model"] in world.models
        assert start < date.fromisoformat(inc["start"]) <= END
        assert set(inc["expected_signals"]) | set(inc["allowed_signals"]) <= known
    per_model: dict[str, list[str]] = {}
    for inc in incidents:
        per_model.setdefault(inc["model"], []).append(inc["start"])
    assert all(len(set(v)) == len(v) for v in per_model.values())  # one start per day


def test_bad_batch_is_text_in_a_numeric_column_for_its_day_only(world: DemoWorld) -> None:
    inc = _incident(world, "bad_batch")
    (col,) = inc["columns"]
    pred = _predictions(world, inc["model"])
    inside = pred["day"].between(inc["start"], inc["end"])
    assert inside.any() and (pred.loc[inside, col] == inc["params"]["value"]).all()
    assert pd.to_numeric(pred.loc[~inside, col], errors="coerce").notna().all()


def test_covariate_drift_is_in_the_data(world: DemoWorld) -> None:
    inc = _incident(world, "covariate_drift")
    pred = _predictions(world, inc["model"])
    bad = _incident(world, "bad_batch")  # the same model: leave its unreadable day out
    pred = pred[~pred["day"].between(bad["start"], bad["end"])].copy()
    pred["monthly_charges"] = pred["monthly_charges"].astype(float)
    ref = _read(world, world.manifest["models"][inc["model"]]["tables"]["reference"])
    before, after = pred[pred["day"] < inc["start"]], pred[pred["day"] >= inc["start"]]
    sd = ref["tenure_months"].std()
    assert (before["tenure_months"].mean() - ref["tenure_months"].mean()) / sd == pytest.approx(
        0, abs=0.12
    )
    assert (before["tenure_months"].mean() - after["tenure_months"].mean()) / sd > 0.35
    charges_sd = ref["monthly_charges"].std()
    assert (after["monthly_charges"].mean() - before["monthly_charges"].mean()) / charges_sd > 0.2
    # an untouched feature stays put
    age_shift = (after["age"].mean() - before["age"].mean()) / ref["age"].std()
    assert abs(age_shift) < 0.12


def test_null_rate_jump_is_in_the_window(world: DemoWorld) -> None:
    inc = _incident(world, "null_rate")
    (col,) = inc["columns"]
    pred = _predictions(world, inc["model"])
    inside = pred["day"].between(inc["start"], inc["end"])
    assert pred.loc[inside, col].isna().mean() > 0.22
    assert pred.loc[~inside, col].isna().mean() < 0.05


def test_unseen_category_appears_only_after_start(world: DemoWorld) -> None:
    inc = _incident(world, "unseen_category")
    (col,) = inc["columns"]
    value = inc["params"]["value"]
    pred = _predictions(world, inc["model"])
    ref = _read(world, world.manifest["models"][inc["model"]]["tables"]["reference"])
    assert value not in set(ref[col])
    assert not (pred.loc[pred["day"] < inc["start"], col] == value).any()
    share = (pred.loc[pred["day"] >= inc["start"], col] == value).mean()
    assert 0.06 < share < 0.14


def test_canary_serves_a_tenth_after_start(world: DemoWorld) -> None:
    inc = _incident(world, "canary")
    pred = _predictions(world, inc["model"])
    assert set(pred["model_version"]) == {"1", "2"}
    assert (pred.loc[pred["day"] < inc["start"], "model_version"] == "1").all()
    share = (pred.loc[pred["day"] >= inc["start"], "model_version"] == "2").mean()
    assert 0.06 < share < 0.14


def test_throughput_drop_and_concept_shift(world: DemoWorld) -> None:
    drop = _incident(world, "throughput_drop")
    counts = _predictions(world, drop["model"]).groupby("day").size()
    low = counts.index.to_series().between(drop["start"], drop["end"])
    assert counts[low].max() < 0.4 * counts[~low].median()
    assert world.manifest["models"][drop["model"]]["daily_rows"] == counts.to_dict()

    shift = _incident(world, "concept_shift")
    tables = world.manifest["models"][shift["model"]]["tables"]
    joined = _predictions(world, shift["model"]).merge(
        _read(world, tables["outcomes"]), on="request_id"
    )
    err = (joined["prediction"] - joined["label"]).abs()
    after = joined["day"] >= shift["start"]
    assert err[after].mean() > 2 * err[~after].mean()


def test_mlflow_registry_has_the_aliases(world: DemoWorld) -> None:
    uri = f"sqlite:///{world.home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    canary_model = _incident(world, "canary")["model"]
    for key in world.models:
        assert str(client.get_model_version_by_alias(key, "champion").version) == "1"
        run = client.get_run(client.get_model_version_by_alias(key, "champion").run_id)
        assert run.info.status == "FINISHED" and run.data.metrics
        exp = client.get_experiment(run.info.experiment_id)
        assert exp.name == f"aiops/{key}"
        assert exp.artifact_location.startswith((world.home / "artifacts").as_uri())
    assert str(client.get_model_version_by_alias(canary_model, "canary").version) == "2"
    registered = world.manifest["models"][canary_model]["registered"]
    assert registered == {"champion": 1, "canary": 2}
    metrics = world.manifest["models"][canary_model]["training_metrics"]
    assert metrics["canary"]["roc_auc"] < metrics["champion"]["roc_auc"]


def test_rebuild_wipes_only_the_world_and_is_deterministic(tmp_path: Path) -> None:
    kw = {
        "days": 14,
        "end_date": END,
        "rows_per_day": 120,
        "reference_rows": 600,
        "register_models": False,
    }
    first = build_world(tmp_path, **kw)
    with sqlite3.connect(first.world_db) as con:
        before = pd.read_sql('SELECT * FROM "acme_churn_predictions"', con)
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "mlflow.db").write_text("stale")
    (tmp_path / "artifacts").mkdir()
    second = build_world(tmp_path, **kw)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "artifacts").exists()
    with sqlite3.connect(second.world_db) as con:
        after = pd.read_sql('SELECT * FROM "acme_churn_predictions"', con)
    pd.testing.assert_frame_equal(before, after)
    assert first.manifest == second.manifest
    assert not (tmp_path / "world.db.tmp").exists()


def test_refuses_to_wipe_a_folder_that_is_not_a_demo_world(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("tenants: []\n")
    with pytest.raises(ValueError, match="not written by the demo"):
        build_world(tmp_path, days=14, register_models=False)
    assert (tmp_path / "config.yaml").read_text() == "tenants: []\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "mlflow.db").write_text("someone's runs")
    with pytest.raises(ValueError, match="no demo world"):
        build_world(other, days=14, register_models=False)
    assert (other / "mlflow.db").exists()


# --------------------------------------------------------------------------------------------
# detection_summary on hand-made findings
# --------------------------------------------------------------------------------------------

MANIFEST = {
    "start": "2026-01-01",
    "end": "2026-01-31",
    "incidents": [
        {
            "id": 1,
            "kind": "covariate_drift",
            "model": "acme.churn",
            "start": "2026-01-10",
            "end": None,
            "columns": ["tenure_months", "monthly_charges"],
            "expected_signals": ["feature_drift"],
            "allowed_signals": ["prediction_drift", "dataset_drift"],
            "description": "",
        },
        {
            "id": 2,
            "kind": "null_rate",
            "model": "globex.eta",
            "start": "2026-01-05",
            "end": "2026-01-07",
            "columns": ["traffic_index"],
            "expected_signals": ["null_rate_drift"],
            "allowed_signals": ["feature_drift"],
            "description": "",
        },
        {
            "id": 3,
            "kind": "unseen_category",
            "model": "acme.intent",
            "start": "2026-01-12",
            "end": None,
            "columns": ["channel"],
            "expected_signals": ["unseen_category"],
            "allowed_signals": ["feature_drift", "prediction_drift"],
            "description": "",
        },
        {
            "id": 4,
            "kind": "throughput_drop",
            "model": "acme.churn",
            "start": "2026-01-20",
            "end": None,
            "columns": [],
            "expected_signals": ["alert_delivered"],
            "allowed_signals": ["prediction_drift"],
            "description": "",
        },
    ],
}


def _findings(rows: list[tuple[str, str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["tenant", "model", "partition", "signal", "column", "severity"]
    )


def test_detection_summary_grades_lag_misses_and_false_alarms() -> None:
    findings = _findings(
        [
            # incident 1: tenure on the start day, charges one day later; a later repeat
            ("acme", "churn", "2026-01-10", "feature_drift", "tenure_months", "critical"),
            ("acme", "churn", "2026-01-11", "feature_drift", "monthly_charges", "warning"),
            ("acme", "churn", "2026-01-12", "feature_drift", "monthly_charges", "critical"),
            ("acme", "churn", "2026-01-10", "prediction_drift", "score", "warning"),  # allowed
            ("acme", "churn", "2026-01-10", "dataset_drift", "", "warning"),  # allowed
            # incident 2 is missed: only an info finding and an allowed one inside the window
            ("globex", "eta", "2026-01-05", "null_rate_drift", "traffic_index", "info"),
            ("globex", "eta", "2026-01-06", "feature_drift", "traffic_index", "warning"),
            # incident 3 found three days late
            ("acme", "intent", "2026-01-15", "unseen_category", "channel", "critical"),
            # false alarms: a column no incident names, one after the null window closed
            # (end + 1 day is still covered), and a drift before incident 1 started
            ("acme", "intent", "2026-01-03", "feature_drift", "sentiment_score", "warning"),
            ("globex", "eta", "2026-01-08", "feature_drift", "traffic_index", "warning"),
            ("globex", "eta", "2026-01-09", "feature_drift", "traffic_index", "critical"),
            ("acme", "churn", "2026-01-09", "feature_drift", "tenure_months", "warning"),
            # a duplicate of a false alarm counts once; info findings never count
            ("acme", "intent", "2026-01-03", "feature_drift", "sentiment_score", "warning"),
            ("acme", "intent", "2026-01-04", "feature_drift", "language", "info"),
        ]
    )
    summary = detection_summary(MANIFEST, findings)
    rows = {(r["incident"], r["signal"], r["column"]): r for r in summary.incidents}

    tenure = rows[(1, "feature_drift", "tenure_months")]
    assert (tenure["status"], tenure["lag_days"], tenure["first_detected"]) == (
        "detected",
        0,
        "2026-01-10",
    )
    assert tenure["severity"] == "critical"
    charges = rows[(1, "feature_drift", "monthly_charges")]
    assert (charges["status"], charges["lag_days"], charges["severity"]) == (
        "detected",
        1,
        "warning",
    )
    assert rows[(2, "null_rate_drift", "traffic_index")]["status"] == "missed"
    late = rows[(3, "unseen_category", "channel")]
    assert (late["status"], late["lag_days"]) == ("late", 3)
    assert rows[(4, "alert_delivered", "")]["status"] == "not in scope yet"
    assert not summary.all_detected

    alarms = {(a["model"], a["partition"], a["signal"], a["column"]) for a in summary.false_alarms}
    assert alarms == {
        ("acme.intent", "2026-01-03", "feature_drift", "sentiment_score"),
        ("globex.eta", "2026-01-09", "feature_drift", "traffic_index"),
        ("acme.churn", "2026-01-09", "feature_drift", "tenure_months"),
    }
    assert summary.false_alarm_count == 3
    # 3 models x 31 days; churn changes from the 10th, intent from the 12th, eta 5th-7th
    assert (summary.model_days, summary.clean_model_days) == (93, 93 - 22 - 20 - 3)

    text = summary.render()
    for needle in (
        "acme.churn",
        "globex.eta",
        "covariate_drift",
        "2026-01-10",
        "0d",
        "1d",
        "missed",
        "not in scope yet",
        "False alarms: 3",
        "sentiment_score",
    ):
        assert needle in text


def test_detection_summary_all_detected_and_empty_findings() -> None:
    findings = _findings(
        [
            ("acme", "churn", "2026-01-10", "feature_drift", "tenure_months", "warning"),
            ("acme", "churn", "2026-01-10", "feature_drift", "monthly_charges", "warning"),
            ("globex", "eta", "2026-01-06", "null_rate_drift", "traffic_index", "critical"),
            ("acme", "intent", "2026-01-12", "unseen_category", "channel", "warning"),
            ("acme", "churn", "2026-01-25", "prediction_drift", "score", "critical"),  # canary
        ]
    )
    summary = detection_summary(MANIFEST, findings)
    assert summary.all_detected and summary.false_alarm_count == 0

    empty = detection_summary(MANIFEST, _findings([]))
    assert not empty.all_detected and empty.false_alarms == []
    assert {r["status"] for r in empty.incidents} == {"missed", "not in scope yet"}
    pending = detection_summary(MANIFEST, _findings([]), monitored_days=["2026-01-01"])
    assert {r["status"] for r in pending.incidents} == {"not run yet", "not in scope yet"}
    with pytest.raises(ValueError, match="severity"):
        detection_summary(
            MANIFEST,
            pd.DataFrame({"tenant": [], "model": [], "partition": [], "signal": [], "column": []}),
        )
    assert np.isfinite(len(empty.render()))


def test_decay_is_graded_on_the_day_its_labels_raised_it() -> None:
    manifest = {
        "start": "2026-01-01",
        "end": "2026-02-28",
        "incidents": [
            {
                "id": 5,
                "kind": "concept_shift",
                "model": "globex.eta",
                "start": "2026-01-10",
                "end": None,
                "columns": [],
                "expected_signals": ["performance_decay"],
                "allowed_signals": [],
                "description": "",
            }
        ],
    }

    def finding(raised_on: str) -> pd.DataFrame:
        df = _findings(
            [("globex", "globex.eta", "2026-01-11", "performance_decay", "", "critical")]
        )
        df["evidence"] = [{"detected_at": f"{raised_on}T00:00:00+00:00"}]
        return df

    on_time = detection_summary(manifest, finding("2026-01-16")).incidents[0]
    assert (on_time["status"], on_time["lag_days"]) == ("detected", 6)
    too_late = detection_summary(manifest, finding("2026-02-10")).incidents[0]
    assert too_late["status"] == "late"
