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
SEGMENT_SHIFT_SD = 0.3  # monthly_charges shift inside region=west only, in reference sds
BIASED_GROUP = "south"  # acme.churn's fairness attribute is region, privileged "north"
BIAS_SCORE_SHIFT = -0.2  # churn score change for the biased group's rows
SLOW_LATENCY_MS = 450.0  # above acme.churn's 200 ms latency SLO
SLOW_SHARE = 0.5  # share of the slow hours' predictions that take it
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
        allowed=[
            _PRED,
            Signal.DATASET_DRIFT,
            _ESTIMATE,
            Signal.LEVEL_SHIFT,
            Signal.MULTIVARIATE_DRIFT,
            Signal.SEGMENT_DRIFT,
        ],
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
        allowed=[_DRIFT, Signal.MULTIVARIATE_DRIFT],
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
        allowed=[_DRIFT, _PRED, _ESTIMATE, Signal.LEVEL_SHIFT, Signal.MULTIVARIATE_DRIFT],
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
    "segment_drift": IncidentKind(
        columns=["monthly_charges"],
        expected=[Signal.SEGMENT_DRIFT],
        # the joint distribution moves with it (region x charges), and higher charges mean
        # higher churn scores in that region only: a real disparity against the privileged
        # region; the 3- and 7-day windows keep the segment's finding a few days after the end
        allowed=[Signal.MULTIVARIATE_DRIFT, _PRED, _ESTIMATE, Signal.FAIRNESS_VIOLATION],
        params={"segment": "region", "value": "west", "shift_sd": SEGMENT_SHIFT_SD},
        describe=lambda p: (
            f"A price rise in the {p['value']} region only: monthly_charges rises by "
            f"~{p['shift_sd']} sd there (~20% of the traffic), too little to move the whole "
            "model's distribution."
        ),
    ),
    "biased_scores": IncidentKind(
        columns=[],
        expected=[Signal.FAIRNESS_VIOLATION],
        # fewer churners predicted in one region: the scores and their estimate move, and the
        # labels show the recall lost there
        allowed=[_PRED, _ESTIMATE, Signal.PERFORMANCE_DECAY, Signal.LEVEL_SHIFT],
        params={"attribute": "region", "group": BIASED_GROUP, "score_shift": BIAS_SCORE_SHIFT},
        describe=lambda p: (
            f"A broken regional feature feed lowers every churn score in the {p['group']} "
            f"region by {-p['score_shift']:.1f}: customers there are flagged far less often "
            "than in the north (the privileged group) for the same risk."
        ),
    ),
    "correlation_flip": IncidentKind(
        columns=["num_items", "prep_time_min"],
        expected=[Signal.MULTIVARIATE_DRIFT],
        # the model never saw big orders prepared fast: its errors and outputs may move
        allowed=[_PRED, _ESTIMATE, Signal.PERFORMANCE_DECAY, Signal.RESIDUAL_ANOMALY],
        params={},
        describe=lambda p: (
            "A kitchen system bug re-pairs the orders' preparation times: each day's "
            "prep_time_min values are handed out in reverse order, so big orders get the short "
            "times. Every feature keeps exactly its distribution; only the joint one flips."
        ),
    ),
    "slo_burn": IncidentKind(
        columns=[],
        expected=[Signal.SLO_BURN],
        allowed=[Signal.LATENCY_REGRESSION, Signal.SLO_BUDGET, Signal.LEVEL_SHIFT],
        params={
            "first_hour": 13,
            "last_hour": 14,
            "share": SLOW_SHARE,
            "latency_ms": SLOW_LATENCY_MS,
        },
        describe=lambda p: (
            f"A slow cache node from {p['first_hour']}:00 to {p['last_hour'] + 1}:00 UTC: "
            f"~{p['share']:.0%} of the predictions take {p['latency_ms']:.0f} ms, burning the "
            "200 ms latency SLO's error budget ~50x too fast."
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
    (8, "bad_batch", "acme.churn", 11, 11),
    (9, "segment_drift", "acme.churn", 14, 19),
    (10, "biased_scores", "acme.churn", 30, 38),
    (11, "correlation_flip", "globex.eta", 28, 33),
    (12, "slo_burn", "acme.churn", 40, 40),
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
