"""Evidently's drift report on hostile category values: every value stays text, the page shows
it (neutralised), and nothing from the data becomes an element, an attribute or a script."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import FeatureSpec, ModelConfig, SourceConfig, TaskType
from aiops_pipelines.core.findings import Asset, Finding, Severity
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.drift_report import drift_onset, neutral_text, render_drift_html
from tests.unit.views.hostile import PAYLOADS, markup_from_data


def _sample(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = np.array([*PAYLOADS, "plain"], dtype=object)
    return pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "plan": rng.choice(values, n),
            PAYLOADS[1]: rng.choice(values, n),  # a column named like an attack, too
        }
    )


def test_hostile_category_values_never_become_markup_in_the_drift_report(tmp_path: Path) -> None:
    path = render_drift_html(
        _sample(0),
        _sample(1),
        numeric=["income"],
        categorical=["plan", PAYLOADS[1]],
        path=tmp_path / "drift.html",
        methods={"plan": "jensenshannon", PAYLOADS[1]: "chisquare"},
        title=f"acme.churn {PAYLOADS[3]}",
    )
    page = path.read_text()
    assert markup_from_data(page) == []
    # the evidence is still there, as text: each value neutralised, in the page's JSON
    for p in PAYLOADS:
        assert json.dumps(neutral_text(p))[1:-1] in page
    assert "<title>acme.churn &lt;/title&gt;&lt;script&gt;" in page


def test_neutral_text_leaves_no_character_that_makes_markup() -> None:
    for p in PAYLOADS:
        assert not set(neutral_text(p)) & set("<>&\"'")
    assert neutral_text("basic plan") == "basic plan"
    assert neutral_text(3) == 3


def _model() -> ModelConfig:
    src = SourceConfig(url="sqlite:///unused.db", table="preds")
    return ModelConfig(
        name="churn",
        tenant="acme",
        task=TaskType.BINARY,
        features=FeatureSpec(numeric=["x"], categorical=["c"]),
        predictions=src,
        reference=src,
    )


def _drift(day: str, signal: str, column: str, severity: str) -> Finding:
    return Finding(
        "acme", "churn", day, Asset.DRIFT_REPORT.value, signal, Severity(severity), 0.3, 0.1, column
    )


def test_drift_html_is_drawn_when_a_drift_begins_or_worsens_not_every_day_it_lasts(
    store: MonitoringStore,
) -> None:
    model = _model()
    x_warn = _drift("2026-03-02", "feature_drift", "x", "warning")
    assert not drift_onset(store, model, "2026-03-02", [])  # no finding, no page
    assert drift_onset(store, model, "2026-03-02", [x_warn])  # nothing the day before
    store.record_finding(x_warn)
    lasting = replace(x_warn, partition="2026-03-03")
    assert not drift_onset(store, model, "2026-03-03", [lasting])  # the same drift, lasting
    worse = replace(lasting, severity=Severity.CRITICAL)
    assert drift_onset(store, model, "2026-03-03", [lasting, worse])  # it worsened
    other_column = replace(lasting, column="c")
    assert drift_onset(store, model, "2026-03-03", [lasting, other_column])  # a new drift
    # another model's, or another asset's, findings of the day before do not count
    store.record_finding(replace(lasting, model="intent"))
    store.record_finding(replace(lasting, asset=Asset.FEATURE_PROFILE.value))
    assert drift_onset(store, model, "2026-03-04", [replace(x_warn, partition="2026-03-04")])
