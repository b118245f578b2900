"""Performance decay on late labels: realized metrics, a label-free estimate, and the verdict.

A day's predictions are joined with the outcomes observed so far (`join_outcomes`), scored on
the labelled rows (`realized_metrics`), held against the reference set's performance
(`judge_day`), and a finding fires only when the bad level persists over labelled days
(`decay_state`). For classifiers a label-free estimate from calibrated scores (`CBPE`, notes
section 4.1) can warn before the labels arrive (`estimate_performance`).

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
* **Sampling error**: ``ReferencePerformance.unit_se`` is the bootstrap standard error of each
  metric on the reference times sqrt(n) (m-out-of-n bootstrap on at most 20,000 rows; every
  metric here is root-n consistent, so SE(m) * sqrt(m) estimates the same constant). A day
  with n labels has standard error ``unit_se / sqrt(n)`` (NannyML's sampling error, notes
  section 4.1). The reference value's own error (n_ref >> n) is ignored.
* **Estimate (CBPE)**: the score is calibrated on the reference (isotonic regression, kept
  only when it lowers the 3-fold cross-validated ECE, NannyML's rule), then each row
  contributes its calibrated P(positive) q to the expected confusion matrix: a predicted
  positive adds q to TP and 1 - q to FP, a predicted negative q to FN and 1 - q to TN.
  Accuracy, precision, recall and F1 follow from the expected counts. ROC AUC is the expected
  number of correctly ranked (positive, negative) pairs over the expected number of pairs,
  ranking by the raw score: sum_{i != j} q_i (1 - q_j) [s_i > s_j] (ties 1/2) over
  sum_{i != j} q_i (1 - q_j); NannyML sweeps thresholds over the calibrated scores, which is
  the same sum up to ties and the i = j terms. Multiclass: the demo's score is the top-class
  probability, so only accuracy is estimated, as the mean calibrated P(prediction correct).
  Regression has no estimate: it needs a second model of the loss (NannyML's DLE, a LightGBM
  regressor on the features), which is a training job, not a monitoring step.
  CBPE assumes calibrated scores and **no concept shift** (P(y | x) unchanged): it catches a
  population moving to where the model is unsure, never a world where the same inputs now
  mean other outcomes. That is why it may warn but never raise a critical finding.

The verdict of a day (`judge_day`)
----------------------------------
On the primary metric: "insufficient" below ``min_labels`` labels (or when the metric or its
reference is undefined). Otherwise the day is at warning/critical when the value breaches the
``floors`` level (a ceiling for lower-is-better metrics) or degrades by ``relative_drop`` from
the reference, **and** lies outside the sampling band reference +- band_sigma * unit_se /
sqrt(n) on the bad side; a day inside the band is "ok" whatever its value, because at its
number of labels that value is what noise alone produces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.isotonic import IsotonicRegression

from aiops_pipelines.core.config import (
    TASK_METRICS,
    Metric,
    ModelConfig,
    PerformancePolicy,
    TaskType,
)
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import Finding, Severity, Signal, jsonable
from aiops_pipelines.io.sources import parse_timestamps
from aiops_pipelines.signals.profile.profiles import _label

ASSET = "performance_report"
ECE_BINS = 10
"""Equal-width bins of the expected calibration error."""
BOOT_MAX_ROWS = 20_000
"""Bootstrap resamples have at most this many rows (m-out-of-n), which bounds the cost."""
CALIBRATION_FOLDS = 3
"""Cross-validation folds that decide whether isotonic calibration beats the raw score."""
MIN_CALIBRATION_ROWS = 50
"""Fewer reference rows with a score: no calibration is fitted (the raw score is used)."""
MISSING = "__missing__"
"""Segment value of rows whose segment column is empty."""
MAX_EXAMPLES = 5

Level = Literal["insufficient", "ok", "warning", "critical"]
LEVELS: tuple[str, ...] = ("insufficient", "ok", "warning", "critical")
_BAD = {"warning": 1, "critical": 2}


# ------------------------------------------------------------------------------ labels


def class_labels(values: Any) -> np.ndarray:
    """Class labels as strings (object array, None where missing).

    Labels come from SQL, Parquet and model outputs in different types; 1, 1.0 and "1" must be
    one class, as in the profiles (`profile._label`). Each distinct value is converted once.
    """
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    if len(s) == 0:
        return np.empty(0, dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    names = np.empty(len(uniques) + 1, dtype=object)
    names[:-1] = [_label(u) for u in uniques.tolist()]
    names[-1] = None
    return names[codes]


def _floats(values: Any) -> np.ndarray:
    if values is None:
        return np.empty(0)
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    return pd.to_numeric(s, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)


def _positive_name(classes: Sequence[Any] | None, names: Sequence[str]) -> str:
    """The positive class: classes[1], else "1" (or "True" for boolean labels)."""
    if classes is not None:
        if len(classes) != 2:
            raise ValueError(f"binary classification needs 2 classes, got {list(classes)}")
        return _label(classes[1])
    if "1" not in names and "True" in names:
        return "True"
    other = sorted(set(names) - {"0", "1", "True", "False"})
    if other:
        raise ValueError(
            f"binary labels {other[:MAX_EXAMPLES]} are not 0/1: configure `classes` "
            "(negative, positive) to name the positive class"
        )
    return "1"


# ----------------------------------------------------------------------- realized metrics


@dataclass(frozen=True)
class _Rows:
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

    def take(self, idx: np.ndarray) -> _Rows:
        return _Rows(
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
) -> _Rows:
    """Drop rows without a label or a prediction and encode the rest for fast metrics."""
    if task is TaskType.REGRESSION:
        y, yhat = _floats(y_true), _floats(y_pred)
        if y.shape != yhat.shape:
            raise ValueError(f"y_true has {y.size} rows, y_pred {yhat.size}")
        keep = np.isfinite(y) & np.isfinite(yhat)
        return _Rows(task, y[keep], yhat[keep], None)
    yl, pl = class_labels(y_true), class_labels(y_pred)
    if yl.shape != pl.shape:
        raise ValueError(f"y_true has {yl.size} rows, y_pred {pl.size}")
    s = None if score is None else _floats(score)
    if s is not None and s.shape != yl.shape:
        raise ValueError(f"score has {s.size} rows, y_true {yl.size}")
    keep = pd.notna(yl) & pd.notna(pl)
    yl, pl = yl[keep], pl[keep]
    n = yl.size
    codes, uniques = pd.factorize(np.concatenate([yl, pl]))
    names = tuple(str(u) for u in uniques)
    pos = -1
    if task is TaskType.BINARY:
        pos_name = _positive_name(classes, names)
        pos = names.index(pos_name) if pos_name in names else -1
    return _Rows(
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


def _nan_metrics(task: TaskType) -> dict[Metric, float]:
    return {m: math.nan for m in TASK_METRICS[task]}


def _ratio(a: float, b: float) -> float:
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
    out = _nan_metrics(TaskType.BINARY)
    if y.size == 0:
        return out
    t, p = y == pos, yhat == pos
    tp = float(np.count_nonzero(t & p))
    fp = float(np.count_nonzero(~t & p))
    fn = float(np.count_nonzero(t & ~p))
    out[Metric.ACCURACY] = float(np.mean(y == yhat))
    out[Metric.PRECISION] = _ratio(tp, tp + fp)
    out[Metric.RECALL] = _ratio(tp, tp + fn)
    out[Metric.F1] = _ratio(2 * tp, 2 * tp + fp + fn)
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
    out = _nan_metrics(TaskType.MULTICLASS)
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
    out = _nan_metrics(TaskType.REGRESSION)
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


# ------------------------------------------------------------------------------- join


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


def _require(
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
            allowed = [_label(c) for c in model.classes]
            bad = labels.notna() & ~labels.isin(allowed)
            if bad.any():
                shown = sorted(set(labels[bad]))[:MAX_EXAMPLES]
                raise DataError(
                    f"{int(bad.sum())} {what} labels are not among the model's classes "
                    f"{allowed}: {shown}",
                    model=model.key,
                    partition=partition,
                    column=col,
                )
        return labels
    nums = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = values.notna() & ~np.isfinite(nums.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        shown = [repr(v) for v in pd.unique(values[bad])[:MAX_EXAMPLES]]
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
    _require(predictions, [rid, c.prediction], model, partition, "predictions")
    _require(outcomes, [rid, lab, obs], model, partition, "outcomes")
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


def _rows_of(model: ModelConfig, frame: pd.DataFrame) -> _Rows:
    """Encode a labelled frame (label, prediction and score columns of the contract)."""
    c = model.columns
    score = frame[c.score] if (c.score and model.task.is_classification) else None
    return _encode(model.task, frame[c.label], frame[c.prediction], score, model.classes)


# --------------------------------------------------------------------- reference and SE


@dataclass
class ReferencePerformance:
    """The champion's performance on the labelled reference set, its sampling error and the
    score calibration for the label-free estimate: everything a day is judged against.

    `unit_se[m]` is the bootstrap standard error of metric m times sqrt(n): the standard error
    at a day's n labels is `unit_se[m] / sqrt(n)` (see `se`). `calibration` holds the
    isotonic map as its threshold arrays {"x": [...], "y": [...]}, re-applied with np.interp,
    so the whole object is plain JSON (`to_dict`/`from_dict`).
    """

    metrics: dict[Metric, float]
    n: int
    unit_se: dict[Metric, float]
    calibration: dict[str, Any] | None = None
    task: TaskType | None = None
    positive: str | None = None
    n_boot: int = 0

    def se(self, metric: Metric, n: int) -> float:
        """Standard error of `metric` on a sample of n rows (NaN when unknown)."""
        u = self.unit_se.get(Metric(metric), math.nan)
        return u / math.sqrt(n) if n > 0 and math.isfinite(u) else math.nan

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "metrics": {str(k): v for k, v in self.metrics.items()},
                "n": self.n,
                "unit_se": {str(k): v for k, v in self.unit_se.items()},
                "calibration": self.calibration,
                "task": None if self.task is None else self.task.value,
                "positive": self.positive,
                "n_boot": self.n_boot,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferencePerformance:
        def nums(m: dict[str, Any]) -> dict[Metric, float]:
            return {Metric(k): math.nan if v is None else float(v) for k, v in m.items()}

        return cls(
            metrics=nums(d.get("metrics") or {}),
            n=int(d.get("n") or 0),
            unit_se=nums(d.get("unit_se") or {}),
            calibration=d.get("calibration"),
            task=TaskType(d["task"]) if d.get("task") else None,
            positive=d.get("positive"),
            n_boot=int(d.get("n_boot") or 0),
        )


def bootstrap_unit_se(
    rows: _Rows, *, n_boot: int = 200, seed: int = 0, max_rows: int = BOOT_MAX_ROWS
) -> dict[Metric, float]:
    """Bootstrap SE of every metric times sqrt(m), on resamples of m = min(n, max_rows) rows.

    NaN when fewer than 2 resamples give a value (e.g. ROC AUC on a one-class reference).
    """
    task = rows.task
    if rows.n < 2 or n_boot < 2:
        return _nan_metrics(task)
    rng = np.random.default_rng(seed)
    m = min(rows.n, max_rows)
    draws = {k: np.empty(n_boot) for k in TASK_METRICS[task]}
    for b in range(n_boot):
        res = rows.take(rng.integers(0, rows.n, m)).metrics()
        for k in draws:
            draws[k][b] = res[k]
    out: dict[Metric, float] = {}
    for k, v in draws.items():
        v = v[np.isfinite(v)]
        out[k] = float(np.std(v, ddof=1) * math.sqrt(m)) if v.size >= 2 else math.nan
    return out


def _calibration_target(rows: _Rows) -> tuple[np.ndarray, np.ndarray] | None:
    """(score, target) pairs the calibration maps: P(positive), or P(prediction correct)."""
    if rows.score is None or rows.task is TaskType.REGRESSION:
        return None
    ok = np.isfinite(rows.score)
    target = (rows.y == rows.pos) if rows.task is TaskType.BINARY else (rows.y == rows.yhat)
    return rows.score[ok], target[ok].astype(np.float64)


def _isotonic(s: np.ndarray, t: np.ndarray) -> IsotonicRegression:
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    return iso.fit(s, t)


def fit_calibration(score: np.ndarray, target: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Isotonic map of the target on the score, kept only if it lowers the cross-validated ECE.

    NannyML's rule (notes section 4.1): an isotonic fit on a well-calibrated score only adds
    step noise, so the raw score (the identity map) is kept unless calibrating helps on
    held-out folds. The map is returned as threshold arrays for np.interp, which reproduces
    `IsotonicRegression.predict` (linear between thresholds, clipped outside).
    """
    identity = {"method": "identity", "x": [0.0, 1.0], "y": [0.0, 1.0]}
    if score.size < MIN_CALIBRATION_ROWS or np.unique(score).size < 2:
        return {**identity, "reason": f"fewer than {MIN_CALIBRATION_ROWS} distinct-score rows"}
    rng = np.random.default_rng(seed)
    fold = rng.permutation(score.size) % CALIBRATION_FOLDS
    raw, iso = [], []
    for k in range(CALIBRATION_FOLDS):
        train, test = fold != k, fold == k
        fitted = _isotonic(score[train], target[train]).predict(score[test])
        raw.append(calibration_error(target[test], score[test]))
        iso.append(calibration_error(target[test], fitted))
    ece_raw, ece_iso = float(np.mean(raw)), float(np.mean(iso))
    cv = {"cv_ece_raw": ece_raw, "cv_ece_isotonic": ece_iso}
    if ece_iso >= ece_raw:
        return {**identity, **cv}
    full = _isotonic(score, target)
    return {
        "method": "isotonic",
        "x": full.X_thresholds_.tolist(),
        "y": full.y_thresholds_.tolist(),
        **cv,
    }


def apply_calibration(calibration: dict[str, Any], score: np.ndarray) -> np.ndarray:
    """Calibrated probabilities from a stored map (np.interp clips outside its range)."""
    x = np.asarray(calibration["x"], dtype=np.float64)
    y = np.asarray(calibration["y"], dtype=np.float64)
    return np.clip(np.interp(score, x, y), 0.0, 1.0)


def reference_performance(
    model: ModelConfig, reference: pd.DataFrame, *, n_boot: int = 200, seed: int = 0
) -> ReferencePerformance:
    """The champion's metrics on the labelled reference, their sampling error, calibration.

    The reference (labels in `columns.label`, the champion's outputs in `columns.prediction`
    and `columns.score`) must not be the training set: the calibration and the baseline
    would then be optimistic (NannyML, notes section 4.1). Rows without a label are ignored.
    """
    c = model.columns
    cols = [c.label, c.prediction]
    if c.score and model.task.is_classification:
        cols.append(c.score)
    _require(reference, cols, model, None, "the reference rows")
    frame = reference[reference[c.label].notna()]
    labels = validate_labels(frame[c.label], model, None, what="reference")
    frame = frame.assign(**{c.label: labels})
    try:
        rows = _rows_of(model, frame)
    except ValueError as exc:
        raise DataError(f"reference: {exc}", model=model.key, column=c.label) from None
    if rows.n == 0:
        raise DataError("the reference has no labelled rows", model=model.key, column=c.label)
    pairs = _calibration_target(rows)
    positive = None
    if model.task is TaskType.BINARY:
        positive = rows.names[rows.pos] if rows.pos >= 0 else _positive_name(model.classes, [])
    return ReferencePerformance(
        metrics=rows.metrics(),
        n=rows.n,
        unit_se=bootstrap_unit_se(rows, n_boot=n_boot, seed=seed),
        calibration=None if pairs is None else fit_calibration(*pairs, seed=seed),
        task=model.task,
        positive=positive,
        n_boot=n_boot,
    )


# --------------------------------------------------------------------------- estimate


def expected_roc_auc(score: np.ndarray, q: np.ndarray) -> float:
    """Expected ROC AUC when row i is positive with probability q_i, ranked by `score`.

    sum_{i != j} q_i (1 - q_j) [s_i > s_j] (ties count 1/2) / sum_{i != j} q_i (1 - q_j):
    the expected number of correctly ranked (positive, negative) pairs over the expected
    number of pairs, in O(n log n) by grouping tied scores.
    """
    if score.size < 2:
        return math.nan
    order = np.argsort(score, kind="stable")
    s, p = score[order], q[order]
    n = 1.0 - p
    _, start = np.unique(s, return_index=True)
    g_pos = np.add.reduceat(p, start)
    g_neg = np.add.reduceat(n, start)
    g_self = np.add.reduceat(p * n, start)
    neg_below = np.concatenate(([0.0], np.cumsum(g_neg)[:-1]))
    num = float((g_pos * neg_below).sum() + 0.5 * (g_pos * g_neg - g_self).sum())
    den = float(p.sum() * n.sum() - (p * n).sum())
    return num / den if den > 0 else math.nan


def estimate_performance(
    model: ModelConfig, frame: pd.DataFrame, ref: ReferencePerformance
) -> dict[Metric, float]:
    """CBPE-style estimate of the day's metrics from calibrated scores, without labels.

    Binary: accuracy, precision, recall, F1 and ROC AUC from the expected confusion matrix
    (module docstring); multiclass: accuracy as the mean calibrated P(correct). Empty for
    regression (no estimate without a loss model), for models without a score column, and
    when the reference stored no calibration. Valid only without concept shift.
    """
    c = model.columns
    if model.task is TaskType.REGRESSION or not c.score or ref.calibration is None:
        return {}
    _require(frame, [c.prediction, c.score], model, None, "predictions")
    s = _floats(frame[c.score])
    ok = np.isfinite(s)
    s = s[ok]
    q = apply_calibration(ref.calibration, s)
    if model.task is TaskType.MULTICLASS:
        return {Metric.ACCURACY: float(q.mean()) if q.size else math.nan}
    if not q.size:
        return {m: math.nan for m in _ESTIMATED_BINARY}
    positive = ref.positive or _positive_name(model.classes, [])
    predicted = class_labels(frame[c.prediction])[ok] == positive
    tp = float(q[predicted].sum())
    fp = float((1 - q[predicted]).sum())
    fn = float(q[~predicted].sum())
    tn = float((1 - q[~predicted]).sum())
    return {
        Metric.ACCURACY: (tp + tn) / q.size,
        Metric.PRECISION: _ratio(tp, tp + fp),
        Metric.RECALL: _ratio(tp, tp + fn),
        Metric.F1: _ratio(2 * tp, 2 * tp + fp + fn),
        Metric.ROC_AUC: expected_roc_auc(s, q),
    }


_ESTIMATED_BINARY = (Metric.ACCURACY, Metric.PRECISION, Metric.RECALL, Metric.F1, Metric.ROC_AUC)


# ---------------------------------------------------------------------------- verdict


@dataclass
class DayJudgement:
    """How one day's primary metric compares with the reference, and why.

    `relative_change` is (value - reference) / |reference| (signed; for a lower-is-better
    metric a positive change is the bad direction). `warning_threshold` and
    `critical_threshold` are the values the metric had to cross to reach each level: the
    floor or relative-drop limit, whichever is less strict, pushed out to the sampling band.
    """

    metric: str
    value: float
    reference: float
    band_low: float
    band_high: float
    relative_change: float
    n_labelled: int
    level: str
    reasons: list[str] = field(default_factory=list)
    estimate: float | None = None
    higher_is_better: bool = True
    standard_error: float = math.nan
    warning_threshold: float = math.nan
    critical_threshold: float = math.nan
    coverage: float = math.nan
    source: Literal["realized", "estimated"] = "realized"

    def threshold_for(self, severity: str) -> float:
        return self.critical_threshold if severity == "critical" else self.warning_threshold

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _limit(ref: float, drop: float, floor: float | None, band: float, higher: bool) -> float:
    """The value beyond which a level is reached: both rules' looser limit, past the band."""
    rel = ref - drop * abs(ref) if higher else ref + drop * abs(ref)
    lim = rel if floor is None else (max(rel, floor) if higher else min(rel, floor))
    if math.isfinite(band):
        lim = min(lim, band) if higher else max(lim, band)
    return lim


def judge_day(
    model: ModelConfig,
    metrics: dict[Metric, float],
    n_labelled: int,
    ref: ReferencePerformance,
    *,
    metric: Metric | None = None,
    estimate: dict[Metric, float] | None = None,
    coverage: float | None = None,
    source: Literal["realized", "estimated"] = "realized",
) -> DayJudgement:
    """The day's level on the primary metric (module docstring, "The verdict of a day").

    A breach of the floor or of the relative drop counts only outside the sampling band on the
    bad side, so a day with few labels cannot alarm on noise; below `min_labels` the day is
    "insufficient" and does not count for persistence either way. `metric` overrides the
    primary metric (the estimate judges what it can estimate); `estimate` is carried along.
    """
    policy = model.performance
    m = Metric(metric or model.primary_metric)
    higher = m.higher_is_better
    value = float(metrics.get(m, math.nan))
    base = float(ref.metrics.get(m, math.nan))
    se = ref.se(m, n_labelled)
    width = policy.band_sigma * se
    lo, hi = base - width, base + width
    rel = (value - base) / abs(base) if math.isfinite(base) and base != 0 else math.nan
    worse = -rel if higher else rel
    floor_w, floor_c = policy.floors.get(m, (None, None))
    band_edge = lo if higher else hi
    warn_lim = _limit(base, policy.relative_drop[0], floor_w, band_edge, higher)
    crit_lim = _limit(base, policy.relative_drop[1], floor_c, band_edge, higher)
    est = None if estimate is None else estimate.get(m)
    reasons: list[str] = []
    level: str = "ok"
    if n_labelled < policy.min_labels:
        level = "insufficient"
        reasons.append(f"{n_labelled} labels < min_labels {policy.min_labels}")
    elif not math.isfinite(value):
        level = "insufficient"
        reasons.append(f"{m} is undefined on this day (e.g. a single class among the labels)")
    elif not math.isfinite(base):
        level = "insufficient"
        reasons.append(f"the reference has no {m} value")
    else:
        sev = 0
        word = "ceiling" if not higher else "floor"
        for rank, floor in ((1, floor_w), (2, floor_c)):
            if floor is not None and (value < floor if higher else value > floor):
                sev = max(sev, rank)
                reasons.append(f"{m} {value:.4g} beyond the {LEVELS[rank + 1]} {word} {floor:g}")
        for rank, drop in ((1, policy.relative_drop[0]), (2, policy.relative_drop[1])):
            if math.isfinite(worse) and worse >= drop:
                sev = max(sev, rank)
                reasons.append(
                    f"{m} {value:.4g} is {worse:.1%} worse than the reference {base:.4g} "
                    f"(>= {drop:.0%}, {LEVELS[rank + 1]})"
                )
        if sev:
            if not math.isfinite(se):
                reasons.append("no sampling error known for the reference: band not applied")
                outside = True
            else:
                outside = value < lo if higher else value > hi
            if outside:
                level = LEVELS[sev + 1]
                reasons.append(
                    f"outside the sampling band [{lo:.4g}, {hi:.4g}] "
                    f"({policy.band_sigma:g} SE at n={n_labelled})"
                )
            else:
                reasons.append(
                    f"within the sampling band [{lo:.4g}, {hi:.4g}] at n={n_labelled}: "
                    "noise cannot be ruled out, ok"
                )
    return DayJudgement(
        metric=str(m),
        value=value,
        reference=base,
        band_low=lo,
        band_high=hi,
        relative_change=rel,
        n_labelled=int(n_labelled),
        level=level,
        reasons=reasons,
        estimate=None if est is None else float(est),
        higher_is_better=higher,
        standard_error=se,
        warning_threshold=warn_lim,
        critical_threshold=crit_lim,
        coverage=math.nan if coverage is None else float(coverage),
        source=source,
    )


def judge_estimate(
    model: ModelConfig, estimate: dict[Metric, float], n_rows: int, ref: ReferencePerformance
) -> DayJudgement | None:
    """Judge the label-free estimate like a realized day, on all n_rows scored predictions.

    The primary metric when it can be estimated, else accuracy (multiclass estimates only
    that); None when nothing is estimated (regression, no score).
    """
    if not estimate:
        return None
    metric = model.primary_metric if model.primary_metric in estimate else Metric.ACCURACY
    if metric not in estimate:
        return None
    return judge_day(
        model, estimate, n_rows, ref, metric=metric, estimate=estimate, source="estimated"
    )


# ------------------------------------------------------------------ persistence and state


@dataclass
class DecayState:
    """Whether a decay finding fires on the last day of a model's history, and why.

    status: "ok", "pending" (bad labelled days, fewer than `persistence`), "firing", or
    "resolved" (cleared on the last day). `since` is the first partition of the firing run;
    `trigger_days` the labelled days that made it fire; `days` the labelled (partition, level)
    pairs the decision looked at (the episode while firing, else the recent ones).
    """

    status: str
    severity: str | None = None
    since: str | None = None
    consecutive_bad: int = 0
    consecutive_critical: int = 0
    consecutive_ok: int = 0
    trigger_days: list[str] = field(default_factory=list)
    days: list[tuple[str, str]] = field(default_factory=list)
    resolved_on: str | None = None

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def decay_state(levels: list[tuple[str, str]], policy: PerformancePolicy) -> DecayState:
    """Replay a model's daily levels (chronological, up to the day judged) through hysteresis.

    Only labelled days count ("insufficient" days are skipped, neither breaking nor extending
    a run). It fires at warning once the last `persistence` labelled days are all warning or
    critical, at critical once they are all critical; while firing, the severity follows the
    last `persistence` days when they agree and is kept otherwise; it resolves only after
    `clear_after` consecutive "ok" labelled days. So a day that flaps between ok and bad never
    starts a finding (persistence) and never ends one (hysteresis).
    """
    p, clear = policy.persistence, policy.clear_after
    labelled: list[tuple[str, str]] = []
    run: list[str] = []
    n_crit = n_ok = 0
    firing, severity, since = False, None, None
    trigger: list[str] = []
    resolved_on, episode_start = None, 0
    for partition, level in levels:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r} on {partition} (expected {LEVELS})")
        if level == "insufficient":
            continue
        labelled.append((partition, level))
        if level == "ok":
            n_ok += 1
            run, n_crit = [], 0
        else:
            n_ok = 0
            run.append(partition)
            n_crit = n_crit + 1 if level == "critical" else 0
        if firing:
            if n_ok >= clear:
                firing, resolved_on = False, partition
            elif n_crit >= p:
                severity = "critical"
            elif len(run) >= p:
                severity = "warning"
        elif len(run) >= p:
            firing, since, trigger = True, run[0], list(run)
            severity = "critical" if n_crit >= p else "warning"
            resolved_on, episode_start = None, len(labelled) - len(run)
    if firing:
        status = "firing"
        days = labelled[episode_start:]
    else:
        last = levels[-1][0] if levels else None
        status = (
            "resolved"
            if resolved_on is not None and resolved_on == last
            else ("pending" if run else "ok")
        )
        days = labelled[-max(p, clear) :]
    return DecayState(
        status=status,
        severity=severity if firing else None,
        since=since if firing or status == "resolved" else None,
        consecutive_bad=len(run),
        consecutive_critical=n_crit,
        consecutive_ok=n_ok,
        trigger_days=trigger if firing or status == "resolved" else [],
        days=days,
        resolved_on=resolved_on if status == "resolved" else None,
    )


# --------------------------------------------------------------------------- segments


def segment_metrics(model: ModelConfig, labelled: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """Realized metrics per value of each segment column: where the decay is.

    {segment column: {value: {"n_labelled", "insufficient", metric: value, ...}}}; a value
    with fewer than `min_labels` labels gets `insufficient: True` and no metrics (its numbers
    would be noise). Empty segment values are grouped as "__missing__".
    """
    if not model.segments:
        return {}
    _require(labelled, model.segments, model, None, "labelled rows")
    min_labels = model.performance.min_labels
    rows = _rows_of(model, labelled)
    y, yhat = labelled[model.columns.label], labelled[model.columns.prediction]
    if model.task is TaskType.REGRESSION:  # the rows `_encode` keeps, to align segment values
        keep = np.isfinite(_floats(y)) & np.isfinite(_floats(yhat))
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


# --------------------------------------------------------------------------- findings


def _fmt(x: float) -> str:
    return f"{x:.4g}" if x is not None and math.isfinite(x) else "n/a"


def performance_findings(
    model: ModelConfig,
    partition: str,
    judgement: DayJudgement,
    state: DecayState,
    estimate_judgement: DayJudgement | None,
) -> list[Finding]:
    """The day's decay findings: realized decay while the state fires, and the estimate's.

    `performance_decay` carries the state's severity (it may act: retrain on critical); the
    `estimated_performance_decay` finding is at most a warning, because the estimate rests on
    calibration and no concept shift, which labels have not confirmed.
    """
    base = dict(tenant=model.tenant, model=model.name, partition=partition, asset=ASSET)
    out: list[Finding] = []
    j = judgement
    if state.firing and state.severity:
        evidence = {
            "metric": j.metric,
            "value": j.value,
            "reference": j.reference,
            "band": [j.band_low, j.band_high],
            "band_sigma": model.performance.band_sigma,
            "standard_error": j.standard_error,
            "relative_change": j.relative_change,
            "n_labelled": j.n_labelled,
            "coverage": j.coverage,
            "level_today": j.level,
            "reasons": list(j.reasons),
            "since": state.since,
            "trigger_days": list(state.trigger_days),
            "days": [list(d) for d in state.days],
            "persistence": model.performance.persistence,
            "clear_after": model.performance.clear_after,
            "estimate": j.estimate,
        }
        out.append(
            Finding(
                **base,
                signal=Signal.PERFORMANCE_DECAY.value,
                severity=Severity(state.severity),
                value=j.value,
                threshold=j.threshold_for(state.severity),
                message=f"{j.metric} {_fmt(j.value)} vs reference {_fmt(j.reference)} "
                f"({_fmt(100 * j.relative_change)}%) on {j.n_labelled} labels; "
                f"{state.severity} since {state.since} "
                f"({len(state.trigger_days)} labelled days in a row)",
                evidence=evidence,
            )
        )
    e = estimate_judgement
    if e is not None and model.performance.estimate_warning and e.level in _BAD:
        out.append(
            Finding(
                **base,
                signal=Signal.ESTIMATED_PERFORMANCE_DECAY.value,
                severity=Severity.WARNING,
                value=e.value,
                threshold=e.warning_threshold,
                message=f"estimated {e.metric} {_fmt(e.value)} vs reference "
                f"{_fmt(e.reference)} ({_fmt(100 * e.relative_change)}%) on {e.n_labelled} "
                "unlabelled predictions (label-free estimate: a warning only)",
                evidence={
                    "metric": e.metric,
                    "estimate": e.value,
                    "reference": e.reference,
                    "band": [e.band_low, e.band_high],
                    "relative_change": e.relative_change,
                    "n_rows": e.n_labelled,
                    "estimated_level": e.level,
                    "reasons": list(e.reasons),
                    "realized_level": j.level,
                    "realized_value": j.value,
                    "decay_firing": state.firing,
                },
            )
        )
    return out
