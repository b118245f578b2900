"""Runs that overlap or die: `aiops run` as separate processes on a small demo world.

The same range run twice at once (as when a schedule fires while a manual backfill of the same
days is still going) fails nothing and stores what one run stores, on SQLite and PostgreSQL;
a run killed with SIGKILL mid-way leaves debris that the next `aiops run` clears at its start.
Every run is a real subprocess with its own Dagster, MLflow and store connections (slow).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from mlflow import MlflowClient

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.schema import TABLES
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import TAG_ASSET, TAG_PARTITION
from aiops_pipelines.orchestration.partitions import MODELS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
WORLD = dict(
    days=10,
    end_date=date(2026, 3, 14),
    rows_per_day=600,
    reference_rows=2000,
    register_models=False,
)
#: acme.churn drifts from 2026-03-08 (covariate drift): findings, alerts and notifications
MODEL = "acme.churn"
RANGE = ["--start", "2026-03-12", "--end", "2026-03-13", "--model", MODEL]
#: what differs between two equal stores: ids, clocks, who claimed a notification, the id of
#: a message (a hash of delivery ids), and how often a failing route was tried (each run that
#: finds a notification pending tries it once more)
VOLATILE = {"id", "event_id", "created_at", "updated_at", "ts", "claim", "claimed_at", "sent_at"}
VOLATILE |= {"message_id", "attempts", "read_at", "queued_at", "token"}
#: How each route's deliveries went (its circuit breaker): two runs delivering make two
#: attempts on a failing route where one run makes one; results, not operations, are compared.
OPERATIONAL = {"alert_routes"}


#: Run in the subprocess before `aiops run`: a SIGKILL once feature_profile has stored its
#: rows and opened its MLflow run (drift_report, which needs it, never runs).
KILL_WHILE_LOGGING_FEATURE_PROFILE = """
import contextlib, os, signal
from aiops_pipelines.io.tracking import Tracker
opened = Tracker.partition_run
@contextlib.contextmanager
def partition_run(self, model_key, asset, partition, **kwargs):
    with opened(self, model_key, asset, partition, **kwargs) as run:
        if asset == "feature_profile":
            os.kill(os.getpid(), signal.SIGKILL)
        yield run
Tracker.partition_run = partition_run
"""
#: ... and a SIGKILL while the first notification is being sent (claimed, not yet sent).
KILL_WHILE_SENDING = """
import os, signal
from aiops_pipelines.alerting import outbox
def send(route, message, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
outbox.send = send
"""


def _world(make_world: Callable[..., DemoWorld], name: str, store_url: str) -> DemoWorld:
    world = make_world(name, **WORLD)
    raw = yaml.safe_load(world.config_path.read_text())
    raw["storage"]["store_url"] = store_url
    world.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return world


def _env(world: DemoWorld) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIOPS_HOME": str(world.home.parent),
        "DAGSTER_HOME": str(world.home.parent / "dagster"),
    }


def _aiops(world: DemoWorld, *args: str, before: str = "") -> subprocess.Popen:
    """`aiops run ...` in its own process; `before` runs first in it (a fault to inject)."""
    script = f"import sys\n{before}\nfrom aiops_pipelines.cli import main\nsys.exit(main())"
    (world.home.parent / "dagster").mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", script, "run", "--config", str(world.config_path), *args],
        env=_env(world),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _failed_partitions(out: str) -> int:
    found = re.search(r"(\d+) partitions succeeded, (\d+) failed", out)
    assert found, out
    return int(found.group(2))


def _store_content(url: str) -> dict[str, list[tuple]]:
    """Every store table's rows without their ids and times, sorted, numbers rounded."""

    def plain(value):
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 9)
        return value

    with MonitoringStore(url) as store, store.engine.connect() as conn:
        return {
            t.name: sorted(
                (tuple(plain(v) for v in row) for row in conn.execute(sa.select(*cols))),
                key=repr,
            )
            for t in TABLES
            if t.name not in OPERATIONAL
            if (cols := [c for c in t.columns if c.name not in VOLATILE])
        }


def _mlflow(world: DemoWorld) -> list:
    client = MlflowClient(load_config(world.config_path).storage.mlflow_tracking_uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=1000)


def _mlflow_runs(world: DemoWorld) -> list[tuple[str, str, str]]:
    """(asset, partition, status) of every MLflow run."""
    return sorted(
        (r.data.tags.get(TAG_ASSET, ""), r.data.tags.get(TAG_PARTITION, ""), r.info.status)
        for r in _mlflow(world)
    )


def _mlflow_tags(world: DemoWorld, asset: str, partition: str) -> dict[str, str]:
    [run] = [
        r
        for r in _mlflow(world)
        if (r.data.tags.get(TAG_ASSET), r.data.tags.get(TAG_PARTITION)) == (asset, partition)
    ]
    return run.data.tags


def _status(world: DemoWorld) -> list[str]:
    """`aiops status` of the latest day stored, line by line."""
    return subprocess.run(
        [sys.executable, "-m", "aiops_pipelines.cli", "status", "--config", str(world.config_path)],
        env=_env(world),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def test_the_same_range_run_twice_at_once_fails_nothing_and_stores_what_one_run_does(
    make_world: Callable[..., DemoWorld],
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two `aiops run`s of one range start together; a third run of the same range, alone on
    a copy of the world, is what they must together have stored.

    On SQLite with the HTML reports and their samples, MLflow's database and the Dagster
    partitions made beforehand (what is left to race: the files, the assets' writes); on
    PostgreSQL without HTML on a new world (also MLflow's first migrations and the partitions'
    registration)."""
    sqlite = store_url.startswith("sqlite")
    html = [] if sqlite else ["--no-html"]
    world = _world(make_world, "overlap", store_url)
    if sqlite:
        MlflowClient(
            load_config(world.config_path).storage.mlflow_tracking_uri
        ).search_experiments()
        (world.home.parent / "dagster").mkdir()
        monkeypatch.setenv("DAGSTER_HOME", str(world.home.parent / "dagster"))
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(MODELS, [MODEL])
    alone = _world(make_world, "alone", f"sqlite:///{tmp_path / 'alone.db'}")
    pair = [_aiops(world, *RANGE, *html) for _ in range(2)]
    single = _aiops(alone, *RANGE, *html)
    results = [_finish(p) for p in pair]
    for code, out, err in results:
        assert (code, _failed_partitions(out)) == (0, 0), err[-3000:]
    assert _finish(single)[0] == 0

    assert _store_content(store_url) == _store_content(f"sqlite:///{tmp_path / 'alone.db'}")
    # one MLflow run per (asset, partition), each finished, as after one run
    assert _mlflow_runs(world) == _mlflow_runs(alone)
    assert {status for _, _, status in _mlflow_runs(world)} == {"FINISHED"}
    reports = world.config_path.parent / "artifacts" / "reports" / MODEL
    assert not list(reports.iterdir()), "each run's report files are removed once logged"


def test_a_killed_run_leaves_nothing_the_next_run_does_not_clear(
    make_world: Callable[..., DemoWorld], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL mid-run, twice: first while feature_profile is being logged to MLflow, then
    (in the next run) while a notification is being sent. Each next `aiops run` fails the dead
    run's Dagster run, ends its MLflow run as FAILED and releases its claimed notifications
    at its start; until then `aiops status` shows the half-done day."""
    world = _world(make_world, "killed", f"sqlite:///{tmp_path / 'store.db'}")
    raw = yaml.safe_load(world.config_path.read_text())
    raw["alerting"]["max_event_age_days"] = 100_000  # page about these days: deliveries
    world.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    day = ["--start", "2026-03-12", "--end", "2026-03-12", "--model", MODEL, "--no-html"]
    store = MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("DAGSTER_HOME", str(world.home.parent / "dagster"))

    def unfinished() -> list[dg.DagsterRun]:
        with dg.DagsterInstance.get() as instance:
            return [r for r in instance.get_runs() if not r.is_finished]

    code, _, _ = _finish(_aiops(world, *day, before=KILL_WHILE_LOGGING_FEATURE_PROFILE))
    assert code == -9
    [first] = unfinished()
    [running] = [r for r in _mlflow_runs(world) if r[2] == "RUNNING"]
    assert running[:2] == ("feature_profile", "2026-03-12")
    [incomplete] = [line for line in _status(world) if line.startswith("day incomplete")]
    assert incomplete.startswith(f"day incomplete: {MODEL} 2026-03-12 has no ")
    assert "drift_report" in incomplete and "feature_profile" not in incomplete

    code, _, _ = _finish(_aiops(world, *day, before=KILL_WHILE_SENDING))
    assert code == -9
    # the second run cleared the first's debris before it died in its turn
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.FAILURE
    # its MLflow run was ended as FAILED (then reused and finished by the second run's retry)
    tags = _mlflow_tags(world, "feature_profile", "2026-03-12")
    assert "died mid-attempt" in tags["aiops.failed_because"] and tags["aiops.attempt"] == "1"
    [second] = unfinished()
    sending = store.deliveries(status="sending")
    assert len(sending), "the second run died holding its claimed notifications"

    code, out, err = _finish(_aiops(world, *day))
    assert code == 0, err[-3000:]
    assert (
        f"left by runs that died: 1 Dagster run(s) marked failed, 0 MLflow run(s) ended as "
        f"FAILED, {len(sending)} claimed notification(s) released"
    ) in out
    assert unfinished() == []
    with dg.DagsterInstance.get() as instance:
        failed = instance.get_run_by_id(second.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    deliveries = store.deliveries()
    assert "sending" not in set(deliveries["status"])
    # released at once, not after the 10 minutes of a stale claim: the file route has them
    assert set(deliveries.loc[deliveries["route"] == "alerts-file", "status"]) == {"sent"}
    assert not [line for line in _status(world) if line.startswith("day incomplete")]
    store.close()


def test_runs_opening_a_new_dagster_home_at_once_all_open_it(tmp_path: Path) -> None:
    """Four processes open the Dagster instance of a new home at the same moment (a barrier
    file releases them together), as two `aiops run`s starting on a new machine do: its
    databases are created once and every process opens it."""
    go = tmp_path / "go"
    script = f"""
import pathlib, sys, time
from aiops_pipelines.orchestration.runner import persistent_instance
pathlib.Path(sys.argv[1]).touch()
while not pathlib.Path({str(go)!r}).exists():
    time.sleep(0.01)
with persistent_instance() as instance:
    instance.get_runs(limit=1)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path / "dagster")}
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(r)], env=env, stderr=subprocess.PIPE, text=True
        )
        for r in ready
    ]
    while not all(r.exists() for r in ready):
        assert all(p.poll() is None for p in procs), "a process ended before the barrier"
        time.sleep(0.05)
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)[-3000:]


def test_workers_run_the_models_in_parallel_and_store_what_one_process_does(
    make_world: Callable[..., DemoWorld], tmp_path: Path
) -> None:
    """`aiops run --workers 2`: three models over two processes (SQLite store and Dagster
    home), then the range's overview page once; the store ends as one process leaves it."""
    days = ["--start", "2026-03-12", "--end", "2026-03-13", "--no-html"]
    world = _world(make_world, "workers", f"sqlite:///{tmp_path / 'workers.db'}")
    alone = _world(make_world, "one_process", f"sqlite:///{tmp_path / 'one.db'}")
    code, out, err = _finish(_aiops(world, *days, "--workers", "2"))
    assert code == 0, err[-3000:]
    assert "3 model(s) over 2 worker process(es)" in err
    assert out.count("worker ") == 2 and _failed_partitions(out) == 0
    assert "6 partitions succeeded, 0 failed" in out
    assert _finish(_aiops(alone, *days))[0] == 0
    assert _store_content(f"sqlite:///{tmp_path / 'workers.db'}") == _store_content(
        f"sqlite:///{tmp_path / 'one.db'}"
    )
    pages = sorted(p.name for p in (world.config_path.parent / "artifacts" / "overview").iterdir())
    assert pages == ["overview_2026-03-13.html"]  # the range's last day's, as one process writes
