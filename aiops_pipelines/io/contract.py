"""The data contract checked on a bounded sample of every source (`aiops validate`).

A run finds a missing table, a wrong dtype or naive timestamps only when it reaches them; this
opens each configured source once, reads its first `sample_rows` rows and lists every problem
with the model, the source and the column, so a new config is fixed before the first run.

Some findings are notes, not problems: timestamps written at an offset other than UTC, or at
several offsets, are read correctly (each converted to its UTC instant), but the days are UTC
days, which is worth knowing before reading a partition as a local day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
from pandas.api import types as ptypes

from aiops_pipelines.core.config import ModelConfig, SourceConfig
from aiops_pipelines.core.errors import AiopsError, DataError
from aiops_pipelines.core.values import quoted
from aiops_pipelines.io.sources import Source, parse_timestamps

_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)\s*$")


@dataclass(frozen=True)
class Problem:
    """One broken promise of the data contract; a note (`blocking=False`) only informs."""

    model: str
    source: str
    column: str
    message: str
    blocking: bool = True

    def __str__(self) -> str:
        col = f" column '{self.column}':" if self.column else ""
        return f"{self.model} {self.source}:{col} {self.message}"


def _written_offsets(values: pd.Series) -> dict[str, int]:
    """How many text timestamps are written at each UTC offset ('Z' counts as '+00:00');
    empty for timestamps the source holds as instants (their offset is not kept)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or ptypes.is_datetime64_dtype(values.dtype):
        return {}
    found = values.dropna().astype(str).str.extract(_OFFSET, expand=False).dropna()
    if found.empty:
        return {}
    norm = found.str.replace("Z", "+00:00", regex=False).str.replace(
        r"^([+-]\d\d)(\d\d)$", r"\1:\2", regex=True
    )
    return {str(k): int(v) for k, v in norm.value_counts().items()}


def _timestamps(model: ModelConfig, where: str, values: pd.Series, column: str) -> list[Problem]:
    """Naive timestamps are a problem; offsets other than UTC, or mixed offsets, a note."""
    try:
        parse_timestamps(values, column=column)
    except DataError as exc:
        return [Problem(model.key, where, column, str(exc.detail))]
    offsets = _written_offsets(values)
    if len(offsets) > 1:
        listed = ", ".join(f"{k} ({n} rows)" for k, n in offsets.items())
        message = (
            f"timestamps are written at {len(offsets)} UTC offsets in the first {len(values)} "
            f"rows: {listed}. Each row is converted to its UTC instant and days are UTC days; "
            "if one writer stamps local time with the wrong offset, fix it upstream"
        )
    elif offsets and next(iter(offsets)) != "+00:00":
        offset = next(iter(offsets))
        message = (
            f"timestamps are written at UTC{offset}: each is converted to its UTC instant and "
            "days are UTC days, so a day's partition does not start at local midnight"
        )
    else:
        return []
    return [Problem(model.key, where, column, message, blocking=False)]


def _sample(src: Source, columns: list[str], rows: int) -> pd.DataFrame:
    for chunk in src.iter_all(columns):
        return chunk.head(rows)
    return pd.DataFrame(columns=columns)


def _check_source(
    model: ModelConfig,
    name: str,
    config: SourceConfig,
    required: list[str],
    optional: list[str],
    rows: int,
) -> tuple[list[Problem], pd.DataFrame | None]:
    src = Source(config, chunk_rows=max(rows, 1000))
    where = f"{name} ({src.describe()})"
    try:
        present = set(src.columns())
    except (AiopsError, OSError, ValueError) as exc:
        return [Problem(model.key, where, "", f"cannot be read: {exc}")], None
    problems = [
        Problem(model.key, where, c, "column is missing") for c in required if c not in present
    ]
    wanted = [c for c in dict.fromkeys(required + optional) if c in present]
    try:
        sample = _sample(src, wanted, rows)
    except (AiopsError, OSError, ValueError) as exc:
        return [*problems, Problem(model.key, where, "", f"cannot be read: {exc}")], None
    if sample.empty:
        problems.append(Problem(model.key, where, "", "has no rows"))
    return problems, sample


def _dtypes(model: ModelConfig, where: str, sample: pd.DataFrame) -> list[Problem]:
    out = []
    for c in model.features.numeric:
        if c in sample.columns and not (
            ptypes.is_numeric_dtype(sample[c].dtype) or sample[c].isna().all()
        ):
            out.append(
                Problem(
                    model.key,
                    where,
                    c,
                    f"numeric feature has dtype {sample[c].dtype} "
                    f"(e.g. {quoted(sample[c].iloc[0])}): convert it upstream "
                    "or list it under features.categorical",
                )
            )
    return out


def check_sources(model: ModelConfig, *, sample_rows: int = 2000) -> list[Problem]:
    """Every problem (and note) found on the first `sample_rows` rows of each of the model's
    sources."""
    cols = model.columns
    feats = list(model.features.all)
    problems: list[Problem] = []
    ref_problems, ref = _check_source(
        model, "reference", model.reference, feats, [cols.prediction], sample_rows
    )
    problems += ref_problems
    if ref is not None:
        problems += _dtypes(model, "reference", ref)
    required = [cols.request_id, cols.timestamp, cols.version, cols.prediction, *feats]
    optional = [c for c in (cols.score, cols.latency_ms, cols.status) if c]
    pred_problems, pred = _check_source(
        model, "predictions", model.predictions, required, optional, sample_rows
    )
    problems += pred_problems
    where = "predictions"
    if pred is not None and not pred.empty:
        problems += _dtypes(model, where, pred)
        if cols.timestamp in pred.columns:
            problems += _timestamps(model, where, pred[cols.timestamp], cols.timestamp)
        if cols.request_id in pred.columns:
            dups = pred[cols.request_id][pred[cols.request_id].duplicated()]
            if len(dups):
                problems.append(
                    Problem(
                        model.key,
                        where,
                        cols.request_id,
                        f"{len(dups)} duplicate request ids in the first {len(pred)} rows "
                        f"(e.g. {quoted(dups.iloc[0])})",
                    )
                )
        if cols.score and cols.score in pred.columns:
            s = pd.to_numeric(pred[cols.score], errors="coerce")
            bad = s.isna() | (s < 0) | (s > 1)
            if bad.any():
                problems.append(
                    Problem(
                        model.key,
                        where,
                        cols.score,
                        f"{int(bad.sum())} scores are missing or outside [0, 1] "
                        f"(e.g. {quoted(pred[cols.score][bad].iloc[0])})",
                    )
                )
    if model.outcomes is not None:
        out_problems, out = _check_source(
            model,
            "outcomes",
            model.outcomes,
            [cols.request_id, cols.label, cols.label_timestamp],
            [],
            sample_rows,
        )
        problems += out_problems
        if out is not None and not out.empty and cols.label_timestamp in out.columns:
            problems += _timestamps(
                model, "outcomes", out[cols.label_timestamp], cols.label_timestamp
            )
    if model.validation is not None:
        val_problems, _ = _check_source(
            model, "validation", model.validation, [*feats, cols.label], [], sample_rows
        )
        problems += val_problems
    return problems
