"""`aiops run` and `aiops report` on a small demo world, as a user would call them: every
partition a real Dagster run, so the module is slow."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import dagster as dg
import pytest

# loaded before any test sets $AIOPS_CONFIG, as in the whole suite: the daily partitions start
# at the fallback, so a day before the world is an empty partition (not a start_date error)
import aiops_pipelines.orchestration.partitions  # noqa: F401
from aiops_pipelines.cli import main
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.orchestration.partitions import range_of

pytestmark = pytest.mark.slow

END = date(2026, 3, 14)
#: a fresh demo world for every test (the `world` below), built by `make_world`
WORLD = dict(days=14, end_date=END, rows_per_day=1100, reference_rows=3000, register_models=False)


@pytest.fixture
def world(make_world: Callable[..., DemoWorld]) -> DemoWorld:
    """A fresh demo world for every test (they run and write into it)."""
    return make_world("cli", **WORLD)


def test_run_then_report_then_rerun_without_duplicates(world, capsys) -> None:
    cfg = str(world.config_path)
    days = ["--start", "2026-03-05", "--end", "2026-03-06"]
    assert main(["run", "--config", cfg, *days, "--model", "acme.intent", "--no-html"]) == 0
    out = capsys.readouterr()
    assert "2 partitions succeeded, 0 failed" in out.out
    assert "monitoring" in out.err  # the progress bar

    assert main(["report", "--config", cfg, "--model", "acme.intent", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    shares = [m for m in report["metrics"] if m["metric"] == "drift_share"]
    assert sorted(m["partition"] for m in shares) == ["2026-03-05", "2026-03-06"]

    assert main(["run", "--config", cfg, *days, "--model", "acme.intent", "--no-html"]) == 0
    capsys.readouterr()
    assert main(["report", "--config", cfg, "--model", "acme.intent", "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert len(again["metrics"]) == len(report["metrics"])
    assert len(again["findings"]) == len(report["findings"])

    assert main(["report", "--config", cfg, "--metric", "drift_share"]) == 0
    table = capsys.readouterr().out
    assert "drift_share" in table and "acme" in table

    # the default: a few readable lines per model, no hourly series
    assert main(["report", "--config", cfg, "--model", "acme.intent"]) == 0
    summary = capsys.readouterr().out
    assert "acme.intent  2026-03-05 .. 2026-03-06 (2 days)" in summary
    assert "drift share" in summary and "rows a day" in summary and len(summary) < 4000
    assert not any(m["metric"].endswith("_hour") for m in report["metrics"])
    assert (
        main(["report", "--config", cfg, "--model", "acme.intent", "--format", "json", "--hourly"])
        == 0
    )
    hourly = json.loads(capsys.readouterr().out)["metrics"]
    assert {m["metric"] for m in hourly} >= {"throughput_hour", "latency_p95_hour"}

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    relabel = [r for r in runs if r.tags.get("aiops/trigger") == "late_labels"]
    delivery = [r for r in runs if r.job_name == "alert_delivery_job"]
    # the reference once, then twice the two days in one range run followed by the overview
    # page of the range's last day (and a delivery run whenever notifications were due: here
    # the held-back summaries, retried on the webhook route whose URL variable is unset until
    # its breaker opens)
    assert len(runs) - len(relabel) - len(delivery) == 1 + 2 * (1 + 1)
    ranged = [r for r in runs if r not in relabel and range_of(r.tags)]
    assert [range_of(r.tags) for r in ranged] == [("acme.intent", *days[1::2])] * 2
    # and each time, the first day re-judged with the labels that arrived by the end of the
    # range (the second day's come later): the same runs again, the same stored result
    assert [range_of(r.tags) for r in relabel] == [("acme.intent", "2026-03-05", "2026-03-05")] * 2
    pages = sorted(p.name for p in (world.home / "artifacts" / "overview").glob("*.html"))
    assert pages == ["overview_2026-03-06.html"]  # a range's page is its last day's
    # any other day's on demand
    assert main(["overview", "--config", cfg, "--day", "2026-03-05"]) == 0
    capsys.readouterr()
    pages = sorted(p.name for p in (world.home / "artifacts" / "overview").glob("*.html"))
    assert pages == ["overview_2026-03-05.html", "overview_2026-03-06.html"]

    # Evidently's page of a day no run rendered, on demand from the stored profiles and samples
    page = world.home / "pages" / "intent-0305.html"
    html = ["report", "--config", cfg, "--html", "--model", "acme.intent"]
    assert main([*html, "--day", "2026-03-05", "--out", str(page)]) == 0
    assert capsys.readouterr().out.strip() == str(page.resolve())
    text = page.read_text()
    assert "<title>acme.intent 2026-03-05 · " in text and "Dataset Drift" in text
    assert main(html) == 2  # which day?
    assert main([*html, "--day", "2026-03-09"]) == 1  # never run: says how to
    assert "aiops run --config" in capsys.readouterr().err


def test_run_reports_a_failed_partition_and_exits_nonzero(world, capsys) -> None:
    cfg = str(world.config_path)
    code = main(
        [
            "run",
            "--config",
            cfg,
            "--start",
            "2026-02-01",
            "--end",
            "2026-02-01",
            "--model",
            "globex.eta",
            "--no-html",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED globex.eta 2026-02-01" in captured.err
    assert "empty partition" in captured.err and "model=globex.eta" in captured.err
    code = main(
        [
            "run",
            "--config",
            cfg,
            "--start",
            "2030-01-01",
            "--end",
            "2030-01-01",
            "--model",
            "globex.eta",
            "--no-html",
        ]
    )
    assert code == 1
    assert "partition 2030-01-01 is not closed yet" in capsys.readouterr().err


def test_a_blocking_check_says_what_it_saw_and_what_to_change(world, capsys) -> None:
    """A day with 40 predictions (min_rows 100): the error names the model, the partition,
    the observed value, the threshold and the setting, not only the check's name."""
    import sqlite3

    with sqlite3.connect(world.home / "world.db") as con:
        con.execute(
            "DELETE FROM acme_intent_predictions WHERE timestamp >= '2026-03-06' "
            "AND timestamp < '2026-03-07' AND rowid NOT IN (SELECT rowid FROM "
            "acme_intent_predictions WHERE timestamp >= '2026-03-06' AND timestamp < "
            "'2026-03-07' LIMIT 40)"
        )
    cfg = str(world.config_path)
    day = ["--start", "2026-03-06", "--end", "2026-03-06", "--model", "acme.intent", "--no-html"]
    assert main(["run", "--config", cfg, *day]) == 1
    err = capsys.readouterr().err
    assert "FAILED acme.intent 2026-03-06" in err
    assert "check 'row_count' failed" in err and "40 predictions" in err
    assert "thresholds.min_rows = 100" in err
    # a day before the first daily partition: the error names the setting, not Dagster's key
    old = ["--start", "2019-06-01", "--end", "2019-06-01", "--model", "acme.intent", "--no-html"]
    assert main(["run", "--config", cfg, *old]) != 0
    err = capsys.readouterr().err
    assert "field 'start_date'" in err and "start_date: 2019-06-01" in err
    assert "DagsterUnknownPartitionError" not in err


def test_a_backfill_judges_days_as_they_were_and_pages_nobody_about_them(
    world, capsys, monkeypatch
) -> None:
    """`aiops run` over past days: each day judged with the labels observed by its end (late
    ones re-judged as they arrived, within the range), alerts recorded but held back (the
    world's days are months before the wall clock) with one summary line per route and
    tenant; `--labels-now` judges with every label known now."""
    from aiops_pipelines.core.config import load_config
    from aiops_pipelines.demo.receiver import AlertReceiver
    from aiops_pipelines.demo.world import DEMO_WEBHOOK_ENV
    from aiops_pipelines.io.store import MonitoringStore

    cfg = str(world.config_path)
    # the world's bad batch (2026-03-04) is before the range
    days = ["--start", "2026-03-05", "--end", "2026-03-10", "--model", "acme.churn"]
    with AlertReceiver() as receiver:
        monkeypatch.setenv(DEMO_WEBHOOK_ENV, receiver.url("/hook"))
        assert main(["run", "--config", cfg, *days, "--no-html"]) == 0
    out = capsys.readouterr().out
    # one summary line on the webhook, nothing about any event on its own
    assert [m["status"] for m in receiver.received["/hook"]] == ["held_back"]
    store = MonitoringStore(load_config(cfg).storage.store_url)
    cov = store.metric_history("acme", "churn", metric="coverage", column="")
    replayed = cov.set_index("partition")["value"]
    # the last day: judged at its own end, before any label (they lag 1-5 days) arrived
    assert replayed["2026-03-10"] == 0.0
    # the first days were re-judged as their labels arrived during the range
    assert 0.3 < replayed["2026-03-05"] <= 0.66
    assert "late_labels_sensor: launched" in out

    found = store.findings("acme", "churn")
    events = store.alert_events("acme", "churn")
    assert len(found) and len(events), "the world's days raise alerts to hold back"
    assert all(p.get("held_back") for p in events["payload"])
    deliveries = store.deliveries()
    assert set(deliveries["status"]) == {"held"}
    assert deliveries["message_id"].notna().all()  # each told of by a summary
    lines = [json.loads(x) for x in (world.home / "alerts.jsonl").read_text().splitlines()]
    assert [m["status"] for m in lines] == ["held_back"]  # one line, no event of its own
    assert lines[0]["held"]["count"] == int((deliveries["route"] == "alerts-file").sum())
    assert f"{len(deliveries)} alert notification(s) older than 14 days recorded, not sent" in out

    # the status of a past day is that day's, not the latest
    assert main(["status", "--config", cfg, "--day", "2026-03-07", "--only", "alert"]) == 0
    early = capsys.readouterr().out
    assert "aiops status for 2026-03-07" in early
    assert all(line.split()[0] <= "2026-03-07" for line in early.splitlines() if " alert " in line)

    assert main(["run", "--config", cfg, *days, "--no-html", "--labels-now"]) == 0
    capsys.readouterr()
    now = store.metric_history("acme", "churn", metric="coverage", column="")
    known = now.set_index("partition")["value"]
    assert known["2026-03-10"] > 0.5
    assert (known >= replayed - 1e-12).all()
    assert len(store.deliveries()) == len(deliveries)  # nothing recorded or sent twice
    store.close()
