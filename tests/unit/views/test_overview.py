"""The overview over a real SQLite store: feed, health, the HTML page (also in Chromium) and
`aiops status`."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aiops_pipelines.cli import main
from aiops_pipelines.core.config import load_config
from aiops_pipelines.core.findings import Finding, Severity, Signal
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.overview import FEED_COLUMNS, feed, health_summary
from aiops_pipelines.views.page import render_overview
from aiops_pipelines.views.status import status_text
from tests.unit.views.hostile import PAYLOADS, markup_from_data
from tests.unit.views.support import (
    CHURN_AUC,
    LAST,
    RUN_ID,
    _alerts,
    _config_dict,
    _deliveries,
)

# -- feed ------------------------------------------------------------------------------------


def test_feed_lists_findings_actions_and_alert_changes_newest_first(world) -> None:
    _, _, store = world
    events = feed(store, day=LAST, days=7, alerts=_alerts())
    assert list(events.columns) == FEED_COLUMNS
    assert list(events["when"]) == sorted(events["when"], reverse=True)
    assert set(events["kind"]) == {"finding", "action", "alert"}
    # warning and critical findings only: the info-free days do not appear
    findings = events[events["kind"] == "finding"]
    assert set(findings["severity"]) == {"warning", "critical"}
    assert set(findings["signal"]) == {
        "feature_drift",
        "performance_decay",
        "throughput_anomaly",
        "pipeline_failure",
        "canary_fail",
    }
    failure = findings[findings["signal"] == "pipeline_failure"].iloc[0]
    assert (failure["when"], failure["column"]) == ("2026-03-13", RUN_ID)
    # the newest day starts with the most severe entries of that day
    top = events.iloc[0]
    assert top["when"] == LAST
    actions = events[events["kind"] == "action"]
    assert list(actions["signal"]) == ["rollback_canary", "retrain"]
    assert "canary credibly worse" in actions.iloc[0]["message"]
    assert "2026-01-02" not in set(events["when"])  # the old action is outside the window
    alerts = events[events["kind"] == "alert"]
    changes = set(zip(alerts["when"], alerts["signal"], alerts["source"], strict=True))
    assert changes == {
        ("2026-03-13", "feature_drift", "firing"),
        ("2026-03-14", "performance_decay", "pending"),
        ("2026-03-12", "throughput_anomaly", "firing"),
        ("2026-03-13", "throughput_anomaly", "resolved"),
    }


def test_feed_window_and_model_filter(world) -> None:
    _, _, store = world
    one_day = feed(store, day="2026-03-12", days=1, tenant="globex", model="eta")
    assert list(one_day["signal"]) == ["throughput_anomaly"]
    assert feed(store, day="2026-03-06", days=2).empty
    with pytest.raises(ValueError, match="not a date"):
        feed(store, day="yesterday")


# -- health ----------------------------------------------------------------------------------


def test_health_status_per_model_from_findings_and_firing_alerts(world) -> None:
    _, cfg, store = world
    health = health_summary(store, cfg, day=LAST).set_index("key")
    assert list(health.index) == ["acme.churn", "acme.fraud", "globex.eta"]
    assert health.loc["acme.churn", "status"] == "critical"  # critical drift + canary fail
    assert health.loc["acme.fraud", "status"] == "no data"
    assert health.loc["globex.eta", "status"] == "ok"

    churn = health.loc["acme.churn"]
    assert churn["drift_share"] == 0.5
    assert churn["throughput"] == 3000 and churn["latency_p95_ms"] == 85.0
    # the newest day has no labels yet: performance comes from the latest labelled day
    assert churn["performance_partition"] == "2026-03-13"
    assert churn["primary_metric"] == "roc_auc"
    assert churn["primary_value"] == pytest.approx(CHURN_AUC["2026-03-13"])
    assert churn["coverage"] == 0.3 and churn["reference_value"] == 0.9
    assert (churn["canary"], churn["canary_version"]) == ("fail", "3")
    assert churn["issues"].split(", ")[:2] == ["feature_drift", "canary_fail"]

    # a day with only a warning finding; and a firing critical alert escalates an ok model
    assert (
        health_summary(store, cfg, day="2026-03-12").set_index("key").loc["globex.eta", "status"]
        == "warning"
    )
    alerts = _alerts()
    alerts.loc[2, ["state", "severity", "resolved_on"]] = ["firing", "critical", None]
    with_alerts = health_summary(store, cfg, day=LAST, alerts=alerts).set_index("key")
    assert with_alerts.loc["globex.eta", "status"] == "critical"
    assert with_alerts.loc["globex.eta", "alerts_firing"] == 1
    assert with_alerts.loc["acme.churn", "alerts_firing"] == 1  # the pending one does not count


def test_status_text_is_an_aligned_plain_table(world) -> None:
    _, cfg, store = world
    text = status_text(store, cfg, day=LAST, alerts=_alerts(), days=3)
    assert "\x1b[" not in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("MODEL"))
    rows = [line for line in lines if line.startswith(("acme.", "globex."))][:3]
    status_at = header.index("STATUS")
    assert [r[status_at:].split()[0] for r in rows] == ["critical", "no", "ok"]
    assert "pipeline_failure" in text and RUN_ID[:20] in text
    assert "\nTraceback" not in text  # a message is kept on one line
    coloured = status_text(store, cfg, day=LAST, color=True)
    assert "\x1b[31;1mcritical" in coloured


def test_a_day_a_run_left_half_done_shows_as_incomplete(world) -> None:
    """A run killed after feature_profile and ops_report of a day: its other assets never
    stored anything (each asset's rows are replaced whole or not at all)."""
    _, cfg, store = world
    assert "day incomplete" not in status_text(store, cfg, day=LAST)
    store.replace_partition("acme", "churn", LAST, "drift_report", metrics={}, findings=[])
    health = health_summary(store, cfg, day=LAST).set_index("key")
    assert health.loc["acme.churn", "missing_assets"] == "drift_report"
    assert health.loc["acme.churn", "issues"].startswith("day incomplete, ")
    # a day never run is not half-done, and a complete one is complete
    assert health.loc["acme.fraud", "missing_assets"] == ""
    assert health.loc["globex.eta", "missing_assets"] == ""
    text = status_text(store, cfg, day=LAST)
    assert (
        f"day incomplete: acme.churn {LAST} has no drift_report (a run stopped part-way): "
        f"aiops run --config {cfg.path} --start {LAST} --end {LAST} --model acme.churn"
    ) in text


def test_aiops_status_defaults_to_the_latest_partition(world, capsys) -> None:
    path, _, _ = world
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"aiops status for {LAST}")
    assert "acme.churn" in out and "globex.eta" in out and "rollback_canary" in out
    assert main(["status", "--config", str(path), "--day", "2026-03-12", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "throughput_anomaly" in out and "rollback_canary" not in out


def test_aiops_status_on_an_empty_store(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config_dict(tmp_path)))
    assert main(["status", "--config", str(path)]) == 0
    assert "nothing stored yet" in capsys.readouterr().out


# -- the HTML page ---------------------------------------------------------------------------


def _page(world) -> str:
    _, cfg, store = world
    return render_overview(
        store,
        cfg,
        day=LAST,
        alerts=_alerts(),
        deliveries=_deliveries(),
        generated_at=dt.datetime(2026, 3, 15, 6, 30, tzinfo=dt.UTC),
    )


def test_overview_page_is_self_contained_and_escapes_text(world) -> None:
    page = _page(world)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "2026-03-15 06:30:00 UTC" in page
    assert "<script" not in page.lower().replace("&lt;script", "")
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "HTTP 500 from pager &lt;gateway&gt;" in page
    for external in ("http://", "https://", "<link", "@import", "url("):
        assert external not in page
    assert '<table id="health">' in page and '<table id="feed">' in page
    for row_class, key in (
        ("status-critical", "acme.churn"),
        ("status-nodata", "acme.fraud"),
        ("status-ok", "globex.eta"),
    ):
        assert re.search(f'<tr class="{row_class}"><td[^>]*><b>{re.escape(key)}</b>', page)
    # the heat map shows the drifted feature per day, the trend its reference and limits
    assert "age 2026-03-14: psi 0.35, critical" in page
    assert "reference 0.9" in page and "warning 0.855" in page and "critical 0.765" in page
    assert "ops &quot;night&quot; \\ team" in page  # a route name, escaped


def test_overview_page_keeps_hostile_values_as_text(world) -> None:
    """Category values reach the page through findings (column, message), metric columns
    (the heat map), alerts, deliveries and the audit trail: none of them becomes markup."""
    _, cfg, store = world
    findings = [
        Finding(
            tenant="acme",
            model="churn",
            partition=LAST,
            asset="drift_report",
            signal=Signal.UNSEEN_CATEGORY.value,
            severity=Severity.WARNING,
            value=0.2,
            threshold=0.01,
            column=p,
            message=f"feature {p!r}: 20% of values are new: {p} (12)",
        )
        for p in PAYLOADS
    ]
    store.replace_partition(
        "acme",
        "churn",
        LAST,
        "drift_report",
        metrics={("drift_share", ""): 0.5, **{("drift_psi", p): 0.3 for p in PAYLOADS}},
        findings=findings,
    )
    store.record_action(
        PAYLOADS[0], PAYLOADS[1], "acme", "churn", partition=LAST, details={"reason": PAYLOADS[2]}
    )
    alerts = _alerts()
    alerts.loc[0, ["column", "message"]] = [PAYLOADS[0], PAYLOADS[1]]
    deliveries = _deliveries()
    deliveries.loc[1, ["route", "last_error"]] = [PAYLOADS[2], PAYLOADS[0]]
    page = render_overview(
        store,
        cfg,
        day=LAST,
        alerts=alerts,
        deliveries=deliveries,
        generated_at=dt.datetime(2026, 3, 15, 6, 30, tzinfo=dt.UTC),
    )
    assert markup_from_data(page) == []
    for p in PAYLOADS:  # shown, as text
        assert html.escape(p) in page


def test_overview_of_an_empty_store_says_there_is_no_data(tmp_path: Path) -> None:
    with MonitoringStore(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        page = render_overview(store, None, day="2026-03-14")
        assert 'id="no-data"' in page and "No data" in page
        assert '<table id="health">' in page and '<table id="feed">' in page
        cfg_path = tmp_path / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(_config_dict(tmp_path)))
        page = render_overview(store, load_config(cfg_path), day="2026-03-14")
        assert page.count('class="status-nodata"') == 3


def test_overview_stays_compact_for_many_models_and_a_month(tmp_path: Path) -> None:
    with MonitoringStore(f"sqlite:///{tmp_path / 'many.db'}") as store:
        month = [(dt.date(2026, 2, 13) + dt.timedelta(days=i)).isoformat() for i in range(30)]
        for k in range(12):
            for day in month:
                store.replace_partition(
                    "t",
                    f"m{k:02d}",
                    day,
                    "drift_report",
                    metrics={("drift_share", ""): 0.0}
                    | {("drift_psi", f"feature_{j}"): 0.01 * j for j in range(15)},
                    findings=[],
                )
        page = render_overview(store, None, day="2026-03-14", window_days=30)
    assert page.count('aria-label="drift heat map') == 12
    assert len(page) < 3_000_000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.skip("chromium not installed: apt-get install chromium to run the browser check")
    return found


def test_overview_renders_in_headless_chromium(world, tmp_path: Path) -> None:
    chromium = _chromium()
    page = tmp_path / "overview.html"
    page.write_text(_page(world), encoding="utf-8")
    common = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-extensions",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    health = dom[dom.index('<table id="health">') :]
    health = health[: health.index("</table>")]
    for key in ("acme.churn", "acme.fraud", "globex.eta"):
        assert key in health
    feed_table = dom[dom.index('<table id="feed">') :]
    feed_table = feed_table[: feed_table.index("</table>")]
    assert "pipeline_failure" in feed_table and "throughput_anomaly" in feed_table
    assert "rollback_canary" in feed_table and "canary_fail" in feed_table
    assert "&lt;script&gt;" in feed_table  # shown as text, never run

    shot = tmp_path / "overview.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1400,2000", page.as_uri()],
        capture_output=True,
        timeout=60,
        check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
