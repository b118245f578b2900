"""A range run reports each asset check once for its days (`publish.merged_checks`)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from aiops_pipelines.orchestration.publish import merged_checks
from aiops_pipelines.orchestration.resources import Clock

ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


def _day(
    day: str, **checks: tuple[bool, dg.AssetCheckSeverity]
) -> tuple[str, dg.MaterializeResult]:
    return day, dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=passed,
                severity=severity,
                metadata={"value": i},
                description=f"{name} on {day}",
            )
            for i, (name, (passed, severity)) in enumerate(checks.items())
        ]
    )


def test_a_check_fails_for_the_range_with_its_failed_days_and_worst_severity() -> None:
    days = [
        _day("2026-03-01", schema=(True, ERROR), drift=(True, WARN)),
        _day("2026-03-02", schema=(True, ERROR), drift=(False, WARN)),
        _day("2026-03-03", schema=(False, ERROR), drift=(False, WARN)),
    ]
    by_name = {c.check_name: c for c in merged_checks(days)}
    schema, drift = by_name["schema"], by_name["drift"]
    assert (schema.passed, schema.severity) == (False, ERROR)
    assert schema.metadata["failed_days"].value == "2026-03-03"
    assert schema.description.startswith("failed on 1 of 3 days (2026-03-03); 2026-03-03:")
    assert (drift.passed, drift.severity) == (False, WARN)
    assert drift.metadata["failed_days"].value == "2026-03-02, 2026-03-03"
    # the first failure's own evidence, named by its day
    assert drift.metadata["2026-03-02 value"].value == 1
    assert "drift on 2026-03-02" in drift.description


def test_a_check_that_passed_every_day_passes_once_for_the_range() -> None:
    [only] = merged_checks([_day(f"2026-03-0{i}", schema=(True, ERROR)) for i in (1, 2)])
    assert only.passed and only.metadata["days"].value == 2
    assert only.description == "passed on all 2 days, 2026-03-01 to 2026-03-02"


def test_a_range_days_clock_and_the_day_a_replay_delivers_up_to() -> None:
    clock = Clock(day_ends=True).for_day("2026-03-05")
    assert clock.now() == datetime(2026, 3, 6, tzinfo=UTC)  # judged at the day's end
    assert clock.replayed_day() == "2026-03-05"  # its end is that day's, not the next's
    assert Clock(now_iso="2026-03-05T22:00:00+00:00").replayed_day() == "2026-03-05"
    assert Clock().replayed_day() is None  # the real clock: every pending notification
