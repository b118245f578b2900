"""Real servers on loopback for the fault tests: one that accepts connections and never
answers, a port nobody listens on, a real MLflow tracking server, and an OTLP/HTTP endpoint."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests


class Silent:
    """An HTTP server that accepts each connection, reads the request, and does not answer
    until released (`close`, or `hold_seconds`); it counts the requests and keeps each one's
    Idempotency-Key."""

    def __init__(self, hold_seconds: float = 30.0) -> None:
        self.keys: list[str] = []
        self.hits = 0
        self.release = threading.Event()
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _hold(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with lock:
                    outer.hits += 1
                    if key := self.headers.get("Idempotency-Key"):
                        outer.keys.append(key)
                outer.release.wait(hold_seconds)
                self.send_response(200)
                self.end_headers()

            do_GET = do_POST = _hold  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A loopback port nobody listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hook"


class MlflowServer:
    """`mlflow server` on loopback port `port`, its backend a SQLite file under `folder`."""

    def __init__(self, folder: Path, port: int, *, start_timeout: float = 120.0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.uri = f"http://127.0.0.1:{port}"
        self.log = folder / "server.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "mlflow", "server",
                    "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                    "--default-artifact-root", (folder / "artifacts").resolve().as_uri(),
                    "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )  # fmt: skip
        deadline = time.monotonic() + start_timeout
        url = f"{self.uri}/api/2.0/mlflow/experiments/search"
        while True:
            try:
                if requests.get(url, params={"max_results": 1}, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ConsoleServer:
    """`aiops console --config CONFIG` on a loopback port, as a user starts it."""

    def __init__(self, config: Path, folder: Path, *, start_timeout: float = 60.0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / "console.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aiops_pipelines.cli",
                    "console",
                    "--config",
                    str(config),
                    "--port",
                    str(port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the console exited: {self.log.read_text()[-2000:]}")
            try:
                requests.get(f"{self.url}/login", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError(f"the console did not answer in {start_timeout} s")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class OtlpReceiver:
    """An OTLP/HTTP endpoint on loopback (what an OpenTelemetry Collector listens with on
    :4318): keeps each POST's path and protobuf body, answers 200 with an empty response, and
    decodes them with opentelemetry-proto."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = self.headers["Content-Type"] == "application/x-protobuf"
                if ok:
                    with lock:
                        outer.posts.append((self.path, body))
                self.send_response(200 if ok else 415)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def metric_requests(self) -> list:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        return [ExportMetricsServiceRequest.FromString(b) for p, b in self.posts
                if p == "/v1/metrics"]  # fmt: skip

    def gauges(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The gauges' data points of the latest metrics request: (name, sorted attributes)
        -> value."""
        out = {}
        requests_ = self.metric_requests()
        for rm in requests_[-1].resource_metrics if requests_ else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    assert metric.WhichOneof("data") == "gauge", metric.name
                    for p in metric.gauge.data_points:
                        labels = tuple(sorted((a.key, a.value.string_value) for a in p.attributes))
                        value = p.as_double if p.HasField("as_double") else float(p.as_int)
                        out[(metric.name, labels)] = value
        return out

    def spans(self) -> list[dict[str, Any]]:
        """Every span received: name, trace_id and parent_span_id (bytes), attributes."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        out = []
        for path, body in self.posts:
            if path != "/v1/traces":
                continue
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs = {}
                        for a in s.attributes:
                            kind = a.value.WhichOneof("value")
                            attrs[a.key] = getattr(a.value, kind)
                        out.append(
                            {
                                "name": s.name,
                                "trace_id": s.trace_id,
                                "parent_span_id": s.parent_span_id,
                                "status": s.status.code,
                                "attributes": attrs,
                            }
                        )
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
