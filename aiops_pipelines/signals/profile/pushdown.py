"""A day's profile from the database's own counts (`profile: pushdown`), equal to the streamed one.

`profile_pushdown` asks the source for the day's numbers in one statement (`io.pushdown`) and
assembles the very `ProfileDay` that `profile_for_day` streams: counts per bin (under- and
overflow included), atoms, per-bin sums, moments, min/max, tails, missing values, category
counts with unseen values, rows per version, failed requests, the within-day block tables and
the same contract errors. Counts are exactly equal; sums and moments are the same numbers summed
in another order (equal to ~1e-12 relative): the mean and M2 come from the sums of (x - c) and
(x - c)^2 around the reference's mean c, which stay accurate while the day's mean is within a
few standard deviations of the reference's.

Derived differently, and why:

* the rows are counted by the same statement that profiles them (one snapshot), so the stream's
  window COUNT check has nothing to compare: it is not run;
* the sample for the HTML report is a second, bounded query (`ORDER BY random() LIMIT n`),
  run only when a `samples_dir` asks for it: a uniform sample, not the stream's seeded one;
* dtypes: PostgreSQL's declared column types; on SQLite, which has none, the types of the
  values (text, real, integer) over the whole day instead of the first chunk's;
* `n_chunks` is 1: one statement.
"""

from __future__ import annotations

import math
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, TaskType
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import Asset
from aiops_pipelines.core.values import category_label, quoted
from aiops_pipelines.io.pushdown import (
    DayNumbers,
    DayQuery,
    KeyedColumn,
    NumericColumn,
    run_day_query,
    sample_query,
)
from aiops_pipelines.io.sources import Source, StringCap, day_window, engine_for
from aiops_pipelines.signals.drift.calibration import DayBlocks
from aiops_pipelines.signals.profile.day import (
    ProfileDay,
    ProfiledColumns,
    long_string_findings,
    profiled_columns,
    require_reference_columns,
    sample_path,
    save_sample,
)
from aiops_pipelines.signals.profile.profiles import (
    MAX_UNSEEN_NAMES,
    OTHER,
    ColumnProfile,
    DatasetProfile,
    top_unseen,
)


def _columns(model: ModelConfig, reference: DatasetProfile) -> ProfiledColumns:
    full = profiled_columns(model)
    in_ref = set(reference.columns)
    return ProfiledColumns(
        [x for x in full.numeric if x in in_ref],
        [x for x in full.categorical if x in in_ref],
        full.features,
        [x for x in full.predictions if x in in_ref],
    )


def day_query(
    model: ModelConfig, reference: DatasetProfile, cols: ProfiledColumns, cut: StringCap
) -> DayQuery:
    """What the database computes for a day of `model`, on the reference's bins."""
    c = model.columns
    blocks = DayBlocks(reference, cols.all).tables.coders
    numeric = [
        NumericColumn(
            name,
            reference.spec.numeric[name],
            np.asarray(blocks[name].cuts, dtype=np.float64),
            _center(reference.columns[name]),
        )
        for name in cols.numeric
    ]
    keyed = [KeyedColumn(name, tuple(blocks[name].index)) for name in cols.categorical]
    for name in cut.columns:  # cut as they are read, counted even when not profiled
        if name not in cols.categorical:
            keyed.append(KeyedColumn(name, None))
    return DayQuery(
        request_id=c.request_id,
        timestamp=c.timestamp,
        version=c.version,
        prediction=c.prediction,
        status=c.status,
        score=c.score,
        latency=c.latency_ms,
        regression=model.task is TaskType.REGRESSION,
        numeric=numeric,
        keyed=keyed,
        capped=cut.columns,
        max_length=cut.max_length,
        profiled=cols.all,
    )


def _center(ref: ColumnProfile) -> float:
    return float(ref.mean) if ref.count and math.isfinite(ref.mean) else 0.0


def profile_pushdown(
    model: ModelConfig,
    day: date | str,
    reference: DatasetProfile,
    *,
    sample_rows: int = 5000,
    samples_dir: Path | None = None,
) -> ProfileDay:
    """Profile one day of predictions inside the source database (`profile: pushdown`)."""
    partition = day if isinstance(day, str) else day.isoformat()
    t0 = time.perf_counter()
    require_reference_columns(model, reference)
    cols = _columns(model, reference)
    cut = StringCap.for_model(model)
    query = day_query(model, reference, cols, cut)
    src = Source(model.predictions)
    start, end = day_window(partition)
    try:
        numbers = run_day_query(src, query, start, end)
        _check(model, src, numbers, query)
        profile, dtypes = _profile(reference, cols, query, numbers)
        blocks = DayBlocks(reference, cols.all)
        for name, rows in numbers.blocks.items():
            table = blocks.tables.tables[name]
            for block, code, n in rows:
                table[block, code] += n
        versions: dict[str, int] = {}
        for value, served, n in numbers.keys[model.columns.version]:
            if served:
                versions[str(value)] = versions.get(str(value), 0) + n
        sample = (
            _sample(src, query, start, end, sample_rows)
            if samples_dir is not None
            else pd.DataFrame(columns=cols.all)
        )
    except DataError as exc:
        raise exc.located(model=model.key, partition=partition) from None
    for name in cut.columns:
        if name in numbers.cut:
            cut.counts[name], cut.longest[name] = numbers.cut[name]
    return ProfileDay(
        partition=partition,
        profile=profile,
        sample=sample,
        n_rows=numbers.totals["n_rows"],
        n_chunks=1,
        seconds=time.perf_counter() - t0,
        versions=versions,
        n_errors=numbers.totals["n_errors"],
        dtypes=dtypes,
        within_day=blocks.design_effects(),
        findings=long_string_findings(model, partition, Asset.FEATURE_PROFILE, cut),
        sample_path=(
            save_sample(sample, sample_path(samples_dir, model.key, partition))
            if samples_dir is not None
            else None
        ),
    )


def _check(model: ModelConfig, src: Source, numbers: DayNumbers, query: DayQuery) -> None:
    """The streamed path's contract errors, in its order, from the database's counts."""
    c = model.columns
    t = numbers.totals
    if t["unsure"]:
        raise DataError(
            f"{t['unsure']:,} timestamp(s) written around this day in a form SQLite does not "
            "parse (e.g. an offset without a colon), so the database cannot tell their day: "
            "fix the source, or profile it with 'profile: stream', which parses them",
            column=c.timestamp,
        )
    if t["naive"]:
        raise DataError(
            f"{t['naive']:,} timestamps are timezone-naive; store UTC with an explicit offset "
            "such as '+00:00'",
            column=c.timestamp,
        )
    if t["n_rows"] == 0:
        raise DataError(f"no predictions in {src.describe()} for this day (empty partition)")
    if t["null_ids"]:
        raise DataError(f"{t['null_ids']} rows have no request id", column=c.request_id)
    if t["null_predictions"]:
        raise DataError(
            f"{t['null_predictions']} predictions are missing (NaN/None)", column=c.prediction
        )
    if t["bad_predictions"]:
        raise DataError(
            f"{t['bad_predictions']} regression predictions are inf or not numbers",
            column=c.prediction,
        )
    if t["bad_scores"]:
        raise DataError(f"{t['bad_scores']} scores are NaN/inf or outside [0, 1]", column=c.score)
    if t["bad_latency"]:
        raise DataError(
            f"latency must be numeric, got {t['bad_latency']} text value(s)", column=c.latency_ms
        )
    for col in query.numeric:
        acc = numbers.numeric[col.name]
        if acc.n_text:
            raise DataError(
                f"numeric feature has {acc.n_text} text value(s), expected int, float or bool "
                "(convert it upstream or declare the column categorical)",
                column=col.name,
            )
        if acc.n_inf or acc.min == -math.inf or acc.max == math.inf:
            raise DataError(
                f"{max(acc.n_inf, 1)} infinite value(s) (+inf/-inf) in a numeric feature; inf "
                "is never valid model input (write NaN/None for a missing value)",
                column=col.name,
            )
    if numbers.duplicates:
        shown = ", ".join(quoted(d) for d in numbers.duplicates)
        raise DataError(f"duplicate request ids, e.g. {shown}", column=c.request_id)


def _profile(
    reference: DatasetProfile, cols: ProfiledColumns, query: DayQuery, numbers: DayNumbers
) -> tuple[DatasetProfile, dict[str, str]]:
    spec = reference.spec.subset(cols.numeric, cols.categorical)
    n_rows = numbers.totals["n_rows"]
    out: dict[str, ColumnProfile] = {}
    dtypes: dict[str, str] = {}
    for col in query.numeric:
        acc = numbers.numeric[col.name]
        n = acc.count
        mean = col.center + acc.s1 / n if n else 0.0
        m2 = max(acc.s2 - acc.s1 * acc.s1 / n, 0.0) if n else 0.0
        out[col.name] = ColumnProfile(
            name=col.name,
            kind="numeric",
            n_rows=n_rows,
            n_missing=n_rows - n,
            count=n,
            mean=mean,
            m2=m2,
            min=acc.min if n else math.nan,
            max=acc.max if n else math.nan,
            counts=acc.counts,
            atoms=acc.atoms,
            sums=acc.sums,
            tail_low=acc.tail_low,
            tail_high=acc.tail_high,
            edges=col.edges,
        )
        declared = numbers.families.get(col.name)
        dtypes[col.name] = _family(declared, acc.n_rows > n, bool(acc.n_real))
    for name in cols.categorical:
        out[name], family, with_null = _categorical(name, spec.categorical[name], numbers)
        declared = numbers.families.get(name)
        dtypes[name] = _family(declared, with_null, family == "float") if declared else family
    columns = {c: out[c] for c in cols.all}
    return DatasetProfile(n_rows=n_rows, columns=columns, spec=spec), dtypes


def _family(declared: str | None, with_null: bool, with_float: bool) -> str:
    """A numeric column's dtype family as pandas reads it: integers with a NULL among them
    arrive as floats (`dtype_families` of the streamed chunks)."""
    if declared not in (None, "integer"):
        return declared
    return "float" if with_null or with_float else "integer"


def _categorical(
    name: str, vocab: list[str], numbers: DayNumbers
) -> tuple[ColumnProfile, str, bool]:
    """Counts over the vocabulary as `_CategoricalAcc` keeps them, the values' family and
    whether a NULL was among them."""
    index = {v: i for i, v in enumerate(vocab)}
    counts = dict.fromkeys(vocab, 0)
    unseen: dict[str, int] = {}
    n_rows = n_missing = 0
    kinds: set[type] = set()
    for value, served, n in numbers.keys[name]:
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        kinds.add(type(None) if missing else type(value))
        if not served:
            continue
        n_rows += n
        if missing:
            n_missing += n
            continue
        label = category_label(value)
        if label in index:
            counts[label] += n
        elif OTHER in index:
            counts[OTHER] += n
        else:
            unseen[label] = unseen.get(label, 0) + n
    named, dropped = top_unseen(unseen, MAX_UNSEEN_NAMES)
    # as pandas types the values read: integers with a NULL among them become floats
    numbers_only = kinds - {type(None)}
    family = "string"
    if numbers_only and kinds <= {int}:
        family = "integer"
    elif numbers_only and kinds <= {int, float, type(None)}:
        family = "float"
    return (
        ColumnProfile(
            name=name,
            kind="categorical",
            n_rows=n_rows,
            n_missing=n_missing,
            count=sum(counts.values()) + sum(unseen.values()),
            counts=counts,
            unseen=named,
            unseen_other=dropped,
        ),
        family,
        type(None) in kinds,
    )


def _sample(
    src: Source, query: DayQuery, start: datetime, end: datetime, rows: int
) -> pd.DataFrame:
    """The bounded sample for the HTML report, its text cut in the database as the counts'."""
    sql, params = sample_query(src, query, start, end, rows)
    eng = engine_for(src.config.url or "")
    with eng.connect() as conn:
        try:
            frame = pd.read_sql_query(sa.text(sql), conn, params=params)
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise DataError(f"sampling {src.describe()} failed: {exc}") from None
    return frame
