"""A day's predictions joined with the outcomes observed so far, by request id.

Outcomes arrive days late and only for part of the traffic: the join keeps every prediction,
counts what it could not use, and validates the labels before any metric sees them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import (
    ModelConfig,
)
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import jsonable
from aiops_pipelines.core.values import category_label, quoted
from aiops_pipelines.io.sources import parse_timestamps
from aiops_pipelines.signals.performance.metrics import MAX_EXAMPLES, class_labels, require_columns


@dataclass
class LabelledDay:
    """A day's predictions with the outcomes known so far, and the join's bookkeeping.

    The label column is named `model.columns.label` (as in the reference set), holding class
    labels as strings (1 and "1" are one class) or regression targets as floats, NaN where no
    outcome has arrived; `model.columns.label_timestamp` says when each label was observed.
    """

    frame: pd.DataFrame
    labelled: pd.DataFrame
    n_predictions: int
    n_labelled: int
    coverage: float
    n_duplicate_outcomes: int
    n_unmatched_outcomes: int
    n_null_outcomes: int = 0

    def summary(self) -> dict[str, Any]:
        """The counts, JSON-safe, for the report and the store."""
        return jsonable({k: v for k, v in asdict(self).items() if k not in ("frame", "labelled")})


def _id_keys(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Request ids in one comparable type: as they are when both sides agree, else strings."""
    api = pd.api.types
    if (api.is_string_dtype(a.dtype) and api.is_string_dtype(b.dtype)) or (
        api.is_integer_dtype(a.dtype) and api.is_integer_dtype(b.dtype)
    ):
        return a, b
    return (
        pd.Series(class_labels(a), index=a.index, dtype=object),
        pd.Series(class_labels(b), index=b.index, dtype=object),
    )


def validate_labels(
    values: pd.Series, model: ModelConfig, partition: str | None, *, what: str = "outcomes"
) -> pd.Series:
    """Labels in the contract's type: class names as strings, regression targets as floats.

    Classification labels must be among `model.classes` (when configured); regression labels
    must be finite numbers (numeric strings are accepted, SQL text columns hold them). Raises
    `DataError` naming the model, partition, label column and up to 5 offending values.
    """
    col = model.columns.label
    if model.task.is_classification:
        labels = pd.Series(class_labels(values), index=values.index, dtype=object)
        if model.classes:
            allowed = [category_label(c) for c in model.classes]
            bad = labels.notna() & ~labels.isin(allowed)
            if bad.any():
                shown = [quoted(v) for v in sorted(set(labels[bad]))[:MAX_EXAMPLES]]
                raise DataError(
                    f"{int(bad.sum())} {what} labels are not among the model's classes "
                    f"{allowed}: {', '.join(shown)}",
                    model=model.key,
                    partition=partition,
                    column=col,
                )
        return labels
    nums = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = values.notna() & ~np.isfinite(nums.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        shown = [quoted(v) for v in pd.unique(values[bad])[:MAX_EXAMPLES]]
        raise DataError(
            f"{int(bad.sum())} {what} labels are not finite numbers: {', '.join(shown)}",
            model=model.key,
            partition=partition,
            column=col,
        )
    return nums


def join_outcomes(
    predictions: pd.DataFrame, outcomes: pd.DataFrame, model: ModelConfig, partition: str
) -> LabelledDay:
    """Attach the latest observed outcome to each prediction of the day, by request id.

    The caller reads outcomes by observation window, so outcomes of other days' requests are
    expected: they are counted (`n_unmatched_outcomes`) and dropped. A request relabelled
    later (a corrected outcome) keeps its latest label; the older ones are counted
    (`n_duplicate_outcomes`). Outcomes with an empty label are not labels (`n_null_outcomes`).
    Labels are validated (`validate_labels`) before any metric sees them, so a wrong class
    set fails loudly here instead of silently scoring 0.
    """
    c = model.columns
    rid, lab, obs = c.request_id, c.label, c.label_timestamp
    require_columns(predictions, [rid, c.prediction], model, partition, "predictions")
    require_columns(outcomes, [rid, lab, obs], model, partition, "outcomes")
    pred_keys, out_keys = _id_keys(predictions[rid], outcomes[rid])
    # one hash pass over both id columns (a dictionary encode for Arrow strings), then integers
    codes, uniques = pd.factorize(
        pd.concat([pred_keys, out_keys], ignore_index=True), use_na_sentinel=True
    )
    pred_codes, out_codes = codes[: len(pred_keys)], codes[len(pred_keys) :]
    predicted = np.zeros(len(uniques) + 1, dtype=bool)  # slot -1: missing id
    predicted[pred_codes] = True
    predicted[-1] = False
    matched = predicted[out_codes]
    n_unmatched = int((~matched).sum())
    out = outcomes.loc[matched, [lab, obs]].assign(_code=out_codes[matched])
    null = out[lab].isna()
    n_null = int(null.sum())
    out = out[~null]
    try:
        out[obs] = parse_timestamps(out[obs], column=obs)
    except DataError as exc:
        raise exc.located(model=model.key, partition=partition) from None
    out = out.sort_values(obs, kind="stable")
    latest = out.drop_duplicates("_code", keep="last")
    n_dup = len(out) - len(latest)
    labels = validate_labels(latest[lab], model, partition)
    row_of = np.full(len(uniques) + 1, -1, dtype=np.int64)  # latest outcome row of each id
    row_of[latest["_code"].to_numpy()] = np.arange(len(latest))
    take = row_of[pred_codes]
    frame = predictions.drop(columns=[x for x in (lab, obs) if x in predictions.columns])
    frame = frame.copy()
    if model.task.is_classification:  # index -1 (no outcome) takes the appended NaN
        values = np.append(labels.to_numpy(dtype=object), np.nan)[take]
        frame[lab] = pd.Series(values, index=frame.index, dtype="str")
    else:
        frame[lab] = np.append(labels.to_numpy(dtype=np.float64), np.nan)[take]
    frame[obs] = pd.Series(latest[obs].array.take(take, allow_fill=True), index=frame.index)
    has = frame[lab].notna().to_numpy()
    n_pred, n_lab = len(frame), int(has.sum())
    return LabelledDay(
        frame=frame,
        labelled=frame[has].reset_index(drop=True),
        n_predictions=n_pred,
        n_labelled=n_lab,
        coverage=n_lab / n_pred if n_pred else math.nan,
        n_duplicate_outcomes=int(n_dup),
        n_unmatched_outcomes=n_unmatched,
        n_null_outcomes=n_null,
    )
