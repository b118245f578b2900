"""The demo summary grades findings correctly: detection_summary on hand-made findings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiops_pipelines.demo.grading import detection_summary

MANIFEST = {
    "start": "2026-01-01",
    "end": "2026-01-31",
    "incidents": [
        {
            "id": 1,
            "kind": "covariate_drift",
            "model": "acme.churn",
            "start": "2026-01-10",
            "end": None,
            "columns": ["tenure_months", "monthly_charges"],
            "expected_signals": ["feature_drift"],
            "allowed_signals": ["prediction_drift", "dataset_drift"],
            "description": "",
        },
        {
            "id": 2,
            "kind": "null_rate",
            "model": "globex.eta",
            "start": "2026-01-05",
            "end": "2026-01-07",
            "columns": ["traffic_index"],
            "expected_signals": ["null_rate_drift"],
            "allowed_signals": ["feature_drift"],
            "description": "",
        },
        {
            "id": 3,
            "kind": "unseen_category",
            "model": "acme.intent",
            "start": "2026-01-12",
            "end": None,
            "columns": ["channel"],
            "expected_signals": ["unseen_category"],
            "allowed_signals": ["feature_drift", "prediction_drift"],
            "description": "",
        },
        {
            "id": 4,
            "kind": "throughput_drop",
            "model": "acme.churn",
            "start": "2026-01-20",
            "end": None,
            "columns": [],
            "expected_signals": ["alert_delivered"],
            "allowed_signals": ["prediction_drift"],
            "description": "",
        },
    ],
}


def _findings(rows: list[tuple[str, str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["tenant", "model", "partition", "signal", "column", "severity"]
    )


def test_detection_summary_grades_lag_misses_and_false_alarms() -> None:
    findings = _findings(
        [
            # incident 1: tenure on the start day, charges one day later; a later repeat
            ("acme", "churn", "2026-01-10", "feature_drift", "tenure_months", "critical"),
            ("acme", "churn", "2026-01-11", "feature_drift", "monthly_charges", "warning"),
            ("acme", "churn", "2026-01-12", "feature_drift", "monthly_charges", "critical"),
            ("acme", "churn", "2026-01-10", "prediction_drift", "score", "warning"),  # allowed
            ("acme", "churn", "2026-01-10", "dataset_drift", "", "warning"),  # allowed
            # incident 2 is missed: only an info finding and an allowed one inside the window
            ("globex", "eta", "2026-01-05", "null_rate_drift", "traffic_index", "info"),
            ("globex", "eta", "2026-01-06", "feature_drift", "traffic_index", "warning"),
            # incident 3 found three days late
            ("acme", "intent", "2026-01-15", "unseen_category", "channel", "critical"),
            # false alarms: a column no incident names, one after the null window closed
            # (end + 1 day is still covered), and a drift before incident 1 started
            ("acme", "intent", "2026-01-03", "feature_drift", "sentiment_score", "warning"),
            ("globex", "eta", "2026-01-08", "feature_drift", "traffic_index", "warning"),
            ("globex", "eta", "2026-01-09", "feature_drift", "traffic_index", "critical"),
            ("acme", "churn", "2026-01-09", "feature_drift", "tenure_months", "warning"),
            # a duplicate of a false alarm counts once; info findings never count
            ("acme", "intent", "2026-01-03", "feature_drift", "sentiment_score", "warning"),
            ("acme", "intent", "2026-01-04", "feature_drift", "language", "info"),
        ]
    )
    summary = detection_summary(MANIFEST, findings)
    rows = {(r["incident"], r["signal"], r["column"]): r for r in summary.incidents}

    tenure = rows[(1, "feature_drift", "tenure_months")]
    assert (tenure["status"], tenure["lag_days"], tenure["first_detected"]) == (
        "detected",
        0,
        "2026-01-10",
    )
    assert tenure["severity"] == "critical"
    charges = rows[(1, "feature_drift", "monthly_charges")]
    assert (charges["status"], charges["lag_days"], charges["severity"]) == (
        "detected",
        1,
        "warning",
    )
    assert rows[(2, "null_rate_drift", "traffic_index")]["status"] == "missed"
    late = rows[(3, "unseen_category", "channel")]
    assert (late["status"], late["lag_days"]) == ("late", 3)
    assert rows[(4, "alert_delivered", "")]["status"] == "not in scope yet"
    assert not summary.all_detected

    alarms = {(a["model"], a["partition"], a["signal"], a["column"]) for a in summary.false_alarms}
    assert alarms == {
        ("acme.intent", "2026-01-03", "feature_drift", "sentiment_score"),
        ("globex.eta", "2026-01-09", "feature_drift", "traffic_index"),
        ("acme.churn", "2026-01-09", "feature_drift", "tenure_months"),
    }
    assert summary.false_alarm_count == 3
    # 3 models x 31 days; churn changes from the 10th, intent from the 12th, eta 5th-7th
    assert (summary.model_days, summary.clean_model_days) == (93, 93 - 22 - 20 - 3)

    text = summary.render()
    for needle in (
        "acme.churn",
        "globex.eta",
        "covariate_drift",
        "2026-01-10",
        "0d",
        "1d",
        "missed",
        "not in scope yet",
        "False alarms: 3",
        "sentiment_score",
    ):
        assert needle in text


def test_detection_summary_all_detected_and_empty_findings() -> None:
    findings = _findings(
        [
            ("acme", "churn", "2026-01-10", "feature_drift", "tenure_months", "warning"),
            ("acme", "churn", "2026-01-10", "feature_drift", "monthly_charges", "warning"),
            ("globex", "eta", "2026-01-06", "null_rate_drift", "traffic_index", "critical"),
            ("acme", "intent", "2026-01-12", "unseen_category", "channel", "warning"),
            ("acme", "churn", "2026-01-25", "prediction_drift", "score", "critical"),  # canary
        ]
    )
    summary = detection_summary(MANIFEST, findings)
    assert summary.all_detected and summary.false_alarm_count == 0

    empty = detection_summary(MANIFEST, _findings([]))
    assert not empty.all_detected and empty.false_alarms == []
    assert {r["status"] for r in empty.incidents} == {"missed", "not in scope yet"}
    pending = detection_summary(MANIFEST, _findings([]), monitored_days=["2026-01-01"])
    assert {r["status"] for r in pending.incidents} == {"not run yet", "not in scope yet"}
    with pytest.raises(ValueError, match="severity"):
        detection_summary(
            MANIFEST,
            pd.DataFrame({"tenant": [], "model": [], "partition": [], "signal": [], "column": []}),
        )
    assert np.isfinite(len(empty.render()))


def test_decay_is_graded_on_the_day_its_labels_raised_it() -> None:
    manifest = {
        "start": "2026-01-01",
        "end": "2026-02-28",
        "incidents": [
            {
                "id": 5,
                "kind": "concept_shift",
                "model": "globex.eta",
                "start": "2026-01-10",
                "end": None,
                "columns": [],
                "expected_signals": ["performance_decay"],
                "allowed_signals": [],
                "description": "",
            }
        ],
    }

    def finding(raised_on: str) -> pd.DataFrame:
        df = _findings(
            [("globex", "globex.eta", "2026-01-11", "performance_decay", "", "critical")]
        )
        df["evidence"] = [{"detected_at": f"{raised_on}T00:00:00+00:00"}]
        return df

    on_time = detection_summary(manifest, finding("2026-01-16")).incidents[0]
    assert (on_time["status"], on_time["lag_days"]) == ("detected", 6)
    too_late = detection_summary(manifest, finding("2026-02-10")).incidents[0]
    assert too_late["status"] == "late"
