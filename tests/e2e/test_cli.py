"""`aiops run` and `aiops report` on a small demo world, as a user would call them: every
partition a real Dagster run, so the module is slow."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import dagster as dg
import pytest

from aiops_pipelines.cli import main
from aiops_pipelines.demo.world import DemoWorld

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
    # the reference once, then two days twice, each followed by that day's overview page
    assert len(runs) == 1 + 2 * (2 + 2)
    pages = sorted(p.name for p in (world.home / "artifacts" / "overview").glob("*.html"))
    assert pages == ["overview_2026-03-05.html", "overview_2026-03-06.html"]


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
