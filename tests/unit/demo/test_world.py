"""The demo world holds what its manifest says: its config, tables, timestamps, outcomes,
incidents and MLflow registry.

One small world (14 days x 400 rows, incident calendar scaled to fit) is built once for the
module, with MLflow; a two-week world makes the module slow.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from aiops_pipelines.core.config import TaskType, load_config
from aiops_pipelines.core.findings import Signal
from aiops_pipelines.demo.world import DemoWorld

pytestmark = pytest.mark.slow

END = date(2026, 3, 1)
DAYS = 14
TS_FORMAT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$")


#: the module's demo world, built once by the `world` fixture (tests/conftest.py)
WORLD = dict(days=DAYS, end_date=END, rows_per_day=400, reference_rows=3000)


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
        "segment_drift",
        "biased_scores",
        "correlation_flip",
        "slo_burn",
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


def test_segment_drift_moves_one_region_only(world: DemoWorld) -> None:
    inc = _incident(world, "segment_drift")
    p = inc["params"]
    (col,) = inc["columns"]
    pred = _predictions(world, inc["model"])
    bad = _incident(world, "bad_batch")  # text in this very column on its day
    pred = pred[~pred["day"].between(bad["start"], bad["end"])].copy()
    pred[col] = pred[col].astype(float)
    ref = _read(world, world.manifest["models"][inc["model"]]["tables"]["reference"])
    inside = pred["day"].between(inc["start"], inc["end"])
    before = pred["day"] < inc["start"]

    def step(value: str) -> float:
        seg = pred[p["segment"]] == value
        return (pred.loc[inside & seg, col].mean() - pred.loc[before & seg, col].mean()) / ref[
            col
        ].std()

    # against another region over the same days (a scaled calendar may overlap the
    # model-wide covariate drift, which moves every region alike)
    assert p["shift_sd"] / 3 < step(p["value"]) - step("north") < 2 * p["shift_sd"]


def test_correlation_flip_keeps_each_days_values_and_flips_their_pairing(
    world: DemoWorld,
) -> None:
    inc = _incident(world, "correlation_flip")
    a, b = inc["columns"]
    pred = _predictions(world, inc["model"])
    ref = _read(world, world.manifest["models"][inc["model"]]["tables"]["reference"])
    assert ref[a].corr(ref[b]) > 0.4
    for day, rows in pred.groupby("day"):
        flipped = inc["start"] <= day <= inc["end"]
        corr = rows[a].corr(rows[b])
        assert corr < -0.3 if flipped else corr > 0.3, (day, corr)


def test_biased_scores_lower_one_group_and_slo_burn_slows_its_hours(world: DemoWorld) -> None:
    bias = _incident(world, "biased_scores")
    p = bias["params"]
    pred = _predictions(world, bias["model"])
    inside = pred["day"].between(bias["start"], bias["end"])
    before = pred["day"] < bias["start"]
    group = pred[p["attribute"]] == p["group"]
    rate = pred.groupby([inside, group])["prediction"].mean()
    assert rate[(True, True)] < 0.5 * rate[(True, False)]  # flagged far less in the window
    assert abs(pred.loc[before & group, "prediction"].mean() - rate[(False, False)]) < 0.06

    slo = _incident(world, "slo_burn")
    q = slo["params"]
    pred = _predictions(world, slo["model"])
    hour = pred["timestamp"].str[11:13].astype(int)
    hot = pred["day"].eq(slo["start"]) & hour.between(q["first_hour"], q["last_hour"])
    slow = pred["latency_ms"] == q["latency_ms"]
    assert slow[hot].mean() == pytest.approx(q["share"], abs=0.2)
    assert not slow[~hot].any()
