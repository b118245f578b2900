"""The partition lock, on each backend: a second run of a partition waits for the first, gives
up with a clear message after its bound, and a holder that is killed leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aiops_pipelines.io.locks import LockTimeout
from aiops_pipelines.io.store import MonitoringStore

KEY = "drift_report:2026-03-05|acme.churn"

# `store` / `store_url`: a store on each backend (tests/conftest.py)


def test_a_second_run_of_the_partition_waits_for_the_first(store: MonitoringStore) -> None:
    order: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with store.partition_lock(KEY, timeout=10):
            first_in.set()
            time.sleep(0.5)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(5)
    with MonitoringStore(store.url) as other, other.partition_lock(KEY, timeout=10):
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"]
    # other partitions and other assets of the day do not wait
    with store.partition_lock(KEY, timeout=10), store.partition_lock("ops_report:x", timeout=0):
        pass


def test_a_run_that_waits_too_long_says_who_it_waited_for(store: MonitoringStore) -> None:
    with (
        store.partition_lock(KEY, timeout=10),
        MonitoringStore(store.url) as other,
        pytest.raises(LockTimeout, match=r"another run has been working on drift_report:"),
        other.partition_lock(KEY, timeout=0.3),
    ):
        pass


def test_a_killed_holder_leaves_no_lock_behind(store_url: str, tmp_path: Path) -> None:
    ready = tmp_path / "holding"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import pathlib, time
                from aiops_pipelines.io.store import MonitoringStore
                with MonitoringStore({store_url!r}).partition_lock({KEY!r}, timeout=10):
                    pathlib.Path({str(ready)!r}).touch()
                    time.sleep(60)
                """
            ),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "holder never locked"
            time.sleep(0.05)
        with MonitoringStore(store_url) as store:
            with pytest.raises(LockTimeout), store.partition_lock(KEY, timeout=0.2):
                pass
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            t0 = time.monotonic()
            with store.partition_lock(KEY, timeout=10):
                assert time.monotonic() - t0 < 5
    finally:
        holder.kill()
        holder.wait()
