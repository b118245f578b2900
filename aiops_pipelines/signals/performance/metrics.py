"""Realized metrics on labelled rows, overall and per segment.

Definitions (the numbers in the store mean exactly this)
--------------------------------------------------------
* **Metrics** equal scikit-learn's on the same rows (tests): accuracy, precision, recall and F1
  of the positive class (``classes[1]``, else the label 1), ROC AUC and log loss of the score
  P(positive), macro F1 over the labels present in truth or prediction, MAE, RMSE, R^2.
  Undefined values follow scikit-learn's defaults (precision with no predicted positive is 0,
  R^2 of a constant target is 1 for a perfect fit and 0 otherwise), except ROC AUC, which is
  NaN (not an exception) when the rows hold one class only. Log loss stays defined then.
* **MAPE** skips rows whose target is 0 (scikit-learn divides by ``max(|y|, eps)`` there, so
  one zero target turns the metric into ~1e15): mean of |y - y_hat| / |y| over y != 0, as a
  fraction (0.1 = 10%), NaN when every target is 0.
* **Calibration error** is the expected calibration error of the score P(positive) on 10
  equal-width bins [0, 0.1), ..., [0.9, 1.0]: sum over bins of (n_b / n) * |share of
  positives in b - mean score in b|. It is the binary reliability diagram's ECE (not the
  top-label ECE), so a score that is right on average but wrong in the tails still shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from aiops_pipelines.core.config import (
    TASK_METRICS,
    Metric,
    ModelConfig,
    TaskType,
)
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.values import category_label

ECE_BINS = 10
"""Equal-width bins of the expected calibration error."""
MISSING = "__missing__"
"""Segment value of rows whose segment column is empty."""
MAX_EXAMPLES = 5


def class_labels(values: Any) -> np.ndarray:
    """Class labels as strings (object array, None where missing).

    Labels come from SQL, Parquet and model outputs in different types; 1, 1.0 and "1" must be
    one class, as in the profiles (`category_label`). Each distinct value is converted once.
    """
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    if len(s) == 0:
        return np.empty(0, dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    names = np.empty(len(uniques) + 1, dtype=object)
    names[:-1] = [category_label(u) for u in uniques.tolist()]
    names[-1] = None
    return names[codes]


def as_floats(values: Any) -> np.ndarray:
    if values is None:
        return np.empty(0)
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    return pd.to_numeric(s, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)


def positive_class(classes: Sequence[Any] | None, names: Sequence[str]) -> str:
    """The positive class: classes[1], else "1" (or "True" for boolean labels)."""
    if classes is not None:
        if len(classes) != 2:
            raise ValueError(f"binary classification needs 2 classes, got {list(classes)}")
        return category_label(classes[1])
    if "1" not in names and "True" in names:
        return "True"
    other = sorted(set(names) - {"0", "1", "True", "False"})
    if other:
        raise ValueError(
            f"binary labels {other[:MAX_EXAMPLES]} are not 0/1: configure `classes` "
            "(negative, positive) to name the positive class"
        )
    return "1"


@dataclass(frozen=True)
class EncodedRows:
    """Labelled rows encoded once: class codes (or floats), the score, the positive code."""

    task: TaskType
    y: np.ndarray
    yhat: np.ndarray
    score: np.ndarray | None
    n_classes: int = 0
    pos: int = -1
    names: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.y.size)

    def take(self, idx: np.ndarray) -> EncodedRows:
        return EncodedRows(
            self.task,
            self.y[idx],
            self.yhat[idx],
            None if self.score is None else self.score[idx],
            self.n_classes,
            self.pos,
            self.names,
        )

    def metrics(self) -> dict[Metric, float]:
        if self.task is TaskType.REGRESSION:
            return _regression(self.y, self.yhat)
        if self.task is TaskType.BINARY:
            return _binary(self.y, self.yhat, self.pos, self.score)
        return _multiclass(self.y, self.yhat, self.n_classes)


def _encode(
    task: TaskType,
    y_true: Any,
    y_pred: Any,
    score: Any = None,
    classes: Sequence[Any] | None = None,
) -> EncodedRows:
    """Drop rows without a label or a prediction and encode the rest for fast metrics."""
    if task is TaskType.REGRESSION:
        y, yhat = as_floats(y_true), as_floats(y_pred)
        if y.shape != yhat.shape:
            raise ValueError(f"y_true has {y.size} rows, y_pred {yhat.size}")
        keep = np.isfinite(y) & np.isfinite(yhat)
        return EncodedRows(task, y[keep], yhat[keep], None)
    yl, pl = class_labels(y_true), class_labels(y_pred)
    if yl.shape != pl.shape:
        raise ValueError(f"y_true has {yl.size} rows, y_pred {pl.size}")
    s = None if score is None else as_floats(score)
    if s is not None and s.shape != yl.shape:
        raise ValueError(f"score has {s.size} rows, y_true {yl.size}")
    keep = pd.notna(yl) & pd.notna(pl)
    yl, pl = yl[keep], pl[keep]
    n = yl.size
    codes, uniques = pd.factorize(np.concatenate([yl, pl]))
    names = tuple(str(u) for u in uniques)
    pos = -1
    if task is TaskType.BINARY:
        pos_name = positive_class(classes, names)
        pos = names.index(pos_name) if pos_name in names else -1
    return EncodedRows(
        task,
        codes[:n].astype(np.int64),
        codes[n:].astype(np.int64),
        None if s is None else s[keep],
        len(names),
        pos,
        names,
    )


def realized_metrics(
    task: TaskType,
    y_true: Any,
    y_pred: Any,
    score: Any = None,
    classes: list[str] | None = None,
) -> dict[Metric, float]:
    """The task's metrics (`TASK_METRICS`) on labelled rows; NaN where a metric is undefined.

    Equal to scikit-learn's functions on the same rows (see the module docstring for MAPE,
    calibration error and undefined cases), but vectorised on class codes so the bootstrap and
    per-segment metrics stay cheap. Class labels compare as strings (1 and "1" are one class);
    binary metrics are those of the positive class ``classes[1]`` (else the label 1) and
    `score` is P(positive). Rows without a label or a prediction are ignored; rows without a
    score only for the score-based metrics. Never raises on one-class or empty input.
    """
    return _encode(TaskType(task), y_true, y_pred, score, classes).metrics()


def nan_metrics(task: TaskType) -> dict[Metric, float]:
    return {m: math.nan for m in TASK_METRICS[task]}


def safe_ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties (= roc_auc_score); NaN with one class."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration_error(positive: np.ndarray, score: np.ndarray) -> float:
    """Expected calibration error on 10 equal-width bins of P(positive) (module docstring)."""
    if score.size == 0:
        return math.nan
    s = np.clip(score, 0.0, 1.0)
    b = np.minimum((s * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    gap = np.bincount(b, weights=positive.astype(np.float64) - s, minlength=ECE_BINS)
    return float(np.abs(gap).sum() / s.size)


def _binary(
    y: np.ndarray, yhat: np.ndarray, pos: int, score: np.ndarray | None
) -> dict[Metric, float]:
    out = nan_metrics(TaskType.BINARY)
    if y.size == 0:
        return out
    t, p = y == pos, yhat == pos
    tp = float(np.count_nonzero(t & p))
    fp = float(np.count_nonzero(~t & p))
    fn = float(np.count_nonzero(t & ~p))
    out[Metric.ACCURACY] = float(np.mean(y == yhat))
    out[Metric.PRECISION] = safe_ratio(tp, tp + fp)
    out[Metric.RECALL] = safe_ratio(tp, tp + fn)
    out[Metric.F1] = safe_ratio(2 * tp, 2 * tp + fp + fn)
    if score is not None:
        ok = np.isfinite(score)
        ts, s = t[ok], score[ok]
        if s.size:
            eps = np.finfo(np.float64).eps
            prob = np.where(ts, np.clip(s, eps, 1 - eps), np.clip(1 - s, eps, 1 - eps))
            out[Metric.ROC_AUC] = roc_auc(ts, s)
            out[Metric.LOG_LOSS] = float(-np.mean(np.log(prob)))
            out[Metric.CALIBRATION_ERROR] = calibration_error(ts, s)
    return out


def _multiclass(y: np.ndarray, yhat: np.ndarray, k: int) -> dict[Metric, float]:
    out = nan_metrics(TaskType.MULTICLASS)
    if y.size == 0:
        return out
    same = y == yhat
    tp = np.bincount(y[same], minlength=k).astype(np.float64)
    n_true = np.bincount(y, minlength=k)
    n_pred = np.bincount(yhat, minlength=k)
    present = (n_true + n_pred) > 0
    denom = (n_true + n_pred)[present]  # = 2 tp + fp + fn
    out[Metric.ACCURACY] = float(np.mean(same))
    out[Metric.MACRO_F1] = float(np.mean(2 * tp[present] / denom))
    return out


def _regression(y: np.ndarray, yhat: np.ndarray) -> dict[Metric, float]:
    out = nan_metrics(TaskType.REGRESSION)
    if y.size == 0:
        return out
    err = yhat - y
    out[Metric.MAE] = float(np.mean(np.abs(err)))
    out[Metric.RMSE] = float(np.sqrt(np.mean(err * err)))
    nz = y != 0
    out[Metric.MAPE] = float(np.mean(np.abs(err[nz]) / np.abs(y[nz]))) if nz.any() else math.nan
    if y.size >= 2:
        ss_res = float(np.sum(err * err))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        out[Metric.R2] = 1 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return out


def encode_frame(model: ModelConfig, frame: pd.DataFrame) -> EncodedRows:
    """Encode a labelled frame (label, prediction and score columns of the contract)."""
    c = model.columns
    score = frame[c.score] if (c.score and model.task.is_classification) else None
    return _encode(model.task, frame[c.label], frame[c.prediction], score, model.classes)


def require_columns(
    frame: pd.DataFrame,
    columns: Sequence[str],
    model: ModelConfig,
    partition: str | None,
    what: str,
) -> None:
    for col in columns:
        if col not in frame.columns:
            raise DataError(
                f"{what} have no column '{col}' (columns: {list(frame.columns)[:20]})",
                model=model.key,
                partition=partition,
                column=col,
            )


def segment_metrics(model: ModelConfig, labelled: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """Realized metrics per value of each segment column: where the decay is.

    {segment column: {value: {"n_labelled", "insufficient", metric: value, ...}}}; a value
    with fewer than `min_labels` labels gets `insufficient: True` and no metrics (its numbers
    would be noise). Empty segment values are grouped as "__missing__".
    """
    if not model.segments:
        return {}
    require_columns(labelled, model.segments, model, None, "labelled rows")
    min_labels = model.performance.min_labels
    rows = encode_frame(model, labelled)
    y, yhat = labelled[model.columns.label], labelled[model.columns.prediction]
    if model.task is TaskType.REGRESSION:  # the rows `_encode` keeps, to align segment values
        keep = np.isfinite(as_floats(y)) & np.isfinite(as_floats(yhat))
    else:
        keep = pd.notna(class_labels(y)) & pd.notna(class_labels(yhat))
    out: dict[str, dict[str, dict]] = {}
    for col in model.segments:
        values = class_labels(labelled[col])[keep]
        values = np.where(pd.notna(values), values, MISSING)
        codes, uniques = pd.factorize(values)
        groups: dict[str, dict] = {}
        for k, name in sorted(enumerate(uniques), key=lambda kv: str(kv[1])):
            idx = np.flatnonzero(codes == k)
            entry: dict[str, Any] = {"n_labelled": int(idx.size)}
            if idx.size < min_labels:
                entry["insufficient"] = True
            else:
                entry["insufficient"] = False
                entry.update({str(m): v for m, v in rows.take(idx).metrics().items()})
            groups[str(name)] = entry
        out[col] = groups
    return out
