"""A day's drift: two stored profiles compared, so it costs the same for 1,000 or 10,000,000
rows."""

from __future__ import annotations

from dataclasses import dataclass

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.findings import Finding
from aiops_pipelines.signals.drift.statistics import DriftReport, compare_profiles, report_findings
from aiops_pipelines.signals.profile.day import profiled_columns
from aiops_pipelines.signals.profile.profiles import (
    DatasetProfile,
)


@dataclass
class DriftResult:
    report: DriftReport
    findings: list[Finding]
    metrics: dict[tuple[str, str], float]


def drift_for_day(
    model: ModelConfig, partition: str, reference: DatasetProfile, current: DatasetProfile
) -> DriftResult:
    """Drift of a day's profile against the reference, with findings and metric history rows."""
    cols = profiled_columns(model)
    present = set(reference.columns) & set(current.columns)
    features = [f for f in cols.features if f in present]
    preds = [p for p in cols.predictions if p in present]
    report = compare_profiles(
        reference, current, model.thresholds, features=features, prediction_columns=preds
    )
    findings = report_findings(report, tenant=model.tenant, model=model.name, partition=partition)
    metrics: dict[tuple[str, str], float] = {
        ("drift_share", ""): report.drift_share,
        ("n_drifted", ""): float(report.n_drifted),
        ("n_features", ""): float(report.n_features),
    }
    for cd in [*report.features, *report.predictions]:
        metrics[(f"drift_{cd.method}", cd.column)] = float(cd.statistic)
        if cd.p_value is not None:
            metrics[("p_value", cd.column)] = float(cd.p_value)
    return DriftResult(report, findings, metrics)
