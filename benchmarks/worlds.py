"""What the whole-run benchmarks share: `aiops` run as a real process on a world's home."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def aiops_run(
    home: Path, *args: str, env: Mapping[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> tuple[float, str]:
    """`aiops run --config <home>/demo/config.yaml ARGS` with the home's own Dagster home:
    its wall time in seconds and its standard output; an exit code outside `ok` raises."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "aiops_pipelines.cli", "run"]
    cmd += ["--config", str(home / "demo" / "config.yaml"), *args]
    started = time.perf_counter()
    out = subprocess.run(cmd, env=environment, capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - started
    if out.returncode not in ok:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-3000:])
    return took, out.stdout
