"""The demo's incidents: a catalogue of kinds (what each injects and which signals it should
raise) and a calendar of when and where each happens.

The catalogue is data: the world generator reads a kind's `params` to inject it, the manifest
records the kind's columns, expected and allowed signals and description, and the grading holds
the findings against them. `expected` signals must be raised for the incident to count as
detected; `allowed` ones may follow from it without being false alarms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiops_pipelines.core.findings import Signal

#: The incident calendar below is written for this many days and scaled to other lengths.
CALENDAR_DAYS = 64

TENURE_SHIFT_SD = 0.5  # mean shift of tenure_months, in reference standard deviations
CHARGES_SHIFT_SD = 0.3  # mean shift of monthly_charges
CONCEPT_FACTOR = 1.2  # delivery minutes after the concept shift: factor * y + add
CONCEPT_ADD_MIN = 3.0
NULL_RATE_TO = 0.30  # traffic_index missing share inside the outage window (from 0.02)
UNSEEN_VALUE = "voice_assistant"
UNSEEN_SHARE = 0.10
CANARY_SHARE = 0.10
#: The good canary gets more traffic: proving "not worse" takes more data than proving worse.
GOOD_CANARY_SHARE = 0.25
#: Its non-inferiority margin (accuracy points) in the demo config: a 4-class model at ~62%
#: accuracy with a quarter of the traffic can show "no worse than 5 points" in about a week.
GOOD_CANARY_MARGIN = 0.05
CANARY_LABEL_NOISE = 0.2
THROUGHPUT_FACTOR = 0.20  # share of normal traffic left on a throughput-drop day
BAD_BATCH_COLUMN = "monthly_charges"  # acme.churn: text in a numeric column fails the day's run
BAD_BATCH_VALUE = "n/a"


@dataclass(frozen=True)
class IncidentKind:
    """What one kind of incident injects, and what a monitor should make of it."""

    columns: list[str]
    expected: list[Signal]
    allowed: list[Signal]
    params: dict[str, Any]
    describe: Callable[[dict[str, Any]], str]


_DRIFT, _PRED = Signal.FEATURE_DRIFT, Signal.PREDICTION_DRIFT
_ESTIMATE = Signal.ESTIMATED_PERFORMANCE_DECAY

CATALOGUE: dict[str, IncidentKind] = {
    "covariate_drift": IncidentKind(
        columns=["tenure_months", "monthly_charges"],
        expected=[_DRIFT],
        # scores follow the features, so the label-free estimate moves too; the drift share
        # rises by two features' share and stays: a daily level shift once it has lasted
        allowed=[_PRED, Signal.DATASET_DRIFT, _ESTIMATE, Signal.LEVEL_SHIFT],
        params={"tenure_shift_sd": TENURE_SHIFT_SD, "charges_shift_sd": CHARGES_SHIFT_SD},
        describe=lambda p: (
            "A new-customer campaign and a price rise: tenure_months drops by "
            f"~{p['tenure_shift_sd']} sd and monthly_charges rises by ~{p['charges_shift_sd']} "
            "sd; P(churn | x) is unchanged, so the churn scores rise with the features."
        ),
    ),
    "concept_shift": IncidentKind(
        columns=[],
        expected=[Signal.PERFORMANCE_DECAY, Signal.RESIDUAL_ANOMALY],
        # the MAE's lasting rise is a daily level shift after 14 labelled days (not required)
        allowed=[Signal.LEVEL_SHIFT],
        params={"factor": CONCEPT_FACTOR, "add_minutes": CONCEPT_ADD_MIN},
        describe=lambda p: (
            f"Couriers start batching orders: delivery takes ~{p['factor'] - 1:.0%} longer plus "
            f"{p['add_minutes']:.0f} minutes for the same features. No feature or prediction "
            "moves; only the labels do (error grows as they arrive, 1-14 days later)."
        ),
    ),
    "null_rate": IncidentKind(
        columns=["traffic_index"],
        expected=[Signal.NULL_RATE_DRIFT],
        allowed=[_DRIFT],
        params={"null_rate_from": 0.02, "null_rate_to": NULL_RATE_TO},
        describe=lambda p: (
            f"The traffic feed has an outage: traffic_index is missing in "
            f"~{p['null_rate_to']:.0%} of the rows instead of ~{p['null_rate_from']:.0%}."
        ),
    ),
    "unseen_category": IncidentKind(
        columns=["channel"],
        expected=[Signal.UNSEEN_CATEGORY],
        # the channel stays drifted: the drift share's lasting rise is a daily level shift
        allowed=[_DRIFT, _PRED, _ESTIMATE, Signal.LEVEL_SHIFT],
        params={"value": UNSEEN_VALUE, "share": UNSEEN_SHARE},
        describe=lambda p: (
            f"A new support channel '{p['value']}' goes live and carries ~{p['share']:.0%} of "
            "the messages; the reference never saw it."
        ),
    ),
    "canary": IncidentKind(
        columns=[],
        expected=[Signal.CANARY_FAIL],
        # the worse version really lowers the blended performance of the model, and lastingly
        allowed=[_PRED, Signal.PERFORMANCE_DECAY, _ESTIMATE, Signal.LEVEL_SHIFT],
        params={"canary_version": "2", "champion_version": "1", "share": CANARY_SHARE},
        describe=lambda p: (
            f"Version 2 (trained on a small, noisy sample) serves ~{p['share']:.0%} of the "
            "traffic as a canary; it is clearly worse than the champion (version 1)."
        ),
    ),
    "canary_good": IncidentKind(
        columns=[],
        expected=[Signal.CANARY_PASS],
        allowed=[_PRED, _ESTIMATE],
        params={"canary_version": "2", "champion_version": "1", "share": GOOD_CANARY_SHARE},
        describe=lambda p: (
            f"Version 2 (the champion's recipe, another seed) serves ~{p['share']:.0%} of the "
            "traffic as a canary; it is as good as the champion and should be promoted."
        ),
    ),
    "throughput_drop": IncidentKind(
        columns=[],
        expected=[Signal.THROUGHPUT_ANOMALY],
        # the drop is also a level shift once it has lasted (not required: two days is short)
        allowed=[Signal.LEVEL_SHIFT],
        params={"factor": THROUGHPUT_FACTOR},
        describe=lambda p: (
            f"An upstream outage: only ~{p['factor']:.0%} of the usual requests arrive."
        ),
    ),
    "bad_batch": IncidentKind(
        columns=[BAD_BATCH_COLUMN],
        expected=[Signal.PIPELINE_FAILURE],
        allowed=[],
        params={"value": BAD_BATCH_VALUE},
        describe=lambda p: (
            f"An upstream job writes '{p['value']}' into {BAD_BATCH_COLUMN} for a day: the "
            "day's monitoring run fails on the column's type, and the failed run must reach "
            "the feed and the alert routes."
        ),
    ),
}

# (id, kind, model, start, end) on the 64-day calendar; spread out so that every incident on a
# model starts on its own day, and the first ten days of the world are clean history.
CALENDAR: tuple[tuple[int, str, str, int, int | None], ...] = (
    (1, "null_rate", "globex.eta", 14, 18),
    (2, "covariate_drift", "acme.churn", 20, None),
    (3, "throughput_drop", "globex.eta", 24, 25),
    (4, "unseen_category", "acme.intent", 28, None),
    (5, "concept_shift", "globex.eta", 36, None),
    (6, "canary", "acme.churn", 44, None),
    (7, "canary_good", "acme.intent", 32, None),
    (8, "bad_batch", "acme.churn", 12, 12),
)


@dataclass(frozen=True)
class Incident:
    """An injected problem: day offsets from the first demo day, `end` inclusive, None = open."""

    id: int
    kind: str
    model: str
    start: int
    end: int | None
    columns: list[str]
    expected: list[str]
    allowed: list[str]
    description: str
    params: dict[str, Any] = field(default_factory=dict)

    def active(self, day: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows whose day index falls inside the incident."""
        if self.end is None:
            return day >= self.start
        return (day >= self.start) & (day <= self.end)


def scheduled_incidents(days: int, scale: float) -> list[Incident]:
    """The calendar scaled to `days` (offsets * scale, rounded), checked to fit in the world."""

    def at(offset: int) -> int:
        return int(round(offset * scale))

    out: list[Incident] = []
    for iid, kind, model, start0, end0 in CALENDAR:
        start = at(start0)
        end = None if end0 is None else max(start, at(end0))
        if start < 1 or start >= days or (end is not None and end >= days):
            raise ValueError(
                f"incident {iid} ({kind}) falls on day {start}..{end} of a {days}-day world: "
                "use more days or a smaller incident_scale"
            )
        k = CATALOGUE[kind]
        out.append(
            Incident(
                iid,
                kind,
                model,
                start,
                end,
                list(k.columns),
                [s.value for s in k.expected],
                [s.value for s in k.allowed],
                k.describe(k.params),
                dict(k.params),
            )
        )
    return out
