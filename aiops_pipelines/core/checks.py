"""A check of one partition's result, as the engine decides it: the orchestrator only shows it.

Each signal's day result returns its checks (data contract, drift, decay, label coverage,
anomalies, canary verdict) with the observed values and thresholds in `metadata`; the Dagster
assets turn them into asset check results one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CheckSeverity = Literal["warn", "error"]


@dataclass(frozen=True)
class Check:
    """`name` passed or not; `severity` says how bad a failure is ("error" blocks what a
    blocking check guards, "warn" only shows); `metadata` holds the evidence; `message`, for a
    failure, says in one sentence what was observed against which threshold and which setting
    to change (it is what `aiops run` prints when a blocking check stops a partition)."""

    name: str
    passed: bool
    severity: CheckSeverity = "warn"
    metadata: dict[str, Any] = field(default_factory=dict)
    message: str = ""
