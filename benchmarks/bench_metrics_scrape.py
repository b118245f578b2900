"""`make bench`: 50 concurrent scrapes of `aiops metrics --serve` on the demo store.

Old path: every scrape renders the page from the store (`make_metrics_server(build)`, what
`--serve` did). New path: `CachedPage` (one build, then the store's `change_marker` at most every
`min_age` seconds). Both serve over real HTTP on loopback; printed: p50/p95/max scrape latency
and builds. Target (issue 11): p95 under 1 s with the cache.

Needs the demo's store: `make demo` first (or BENCH_METRICS_CONFIG=path/to/config.yaml).
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiops_pipelines.core.config import aiops_home, load_config
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.prometheus import CachedPage, make_metrics_server, render_metrics

CLIENTS = int(os.environ.get("BENCH_SCRAPE_CLIENTS", "50"))
TARGET_P95_S = 1.0


def scrape_storm(build: Callable[[], str]) -> list[float]:
    server = make_metrics_server(build, port=0)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{host}:{port}/metrics"

    def one(_: int) -> float:
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=600) as resp:
            resp.read()
        return time.perf_counter() - t0

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            return sorted(pool.map(one, range(CLIENTS)))
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    path = Path(os.environ.get("BENCH_METRICS_CONFIG", aiops_home() / "demo" / "config.yaml"))
    if not path.exists():
        print(f"bench_metrics_scrape: no demo store at {path}: run `make demo` first (skipped)")
        return 0
    cfg = load_config(path)
    with MonitoringStore(cfg.storage.store_url) as store:

        def build() -> str:
            return render_metrics(store, cfg, alerts=store.alerts(), deliveries=store.deliveries())

        calls = [0]

        def counted() -> str:
            calls[0] += 1
            return build()

        t0 = time.perf_counter()
        page_len = len(build())
        one_build = time.perf_counter() - t0
        print(f"{path}: one page {page_len:,} bytes built in {one_build:.2f} s")
        old = scrape_storm(counted)
        old_builds, calls[0] = calls[0], 0
        page = CachedPage(counted, store.change_marker)
        cold = scrape_storm(page)  # the first storm waits for the one build
        new = scrape_storm(page)  # warm: `aiops metrics --serve` builds before it listens
        t0 = time.perf_counter()
        store.change_marker()
        marker = time.perf_counter() - t0
    for name, lat, builds in (
        ("old: build per scrape", old, old_builds),
        ("new: cold cache", cold, 1),
        ("new: warm cache", new, page.builds - 1),
    ):
        p95 = lat[max(0, int(0.95 * len(lat)) - 1)]
        print(
            f"{name:<22} {CLIENTS} concurrent scrapes: p50 {statistics.median(lat):.3f} s, "
            f"p95 {p95:.3f} s, max {lat[-1]:.3f} s, builds {builds}"
        )
    print(f"change marker (what a cached scrape costs after min_age): {marker * 1000:.1f} ms")
    p95 = new[max(0, int(0.95 * len(new)) - 1)]
    ok = p95 < TARGET_P95_S
    print(f"target p95 < {TARGET_P95_S} s with the warm cache: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
