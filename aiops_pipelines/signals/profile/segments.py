"""Profiles per segment value: the day's (and the reference's) rows of each value of the model's
`segments`, each profiled as the whole day is, on the reference's bins.

Which values (`SegmentPlan`): per segment column, the `segment_drift.top_k` values with the
most reference rows, read from the reference profile's exact category counts, so the set is
fixed by the reference and the same every day; every other value (the reference's rarer ones,
values it never had, missing values) is pooled as one `__other__` value.

How (`SegmentProfiler`): in the same streamed pass as the whole day's profile, each chunk's
rows are grouped by the segment's value (one stable sort of the chunk per segment column) and
each group feeds the `ProfileBuilder` of its value. The rows of a chunk are therefore profiled
once more per segment column: the cost is measured in `benchmarks/bench_segments.py`. A
segment's profiles hold the features only (not the model's outputs), without the segment
column itself (constant within a value).

Stored (`SegmentProfiles.to_dict`) without their spec: the whole profile stored beside them
has it, and the spec (the bin edges) is most of a profile's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.signals.drift.calibration import BlockCalibrator, ReferenceCalibration
from aiops_pipelines.signals.profile.builder import ProfileBuilder, category_codes
from aiops_pipelines.signals.profile.profiles import (
    OTHER,
    ColumnProfile,
    DatasetProfile,
    ProfileSpec,
)

SEGMENTS_FORMAT = "aiops.segments/1"


def segment_label(segment: str, value: str) -> str:
    """How a segment value is named in findings and the metric history: `region=north`."""
    return f"{segment}={value}"


@dataclass(frozen=True)
class SegmentPlan:
    """The values of each segment column tested on their own (by reference traffic), in
    order; `OTHER` pools the rest."""

    values: dict[str, list[str]]
    top_k: int

    def slots(self, segment: str) -> list[str]:
        """The segment's values as profiled: the top values, then `OTHER`."""
        return [*self.values[segment], OTHER]

    def to_dict(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "values": {s: list(v) for s, v in self.values.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SegmentPlan:
        return cls({s: [str(x) for x in v] for s, v in d["values"].items()}, int(d["top_k"]))


def segment_plan(model: ModelConfig, reference: DatasetProfile) -> SegmentPlan:
    """The top `segment_drift.top_k` values of each segment by reference rows (ties by name)."""
    k = model.segment_drift.top_k
    values = {}
    for seg in model.segments:
        counts = reference.columns[seg].counts
        ranked = sorted(
            ((v, n) for v, n in counts.items() if v != OTHER and n > 0),
            key=lambda vn: (-vn[1], vn[0]),
        )
        values[seg] = [v for v, _ in ranked[:k]]
    return SegmentPlan(values, k)


def segment_columns(model: ModelConfig, segment: str) -> tuple[list[str], list[str]]:
    """The numeric and categorical columns of a segment's profiles: the features but it."""
    return (
        list(model.features.numeric),
        [c for c in model.features.categorical if c != segment],
    )


@dataclass
class SegmentProfiles:
    """Per segment column, per value (`SegmentPlan.slots`), the profile of its rows."""

    plan: SegmentPlan
    profiles: dict[str, dict[str, DatasetProfile]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SEGMENTS_FORMAT,
            "plan": self.plan.to_dict(),
            "profiles": {
                seg: {
                    value: {
                        "n_rows": int(p.n_rows),
                        "columns": [c.to_dict(with_edges=False) for c in p.columns.values()],
                    }
                    for value, p in by_value.items()
                }
                for seg, by_value in self.profiles.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], spec: ProfileSpec) -> SegmentProfiles:
        """Read back a stored copy, on the `spec` of the whole profile stored with it."""
        if d.get("format") != SEGMENTS_FORMAT:
            raise ValueError(f"not segment profiles of format {SEGMENTS_FORMAT}: {d.get('format')}")
        profiles: dict[str, dict[str, DatasetProfile]] = {}
        for seg, by_value in d["profiles"].items():
            profiles[seg] = {}
            for value, p in by_value.items():
                cols = [ColumnProfile.from_dict(c) for c in p["columns"]]
                for c in cols:
                    if c.kind == "numeric":
                        c.edges = spec.numeric[c.name]
                sub = spec.subset(
                    [c.name for c in cols if c.kind == "numeric"],
                    [c.name for c in cols if c.kind == "categorical"],
                )
                profiles[seg][value] = DatasetProfile(
                    int(p["n_rows"]), {c.name: c for c in cols}, sub
                )
        return cls(SegmentPlan.from_dict(d["plan"]), profiles)


@dataclass
class SegmentReference:
    """The reference's segment profiles and each segment value's own design effects (its rows
    of the reference in source order, `signals.drift.calibration.BlockCalibrator`)."""

    profiles: SegmentProfiles
    calibration: dict[str, dict[str, ReferenceCalibration]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.profiles.to_dict(),
            "calibration": {
                seg: {v: c.to_dict() for v, c in by_value.items()}
                for seg, by_value in self.calibration.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], spec: ProfileSpec) -> SegmentReference:
        calibration = {
            seg: {v: ReferenceCalibration.from_dict(c) for v, c in by_value.items()}
            for seg, by_value in d.get("calibration", {}).items()
        }
        return cls(
            SegmentProfiles.from_dict(d, spec),
            {s: {v: c for v, c in b.items() if c is not None} for s, b in calibration.items()},
        )


class SegmentProfiler:
    """Feeds each chunk's rows, grouped by segment value, to one `ProfileBuilder` per value
    (and, for the reference, to one `BlockCalibrator` per value)."""

    def __init__(
        self,
        model: ModelConfig,
        plan: SegmentPlan,
        spec: ProfileSpec,
        *,
        calibrate: DatasetProfile | None = None,
    ) -> None:
        """`calibrate`: the reference profile, when the rows added are the reference's in
        source order (the per-value row counts come from its segment columns' counts)."""
        self.plan = plan
        self.columns = {s: segment_columns(model, s) for s in plan.values}
        self.builders = {
            s: {v: ProfileBuilder(spec, *self.columns[s]) for v in plan.slots(s)}
            for s in plan.values
        }
        self.calibrators: dict[str, dict[str, BlockCalibrator]] = {}
        if calibrate is not None:
            for s in plan.values:
                counts = calibrate.columns[s]
                known = {v: int(counts.counts.get(v, 0)) for v in plan.values[s]}
                rest = calibrate.n_rows - sum(known.values())
                sizes = {**known, OTHER: rest}
                names = [*self.columns[s][0], *self.columns[s][1]]
                self.calibrators[s] = {
                    v: BlockCalibrator(calibrate, names, n) for v, n in sizes.items()
                }

    def add(self, chunk: pd.DataFrame) -> None:
        for seg, builders in self.builders.items():
            slots = self.plan.slots(seg)
            slot = _slot_of_rows(chunk[seg], slots)
            order = np.argsort(slot, kind="stable")
            bounds = np.searchsorted(slot[order], np.arange(len(slots) + 1))
            num, cat = self.columns[seg]
            grouped = chunk[[*num, *cat]].take(order)
            for i, value in enumerate(slots):
                lo, hi = int(bounds[i]), int(bounds[i + 1])
                if hi > lo:
                    rows = grouped.iloc[lo:hi]
                    builders[value].update(rows)
                    if seg in self.calibrators:
                        self.calibrators[seg][value].add(rows)

    def result(self) -> SegmentProfiles:
        return SegmentProfiles(
            self.plan,
            {s: {v: b.result() for v, b in by.items()} for s, by in self.builders.items()},
        )

    def reference(self) -> SegmentReference:
        return SegmentReference(
            self.result(),
            {s: {v: c.result() for v, c in by.items()} for s, by in self.calibrators.items()},
        )


def _slot_of_rows(series: pd.Series, slots: Sequence[str]) -> np.ndarray:
    """Index in `slots` of every row's value; the last slot (`OTHER`) for any value not named
    in it and for missing values. Values compare as strings, as in the profiles."""
    codes, labels = category_codes(series)
    index = {v: i for i, v in enumerate(slots[:-1])}
    other = len(slots) - 1
    lookup = np.array([index.get(lab, other) for lab in labels] + [other], dtype=np.int64)
    return lookup[codes]  # code -1 (missing) reads the last entry
