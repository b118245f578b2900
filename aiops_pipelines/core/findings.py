"""One shape for every finding any signal raises, and the names shared by every decision.

A finding is a decision with its evidence: the signal, the observed value, the threshold it was
held against, the sample sizes and p-values behind it. The fingerprint identifies "the same
problem" across days (tenant, model, signal, column), which is what alerting deduplicates on.

A finding has a `Severity`; a day's performance has a `Level` (the severities plus "ok" and
"insufficient"), stored in the metric history as its `LEVEL_CODES` number.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


Level = Literal["insufficient", "ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("insufficient", "ok", "warning", "critical")
"""A day's performance level, from "no verdict" to the worst."""
LEVEL_CODES: dict[str, float] = {"insufficient": -1.0, "ok": 0.0, "warning": 1.0, "critical": 2.0}
"""A level as the number stored in the metric history (`decay_level`)."""


def level_name(code: float) -> str:
    """The level of a stored `decay_level` number; "insufficient" for anything unknown."""
    for name, value in LEVEL_CODES.items():
        if value == code:
            return name
    return "insufficient"


class Asset(StrEnum):
    """What produced a result: the Dagster asset's name, also the `asset` of its findings and
    metric history rows and of its MLflow runs."""

    REFERENCE_PROFILE = "reference_profile"
    FEATURE_PROFILE = "feature_profile"
    DRIFT_REPORT = "drift_report"
    PERFORMANCE_REPORT = "performance_report"
    CANARY_REPORT = "canary_report"
    OPS_REPORT = "ops_report"
    SLO_REPORT = "slo_report"
    OPS_OVERVIEW = "ops_overview"


class Signal(StrEnum):
    """What a finding is about. The same names are used in the store, MLflow and the UI."""

    FEATURE_DRIFT = "feature_drift"
    PREDICTION_DRIFT = "prediction_drift"
    DATASET_DRIFT = "dataset_drift"
    SEGMENT_DRIFT = "segment_drift"
    NULL_RATE_DRIFT = "null_rate_drift"
    UNSEEN_CATEGORY = "unseen_category"
    MULTIVARIATE_DRIFT = "multivariate_drift"
    LONG_STRING = "long_string"
    PERFORMANCE_DECAY = "performance_decay"
    ESTIMATED_PERFORMANCE_DECAY = "estimated_performance_decay"
    CANARY_FAIL = "canary_fail"
    CANARY_PASS = "canary_pass"
    THROUGHPUT_ANOMALY = "throughput_anomaly"
    LATENCY_REGRESSION = "latency_regression"
    ERROR_RATE_ANOMALY = "error_rate_anomaly"
    RESIDUAL_ANOMALY = "residual_anomaly"
    LEVEL_SHIFT = "level_shift"
    PIPELINE_FAILURE = "pipeline_failure"
    SLO_BURN = "slo_burn"
    SLO_BUDGET = "slo_budget"
    FAIRNESS_VIOLATION = "fairness_violation"


def fingerprint(tenant: str, model: str, signal: str, column: str = "") -> str:
    """Stable id of a problem across days: same tenant, model, signal and column."""
    return hashlib.sha1(f"{tenant}\x1f{model}\x1f{signal}\x1f{column}".encode()).hexdigest()[:16]


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy of evidence: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@dataclass(frozen=True)
class Finding:
    tenant: str
    model: str
    partition: str
    asset: str
    signal: str
    severity: Severity
    value: float
    threshold: float
    column: str = ""
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.tenant, self.model, self.signal, self.column)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = str(self.severity)
        d["evidence"] = jsonable(self.evidence)
        d["fingerprint"] = self.fingerprint
        return d

    def evidence_json(self) -> str:
        return json.dumps(jsonable(self.evidence), sort_keys=True)
