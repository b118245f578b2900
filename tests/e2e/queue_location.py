"""A small code location for the queued-run test (test_daemon_queue.py): one job and a sensor
that asks, once, for two runs of each of two tenants, tagged the way every per-model run request
of aiops-pipelines is (`tenant_tags`).

Each run leaves a marker and then holds until every tenant has a run started, so the test sees
runs of different tenants in progress together whenever the queue lets them be (and a run
fails, saying so, when it does not within HOLD_SECONDS)."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from aiops_pipelines.orchestration.partitions import tenant_tags

MARKERS_ENV = "AIOPS_TEST_QUEUE_MARKERS"
TENANTS = ("acme", "globex")
RUNS_PER_TENANT = 2
HOLD_SECONDS = 60.0


class HoldConfig(dg.Config):
    tenant: str
    markers: str


@dg.op
def hold_until_every_tenant_runs(context: dg.OpExecutionContext, config: HoldConfig) -> None:
    markers = Path(config.markers)
    (markers / f"{config.tenant}.{context.run_id}").touch()
    deadline = time.monotonic() + HOLD_SECONDS
    while not all(any(markers.glob(f"{t}.*")) for t in TENANTS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no run of every tenant started within {HOLD_SECONDS:.0f} s")
        time.sleep(0.2)
    time.sleep(1.0)  # still in progress a moment after the other tenant's run started


@dg.job
def tenant_job() -> None:
    hold_until_every_tenant_runs()


@dg.sensor(
    job=tenant_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def tenant_runs_sensor(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest]:
    markers = os.environ[MARKERS_ENV]
    for tenant in TENANTS:
        for i in range(RUNS_PER_TENANT):
            yield dg.RunRequest(
                run_key=f"{tenant}-{i}",  # asked for on every tick, launched once
                run_config=dg.RunConfig(
                    ops={"hold_until_every_tenant_runs": HoldConfig(tenant=tenant, markers=markers)}
                ),
                tags=tenant_tags(f"{tenant}.model"),
            )


defs = dg.Definitions(jobs=[tenant_job], sensors=[tenant_runs_sensor])
