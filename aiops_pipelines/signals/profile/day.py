"""One model, one partition: the reference profile and a day's feature profile.

`profile_reference` and `profile_for_day` stream a source once (bounded memory) into a mergeable
profile plus a small uniform sample for the human-facing Evidently report.

Contract checks happen here, on every chunk, before anything is stored: a missing column, a
wrong dtype, NaN/inf where a value is required, tz-naive timestamps, duplicate request ids or an
empty day raise `DataError` naming the model, the partition and the column. Text values longer
than `max_string_length` are cut as they are read (`io.sources.StringCap`) and reported as a
`long_string` finding; a config whose features no longer match the stored reference's is
refused (`require_reference_columns`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import ModelConfig, TaskType
from aiops_pipelines.core.errors import ConfigError, DataError
from aiops_pipelines.core.files import replace_file
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal
from aiops_pipelines.core.values import quoted
from aiops_pipelines.io.labels import read_reference_labelled
from aiops_pipelines.io.sources import (
    IdHashes,
    Source,
    StringCap,
    check_window_count,
    day_window,
    served,
)
from aiops_pipelines.io.store import REFERENCE_PARTITION
from aiops_pipelines.signals.drift.calibration import (
    DayBlocks,
    ReferenceCalibration,
    calibrate_reference,
)
from aiops_pipelines.signals.performance.reference import (
    ReferencePerformance,
    reference_performance,
)
from aiops_pipelines.signals.profile.builder import (
    ProfileBuilder,
    SampleKeeper,
    build_reference_profile,
)
from aiops_pipelines.signals.profile.profiles import DatasetProfile
from aiops_pipelines.signals.profile.segments import (
    SegmentProfiler,
    SegmentProfiles,
    SegmentReference,
    segment_plan,
)


@dataclass(frozen=True)
class ProfiledColumns:
    """Which columns a model's profiles hold, and in which role."""

    numeric: list[str]
    categorical: list[str]
    features: list[str]
    predictions: list[str]

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def profiled_columns(model: ModelConfig, *, with_predictions: bool = True) -> ProfiledColumns:
    """Features, plus the model's outputs (prediction, score) for prediction drift."""
    numeric = list(model.features.numeric)
    categorical = list(model.features.categorical)
    preds: list[str] = []
    if with_predictions:
        pred = model.columns.prediction
        (categorical if model.task.is_classification else numeric).append(pred)
        preds.append(pred)
        if model.columns.score:
            numeric.append(model.columns.score)
            preds.append(model.columns.score)
    return ProfiledColumns(numeric, categorical, list(model.features.all), preds)


REFERENCE_MIN_ROWS_FACTOR = 10
"""The reference needs this many times a day's `min_rows` to fix stable bins."""


def require_reference_columns(
    model: ModelConfig, reference: DatasetProfile, *, config_path: str | None = None
) -> None:
    """Refuse to judge days against a reference profiled on other columns than the config's.

    A day is profiled on the reference's columns and bins, so a feature added to the config
    since the reference was built would be skipped without a word, a removed one still tested,
    and one whose kind changed has no bins to be profiled on. Prediction columns the reference
    lacks are fine (a reference without the champion's outputs has no prediction drift).
    Raises `ConfigError` naming the model, the columns that differ and the command that
    rebuilds the reference.
    """
    want = profiled_columns(model)
    kinds = {c: "numeric" for c in want.numeric} | {c: "categorical" for c in want.categorical}
    have = reference.columns
    added = [f"{c} ({kinds[c]})" for c in want.features if c not in have]
    removed = [c for c in have if c not in kinds]
    changed = [
        f"{c} ({have[c].kind} -> {kinds[c]})"
        for c in want.all
        if c in have and have[c].kind != kinds[c]
    ]
    if not (added or removed or changed):
        return
    diff = "; ".join(
        f"{what}: {', '.join(names)}"
        for what, names in (("added", added), ("removed", removed), ("kind changed", changed))
        if names
    )
    raise ConfigError(
        f"the features differ from those the stored reference profile was built on ({diff}), "
        "so its days would be judged on the old columns: rebuild the reference with "
        f"`aiops run --config FILE --start DAY --end DAY --model {model.key} "
        f"--refresh-reference` (or materialize reference_profile for partition '{model.key}'), "
        "or restore the features it was built on",
        path=config_path,
        where=f"model '{model.key}'",
        field="features",
    )


def long_string_findings(
    model: ModelConfig, partition: str, asset: str, cap: StringCap
) -> list[Finding]:
    """One warning per column whose text values were cut (`StringCap`).

    A warning, not info: the source is broken or hostile (a category is a short name), and the
    cut values are what every signal of the day saw: values sharing their first
    `max_string_length - 1` characters count as one. Alerts deduplicate it per column, so
    a source that keeps sending such values is one alert, not one a day.
    """
    out = []
    for column, n in cap.counts.items():
        longest = cap.longest[column]
        out.append(
            Finding(
                tenant=model.tenant,
                model=model.name,
                partition=partition,
                asset=asset,
                signal=Signal.LONG_STRING.value,
                severity=Severity.WARNING,
                value=float(longest),
                threshold=float(cap.max_length),
                column=column,
                message=f"column '{column}': {n:,} value(s) longer than max_string_length = "
                f"{cap.max_length} characters (the longest {longest:,}) were cut to "
                f"{cap.max_length} before profiling, storing and rendering: fix the source, or "
                "raise `max_string_length` if such values are expected",
                evidence={"n_values": n, "longest": longest, "max_length": cap.max_length},
            )
        )
    return out


def sample_path(artifacts_dir: Path, model_key: str, partition: str) -> Path:
    """Where a partition's bounded sample (for the human-facing HTML report) is kept."""
    return artifacts_dir / "samples" / model_key / f"{partition}.parquet"


@dataclass
class ReferenceResult:
    """The reference profile of a model, its sample, and the champion's reference performance
    (None when the reference has no labels and predictions to measure it on)."""

    profile: DatasetProfile
    sample: pd.DataFrame
    columns: ProfiledColumns
    seconds: float
    performance: ReferencePerformance | None = None
    calibration: ReferenceCalibration | None = None
    """Design effects of the reference's contiguous blocks (`signals.drift.calibration`)."""
    sample_path: Path | None = None
    findings: list[Finding] = field(default_factory=list)
    """Text values cut to `max_string_length` (`long_string`); its other problems are its
    checks (and errors)."""
    segments: SegmentReference | None = None
    """Per segment value, its profile and design effects (`segment_drift.enabled`)."""

    @property
    def n_rows(self) -> int:
        return self.profile.n_rows

    def null_rates(self) -> dict[str, float]:
        return {name: c.null_rate for name, c in self.profile.columns.items()}

    @property
    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows of the store's metric history."""
        out = {("rows", ""): float(self.n_rows)}
        out.update({("null_rate", c): v for c, v in self.null_rates().items()})
        return out

    @property
    def payload(self) -> dict[str, Any]:
        """The stored reference: profile, coarse dtypes (for the schema check), performance."""
        out: dict[str, Any] = {
            "profile": self.profile.to_dict(),
            "dtypes": dtype_families(self.sample),
        }
        if self.performance is not None:
            out["performance"] = self.performance.to_dict()
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        if self.segments is not None:
            out["segments"] = self.segments.to_dict()
        return out

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        perf = self.performance.metrics if self.performance else {}
        return {
            "rows": float(self.n_rows),
            "seconds": self.seconds,
            **{f"null_rate.{c}": v for c, v in self.null_rates().items()},
            **{f"reference.{m}": v for m, v in perf.items()},
        }

    def checks(self, model: ModelConfig) -> list[Check]:
        min_rows = REFERENCE_MIN_ROWS_FACTOR * model.thresholds.min_rows
        return [
            Check(
                "reference_row_count",
                self.n_rows >= min_rows,
                "error",
                {"rows": self.n_rows, "threshold": min_rows},
                message=f"model {model.key}: the reference has {self.n_rows:,} rows, fewer than "
                f"{min_rows:,} ({REFERENCE_MIN_ROWS_FACTOR} x thresholds.min_rows = "
                f"{model.thresholds.min_rows}) needed for stable bins: give the model a larger "
                "`reference` or lower `thresholds.min_rows`",
            )
        ]


@dataclass
class ProfileDay:
    """A day's feature profile (on the reference's bins), its sample and its bookkeeping."""

    partition: str
    profile: DatasetProfile
    sample: pd.DataFrame
    n_rows: int
    n_chunks: int
    seconds: float
    versions: dict[str, int] = field(default_factory=dict)
    n_errors: int = 0
    dtypes: dict[str, str] = field(default_factory=dict)
    sample_path: Path | None = None
    within_day: dict[str, list[float]] = field(default_factory=dict)
    """Per column, [chi-square, dof] between the day's 10-minute blocks within each hour."""
    findings: list[Finding] = field(default_factory=list)
    """Text values cut to `max_string_length` (`long_string`); the day's other contract
    problems are its checks, and drift judges the profile."""
    segments: SegmentProfiles | None = None
    """Per segment value, the profile of its rows (`segment_drift.enabled`)."""

    def null_rates(self) -> dict[str, float]:
        return {name: c.null_rate for name, c in self.profile.columns.items()}

    def unseen_share(self) -> dict[str, float]:
        return unseen_shares(self.profile)

    @property
    def error_rate(self) -> float:
        """Share of the day's requests that failed (status other than "ok")."""
        return self.n_errors / self.n_rows

    @property
    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows of the store's metric history."""
        return {
            ("rows", ""): float(self.n_rows),
            ("error_rate", ""): self.error_rate,
            **{("null_rate", c): v for c, v in self.null_rates().items()},
            **{("unseen_share", c): v for c, v in self.unseen_share().items()},
            **{("version_rows", v): float(n) for v, n in self.versions.items()},
        }

    @property
    def payload(self) -> dict[str, Any]:
        """The stored daily profile, with the coarse dtypes and the rows per version."""
        return {
            "profile": self.profile.to_dict(),
            "dtypes": self.dtypes,
            "versions": self.versions,
            "within_day": self.within_day,
            **({"segments": self.segments.to_dict()} if self.segments is not None else {}),
        }

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        return {
            "rows": float(self.n_rows),
            "error_rate": self.error_rate,
            "seconds": self.seconds,
            **{f"null_rate.{c}": v for c, v in self.null_rates().items()},
        }

    def checks(
        self, model: ModelConfig, reference: DatasetProfile, reference_dtypes: dict[str, str]
    ) -> list[Check]:
        """The data contract of the day against the reference: enough rows, the same column
        types and no column all null (both errors: nothing downstream should trust the day),
        and warnings for a jump of a column's missing share and for unseen categories."""
        th = model.thresholds
        changed = {
            c: f"{reference_dtypes[c]} -> {t}"
            for c, t in self.dtypes.items()
            if c in reference_dtypes and not _same_family(reference_dtypes[c], t)
        }
        cols = self.profile.columns
        all_null = [c for c, p in cols.items() if p.n_rows and p.n_missing == p.n_rows]
        null_jumps = {
            c: round(p.null_rate - reference.columns[c].null_rate, 4)
            for c, p in cols.items()
            if c in reference.columns
            and p.null_rate - reference.columns[c].null_rate >= th.null_rate_increase[0]
        }
        unseen = {
            c: {"share": round(share, 4), "top": list(cols[c].unseen)[:5]}
            for c, share in self.unseen_share().items()
            if share >= th.unseen_share[0]
        }
        where = f"model {model.key}, partition {self.partition}"
        problems = [f"column '{c}' changed type {change}" for c, change in changed.items()] + [
            f"column '{c}' is null in all {cols[c].n_rows:,} rows" for c in all_null
        ]
        return [
            Check(
                "row_count",
                self.n_rows >= th.min_rows,
                "error",
                {"rows": self.n_rows, "threshold": th.min_rows},
                message=f"{where}: {self.n_rows:,} predictions, fewer than thresholds.min_rows = "
                f"{th.min_rows:,}: too few to judge the day (lower `thresholds.min_rows` if such "
                "days are normal for this model)",
            ),
            Check(
                "schema",
                not changed and not all_null,
                "error",
                {"dtype_changes": json.dumps(changed), "all_null_columns": ", ".join(all_null)},
                message=f"{where}: {'; '.join(problems)} (reference types: "
                + ", ".join(f"{c}={reference_dtypes.get(c, '?')}" for c in [*changed, *all_null])
                + "): fix the source, or declare the column's kind in `features.numeric` / "
                "`features.categorical` and re-run `reference_profile`",
            ),
            Check(
                "null_rate",
                not null_jumps,
                "warn",
                {"increases": json.dumps(null_jumps), "threshold": th.null_rate_increase[0]},
            ),
            Check(
                "unseen_categories",
                not unseen,
                "warn",
                {"unseen": json.dumps(unseen), "threshold": th.unseen_share[0]},
            ),
        ]


def _same_family(a: str, b: str) -> bool:
    number = {"integer", "float"}
    return a == b or (a in number and b in number)


def unseen_shares(profile: DatasetProfile) -> dict[str, float]:
    """Share of each categorical column's non-missing values the reference never had."""
    out = {}
    for name, c in profile.columns.items():
        if c.kind == "categorical":
            valid = c.n_rows - c.n_missing
            out[name] = c.unseen_total / valid if valid else 0.0
    return out


def _located(exc: DataError, model: ModelConfig, partition: str) -> DataError:
    return exc.located(model=model.key, partition=partition)


def reference_has_predictions(model: ModelConfig) -> bool:
    """Prediction drift needs the champion's outputs on the reference set."""
    wanted = [model.columns.prediction] + ([model.columns.score] if model.columns.score else [])
    present = set(Source(model.reference).columns())
    return all(c in present for c in wanted)


def profile_reference(
    model: ModelConfig, *, n_bins: int = 1000, sample_rows: int = 5000, seed: int = 0
) -> ReferenceResult:
    """Profile the model's reference data: the fixed bins every day is compared against."""
    t0 = time.perf_counter()
    cols = profiled_columns(model, with_predictions=reference_has_predictions(model))
    cut = StringCap.for_model(model)  # counted on the first of the three passes
    keeper = SampleKeeper(sample_rows, seed=seed)
    calls = {"n": 0}

    def chunks():
        calls["n"] += 1
        first_pass = calls["n"] == 1
        strings = cut if first_pass else StringCap.for_model(model)
        src = Source(model.reference, strings=strings)
        any_rows = False
        for chunk in src.iter_all(cols.all):
            any_rows = any_rows or len(chunk) > 0
            if first_pass:
                keeper.update(chunk)
            yield chunk
        if not any_rows:
            raise DataError(f"reference {src.describe()} has no rows")

    try:
        profile = build_reference_profile(
            chunks, cols.numeric, cols.categorical, n_bins=n_bins, seed=seed
        )
        segments = (
            SegmentProfiler(model, segment_plan(model, profile), profile.spec, calibrate=profile)
            if model.segment_drift.enabled
            else None
        )

        def calibrated():
            for chunk in chunks():
                if segments is not None:
                    segments.add(chunk)
                yield chunk

        # a third pass, in the source's order: how much contiguous blocks differ (and the
        # segment values' profiles and blocks)
        calibration = calibrate_reference(calibrated(), profile, cols.all)
    except DataError as exc:
        raise _located(exc, model, REFERENCE_PARTITION) from None
    return ReferenceResult(
        profile,
        keeper.sample(),
        cols,
        time.perf_counter() - t0,
        calibration=calibration,
        findings=long_string_findings(model, REFERENCE_PARTITION, Asset.REFERENCE_PROFILE, cut),
        segments=segments.reference() if segments is not None else None,
    )


def reference_for_model(
    model: ModelConfig, *, sample_rows: int = 5000, samples_dir: Path | None = None
) -> ReferenceResult:
    """What every day of the model is judged against: the reference profile (its sample kept
    under `samples_dir` for the HTML report) and the champion's performance on labelled
    held-out rows (`validation`, else the reference), with its sampling error."""
    res = profile_reference(model, sample_rows=sample_rows)
    labelled = read_reference_labelled(model)
    if labelled is not None:
        res.performance = reference_performance(model, labelled)
    if samples_dir is not None:
        res.sample_path = save_sample(
            res.sample, sample_path(samples_dir, model.key, REFERENCE_PARTITION)
        )
    return res


def _check_chunk(model: ModelConfig, chunk: pd.DataFrame, cols: ProfiledColumns) -> None:
    c = model.columns
    required = [c.request_id, c.timestamp, c.version, *cols.all]
    for name in required:
        if name not in chunk.columns:
            raise DataError("column is missing", column=name)
    if chunk[c.request_id].isna().any():
        raise DataError(
            f"{int(chunk[c.request_id].isna().sum())} rows have no request id", column=c.request_id
        )
    pred = chunk[c.prediction]
    if pred.isna().any():
        raise DataError(
            f"{int(pred.isna().sum())} predictions are missing (NaN/None)", column=c.prediction
        )
    if model.task is TaskType.REGRESSION:
        if not pd.api.types.is_numeric_dtype(pred.dtype):
            raise DataError(
                f"regression predictions must be numeric, got {pred.dtype}", column=c.prediction
            )
        if not np.isfinite(pred.to_numpy(dtype=float)).all():
            raise DataError("predictions contain inf", column=c.prediction)
    if c.score:
        score = chunk[c.score]
        if not pd.api.types.is_numeric_dtype(score.dtype):
            raise DataError(f"scores must be numeric, got {score.dtype}", column=c.score)
        values = score.to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            raise DataError(
                f"{int(bad.sum())} scores are NaN/inf or outside [0, 1]", column=c.score
            )
    if c.latency_ms and c.latency_ms in chunk.columns:
        lat = chunk[c.latency_ms]
        if not pd.api.types.is_numeric_dtype(lat.dtype):
            raise DataError(f"latency must be numeric, got {lat.dtype}", column=c.latency_ms)


def _not_ok(status: pd.Series) -> int:
    """Requests whose status is other than "ok" (missing ones too), as
    `(status.astype(str) != "ok").sum()` counts them; text by Arrow, without the copy."""
    if isinstance(status.dtype, pd.StringDtype):
        return len(status) - int(pc.sum(pc.equal(pa.array(status), "ok")).as_py() or 0)
    return int((status.astype(str) != "ok").sum())


def _family(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    return "string"


def dtype_families(frame: pd.DataFrame) -> dict[str, str]:
    """Coarse dtype per column (integer, float, string, ...) for the schema check."""
    return {str(name): _family(frame[name].dtype) for name in frame.columns}


class DayProfiler:
    """The work of profiling a day, chunk by chunk: what `profile_for_day` does with each chunk
    of the day's window, so that one read of the day can feed it and the other daily signals
    (`signals.day_pass`).

    `read_columns` are the columns to read and `cut` the `StringCap` to read them with; `add`
    takes each chunk as `Source.iter_window` yields it, `finish` checks the window's count and
    its ids and returns the `ProfileDay`. Any `DataError` is the partition's: raise it located
    (`located`). Duplicate ids are found from 64-bit hashes of the ids gathered as the chunks
    pass (`IdHashes`); only when two hashes repeat does the source name the ids.

    A chunk's columns are profiled on the builder's pool, each by one task that also bins it
    into the day's 10-minute blocks (`DayBlocks`), so that a categorical column is coded
    once; meanwhile `add` hashes the ids, counts the versions and samples the rows.
    """

    def __init__(
        self,
        model: ModelConfig,
        partition: str,
        reference: DatasetProfile,
        *,
        sample_rows: int = 5000,
        seed: int = 0,
    ) -> None:
        require_reference_columns(model, reference)
        self.model, self.partition = model, partition
        self.t0 = time.perf_counter()
        full = profiled_columns(model)
        in_ref = set(reference.columns)  # prediction columns only when the reference has them
        cols = ProfiledColumns(
            [x for x in full.numeric if x in in_ref],
            [x for x in full.categorical if x in in_ref],
            full.features,
            [x for x in full.predictions if x in in_ref],
        )
        self.cols = cols
        c = model.columns
        self.read_columns = list(
            dict.fromkeys(
                [c.request_id, c.timestamp, c.version, c.prediction, *cols.all]
                + ([c.score] if c.score else [])
                + [x for x in (c.latency_ms, c.status) if x]
            )
        )
        self.cut = StringCap.for_model(model)
        self.builder = ProfileBuilder(reference.spec, cols.numeric, cols.categorical)
        self.segments = (
            SegmentProfiler(model, segment_plan(model, reference), reference.spec)
            if model.segment_drift.enabled
            else None
        )
        self.blocks = DayBlocks(reference, cols.all)
        self.keeper = SampleKeeper(sample_rows, seed=seed + int(partition.replace("-", "")))
        self.ids = IdHashes()
        self.n_read = self.n_rows = self.n_chunks = self.n_errors = 0
        self.versions: dict[str, int] = {}
        self.dtypes: dict[str, str] = {}

    def add(self, chunk: pd.DataFrame) -> None:
        c, cols = self.model.columns, self.cols
        self.n_read += len(chunk)
        ids = chunk[c.request_id] if c.request_id in chunk.columns else None
        if c.status and c.status in chunk.columns:
            self.n_errors += _not_ok(chunk[c.status])
        chunk = served(chunk, c.prediction, c.status)
        if chunk.empty:
            if ids is not None:
                self.ids.add(ids)
            return
        _check_chunk(self.model, chunk, cols)
        blocks = self.blocks.block_ids(chunk[c.timestamp])
        # the columns on the pool (each coded once, for its profile and its blocks), the
        # rest here meanwhile
        wait = self.builder.start(
            chunk, then=lambda name, values: self.blocks.add_values(name, values, blocks)
        )
        if ids is not None:
            self.ids.add(ids)
        counts = chunk[c.version].astype(str).value_counts()
        self.keeper.update(chunk, cols.all)
        if not self.dtypes:
            self.dtypes = {str(name): _family(chunk[name].dtype) for name in cols.all}
        wait()
        if self.segments is not None:  # after the whole profile's checks of the chunk
            self.segments.add(chunk)
        for k, v in counts.items():
            self.versions[str(k)] = self.versions.get(str(k), 0) + int(v)
        self.n_rows += len(chunk)
        self.n_chunks += 1

    def finish(self, src: Source, samples_dir: Path | None = None) -> ProfileDay:
        """The day's profile, once every chunk was added: the rows read must be the rows the
        source counts in the window, the day not empty, its ids unique.

        The count stays a query of its own, after the read: it checks the read's filter (the
        rows it kept from text instants) and that no row was written to the window meanwhile,
        which a count taken by the read itself could not."""
        c = self.model.columns
        start, end = day_window(self.partition)
        # a day judged on part of its rows must not pass for the whole day
        counted = src.count_window(c.timestamp, start, end)
        check_window_count(src.describe(), c.timestamp, start, end, counted, self.n_read)
        if self.n_rows == 0:
            raise DataError(f"no predictions in {src.describe()} for this day (empty partition)")
        if self.ids.maybe_repeated():
            dups = src.duplicate_ids(c.request_id, c.timestamp, start, end)
            if dups:
                shown = ", ".join(quoted(d) for d in dups)
                raise DataError(f"duplicate request ids, e.g. {shown}", column=c.request_id)
        sample = self.keeper.sample()
        partition = self.partition
        return ProfileDay(
            partition=partition,
            profile=self.builder.result(),
            sample=sample,
            n_rows=self.n_rows,
            n_chunks=self.n_chunks,
            seconds=time.perf_counter() - self.t0,
            versions=self.versions,
            n_errors=self.n_errors,
            dtypes=self.dtypes,
            within_day=self.blocks.design_effects(),
            findings=long_string_findings(self.model, partition, Asset.FEATURE_PROFILE, self.cut),
            segments=self.segments.result() if self.segments is not None else None,
            sample_path=(
                save_sample(sample, sample_path(samples_dir, self.model.key, partition))
                if samples_dir is not None
                else None
            ),
        )

    def located(self, exc: DataError) -> DataError:
        return _located(exc, self.model, self.partition)


def profile_for_day(
    model: ModelConfig,
    day: date | str,
    reference: DatasetProfile,
    *,
    sample_rows: int = 5000,
    chunk_rows: int | None = None,
    seed: int = 0,
    samples_dir: Path | None = None,
    read_token: str | None = None,
) -> ProfileDay:
    """Profile one day of predictions in one streamed pass, on the reference's fixed bins (the
    day's sample kept under `samples_dir` for the HTML report).

    With a `read_token` (a Dagster run's id), the day is read once for every daily signal
    asked for with the same token (`signals.day_pass`); without one, it is read here."""
    if model.predictions.profile == "pushdown":  # the same day, profiled by the database
        from aiops_pipelines.signals.profile.pushdown import profile_pushdown

        return profile_pushdown(
            model, day, reference, sample_rows=sample_rows, samples_dir=samples_dir
        )
    partition = day if isinstance(day, str) else day.isoformat()
    if read_token is not None:
        from aiops_pipelines.signals.day_pass import day_profile  # it builds on this module

        return day_profile(
            model,
            partition,
            reference,
            read_token=read_token,
            sample_rows=sample_rows,
            chunk_rows=chunk_rows,
            seed=seed,
            samples_dir=samples_dir,
        )
    profiler = DayProfiler(model, partition, reference, sample_rows=sample_rows, seed=seed)
    src = Source(model.predictions, chunk_rows=chunk_rows, strings=profiler.cut)
    start, end = day_window(partition)
    try:
        for chunk in src.iter_window(model.columns.timestamp, start, end, profiler.read_columns):
            profiler.add(chunk)
        return profiler.finish(src, samples_dir=samples_dir)
    except DataError as exc:
        raise profiler.located(exc) from None


def save_sample(sample: pd.DataFrame, path: Path) -> Path:
    """Kept for the drift report, which another run of the same day may be reading now."""
    return replace_file(path, lambda tmp: sample.to_parquet(tmp, index=False))
