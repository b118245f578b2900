"""Failed-run findings in the store, on each backend: a fixed failure is cleared by its exact
key (tenant, model, partition, asset, signal, column) and nothing else goes with it."""

from __future__ import annotations

from dataclasses import replace

from aiops_pipelines.core.findings import Finding, Severity, Signal
from aiops_pipelines.io.store import MonitoringStore

DAY, NEXT = "2026-03-01", "2026-03-02"

# `store`: an open store on each backend (tests/conftest.py)


def failure(column: str, *, partition: str = DAY, model: str = "churn") -> Finding:
    return Finding(
        tenant="acme",
        model=model,
        partition=partition,
        asset="pipeline",
        signal=Signal.PIPELINE_FAILURE,
        severity=Severity.CRITICAL,
        value=1.0,
        threshold=0.0,
        column=column,
        message=f"run r1 of daily_monitoring_job failed: {column}: bad value",
        evidence={"run_id": "r1", "step": column},
    )


def _left(store: MonitoringStore) -> set[tuple[str, str, str, str]]:
    found = store.findings()
    return set(
        zip(found["model"], found["partition"], found["asset"], found["column"], strict=True)
    )


def _clear_feature_profile_failure(store: MonitoringStore) -> int:
    return store.clear_findings(
        "acme",
        "churn",
        DAY,
        asset="pipeline",
        signal=Signal.PIPELINE_FAILURE,
        column="feature_profile",
    )


def test_a_fixed_failure_is_cleared_and_the_others_stay(store: MonitoringStore) -> None:
    for f in (
        failure("feature_profile"),
        failure("drift_report"),  # another asset failed the same day
        failure("feature_profile", partition=NEXT),  # the next day failed too
        failure("feature_profile", model="fraud"),
    ):
        store.record_finding(f)
    # a finding of another signal that happens to carry the same column is not a failure
    other = replace(failure("feature_profile"), asset="drift_report", signal=Signal.FEATURE_DRIFT)
    store.replace_partition("acme", "churn", DAY, "drift_report", metrics={}, findings=[other])

    assert _clear_feature_profile_failure(store) == 1
    assert _left(store) == {
        ("churn", DAY, "pipeline", "drift_report"),
        ("churn", NEXT, "pipeline", "feature_profile"),
        ("fraud", DAY, "pipeline", "feature_profile"),
        ("churn", DAY, "drift_report", "feature_profile"),
    }
    # every successful run of the asset clears: with nothing to clear, nothing changes
    assert _clear_feature_profile_failure(store) == 0
    assert len(_left(store)) == 4
