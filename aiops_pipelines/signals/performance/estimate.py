"""A label-free estimate of the day's performance from calibrated scores.

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
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from aiops_pipelines.core.config import (
    Metric,
    ModelConfig,
    TaskType,
)
from aiops_pipelines.signals.performance.metrics import (
    as_floats,
    class_labels,
    positive_class,
    require_columns,
    safe_ratio,
)
from aiops_pipelines.signals.performance.reference import ReferencePerformance, apply_calibration


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
    require_columns(frame, [c.prediction, c.score], model, None, "predictions")
    s = as_floats(frame[c.score])
    ok = np.isfinite(s)
    s = s[ok]
    q = apply_calibration(ref.calibration, s)
    if model.task is TaskType.MULTICLASS:
        return {Metric.ACCURACY: float(q.mean()) if q.size else math.nan}
    if not q.size:
        return {m: math.nan for m in _ESTIMATED_BINARY}
    positive = ref.positive or positive_class(model.classes, [])
    predicted = class_labels(frame[c.prediction])[ok] == positive
    tp = float(q[predicted].sum())
    fp = float((1 - q[predicted]).sum())
    fn = float(q[~predicted].sum())
    tn = float((1 - q[~predicted]).sum())
    return {
        Metric.ACCURACY: (tp + tn) / q.size,
        Metric.PRECISION: safe_ratio(tp, tp + fp),
        Metric.RECALL: safe_ratio(tp, tp + fn),
        Metric.F1: safe_ratio(2 * tp, 2 * tp + fp + fn),
        Metric.ROC_AUC: expected_roc_auc(s, q),
    }


_ESTIMATED_BINARY = (Metric.ACCURACY, Metric.PRECISION, Metric.RECALL, Metric.F1, Metric.ROC_AUC)
