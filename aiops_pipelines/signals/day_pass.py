"""One read of a model-day for every daily signal: the feature profile, the operational numbers,
the SLOs' hourly counts and the predictions the performance join needs.

`feature_profile`, `ops_report` and `performance_report` each used to read the day's
predictions again. Called with the same `read_token` (the assets pass their Dagster run's
id), the first of them reads the day once (`Source.iter_window` over the union of their
columns) and computes every part it can: its own, and those of the others not yet computed
for that token, which are kept here until asked for. A part is handed out once and then
forgotten: asking again (a retried step) reads again, as does another token or none, so a
re-run never sees stale rows. The profile is computed only when it is asked for (it needs
the stored reference and the asset's settings), so a run whose `ops_report` or
`performance_report` comes first reads the day a second time for the profile; Dagster's
in-process executor runs `feature_profile` first among the three.

Each part sees exactly the chunks, columns and cut strings its own read gave it: the profile
`DayProfiler`, the operations `OpsStream`, the SLOs `SloStream`, the predictions what
`read_day_predictions` returns. A `DataError` of one part (a feature's inf, the profile's
count check) is that part's alone; a failed read (a missing column, naive timestamps) makes
every part read on its own, which raises its own error, or succeeds when its columns are fine.

Memory: the parts of at most `MAX_KEPT` model-days are kept; a day's are its `OpsDay` (a few
kB) and the performance columns (request id, timestamp, version, prediction, score,
segments), which `read_day_predictions` held whole too: 41 MB at 1M rows for an id, a
timestamp, a version and a prediction (`benchmarks/bench_read.py`, `kept_bytes`). They are
kept only for a model with an outcomes source (performance needs one). With an executor that
runs each step in a process of its own, each step reads the day itself, and the parts it
computes for the others are dropped with its process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io.labels import group_columns, prediction_columns, read_day_predictions
from aiops_pipelines.io.sources import Source, StringCap, day_window, served
from aiops_pipelines.signals.operations.day import OpsDay, OpsStream, stream_operations
from aiops_pipelines.signals.profile.day import DayProfiler, ProfileDay, profile_for_day
from aiops_pipelines.signals.profile.profiles import DatasetProfile
from aiops_pipelines.signals.slo import SloCounts, SloStream, stream_slo_counts, streamed

PROFILE, OPERATIONS, PREDICTIONS, SLO = "profile", "operations", "predictions", "slo"
MAX_KEPT = 2
"""Model-days whose unclaimed parts are kept (a run's days, one after the other)."""


@dataclass
class _Day:
    """What one token's read of a model-day computed: parts not yet handed out, or their
    errors, and which parts were ever computed."""

    done: set[str] = field(default_factory=set)
    parts: dict[str, object] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    """Parts whose shared read failed: they read on their own."""


_KEPT: OrderedDict[tuple[str, str, str], _Day] = OrderedDict()
_LOCK = threading.Lock()


def kept_bytes() -> int:
    """Memory held by the parts kept for later steps (the predictions' columns, deep)."""
    with _LOCK:
        days = list(_KEPT.values())
    return sum(
        int(p.memory_usage(deep=True).sum())
        for d in days
        for p in d.parts.values()
        if isinstance(p, pd.DataFrame)
    )


def forget() -> None:
    """Drop every kept part (tests; a process that wants its memory back)."""
    with _LOCK:
        _KEPT.clear()


@dataclass
class _ProfileAsk:
    reference: DatasetProfile
    sample_rows: int
    chunk_rows: int | None
    seed: int
    samples_dir: Path | None


_FAILED = object()


def _claim(key: tuple[str, str, str], part: str) -> tuple[bool, object]:
    """The part kept for `key` ((True, its value or its error)), forgotten once claimed;
    (False, None) when none is kept, (False, _FAILED) when the shared read failed for it."""
    with _LOCK:
        day = _KEPT.get(key)
        if day is None:
            return False, None
        if part in day.failed:
            day.failed.discard(part)
            return False, _FAILED
        if part in day.errors:
            value: object = day.errors.pop(part)
        elif part in day.parts:
            value = day.parts.pop(part)
        else:
            return False, None
        return True, value


def _take(
    model: ModelConfig, partition: str, token: str, part: str, ask: _ProfileAsk | None = None
) -> object:
    """The part from the day's read for `token` (reading the day when no read kept it), or
    None when the shared read failed and the part must read on its own."""
    key = (token, model.key, partition)
    found, value = _claim(key, part)
    if not found and value is None:
        with _LOCK:
            done = set(_KEPT[key].done) if key in _KEPT else set()
        wanted = {part} | ({OPERATIONS, PREDICTIONS, SLO} - done)
        if model.outcomes is None and part != PREDICTIONS:  # performance needs outcomes
            wanted.discard(PREDICTIONS)
        if not streamed(model) and part != SLO:  # slo_report counts nothing then
            wanted.discard(SLO)
        _read(model, partition, key, wanted, ask)
        found, value = _claim(key, part)
    if not found:
        return None
    if isinstance(value, Exception):
        raise value
    return value


def _read(
    model: ModelConfig,
    partition: str,
    key: tuple[str, str, str],
    parts: set[str],
    ask: _ProfileAsk | None,
) -> None:
    """One read of the day for `parts`, their results (or errors) kept under `key`."""
    c = model.columns
    profiler = ops = None
    if PROFILE in parts:
        assert ask is not None
        profiler = DayProfiler(
            model, partition, ask.reference, sample_rows=ask.sample_rows, seed=ask.seed
        )
    if OPERATIONS in parts:
        ops = OpsStream(model, partition)
    slo = SloStream(model, partition) if SLO in parts else None
    keep = PREDICTIONS in parts
    pred_cols = prediction_columns(model)
    # segment and fairness group values become metric columns: cut as `read_day_predictions`
    # cuts them
    segments = StringCap(model.max_string_length, (*group_columns(model),))
    src = Source(model.predictions, chunk_rows=ask.chunk_rows if ask else None)
    columns = [
        *(profiler.read_columns if profiler else []),
        *(ops.read_columns if ops else []),
        *(slo.read_columns if slo else []),
    ]
    if keep:
        columns += pred_cols
        if c.status and c.status not in columns and c.status in src.columns():
            columns.append(c.status)
    errors: dict[str, Exception] = {}
    kept: list[pd.DataFrame] = []
    n_read = 0
    start, end = day_window(partition)
    try:
        for chunk in src.iter_window(c.timestamp, start, end, list(dict.fromkeys(columns))):
            n_read += len(chunk)
            if profiler is not None and PROFILE not in errors:
                try:
                    profiler.add(profiler.cut.apply(chunk))
                except DataError as exc:
                    errors[PROFILE] = profiler.located(exc)
                except Exception as exc:  # raised to the profile's caller, as its read would
                    errors[PROFILE] = exc
            if ops is not None:
                ops.add(ops.cut.apply(chunk))
            if slo is not None:
                slo.add(slo.cut.apply(chunk))
            if keep:
                day_rows = served(segments.apply(chunk), c.prediction, c.status)
                kept.append(_own_memory(day_rows[pred_cols]))
    except Exception:
        with _LOCK:
            day = _KEPT.setdefault(key, _Day())
            day.failed |= parts
            day.done |= parts
        return
    results: dict[str, object] = {}
    if profiler is not None and PROFILE not in errors:
        try:
            results[PROFILE] = profiler.finish(src, samples_dir=ask.samples_dir if ask else None)
        except DataError as exc:
            errors[PROFILE] = profiler.located(exc)
    if ops is not None:
        results[OPERATIONS] = ops.result()
    if slo is not None:
        results[SLO] = slo.result()
    if keep:
        if n_read == 0:
            errors[PREDICTIONS] = DataError(
                "no predictions for this day (empty partition)",
                model=model.key,
                partition=partition,
            )
        else:
            results[PREDICTIONS] = pd.concat(kept, ignore_index=True)
        del kept
    with _LOCK:
        day = _KEPT.setdefault(key, _Day())
        _KEPT.move_to_end(key)
        day.done |= parts
        day.parts.update(results)
        day.errors.update(errors)
        while len(_KEPT) > MAX_KEPT:
            _KEPT.popitem(last=False)


def _own_memory(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` that holds no memory of the chunk it was selected from: a column read
    through ADBC shares the memory of its whole batch (every column read, ~13 MB a 50k-row
    chunk here), which the column kept for later would keep alive (a 1M-row day kept 290 MB
    more than its 41 MB of performance columns)."""
    out = frame.copy()
    for i, dtype in enumerate(frame.dtypes):
        if hasattr(dtype, "__from_arrow__"):  # Arrow-backed: its buffers copied
            chunked = pa.chunked_array(pa.array(frame.iloc[:, i]))
            owned = pa.concat_arrays(chunked.chunks) if chunked.num_chunks else chunked
            out.isetitem(i, pd.Series(dtype.__from_arrow__(owned), index=frame.index))
    return out


def day_profile(
    model: ModelConfig,
    partition: str,
    reference: DatasetProfile,
    *,
    read_token: str,
    sample_rows: int = 5000,
    chunk_rows: int | None = None,
    seed: int = 0,
    samples_dir: Path | None = None,
) -> ProfileDay:
    """`profile_for_day` from the day's one read for `read_token`."""
    ask = _ProfileAsk(reference, sample_rows, chunk_rows, seed, samples_dir)
    out = _take(model, partition, read_token, PROFILE, ask)
    if out is None:
        return profile_for_day(
            model,
            partition,
            reference,
            sample_rows=sample_rows,
            chunk_rows=chunk_rows,
            seed=seed,
            samples_dir=samples_dir,
        )
    assert isinstance(out, ProfileDay)
    return out


def day_operations(model: ModelConfig, partition: str, *, read_token: str) -> OpsDay:
    """`stream_operations` from the day's one read for `read_token`."""
    out = _take(model, partition, read_token, OPERATIONS)
    if out is None:
        return stream_operations(model, partition)
    assert isinstance(out, OpsDay)
    return out


def day_predictions(model: ModelConfig, partition: str, *, read_token: str) -> pd.DataFrame:
    """`read_day_predictions` from the day's one read for `read_token`."""
    out = _take(model, partition, read_token, PREDICTIONS)
    if out is None:
        return read_day_predictions(model, partition)
    assert isinstance(out, pd.DataFrame)
    return out


def day_slo_counts(model: ModelConfig, partition: str, *, read_token: str) -> SloCounts:
    """`stream_slo_counts` from the day's one read for `read_token`."""
    out = _take(model, partition, read_token, SLO)
    if out is None:
        return stream_slo_counts(model, partition)
    assert isinstance(out, SloCounts)
    return out
