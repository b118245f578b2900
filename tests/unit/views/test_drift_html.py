"""Evidently's drift report on hostile category values: every value stays text, the page shows
it (neutralised), and nothing from the data becomes an element, an attribute or a script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aiops_pipelines.views.drift_report import neutral_text, render_drift_html
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
