"""A trace per pipeline run, a span per asset and partition: real Dagster runs over a small
demo world, the spans caught by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from aiops_pipelines.core.config import load_config
from aiops_pipelines.demo.world import DemoWorld
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.orchestration.partitions import MODELS, partition_key, partition_range_tags
from aiops_pipelines.orchestration.resources import (
    MlflowResource,
    MonitoringConfig,
    default_resources,
)
from aiops_pipelines.orchestration.runner import ALL_ASSETS
from aiops_pipelines.views import telemetry
from assets.monitoring import drift_report, feature_profile, reference_profile
from assets.operations import ops_report
from tests.servers import OtlpReceiver

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # demo worlds and real Dagster runs

KEY = "acme.churn"


def _resources(world: DemoWorld) -> dict:
    return {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(world.config_path)),
        "mlflow": MlflowResource(enabled=False),
    }


def test_a_run_is_one_trace_with_a_span_per_asset_and_partition(
    make_world: Callable[..., DemoWorld],
) -> None:
    world = make_world(
        "tracing",
        days=14,
        end_date=date(2026, 3, 14),
        rows_per_day=200,
        reference_rows=500,
        register_models=False,
    )
    (bad,) = [i for i in world.manifest["incidents"] if i["kind"] == "bad_batch"]
    assert bad["model"] == KEY
    start = date.fromisoformat(world.manifest["start"]).isoformat()
    first, last = "2026-03-04", "2026-03-05"
    assert start < first and bad["start"] not in (first, last)
    store = MonitoringStore(load_config(world.config_path).storage.store_url)
    exporter = InMemorySpanExporter()
    with dg.instance_for_test() as instance, telemetry.spans_to(exporter):
        instance.add_dynamic_partitions(MODELS, [KEY])
        ref = dg.materialize(
            ALL_ASSETS,
            selection=[reference_profile],
            partition_key=KEY,
            instance=instance,
            resources=_resources(world),
        )
        assert ref.success
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            daily = dg.materialize(
                ALL_ASSETS,
                selection=[feature_profile, drift_report, ops_report],
                instance=instance,
                resources=_resources(world),
                tags=partition_range_tags(KEY, first, last),
            )
        assert daily.success
        failed = dg.materialize(
            ALL_ASSETS,
            selection=[feature_profile],
            partition_key=partition_key(bad["start"], KEY),
            instance=instance,
            resources=_resources(world),
            raise_on_error=False,
        )
        assert not failed.success
    spans = exporter.get_finished_spans()
    by_trace: dict[int, list] = {}
    for s in spans:
        by_trace.setdefault(s.context.trace_id, []).append(s)
    # one trace per run, its id the run's id
    runs = {uuid.UUID(r.run_id).int: r for r in (ref, daily, failed)}
    assert by_trace.keys() == runs.keys()
    assert [s.name for s in by_trace[uuid.UUID(ref.run_id).int]] == ["reference_profile"]

    mats = {
        (e.asset_key.to_user_string(), e.partition): e.materialization.metadata
        for e in daily.get_asset_materialization_events()
    }
    run_spans = by_trace[uuid.UUID(daily.run_id).int]
    assert sorted((s.name, s.attributes["aiops.partition"]) for s in run_spans) == sorted(
        (a, d) for a in ("feature_profile", "drift_report", "ops_report") for d in (first, last)
    )
    for s in run_spans:
        day = s.attributes["aiops.partition"]
        assert s.parent is None  # a root of the run's trace: no parent nobody exports
        assert s.status.status_code is StatusCode.UNSET
        assert s.resource.attributes["service.name"] == "aiops-pipelines"
        stored = store.findings("acme", "churn", start=day, end=day)
        assert dict(s.attributes) == {
            "aiops.tenant": "acme",
            "aiops.model": "churn",
            "aiops.partition": day,
            "aiops.asset": s.name,
            "dagster.run_id": daily.run_id,
            "aiops.rows": s.attributes["aiops.rows"],
            "aiops.findings": int((stored["asset"] == s.name).sum()),
        }
        if s.name == "feature_profile":
            rows = mats[("feature_profile", partition_key(day, KEY))]["dagster/row_count"]
            assert s.attributes["aiops.rows"] == rows.value > 0
        if s.name == "ops_report":
            assert (
                s.attributes["aiops.rows"]
                == mats[("ops_report", partition_key(day, KEY))]["throughput_day"].value
            )

    # the bad batch's run: its span is failed, with the error that failed the step
    (bad_span,) = by_trace[uuid.UUID(failed.run_id).int]
    assert bad_span.attributes["aiops.partition"] == bad["start"]
    assert bad_span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in bad_span.events if e.name == "exception"]
    assert "churn" in event.attributes["exception.message"]
    assert "aiops.findings" not in bad_span.attributes  # failed before publishing


def test_aiops_run_sends_a_trace_per_run_over_otlp(
    make_world: Callable[..., DemoWorld], tmp_path: Path
) -> None:
    """`aiops run` in its own process, configured only by OTEL_EXPORTER_OTLP_ENDPOINT: every
    span reaches a real OTLP/HTTP endpoint by the time the process has exited, each in the
    trace of the run that made it."""
    world = make_world(
        "tracing_otlp",
        days=4,
        end_date=date(2026, 3, 14),
        rows_per_day=200,
        reference_rows=500,
        register_models=False,
    )
    receiver = OtlpReceiver()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
    }
    env.pop("OTEL_SDK_DISABLED", None)
    try:
        subprocess.run(
            [sys.executable, "-m", "aiops_pipelines.cli", "run", "--config",
             str(world.config_path), "--start", "2026-03-14", "--end", "2026-03-14",
             "--model", KEY, "--no-html", "--no-overview"],
            env=env, cwd=REPO, check=True, timeout=900, capture_output=True, text=True,
        )  # fmt: skip
        spans = receiver.spans()
    finally:
        receiver.close()
    assert {p for p, _ in receiver.posts} == {"/v1/traces"}  # gauges only from aiops metrics
    names = {s["name"] for s in spans}
    assert {"reference_profile", "feature_profile", "drift_report", "ops_report"} <= names
    runs = {s["attributes"]["dagster.run_id"] for s in spans}
    assert len(runs) >= 2  # the reference run and the day's run
    for s in spans:
        assert s["trace_id"] == uuid.UUID(s["attributes"]["dagster.run_id"]).bytes
        assert s["parent_span_id"] == b""
        assert s["attributes"]["aiops.tenant"] == "acme"
        assert s["attributes"]["aiops.model"] == "churn"
    day = [s for s in spans if s["name"] != "reference_profile"]
    assert day and all(s["attributes"]["aiops.partition"] == "2026-03-14" for s in day)
    assert len({s["trace_id"] for s in day}) == 1  # the day's assets ran in one run


def traced_job() -> dg.JobDefinition:
    """Three daily assets on the multiprocess executor: each step in a process of its own
    (the project's runs use the in-process executor; a deployment may not)."""
    job = dg.define_asset_job("traced_job", selection=[feature_profile, drift_report, ops_report])
    defs = dg.Definitions(
        assets=ALL_ASSETS,
        jobs=[job],
        resources={**default_resources(), "mlflow": MlflowResource(enabled=False)},
        # forkserver: its step processes end in os._exit, where no atexit hook runs
        executor=dg.multiprocess_executor.configured({"start_method": {"forkserver": {}}}),
    )
    return defs.resolve_job_def("traced_job")


def test_steps_in_separate_processes_join_the_run_trace(
    make_world: Callable[..., DemoWorld], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(
        "tracing_processes",
        days=4,
        end_date=date(2026, 3, 14),
        rows_per_day=200,
        reference_rows=500,
        register_models=False,
    )
    monkeypatch.setenv("AIOPS_CONFIG", str(world.config_path))  # the step processes read it
    receiver = OtlpReceiver()
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(MODELS, [KEY])
            assert dg.materialize(
                ALL_ASSETS,
                selection=[reference_profile],
                partition_key=KEY,
                instance=instance,
                resources=_resources(world),
            ).success
            # configured for the step processes only (they inherit the environment)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
            monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
            key = str(partition_key("2026-03-14", KEY))
            tags = traced_job().get_tags_for_partition_key(key, None)
            with dg.execute_job(
                dg.reconstructable(traced_job), instance, tags=dict(tags)
            ) as result:
                assert result.success
                run_id = result.run_id
        spans = receiver.spans()
    finally:
        receiver.close()
    assert sorted(s["name"] for s in spans) == ["drift_report", "feature_profile", "ops_report"]
    assert {s["trace_id"] for s in spans} == {uuid.UUID(run_id).bytes}
    assert all(s["parent_span_id"] == b"" for s in spans)
    # each step's process exported its own span when it ended
    assert len([p for p, _ in receiver.posts if p == "/v1/traces"]) == 3
