"""`make bench`: 50 concurrent clients on the console's overview API, old path vs new path.

The real console (`aiops console --config ... --port P`, a uvicorn process on 127.0.0.1) is
started over the demo store, and `--clients` threads (one kept-alive `http.client` connection
each) ask `GET /api/v1/overview` in a closed loop for `--seconds`; half of them with an
admin token (every tenant), half with one tenant's viewer token, so both cache scopes are
exercised. Warm-up, not counted: one admin request, then one per client (it opens the client's
connection; together they fill the cache for both scopes). Then every latency is recorded;
printed per path: requests, throughput, p50/p95/p99/max in ms, errors, and the CPU seconds the
server and this (client) process used: on a 2-core machine the clients compete with the server.

New path: the console as it is (the overview cached per (scope, day), rebuilt only when the
store's change marker moves). Old path: a second console process with
`AIOPS_CONSOLE_NO_CACHE=1` (every request builds its overview), same load, same duration, run
after the new one. The acceptance, on the new path only: p95 <= 200 ms on this machine.

Every request, warm-up included, also appends a row to the store's `access_log` (the data-access
audit); that write is part of what is measured. The rows added per path are counted before and
after (the server stopped) and must equal the requests made; a mismatch is printed loudly.

The store: `$AIOPS_HOME/demo/config.yaml` (default `~/.aiops`) when it exists and holds results
(`make demo`); otherwise a small demo world (14 days x 1,000 rows a day, every model run) is built
and run in a temporary folder first (a minute or two); `--config PATH` uses any config. The two
tokens the bench creates are revoked at the end; the audit rows it adds stay (append-only).
Loopback only; both servers are stopped when the bench ends, however it ends.

    PYTHONPATH=. python benchmarks/bench_console.py [--seconds 20] [--clients 50] [--config PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worlds import aiops_run  # noqa: E402

from aiops_pipelines.core.config import aiops_home, load_config  # noqa: E402
from aiops_pipelines.demo.world import build_world  # noqa: E402
from aiops_pipelines.io.store import MonitoringStore  # noqa: E402

TARGET_P95_MS = 200.0
OVERVIEW = "/api/v1/overview"
WARMUP_PER_CLIENT = 1  # uncounted, per client, before the clock starts: opens its connection
REQUEST_TIMEOUT_S = 60.0  # no request holds the bench longer (the old path: ~10-30 s each)
START_TIMEOUT_S = 60.0
END = date(2026, 3, 14)  # the built world's last day (fixed: the same data every time)
DAYS, ROWS = 14, 1000
PATHS = (("new_cached", {}), ("old_no_cache", {"AIOPS_CONSOLE_NO_CACHE": "1"}))


# -- the store ---------------------------------------------------------------------------------


def has_results(store_url: str) -> bool:
    """Whether the store at `store_url` holds any day's results."""
    with MonitoringStore(store_url) as store:
        return store.latest_partition() is not None


def build_demo(home: Path) -> Path:
    """A small demo world under `home`, every model run over its days; its config's path."""
    t0 = time.perf_counter()
    build_world(
        home / "demo",
        days=DAYS,
        end_date=END,
        rows_per_day=ROWS,
        reference_rows=5000,
        register_models=False,
    )
    start = (END - timedelta(days=DAYS - 1)).isoformat()
    # 1: a day's injected failure (the demo's incidents), the results are stored all the same
    aiops_run(home, "--start", start, "--end", END.isoformat(), "--no-html", ok=(0, 1))
    print(f"demo world built and run in {time.perf_counter() - t0:.0f} s", flush=True)
    return home / "demo" / "config.yaml"


def access_rows(store_url: str) -> int:
    """`SELECT count(*) FROM access_log` on the store."""
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM access_log")).scalar_one())
    finally:
        engine.dispose()


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    """`aiops console --config CONFIG --port P` as a subprocess on loopback, its output in `log`."""

    def __init__(self, config: Path, log: Path, env: dict[str, str], workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "aiops_pipelines.cli", "console"]
        cmd += ["--config", str(config), "--port", str(self.port), "--workers", str(workers)]
        with log.open("w") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # a static file: answered without a token and not written to the audit
            try:
                if requests.get(f"{self.url}/static/console.css", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the console did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """The server process's user + system CPU time so far (0 where /proc is missing)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the server (uvicorn finishes the requests in flight first)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def problems(self) -> list[str]:
        """Lines of the server's output that tell of an error."""
        words = ("Traceback", "ERROR", "Error", "Exception", "WARNING")
        return [ln for ln in self.log.read_text().splitlines() if any(w in ln for w in words)]


# -- the load ----------------------------------------------------------------------------------


def percentile(sorted_ms: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 < q <= 1) of ascending values."""
    if not sorted_ms:
        return float("nan")
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def summary(samples: list[tuple[float, int]], took: float) -> dict[str, Any]:
    """Requests, throughput and latency quantiles of `(latency_ms, status)` samples."""
    ms = sorted(latency for latency, _ in samples)
    bad = Counter(status for _, status in samples if status != 200)
    return {
        "requests": len(ms),
        "rps": round(len(ms) / took, 1) if took > 0 else 0.0,
        "p50_ms": round(percentile(ms, 0.50), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(ms[-1], 1) if ms else float("nan"),
        "errors": sum(bad.values()),
        "error_statuses": {str(k): v for k, v in sorted(bad.items())},  # 0: no answer
    }


def load(base: str, tokens: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """`clients` threads in a closed loop on the overview for `seconds` (client i uses
    `tokens[i % len(tokens)]`) after `WARMUP_PER_CLIENT` uncounted requests each; the summary,
    overall and per token, plus the warm-up count and the client process's CPU time."""
    url = base + OVERVIEW
    started: list[float] = []
    barrier = threading.Barrier(clients, action=lambda: started.append(time.perf_counter()))
    samples: list[list[tuple[float, int]]] = [[] for _ in range(clients)]
    warm = [0] * clients
    ended = [0.0] * clients

    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")

    def get(conn: http.client.HTTPConnection, headers: dict[str, str]) -> int:
        # http.client, not requests: a lighter client leaves the server more of the 2 cores
        for attempt in range(2):
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()  # the whole body, as a client reads it
                return response.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed a kept-alive connection idle past its keep-alive timeout
                # (a client waiting at the barrier): reconnect once, as requests/urllib3 do
                conn.close()
                if attempt:
                    return 0
            except (OSError, http.client.HTTPException):
                conn.close()  # reconnects on the next request
                return 0
        return 0

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT_S)
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        try:
            for _ in range(WARMUP_PER_CLIENT):
                get(conn, headers)
                warm[i] += 1
            try:
                barrier.wait(timeout=REQUEST_TIMEOUT_S * (WARMUP_PER_CLIENT + 1))
            except threading.BrokenBarrierError:
                return
            deadline = started[0] + seconds
            own = samples[i]
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                status = get(conn, headers)
                own.append(((time.perf_counter() - t0) * 1000, status))
            ended[i] = time.perf_counter()
        finally:
            conn.close()

    cpu0 = time.process_time()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not started:
        raise RuntimeError("the clients never all got through their warm-up")
    took = max(ended) - started[0]
    result = summary([s for own in samples for s in own], took)
    result["wall_s"] = round(took, 1)
    for k in range(len(tokens)):
        per = [s for i, own in enumerate(samples) if i % len(tokens) == k for s in own]
        result[f"p95_ms_token{k}"] = summary(per, took)["p95_ms"]
    result["warmup_requests"] = sum(warm)
    result["client_cpu_s"] = round(time.process_time() - cpu0, 1)
    return result


def overview_of(base: str, token: str) -> dict[str, Any]:
    """One overview (an audited request too)."""
    response = requests.get(
        base + OVERVIEW, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT_S
    )
    response.raise_for_status()
    return response.json()


def run_path(
    label: str,
    config: Path,
    store_url: str,
    env: dict[str, str],
    tokens: list[str],
    args: argparse.Namespace,
    folder: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One server (`env` decides the path) under the load: its numbers, and the admin's
    overview as this server answered it (for comparing the two paths)."""
    before = access_rows(store_url)
    server = Console(config, folder / f"console-{label}.log", env, args.workers)
    try:
        first = overview_of(server.url, tokens[0])  # the cache's first build, not timed
        cpu0 = server.cpu_seconds()
        result = load(server.url, tokens, args.clients, args.seconds)
        result["server_cpu_s"] = round(server.cpu_seconds() - cpu0, 1)
    finally:
        server.stop()
    made = 1 + result["warmup_requests"] + result["requests"]
    added = access_rows(store_url) - before
    result["access_log_added"] = added
    result["access_log_ok"] = added == made
    if added != made:
        print(
            f"!!! {label}: ACCESS LOG MISMATCH: {made} requests made (warm-up included) but "
            f"{added} access_log rows added !!!",
            flush=True,
        )
    problems = server.problems()
    result["server_log_problems"] = len(problems)
    if problems:
        print(f"{label}: the server said ({server.log}):", *problems[-20:], sep="\n  ")
    return result, first


def _row(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label:<22}{r['requests']:>9}{r['rps']:>9}{r['p50_ms']:>9}{r['p95_ms']:>9}"
        f"{r['p99_ms']:>9}{r['max_ms']:>9}{r['errors']:>8}{r['access_log_added']:>10}"
        f"{r['server_cpu_s']:>8}{r['client_cpu_s']:>8}"
    )


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The two overviews agree (but for when each was generated)."""
    strip = {"generated_at"}
    return {k: v for k, v in a.items() if k not in strip} == {
        k: v for k, v in b.items() if k not in strip
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per path (default 20)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--workers", type=int, default=1, help="console processes (1)")
    parser.add_argument("--config", help="any config (default: the demo's, or a built one)")
    args = parser.parse_args()
    if args.clients < 2 or args.seconds <= 0:
        parser.error("need --clients >= 2 and --seconds > 0")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench_console_") as name:
        tmp = Path(name)
        demo = aiops_home() / "demo" / "config.yaml"
        if args.config:
            config, source = Path(args.config).expanduser().resolve(), "--config"
        elif demo.is_file() and has_results(load_config(demo).storage.store_url):
            config, source = demo, "the demo store ($AIOPS_HOME/demo)"
        else:
            why = "has no results" if demo.is_file() else "does not exist"
            print(f"{demo} {why}: building a {DAYS}-day x {ROWS} rows demo world", flush=True)
            home = tmp / "home"
            config = build_demo(home)
            source = f"a built demo world ({DAYS} days x {ROWS} rows a day, all models)"
            env.update(AIOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
            os.environ["AIOPS_HOME"] = str(home)  # the config read here expands it the same
        cfg = load_config(config)
        store_url = cfg.storage.store_url
        print(f"store: {source}: {config} ({sa.make_url(store_url).get_backend_name()})")
        with MonitoringStore(store_url) as store:
            day = store.latest_partition()
            tenant = next(
                (t.name for t in cfg.tenants if store.latest_partition(t.name) is not None), None
            )
            if day is None or tenant is None:
                raise SystemExit(f"{config}: its store holds no results: nothing to look at")
            created = [
                store.create_token(tenant=None, role="admin", name="bench-console-admin"),
                store.create_token(tenant=tenant, role="viewer", name="bench-console-viewer"),
            ]
        tokens = [token for _, token in created]
        load0 = os.getloadavg()
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"latest day {day}; viewer tenant {tenant}; {uptime}", flush=True)
        print(f"{args.clients} clients x {args.seconds:g} s per path (half admin, half viewer)")
        results: dict[str, Any] = {}
        answers: dict[str, Any] = {}
        try:
            for label, extra in PATHS:
                results[label], answers[label] = run_path(
                    label, config, store_url, {**env, **extra}, tokens, args, tmp
                )
                print(label, json.dumps(results[label]), flush=True)
        finally:
            with MonitoringStore(store_url) as store:
                for ident, _ in created:
                    store.revoke_token(ident)
        load1 = os.getloadavg()
    new = results["new_cached"]
    passed = new["errors"] == 0 and new["p95_ms"] <= TARGET_P95_MS
    same = _same(answers["new_cached"], answers["old_no_cache"])
    print()
    print(
        f"{'path':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'errors':>8}{'audit +':>10}{'srv cpu':>8}{'cli cpu':>8}"
    )
    for label, r in results.items():
        print(_row(label, r))
    print(
        f"load average (1, 5, 15 min) before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
        f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} on {os.cpu_count()} cores"
    )
    if not same:
        print("!!! the two paths answered different overviews !!!")
    print(
        f"new path p95 {new['p95_ms']} ms <= {TARGET_P95_MS:g} ms with no errors: "
        f"{'PASS' if passed else 'FAIL'}"
    )
    print(
        json.dumps(
            {
                "console_overview": {
                    "store": source,
                    "config": str(config),
                    "clients": args.clients,
                    "seconds": args.seconds,
                    "target_p95_ms": TARGET_P95_MS,
                    "pass": passed,
                    "same_answer": same,
                    "loadavg_before": [round(x, 2) for x in load0],
                    "loadavg_after": [round(x, 2) for x in load1],
                    **results,
                }
            }
        )
    )


if __name__ == "__main__":
    main()
