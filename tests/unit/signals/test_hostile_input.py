"""Hostile input: a huge category value is cut before it is profiled, stored or rendered, and
reported; a config whose features changed since the reference was built is refused, never judged
on the columns the two happen to share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, parse_config
from aiops_pipelines.core.errors import ConfigError, DataError
from aiops_pipelines.io.labels import read_day_predictions
from aiops_pipelines.signals.drift.day import drift_for_day
from aiops_pipelines.signals.operations.day import stream_operations
from aiops_pipelines.signals.profile.day import profile_for_day, profile_reference
from aiops_pipelines.views.drift_report import write_drift_reports
from tests.unit.signals.test_monitor import served

DAY = "2026-03-02"
HUGE = 2_000_000  # characters: large enough that a copy anywhere would show


def _frame(n: int, seed: int, day: str | None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "age": rng.integers(18, 90, n).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]).astype(object),
        }
    )
    return served(df, rng, day)


def _model(
    tmp_path: Path,
    day: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    **model: object,
) -> ModelConfig:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng = sa.create_engine(url)
    (_frame(3000, 0, None) if reference is None else reference).to_sql(
        "ref", eng, index=False, if_exists="replace"
    )
    day.to_sql("preds", eng, index=False, if_exists="replace")
    eng.dispose()
    spec = {
        "name": "churn",
        "task": "binary_classification",
        "features": {"numeric": ["income"], "categorical": ["plan"]},
        "columns": {"score": "score"},
        "segments": ["plan"],
        "predictions": {"url": url, "table": "preds", "chunk_rows": 1000},
        "reference": {"url": url, "table": "ref"},
        **model,
    }
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": str(tmp_path),
        },
        "tenants": [{"name": "acme", "models": [spec]}],
    }
    return parse_config(raw).models[0]


def _longest_text(obj: object) -> int:
    """The longest string anywhere in a JSON-like document, keys included."""
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, dict):
        return max([0, *(max(_longest_text(k), _longest_text(v)) for k, v in obj.items())])
    if isinstance(obj, list | tuple):
        return max([0, *(_longest_text(v) for v in obj)])
    return 0


def test_a_huge_category_value_is_cut_before_the_profile_and_reported(tmp_path: Path) -> None:
    frame = _frame(2500, 1, DAY)
    frame.loc[[3, 10, 11], "plan"] = "p" * HUGE
    frame.loc[5, "model_version"] = "v" * 1000
    model = _model(tmp_path, frame)
    ref = profile_reference(model)
    assert ref.findings == []

    day = profile_for_day(model, DAY, ref.profile, sample_rows=2500)
    plan = day.profile.columns["plan"]
    assert plan.unseen == {"p" * 255 + "…": 3}  # cut to 256 characters, marked as cut
    assert _longest_text(day.payload) <= 256  # the stored profile
    assert max(len(k) for _, k in day.metrics) <= 256  # the metric history's columns
    assert day.sample["plan"].str.len().max() == 256  # the HTML report's sample
    assert max(map(len, day.versions)) == 256

    found = {f.column: f for f in day.findings}
    assert set(found) == {"plan", "model_version"}
    cut = found["plan"]
    assert (cut.tenant, cut.model, cut.partition, cut.asset) == (
        "acme",
        "churn",
        DAY,
        "feature_profile",
    )
    assert (cut.signal, cut.severity, cut.value, cut.threshold) == (
        "long_string",
        "warning",
        HUGE,
        256,
    )
    assert cut.evidence == {"n_values": 3, "longest": HUGE, "max_length": 256}
    assert "3 value(s) longer than max_string_length = 256" in cut.message
    assert f"{HUGE:,}" in cut.message
    assert found["model_version"].evidence["n_values"] == 1

    # the day's other readers see the same cut values: segments, rows per version
    assert read_day_predictions(model, DAY)["plan"].str.len().max() == 256
    assert max(map(len, stream_operations(model, DAY).versions)) == 256
    # the drift findings and the JSON report logged to MLflow
    result = drift_for_day(model, DAY, ref.profile, day.profile)
    assert all(len(f.message) < 2000 for f in result.findings)
    files = write_drift_reports(result, model, DAY, tmp_path / "reports")
    assert files["report_json"].stat().st_size < 100_000


def test_max_string_length_is_a_setting_of_the_model(tmp_path: Path) -> None:
    frame = _frame(2500, 1, DAY)
    frame.loc[frame.index % 100 == 0, "plan"] = "enterprise-" + "x" * 40  # 51 characters
    model = _model(tmp_path, frame, max_string_length=32)
    ref = profile_reference(model)
    day = profile_for_day(model, DAY, ref.profile)
    [cut] = day.findings
    assert cut.evidence == {"n_values": 25, "longest": 51, "max_length": 32}
    assert list(day.profile.columns["plan"].unseen) == ["enterprise-" + "x" * 20 + "…"]
    with pytest.raises(ConfigError, match="max_string_length"):
        _model(tmp_path, frame, max_string_length=4)


def test_a_long_value_in_the_reference_is_reported_once_on_the_reference(tmp_path: Path) -> None:
    reference = _frame(3000, 0, None)
    reference.loc[[0, 1], "plan"] = "q" * 5000
    model = _model(tmp_path, _frame(2500, 1, DAY), reference)
    ref = profile_reference(model)  # three passes over the source, counted once
    [cut] = ref.findings
    assert (cut.partition, cut.asset, cut.column) == ("reference", "reference_profile", "plan")
    assert cut.evidence == {"n_values": 2, "longest": 5000, "max_length": 256}
    assert _longest_text(ref.payload) <= 256
    assert ref.sample["plan"].str.len().max() <= 256


@pytest.mark.parametrize(
    ("features", "differs"),
    [
        ({"numeric": ["income", "age"], "categorical": ["plan"]}, "added: age (numeric)"),
        ({"numeric": [], "categorical": ["plan"]}, "removed: income"),
        (
            {"numeric": ["income"], "categorical": ["plan", "age"]},
            "added: age (categorical)",
        ),
        (
            {"numeric": ["age"], "categorical": ["plan", "income"]},
            "added: age (numeric); kind changed: income (numeric -> categorical)",
        ),
    ],
    ids=["added", "removed", "added-categorical", "kind-changed"],
)
def test_a_config_whose_features_changed_is_refused_until_the_reference_is_rebuilt(
    tmp_path: Path, features: dict, differs: str
) -> None:
    frame = _frame(2500, 1, DAY)
    before = _model(tmp_path, frame)
    ref = profile_reference(before).profile
    old_day = profile_for_day(before, DAY, ref).profile
    after = _model(tmp_path, frame, features=features, segments=["plan"])

    for judge in (
        lambda: profile_for_day(after, DAY, ref),
        lambda: drift_for_day(after, DAY, ref, old_day),
    ):
        with pytest.raises(ConfigError) as err:
            judge()
        msg = str(err.value)
        assert "model 'acme.churn'" in msg and "field 'features'" in msg
        assert differs in msg
        assert "--refresh-reference" in msg and "reference_profile" in msg

    rebuilt = profile_reference(after).profile
    day = profile_for_day(after, DAY, rebuilt)
    assert set(after.features.all) <= set(day.profile.columns)
    drift_for_day(after, DAY, rebuilt, day.profile)


def test_a_reference_without_the_champions_outputs_is_not_a_changed_config(
    tmp_path: Path,
) -> None:
    """Prediction columns the reference lacks mean no prediction drift, as before."""
    model = _model(tmp_path, _frame(2500, 1, DAY), _frame(3000, 0, None).drop(columns=["score"]))
    ref = profile_reference(model)
    assert ref.columns.predictions == []
    day = profile_for_day(model, DAY, ref.profile)
    assert "score" not in day.profile.columns
    drift_for_day(model, DAY, ref.profile, day.profile)


def test_error_messages_quote_a_huge_offending_value_shortly(tmp_path: Path) -> None:
    frame = _frame(2500, 1, DAY)
    frame.loc[7, "timestamp"] = "2026-03-02 10:00:00" + "9" * HUGE  # and no time zone
    model = _model(tmp_path, frame)
    ref = profile_reference(model).profile
    with pytest.raises(DataError) as err:
        profile_for_day(model, DAY, ref)
    assert err.value.column == "timestamp"
    assert "timezone-naive" in str(err.value) and len(str(err.value)) < 1000
