"""OpenTelemetry: the Prometheus gauges exported over OTLP, and a trace per pipeline run.

Gauges: `GaugeExport` registers one observable gauge per family of `prometheus.FAMILIES`
(same names, the Prometheus labels as attributes), all observed from one cached read of the
store per collection (`prometheus.CachedPage` of a `Snapshot`), pushed over OTLP/HTTP by the
SDK's periodic reader (`aiops metrics --otlp`).

Traces: `asset_span` opens one span per asset and partition (attributes `aiops.tenant`,
`aiops.model`, `aiops.partition`, `aiops.asset`, `dagster.run_id`; `publish` adds `aiops.rows`
and `aiops.findings`). Its trace id is the Dagster run id (a UUID is 128 bits, a trace id's
size), so every step of a run is in one trace whichever process runs it (the multiprocess
executor runs each step in its own) without handing a parent context between processes; each
asset span is a root of that trace, so no span points at a parent nobody exports.

Configuration: `telemetry:` in the config (`TelemetryConfig`), else the standard OTEL_*
variables. Not configured, `asset_span` yields the API's non-recording span: no provider,
processor, exporter or thread exists, and nothing is sent.
"""

from __future__ import annotations

import hashlib
import multiprocessing.util
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from aiops_pipelines.core.config import TelemetryConfig
from aiops_pipelines.views.prometheus import FAMILIES, CachedPage, Snapshot

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "GaugeExport",
    "asset_span",
    "metrics_endpoint",
    "spans_to",
    "trace_id_of_run",
    "traces_endpoint",
]

SCOPE = "aiops_pipelines"
SERVICE_NAME = "aiops-pipelines"


def _disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _endpoint(settings: TelemetryConfig | None, signal: str) -> str | None:
    """The OTLP/HTTP URL for `signal` ("traces" or "metrics"): the config's base URL, else
    OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT (used as is), else OTEL_EXPORTER_OTLP_ENDPOINT (a base
    URL), as the OTLP exporter specification orders them; None: off."""
    if _disabled():
        return None
    if settings is not None and settings.otlp_endpoint:
        return f"{settings.otlp_endpoint.rstrip('/')}/v1/{signal}"
    if url := os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"):
        return url
    if url := os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return f"{url.rstrip('/')}/v1/{signal}"
    return None


def traces_endpoint(settings: TelemetryConfig | None) -> str | None:
    """Where spans go, or None when tracing is off (not configured, `telemetry.traces: false`,
    OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true)."""
    if settings is not None and not settings.traces:
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    return _endpoint(settings, "traces")


def metrics_endpoint(settings: TelemetryConfig | None, url: str | None = None) -> str | None:
    """Where `aiops metrics --otlp` pushes: `url` (a base URL, --otlp-endpoint) if given, else
    as `traces_endpoint` reads it."""
    if url:
        return f"{url.rstrip('/')}/v1/metrics"
    return _endpoint(settings, "metrics")


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    env_named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return Resource.create({} if env_named else {"service.name": SERVICE_NAME})


# -- gauges over OTLP ------------------------------------------------------------------------


class GaugeExport:
    """One observable gauge per `FAMILIES` entry on a meter provider of its own, each
    observing `snapshot()` (a `CachedPage`: the first gauge of a collection reads the store,
    the others reuse that read). `readers`: the SDK's readers (a PeriodicExportingMetricReader
    for OTLP; an InMemoryMetricReader in tests)."""

    def __init__(self, snapshot: CachedPage[Snapshot], readers: list[MetricReader]) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation
        from opentelemetry.sdk.metrics import MeterProvider

        self.provider: MeterProvider = MeterProvider(
            metric_readers=readers, resource=_resource(), shutdown_on_exit=False
        )
        meter = self.provider.get_meter(SCOPE)

        def observe(name: str) -> Callable[[CallbackOptions], list[Observation]]:
            def callback(_: CallbackOptions) -> list[Observation]:
                gauges = snapshot().gauges
                return [Observation(v, labels) for labels, v in gauges.series(name)]

            return callback

        for name, help_text in FAMILIES.items():
            meter.create_observable_gauge(name, callbacks=[observe(name)], description=help_text)

    @classmethod
    def otlp(
        cls, snapshot: CachedPage[Snapshot], endpoint: str, interval_seconds: float
    ) -> GaugeExport:
        """Push every `interval_seconds` to `endpoint` (the full /v1/metrics URL) over
        OTLP/HTTP; OTEL_EXPORTER_OTLP_HEADERS and the like still apply."""
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=endpoint),
            export_interval_millis=interval_seconds * 1000,
        )
        return cls(snapshot, [reader])

    def shutdown(self) -> None:
        """Export once more and stop."""
        self.provider.shutdown()


# -- a trace per pipeline run ----------------------------------------------------------------

_RUN_TRACE: ContextVar[int | None] = ContextVar("aiops_run_trace", default=None)


def trace_id_of_run(run_id: str) -> int:
    """The trace id of a Dagster run: its run id (a UUID) as 128 bits; another string hashed
    to 128 bits."""
    try:
        return uuid.UUID(run_id).int
    except ValueError:
        return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big")


def _run_trace_ids() -> Any:
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class RunTraceIds(IdGenerator):
        """A root span's trace id is the running run's (`_RUN_TRACE`), else random."""

        def __init__(self) -> None:
            self._random = RandomIdGenerator()

        def generate_span_id(self) -> int:
            return self._random.generate_span_id()

        def generate_trace_id(self) -> int:
            run = _RUN_TRACE.get()
            return run if run is not None else self._random.generate_trace_id()

        def is_trace_id_random(self) -> bool:
            return True  # a UUID4's low 56 bits are random; the SHA-256 fallback's too

    return RunTraceIds()


def _provider(processor: Any, *, flush_at_exit: bool = False) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(
        resource=_resource(), id_generator=_run_trace_ids(), shutdown_on_exit=False
    )
    provider.add_span_processor(processor)
    if flush_at_exit:
        # a multiprocessing finalizer, not atexit: a step process of the multiprocess executor
        # started by forkserver ends in os._exit (no atexit), but always runs these; in the
        # main process, multiprocessing runs them from its own atexit hook
        multiprocessing.util.Finalize(None, provider.shutdown, exitpriority=10)
    return provider


_lock = threading.Lock()
_providers: dict[str, TracerProvider] = {}
_override: list[TracerProvider] = []


def _tracer(settings: TelemetryConfig | None) -> trace.Tracer | None:
    if _override:
        return _override[-1].get_tracer(SCOPE)
    endpoint = traces_endpoint(settings)
    if endpoint is None:
        return None
    with _lock:
        if endpoint not in _providers:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            # batched: a slow or dead collector never slows an asset; what is left is flushed
            # when the process exits
            _providers[endpoint] = _provider(
                BatchSpanProcessor(OTLPSpanExporter(endpoint)), flush_at_exit=True
            )
        return _providers[endpoint].get_tracer(SCOPE)


@contextmanager
def spans_to(exporter: SpanExporter) -> Iterator[TracerProvider]:
    """Send every `asset_span` of the block to `exporter` (synchronously), whatever the
    config says: for tests (the SDK's InMemorySpanExporter) and for embedding the pipeline
    in a process that exports its own way."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = _provider(SimpleSpanProcessor(exporter))
    _override.append(provider)
    try:
        yield provider
    finally:
        _override.remove(provider)
        provider.shutdown()


@contextmanager
def asset_span(
    settings: TelemetryConfig | None,
    *,
    run_id: str | None,
    asset: str,
    tenant: str,
    model: str,
    partition: str,
) -> Iterator[trace.Span]:
    """A span for one asset on one partition in the trace of run `run_id` (a new trace when
    None: an asset invoked without a run). The span records an exception raised in the block
    and is marked failed. Off: a non-recording span, nothing else done."""
    tracer = _tracer(settings)
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    token = _RUN_TRACE.set(trace_id_of_run(run_id) if run_id else None)
    try:
        attributes: Mapping[str, str] = {
            "aiops.tenant": tenant,
            "aiops.model": model,
            "aiops.partition": partition,
            "aiops.asset": asset,
            **({"dagster.run_id": run_id} if run_id else {}),
        }
        # an empty parent context: the span is a root of the run's trace, whatever span the
        # calling code may have current
        with tracer.start_as_current_span(
            asset, context=otel_context.Context(), attributes=attributes
        ) as span:
            yield span
    finally:
        _RUN_TRACE.reset(token)
