"""Profiling a day in the database (`profile: pushdown`) next to streaming its rows (`stream`).

The day of `bench_read` (its builders, imported): `--rows` rows (default 1,000,000; `--quick`:
100,000) x (20 numeric + 5 categorical features, 1% NULL each, timestamp, request id, version,
prediction, status, latency), 2% more on each neighbouring day, in SQLite (ISO-8601 text with
an offset, indexed) and PostgreSQL (timestamptz, indexed, in a throwaway schema dropped
afterwards). Each source and way is measured in its own child process: `profile_for_day`,
best of `--repeats`, and the child's peak RSS; then, for PostgreSQL, one more run through a
byte-counting TCP proxy: the bytes the server sent (rows, or results) and received (the
statement). Both profiles of each source are compared: counts exactly, floats to 1e-9.

    python benchmarks/bench_pushdown.py [--quick] [--rows N] [--repeats N] [--pg-url URL]

PostgreSQL: `--pg-url`, else $AIOPS_TEST_POSTGRES_URL (a SQLAlchemy URL); skipped without one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_read  # noqa: E402
from bench_read import (  # noqa: E402  (the builders of the read benchmark, shared)
    DAY,
    _config,
    _reference,
    drop_postgres,
    peak_mb,
    write_postgres,
    write_sqlite,
)


class CountingProxy:
    """A TCP proxy to the database counting the bytes each way (for one measured run)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.to_client = 0
        self.to_server = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
                if upstream:
                    self.to_server += len(data)
                else:
                    self.to_client += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One source, one way: `profile_for_day`, best of `repeats`."""
    from aiops_pipelines.core.config import parse_config
    from aiops_pipelines.signals.profile.day import profile_for_day
    from aiops_pipelines.signals.profile.profiles import DatasetProfile

    model = parse_config(spec["config"]).models[0]
    reference = DatasetProfile.from_dict(json.loads(Path(spec["reference"]).read_text()))
    runs = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        day = profile_for_day(model, DAY, reference)
        runs.append(time.perf_counter() - t0)
    return {
        "seconds": min(runs),
        "rows": day.n_rows,
        "peak_mb": peak_mb(),
        "profile": day.profile.to_dict(),
        "load": os.getloadavg()[0],
    }


def measure(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """`child(spec)` of this benchmark in a fresh interpreter (`bench_read.measure`)."""
    return bench_read.measure(spec, tmp, script=__file__)


def moved(spec: dict[str, Any], tmp: Path) -> tuple[int, int]:
    """(bytes from the server, bytes to it) of one `profile_for_day` through the proxy."""
    url = sa.make_url(spec["config"]["tenants"][0]["models"][0]["predictions"]["url"])
    proxy = CountingProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        config = json.loads(json.dumps(spec["config"]))
        config["tenants"][0]["models"][0]["predictions"]["url"] = through
        measure({**spec, "config": config, "repeats": 1}, tmp)
        return proxy.to_client, proxy.to_server
    finally:
        proxy.close()


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Where two stored profiles differ: any count, or a float by more than 1e-9 relative."""
    out = []
    for ca, cb in zip(a["columns"], b["columns"], strict=True):
        for key, va in ca.items():
            vb = cb[key]
            if isinstance(va, list) and va and isinstance(va[0], float):
                scale = max(abs(x) for x in vb) or 1.0
                if any(abs(x - y) > 1e-9 * scale for x, y in zip(va, vb, strict=True)):
                    out.append(f"{ca['name']}.{key}")
            elif isinstance(va, float) and isinstance(vb, float):
                if not math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12):
                    out.append(f"{ca['name']}.{key}")
            elif va != vb:
                out.append(f"{ca['name']}.{key}")
    return out


def _mb(n: int | None) -> str:
    return f"{n / 1e6:10.2f}" if n is not None else f"{'-':>10}"


def run(args: argparse.Namespace) -> None:
    pg_url = args.pg_url or os.environ.get("AIOPS_TEST_POSTGRES_URL")
    schema = f"aiops_bench_{uuid.uuid4().hex[:10]}"
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pushdown-") as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        db = tmp / "day.db"
        write_sqlite(db, args.rows)
        sqlite_url = f"sqlite:///{db}"
        backends = [("SQLite", {"url": sqlite_url, "table": "preds"})]
        try:
            if pg_url:
                write_postgres(pg_url, schema, args.rows)
                options = f"-csearch_path={schema} -csynchronize_seqscans=off"
                url = sa.make_url(pg_url).update_query_dict({"options": options})
                pg = {"url": url.render_as_string(hide_password=False), "table": "preds"}
                backends.append(("PostgreSQL", pg))
            else:
                print("PostgreSQL skipped: give --pg-url or set AIOPS_TEST_POSTGRES_URL")
            reference = tmp / "reference.json"
            _reference(_config(backends[0][1], sqlite_url), reference)
            print(f"data written in {time.perf_counter() - t0:.0f} s", flush=True)
            for backend, source in backends:
                for how in ("stream", "pushdown"):
                    spec = {
                        "label": f"{backend}, {how}",
                        "config": _config({**source, "profile": how}, sqlite_url),
                        "reference": str(reference),
                        "repeats": args.repeats,
                    }
                    r = results[(backend, how)] = measure(spec, tmp)
                    if backend == "PostgreSQL":
                        r["bytes"] = moved(spec, tmp)
                    print(f"{backend}, {how}: {r['seconds']:.2f} s", flush=True)
        finally:
            if pg_url:
                drop_postgres(pg_url, schema)
    load = os.getloadavg()
    print()
    print(
        f"{args.rows:,}-row day x (20 numeric + 5 categorical), best of {args.repeats}; load "
        f"average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (1, 5, 15 min) on "
        f"{os.cpu_count()} cores"
    )
    head = f"{'source':<12}{'profile':<10}{'rows':>11}{'seconds':>9}{'load':>6}"
    print(f"{head}{'MB from db':>11}{'MB to db':>10}{'peak MB':>9}")
    for (backend, how), r in results.items():
        got, sent = r.get("bytes", (None, None))
        print(
            f"{backend:<12}{how:<10}{r['rows']:>11,}{r['seconds']:>9.2f}{r['load']:>6.2f}"
            f" {_mb(got)}{_mb(sent)}{r['peak_mb']:>9.0f}"
        )
    print()
    for backend, _ in backends:
        diff = differences(
            results[(backend, "pushdown")]["profile"], results[(backend, "stream")]["profile"]
        )
        verdict = "equal (counts exactly, floats to 1e-9)" if not diff else f"DIFFERENT: {diff[:5]}"
        print(f"{backend}: push-down profile vs streamed: {verdict}")
    print(
        "seconds: profile_for_day, best of the repeats (load: the 1-minute load average after "
        "them); MB from/to db: what the PostgreSQL connections carried in one more run, "
        "through a counting proxy (SQLite reads a local file: nothing crosses a network)"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        spec = json.loads(Path(sys.argv[2]).read_text())
        Path(sys.argv[3]).write_text(json.dumps(child(spec)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    if args.quick:
        args.rows = 100_000
    run(args)


if __name__ == "__main__":
    main()
