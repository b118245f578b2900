"""The SLO budget left in `aiops status`, in the overview's health rows and on the HTML page:
the SLO with the least budget left, per model and day."""

from __future__ import annotations

import re

from aiops_pipelines.core.findings import Asset
from aiops_pipelines.views.overview import health_summary
from aiops_pipelines.views.page import render_overview
from aiops_pipelines.views.status import status_text
from tests.unit.views.support import LAST


def _budgets(store, remaining: dict[str, float]) -> None:
    store.replace_partition(
        "acme",
        "churn",
        LAST,
        Asset.SLO_REPORT,
        metrics={("slo_budget_remaining", name): v for name, v in remaining.items()}
        | {("slo_burn_rate_1h", name): 0.5 for name in remaining},
        findings=[],
    )


def test_health_shows_the_slo_with_the_least_budget_left(world) -> None:
    _, cfg, store = world
    _budgets(store, {"fast": 0.42, "up": 0.97})
    health = health_summary(store, cfg, day=LAST).set_index("key")
    assert health.loc["acme.churn", "slo_budget_slo"] == "fast"
    assert health.loc["acme.churn", "slo_budget_remaining"] == 0.42
    assert health.loc["globex.eta", "slo_budget_slo"] == ""  # no SLO: no budget


def test_status_and_page_show_the_budget_left(world) -> None:
    _, cfg, store = world
    _budgets(store, {"fast": -0.25, "up": 0.97})
    text = status_text(store, cfg, day=LAST)
    header = next(line for line in text.splitlines() if line.startswith("MODEL"))
    at = header.index("SLO BUDGET")
    churn = next(line for line in text.splitlines() if line.startswith("acme.churn"))
    eta = next(line for line in text.splitlines() if line.startswith("globex.eta"))
    assert churn[at:].startswith("fast -25%")
    assert eta[at:].startswith("-")
    page = render_overview(store, cfg, day=LAST)
    assert "<th>SLO budget left</th>" in page
    assert re.search(r"<b>acme\.churn</b>.*?<td[^>]*>fast -25%</td>", page, re.S)
