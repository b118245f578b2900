"""The console in a real browser (Playwright driving Debian's chromium) over a demo world run
by `aiops run`: log in with a token, see the models and the incidents the pipeline found,
silence an alert and see it muted; a category value `<script>` stays text."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from aiops_pipelines.cli import main
from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.grading import detection_summary
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from tests.servers import ConsoleServer

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)
WORLD = dict(days=14, end_date=END, rows_per_day=600, reference_rows=2000, register_models=False)
HOSTILE = "<script>alert(1)</script>"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium not installed: `make chromium` (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def site(make_world: Callable[..., DemoWorld], tmp_path_factory) -> Iterator[tuple]:
    world = make_world("console_browser", **WORLD)
    # a third of the last day's traffic in a region the reference never had, named like markup
    with sqlite3.connect(world.world_db) as db:
        db.execute(
            "UPDATE acme_churn_predictions SET region = ? WHERE timestamp >= ? AND rowid % 3 = 0",
            (HOSTILE, END.isoformat()),
        )
    cfg = str(world.config_path)
    start = (END - timedelta(days=WORLD["days"] - 1)).isoformat()
    code = main(["run", "--config", cfg, "--start", start, "--end", END.isoformat(), "--no-html"])
    assert code in (0, 1)  # the world's injected bad batches fail their partitions on purpose
    config = load_config(cfg)
    store = MonitoringStore(config.storage.store_url)
    _, token = store.create_token(tenant=None, role="admin", name="browser")
    server = ConsoleServer(Path(cfg), tmp_path_factory.mktemp("console_server"))
    try:
        yield world, store, token, server.url
    finally:
        server.close()
        store.close()


@pytest.fixture
def page(site, tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        context = browser.new_context()
        pg = context.new_page()
        dialogs: list[str] = []
        errors: list[str] = []
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.dialogs, pg.errors = dialogs, errors
        try:
            yield pg
        finally:
            pg.screenshot(path=str(tmp_path / "last.png"), full_page=True)
            browser.close()


def _login(page, url: str, token: str) -> None:
    page.goto(url + "/")
    assert page.url.endswith("/login")
    page.fill("input[name=token]", token)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#health")


def test_log_in_see_the_models_and_the_incidents_found(site, page) -> None:
    world, store, token, url = site
    _login(page, url, token)
    keys = page.locator("#health tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert sorted(keys) == sorted(world.models)
    assert page.locator("#who").inner_text().startswith("browser")
    # every incident the pipeline detected is in the feed, as the pipeline named it
    summary = detection_summary(world.manifest, store.findings())
    detected = {(r["model"], r["signal"]) for r in summary.incidents if r["status"] == "detected"}
    assert detected, summary.render()
    page.goto(f"{url}/feed?days={WORLD['days']}&severity=warning")
    feed = page.locator("#feed tbody").inner_text()
    for model, signal in detected:
        assert signal in feed and model in feed, (model, signal)
    # the model page draws its charts with the bundled Plotly (no CDN, under the CSP)
    page.goto(f"{url}/models/acme/churn?days=14")
    page.wait_for_selector("#drift-chart .main-svg")
    page.wait_for_selector("#feature-chart .main-svg")
    assert page.errors == []


def test_silence_an_alert_from_the_page_and_see_it_muted(site, page) -> None:
    _, store, token, url = site
    _login(page, url, token)
    page.goto(url + "/alerts")
    firing = page.locator("#alerts tbody tr", has=page.locator("td.state", has_text="firing"))
    assert firing.count() > 0
    row = firing.first
    fingerprint = row.get_attribute("data-fingerprint")
    assert "muted" not in row.locator("td.flags").inner_text()
    row.locator("a", has_text="details").click()
    page.fill("#silence-form input[name=hours]", "2")
    page.fill("#silence-form input[name=comment]", "known vendor change")
    page.click("#silence-form button[type=submit]")
    page.wait_for_selector("#alert-detail")
    muted = page.locator(f'#alerts tbody tr[data-fingerprint="{fingerprint}"] td.flags')
    assert "muted until" in muted.inner_text()
    assert "known vendor change" in page.locator("#silences").inner_text()
    (silence,) = store.silences().to_dict("records")
    assert silence["fingerprint"] == fingerprint and silence["comment"] == "known vendor change"
    assert silence["created_by"] == "token:browser#1"
    # the overview counts it as muted too
    page.goto(url + "/")
    assert "muted" in page.locator("#health").inner_text()


def test_a_category_named_like_a_script_is_shown_as_text(site, page) -> None:
    _, _, token, url = site
    _login(page, url, token)
    page.goto(f"{url}/feed?days=1&signal=unseen_category&model=churn")
    text = page.locator("#feed tbody").inner_text()
    assert HOSTILE in text  # shown as the characters it is
    page.goto(f"{url}/models/acme/churn?days=14&day={END.isoformat()}")
    page.select_option("#feature-form select[name=feature]", "region")
    page.wait_for_selector("#feature-chart .main-svg")
    ticks = page.locator("#feature-chart .xtick text").evaluate_all(
        "t => t.map(e => e.textContent)"
    )
    assert HOSTILE in ticks  # a bar of its own, labelled with the value as text
    assert page.dialogs == [] and page.errors == []
    assert page.evaluate("document.querySelectorAll('main script').length") == 1  # data only
