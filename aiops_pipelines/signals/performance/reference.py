"""The champion's performance on the labelled reference: metrics, sampling error, calibration.

* **Sampling error**: ``ReferencePerformance.unit_se`` is the bootstrap standard error of each
  metric on the reference times sqrt(n) (m-out-of-n bootstrap on at most 20,000 rows; every
  metric here is root-n consistent, so SE(m) * sqrt(m) estimates the same constant). A day
  with n labels has standard error ``unit_se / sqrt(n)`` (NannyML's sampling error). The
  reference value's own error (n_ref >> n) is ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from aiops_pipelines.core.config import (
    TASK_METRICS,
    Metric,
    ModelConfig,
    TaskType,
)
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import jsonable
from aiops_pipelines.signals.performance.join import validate_labels
from aiops_pipelines.signals.performance.metrics import (
    EncodedRows,
    calibration_error,
    encode_frame,
    nan_metrics,
    positive_class,
    require_columns,
)

BOOT_MAX_ROWS = 20_000
"""Bootstrap resamples have at most this many rows (m-out-of-n), which bounds the cost."""
CALIBRATION_FOLDS = 3
"""Cross-validation folds that decide whether isotonic calibration beats the raw score."""
MIN_CALIBRATION_ROWS = 50
"""Fewer reference rows with a score: no calibration is fitted (the raw score is used)."""


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
    rows: EncodedRows, *, n_boot: int = 200, seed: int = 0, max_rows: int = BOOT_MAX_ROWS
) -> dict[Metric, float]:
    """Bootstrap SE of every metric times sqrt(m), on resamples of m = min(n, max_rows) rows.

    NaN when fewer than 2 resamples give a value (e.g. ROC AUC on a one-class reference).
    """
    task = rows.task
    if rows.n < 2 or n_boot < 2:
        return nan_metrics(task)
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


def _calibration_target(rows: EncodedRows) -> tuple[np.ndarray, np.ndarray] | None:
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

    NannyML's rule: an isotonic fit on a well-calibrated score only adds
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
    would then be optimistic (NannyML). Rows without a label are ignored.
    """
    c = model.columns
    cols = [c.label, c.prediction]
    if c.score and model.task.is_classification:
        cols.append(c.score)
    require_columns(reference, cols, model, None, "the reference rows")
    frame = reference[reference[c.label].notna()]
    labels = validate_labels(frame[c.label], model, None, what="reference")
    frame = frame.assign(**{c.label: labels})
    try:
        rows = encode_frame(model, frame)
    except ValueError as exc:
        raise DataError(f"reference: {exc}", model=model.key, column=c.label) from None
    if rows.n == 0:
        raise DataError("the reference has no labelled rows", model=model.key, column=c.label)
    pairs = _calibration_target(rows)
    positive = None
    if model.task is TaskType.BINARY:
        positive = rows.names[rows.pos] if rows.pos >= 0 else positive_class(model.classes, [])
    return ReferencePerformance(
        metrics=rows.metrics(),
        n=rows.n,
        unit_se=bootstrap_unit_se(rows, n_boot=n_boot, seed=seed),
        calibration=None if pairs is None else fit_calibration(*pairs, seed=seed),
        task=model.task,
        positive=positive,
        n_boot=n_boot,
    )
