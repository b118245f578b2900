"""The production instance under a real `dagster-daemon`: on a PostgreSQL database of its own,
a sensor's runs for two tenants are queued, dequeued and launched by the daemon, all succeed,
two runs of one tenant are never in progress together (per-tenant limit 1) while runs of
different tenants are (the limit is per tenant, not global)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEventType

from aiops_pipelines.deploy import InstanceSettings, write_instance_yaml
from aiops_pipelines.orchestration.partitions import TENANT_TAG
from tests.e2e.queue_location import MARKERS_ENV, RUNS_PER_TENANT, TENANTS

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = "AIOPS_TEST_DAEMON_PG_URL"
RUNS = len(TENANTS) * RUNS_PER_TENANT
WAIT_SECONDS = 300.0


def _start_daemon(home: Path, tmp_path: Path, pg_url: str) -> tuple[subprocess.Popen, Path]:
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "tests.e2e.queue_location",
                            "working_directory": str(ROOT),
                            "location_name": "queue_test",
                        }
                    }
                ]
            }
        )
    )
    markers = tmp_path / "markers"
    markers.mkdir()
    log = tmp_path / "daemon.log"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        PG_ENV: pg_url,
        MARKERS_ENV: str(markers),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server and run workers: one process group
        )
    return proc, log


def _stop(proc: subprocess.Popen) -> None:
    """The daemon, its code server and the run processes it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # any of the group left after the daemon
        os.killpg(proc.pid, signal.SIGKILL)


def _finished_runs(instance: dg.DagsterInstance, proc: subprocess.Popen, log: Path) -> list:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        records = instance.get_run_records()
        done = [r for r in records if r.dagster_run.is_finished]
        if len(done) == RUNS:
            return records
        assert proc.poll() is None, f"dagster-daemon exited:\n{log.read_text()[-4000:]}"
        time.sleep(1.0)
    states = sorted((r.dagster_run.tags.get(TENANT_TAG), r.dagster_run.status) for r in records)
    pytest.fail(f"runs not finished in {WAIT_SECONDS:.0f} s: {states}\n{log.read_text()[-4000:]}")


def test_the_daemon_dequeues_each_tenants_runs_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_pg_url: str
) -> None:
    home = tmp_path / "dagster-home"
    settings = InstanceSettings(postgres_url_env=PG_ENV, max_concurrent_runs=3, per_tenant=1)
    write_instance_yaml(home, settings)  # the file `aiops instance` writes, as it writes it
    monkeypatch.setenv(PG_ENV, dagster_pg_url)
    # opened first, so that its tables exist before the daemon starts
    with dg.DagsterInstance.from_config(str(home)) as instance:
        _check_the_queue(instance, *_start_daemon(home, tmp_path, dagster_pg_url))


def _check_the_queue(instance: dg.DagsterInstance, proc: subprocess.Popen, log: Path) -> None:
    try:
        records = _finished_runs(instance, proc, log)
    finally:
        _stop(proc)
    failed = [
        (r.dagster_run.run_id, r.dagster_run.status)
        for r in records
        if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
    ]
    assert not failed, f"{failed}\n{log.read_text()[-4000:]}"
    # per run: (enqueued, dequeued, started, ended); the daemon reports a dequeued run as
    # STARTING, just before it launches it
    runs: dict[str, list[tuple[float, float, float, float]]] = {t: [] for t in TENANTS}
    for r in records:
        run_id = r.dagster_run.run_id
        [enqueued] = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.RUN_ENQUEUED
        ).records
        [dequeued] = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.RUN_STARTING
        ).records
        runs[r.dagster_run.tags[TENANT_TAG]].append(
            (enqueued.timestamp, dequeued.timestamp, r.start_time, r.end_time)
        )
    assert sorted(len(s) for s in runs.values()) == [RUNS_PER_TENANT] * len(TENANTS)
    for tenant, spans in runs.items():
        spans.sort(key=lambda s: s[2])
        for first, later in zip(spans, spans[1:], strict=False):
            # queued while the tenant's other run was in progress, dequeued once it ended
            assert later[0] < first[3] <= later[1], f"{tenant}: {spans}"
            assert first[3] <= later[2], f"two runs of {tenant} were in progress together"
    firsts = [spans[0] for spans in runs.values()]
    assert max(s[2] for s in firsts) < min(s[3] for s in firsts), (
        f"the tenants' first runs were never in progress together: {runs}"
    )
