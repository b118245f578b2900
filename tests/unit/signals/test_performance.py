"""Performance decay: metrics against scikit-learn, the join, the verdict, the state machine and
the label-free estimate, all on generated data with fixed seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from aiops_pipelines.core.config import (
    TASK_METRICS,
    Metric,
    ModelConfig,
    PerformancePolicy,
    TaskType,
)
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import Severity, Signal
from aiops_pipelines.signals.performance.estimate import estimate_performance, expected_roc_auc
from aiops_pipelines.signals.performance.join import join_outcomes
from aiops_pipelines.signals.performance.metrics import realized_metrics, segment_metrics
from aiops_pipelines.signals.performance.reference import (
    ReferencePerformance,
    reference_performance,
)
from aiops_pipelines.signals.performance.verdict import (
    decay_state,
    judge_day,
    judge_estimate,
    performance_findings,
)

# Stated tolerances of the label-free estimate (CBPE) against the realized value on the same
# day, with calibrated scores and no concept shift, at 5,000 rows a day. The realized values'
# own sampling error there is ~0.006 (accuracy) and ~0.007 (ROC AUC); measured over 20 seeds,
# estimate - realized has sd 0.005 and max 0.013, so 0.02 is ~4 SD of the difference.
EST_TOL = 0.02
EST_TOL_F1 = 0.03  # F1 and recall of the positive class: fewer rows behind them
# Scores near 0.5 (AUC ~0.65): the realized AUC's sampling error grows to ~0.0085 (measured
# over 20 seeds: estimate - realized has mean -0.002, sd 0.0085, max 0.020), so ~3.5 SE:
EST_TOL_UNSURE = 0.03
EXACT = dict(rel=1e-9, abs=1e-12)

T0 = pd.Timestamp("2025-03-01", tz="UTC")


def make_model(task: TaskType, *, score: bool = True, classes=None, **policy) -> ModelConfig:
    cols = {"score": "score"} if score and task.is_classification else {}
    return ModelConfig.model_validate(
        {
            "name": "m",
            "tenant": "acme",
            "task": task.value,
            "features": {"numeric": ["x"], "categorical": ["region"]},
            "columns": cols,
            "segments": ["region"],
            "classes": classes,
            "predictions": {"parquet": "/nonexistent/p.parquet"},
            "reference": {"parquet": "/nonexistent/r.parquet"},
            "performance": policy,
        }
    )


def binary_frame(seed: int, n: int, *, scale: float = 1.0, prefix: str = "r") -> pd.DataFrame:
    """Calibrated scores: the label is drawn from the score itself (no concept shift)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n) * scale
    p = 1 / (1 + np.exp(-(0.4 + 2.0 * x)))
    return pd.DataFrame(
        {
            "request_id": [f"{prefix}{i}" for i in range(n)],
            "model_version": "1",
            "x": x,
            "region": rng.choice(["north", "south", "tiny"], n, p=[0.6, 0.38, 0.02]),
            "prediction": (p >= 0.5).astype(np.int64),
            "score": p.round(4),
            "label": (rng.random(n) < p).astype(np.int64),
        }
    )


CLASSES3 = ["billing", "cancel", "tech"]


def multiclass_frame(seed: int, n: int, *, temperature: float = 1.0) -> pd.DataFrame:
    """Calibrated class probabilities; the score is the top-class probability."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 3)) / temperature
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    label = (u > np.cumsum(prob, axis=1)).sum(axis=1)
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "region": rng.choice(["a", "b"], n),
            "prediction": np.asarray(CLASSES3)[prob.argmax(axis=1)],
            "score": prob.max(axis=1),
            "label": np.asarray(CLASSES3)[np.minimum(label, 2)],
        }
    )


def regression_frame(seed: int, n: int, *, noise: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 5.0, n).round(2)
    y[rng.random(n) < 0.05] = 0.0  # zero targets: MAPE must skip them
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "region": rng.choice(["a", "b"], n),
            "prediction": y + rng.normal(0, noise, n),
            "label": y,
        }
    )


@pytest.fixture(scope="module")
def binary_ref() -> tuple[ModelConfig, pd.DataFrame, ReferencePerformance]:
    model = make_model(TaskType.BINARY, classes=["0", "1"])
    ref = binary_frame(1, 10_000)
    return model, ref, reference_performance(model, ref, n_boot=200, seed=0)


# ---------------------------------------------------------------------- realized metrics


def _sk_binary(y, yhat, s, pos) -> dict[Metric, float]:
    return {
        Metric.ACCURACY: skm.accuracy_score(y, yhat),
        Metric.PRECISION: skm.precision_score(y, yhat, pos_label=pos),
        Metric.RECALL: skm.recall_score(y, yhat, pos_label=pos),
        Metric.F1: skm.f1_score(y, yhat, pos_label=pos),
        Metric.ROC_AUC: skm.roc_auc_score(np.asarray(y) == pos, s),
        Metric.LOG_LOSS: skm.log_loss(np.asarray(y) == pos, s, labels=[False, True]),
    }


def test_binary_metrics_equal_sklearn() -> None:
    df = binary_frame(3, 4_000)
    got = realized_metrics(TaskType.BINARY, df.label, df.prediction, df.score, ["0", "1"])
    want = _sk_binary(df.label, df.prediction, df.score, 1)
    for m, v in want.items():
        assert got[m] == pytest.approx(v, **EXACT), m
    assert set(got) == set(TASK_METRICS[TaskType.BINARY])


def test_binary_string_labels_and_mixed_types() -> None:
    df = binary_frame(4, 3_000)
    names = np.array(["no", "yes"])
    y, yhat = names[df.label], names[df.prediction]
    got = realized_metrics(TaskType.BINARY, y, yhat, df.score, ["no", "yes"])
    want = _sk_binary(y, yhat, df.score, "yes")
    for m, v in want.items():
        assert got[m] == pytest.approx(v, **EXACT), m
    # labels stored as text, predictions as ints: 1 and "1" are one class
    mixed = realized_metrics(
        TaskType.BINARY, df.label.astype(str), df.prediction.astype(float), df.score
    )
    ints = realized_metrics(TaskType.BINARY, df.label, df.prediction, df.score)
    assert mixed == pytest.approx(ints)


def test_multiclass_metrics_equal_sklearn() -> None:
    df = multiclass_frame(5, 3_000)
    pred = df.prediction.to_numpy().copy()
    pred[:40] = "other"  # a predicted class the labels never have
    got = realized_metrics(TaskType.MULTICLASS, df.label, pred, df.score, CLASSES3)
    assert got[Metric.ACCURACY] == pytest.approx(skm.accuracy_score(df.label, pred), **EXACT)
    assert got[Metric.MACRO_F1] == pytest.approx(
        skm.f1_score(df.label, pred, average="macro"), **EXACT
    )


def test_regression_metrics_equal_sklearn() -> None:
    df = regression_frame(6, 3_000)
    y, p = df.label.to_numpy(), df.prediction.to_numpy()
    got = realized_metrics(TaskType.REGRESSION, y, p)
    nz = y != 0
    assert (~nz).sum() > 50
    assert got[Metric.MAE] == pytest.approx(skm.mean_absolute_error(y, p), **EXACT)
    assert got[Metric.RMSE] == pytest.approx(skm.root_mean_squared_error(y, p), **EXACT)
    assert got[Metric.R2] == pytest.approx(skm.r2_score(y, p), **EXACT)
    # MAPE skips zero targets (scikit-learn divides by eps there)
    assert got[Metric.MAPE] == pytest.approx(
        skm.mean_absolute_percentage_error(y[nz], p[nz]), **EXACT
    )


def test_undefined_metrics_are_nan_not_errors() -> None:
    one_class = realized_metrics(TaskType.BINARY, [1, 1, 1], [1, 0, 1], [0.9, 0.4, 0.8])
    assert math.isnan(one_class[Metric.ROC_AUC])
    assert one_class[Metric.LOG_LOSS] == pytest.approx(
        skm.log_loss([1, 1, 1], [0.9, 0.4, 0.8], labels=[0, 1])
    )
    empty = realized_metrics(TaskType.REGRESSION, [], [])
    assert all(math.isnan(v) for v in empty.values())
    assert realized_metrics(TaskType.REGRESSION, [0.0, 0.0], [1.0, 2.0])[Metric.MAPE] != 0
    with pytest.raises(ValueError, match="classes"):
        realized_metrics(TaskType.BINARY, ["no", "yes"], ["no", "no"])


def test_calibration_error_is_the_binned_ece() -> None:
    rng = np.random.default_rng(7)
    s = rng.random(2_000)
    y = rng.random(2_000) < s**1.5  # miscalibrated
    got = realized_metrics(TaskType.BINARY, y.astype(int), (s > 0.5).astype(int), s)
    ece = 0.0
    for b in range(10):
        inside = (s >= b / 10) & ((s < (b + 1) / 10) if b < 9 else (s <= 1))
        if inside.any():
            ece += inside.mean() * abs(y[inside].mean() - s[inside].mean())
    assert got[Metric.CALIBRATION_ERROR] == pytest.approx(ece, **EXACT)
    assert got[Metric.CALIBRATION_ERROR] > 0.05


# --------------------------------------------------------------------------------- join


def _outcomes(df: pd.DataFrame, rows: np.ndarray, delay_h: int = 30) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": df.request_id.to_numpy()[rows],
            "label": df.label.to_numpy()[rows],
            "observed_at": T0 + pd.to_timedelta(delay_h + np.arange(rows.size) % 24, unit="h"),
        }
    )


def test_join_counts_coverage_duplicates_and_unmatched() -> None:
    model = make_model(TaskType.BINARY, classes=["0", "1"])
    day = binary_frame(8, 1_000, prefix="d")
    preds = day.drop(columns="label")
    out = _outcomes(day, np.arange(600))
    # 50 corrected outcomes arrive later with the opposite label: the latest one wins
    fixed = out.iloc[:50].copy()
    fixed["label"] = 1 - fixed["label"]
    fixed["observed_at"] = fixed["observed_at"] + pd.Timedelta(days=2)
    other_day = pd.DataFrame(
        {
            "request_id": [f"x{i}" for i in range(30)],
            "label": 1,
            "observed_at": T0,
        }
    )
    outcomes = pd.concat([fixed, out, other_day], ignore_index=True)  # not in time order
    res = join_outcomes(preds, outcomes, model, "2025-03-01")
    assert res.n_predictions == 1_000
    assert res.n_labelled == 600
    assert res.coverage == pytest.approx(0.6)
    assert res.n_duplicate_outcomes == 50
    assert res.n_unmatched_outcomes == 30
    assert len(res.labelled) == 600 and len(res.frame) == 1_000
    assert res.frame["label"].isna().sum() == 400
    by_id = res.frame.set_index("request_id")["label"]
    assert (by_id[fixed.request_id].to_numpy() == fixed.label.astype(str).to_numpy()).all()
    # metrics on the joined rows equal scikit-learn's on the same rows
    lab = res.labelled
    got = realized_metrics(TaskType.BINARY, lab.label, lab.prediction, lab.score, ["0", "1"])
    want = _sk_binary(lab.label.astype(int), lab.prediction, lab.score, 1)
    for m, v in want.items():
        assert got[m] == pytest.approx(v, **EXACT), m
    assert json.dumps(res.summary())


def test_join_matches_int_ids_with_text_ids() -> None:
    model = make_model(TaskType.REGRESSION)
    df = regression_frame(9, 200)
    out = pd.DataFrame(
        {
            "request_id": df.request_id.astype(str)[:120],
            "label": df.label[:120].astype(str),  # numeric text, as from a TEXT column
            "observed_at": "2025-03-02T10:00:00+00:00",
        }
    )
    res = join_outcomes(df.drop(columns="label"), out, model, "2025-03-01")
    assert res.n_labelled == 120 and res.n_unmatched_outcomes == 0
    assert res.labelled["label"].to_numpy() == pytest.approx(df.label[:120].to_numpy())


def test_join_rejects_labels_outside_the_classes() -> None:
    model = make_model(TaskType.MULTICLASS, classes=CLASSES3)
    df = multiclass_frame(10, 300)
    out = _outcomes(df, np.arange(300))
    out.loc[:9, "label"] = "refund"
    out.loc[10:12, "label"] = "Tech"
    with pytest.raises(DataError) as err:
        join_outcomes(df.drop(columns="label"), out, model, "2025-03-01")
    e = err.value
    assert e.column == "label" and e.partition == "2025-03-01" and e.model == "acme.m"
    assert "refund" in str(e) and "Tech" in str(e) and "13 " in str(e)


def test_join_rejects_non_numeric_regression_labels() -> None:
    model = make_model(TaskType.REGRESSION)
    df = regression_frame(11, 100)
    out = _outcomes(df, np.arange(100)).astype({"label": object})
    out.loc[3, "label"] = "late"
    out.loc[4, "label"] = float("inf")
    with pytest.raises(DataError, match="late") as err:
        join_outcomes(df.drop(columns="label"), out, model, "2025-03-01")
    assert err.value.column == "label" and "2 outcomes" in str(err.value)


# ------------------------------------------------------------------------ reference / SE


def test_reference_performance_is_json_and_its_se_is_binomial(binary_ref) -> None:
    model, ref_df, ref = binary_ref
    assert ref.n == 10_000
    assert ref.metrics[Metric.ROC_AUC] == pytest.approx(
        skm.roc_auc_score(ref_df.label, ref_df.score), **EXACT
    )
    acc = ref.metrics[Metric.ACCURACY]
    # the bootstrap SE of a proportion is sqrt(p (1 - p) / n)
    assert ref.unit_se[Metric.ACCURACY] == pytest.approx(math.sqrt(acc * (1 - acc)), rel=0.15)
    assert ref.se(Metric.ACCURACY, 400) == pytest.approx(ref.unit_se[Metric.ACCURACY] / 20)
    back = ReferencePerformance.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert back.metrics == pytest.approx(ref.metrics)
    assert back.unit_se == pytest.approx(ref.unit_se)
    assert back.calibration == ref.calibration and back.positive == "1"


def test_reference_needs_its_columns() -> None:
    model = make_model(TaskType.BINARY, classes=["0", "1"])
    with pytest.raises(DataError, match="score") as err:
        reference_performance(model, binary_frame(1, 100).drop(columns="score"))
    assert err.value.column == "score"


# --------------------------------------------------------------------------- judge_day


def test_clear_decay_with_many_labels_is_critical(binary_ref) -> None:
    model, _, ref = binary_ref
    day = binary_frame(12, 5_000)
    flip = np.random.default_rng(0).random(len(day)) < 0.3  # concept shift: labels flipped
    day.loc[flip, "label"] = 1 - day.loc[flip, "label"]
    m = realized_metrics(TaskType.BINARY, day.label, day.prediction, day.score, ["0", "1"])
    j = judge_day(model, m, len(day), ref, coverage=0.7)
    assert j.metric == "roc_auc" and j.level == "critical"
    assert j.relative_change < -0.15 and j.value < j.band_low
    assert j.value < j.critical_threshold
    assert j.coverage == 0.7


def test_same_drop_on_few_labels_inside_the_band_is_ok(binary_ref) -> None:
    model, _, ref = binary_ref
    small = make_model(TaskType.BINARY, classes=["0", "1"], min_labels=10)
    value = ref.metrics[Metric.ROC_AUC] * 0.8  # a 20% drop
    j = judge_day(small, {Metric.ROC_AUC: value}, 12, ref)
    assert j.level == "ok" and j.band_low < value
    assert any("within the sampling band" in r for r in j.reasons)
    big = judge_day(small, {Metric.ROC_AUC: value}, 5_000, ref)
    assert big.level == "critical"
    few = judge_day(model, {Metric.ROC_AUC: value}, 199, ref)
    assert few.level == "insufficient" and "min_labels" in few.reasons[0]
    undefined = judge_day(model, {Metric.ROC_AUC: math.nan}, 5_000, ref)
    assert undefined.level == "insufficient"


def test_floor_and_relative_levels(binary_ref) -> None:
    _, _, ref = binary_ref
    base = ref.metrics[Metric.ROC_AUC]
    model = make_model(
        TaskType.BINARY, classes=["0", "1"], floors={"roc_auc": (base - 0.01, base - 0.02)}
    )
    # 2.5% below the reference: under the critical floor though short of a 5% relative drop
    j = judge_day(model, {Metric.ROC_AUC: base - 0.025}, 50_000, ref)
    assert j.level == "critical" and "floor" in j.reasons[0]
    j = judge_day(model, {Metric.ROC_AUC: base - 0.015}, 50_000, ref)
    assert j.level == "warning"
    j = judge_day(model, {Metric.ROC_AUC: base + 0.02}, 50_000, ref)
    assert j.level == "ok" and not j.reasons


def test_lower_is_better_metric_direction() -> None:
    model = make_model(TaskType.REGRESSION)
    ref = reference_performance(model, regression_frame(13, 5_000), n_boot=100)
    mae = ref.metrics[Metric.MAE]
    worse = judge_day(model, {Metric.MAE: mae * 1.3}, 3_000, ref)
    assert worse.level == "critical" and worse.relative_change == pytest.approx(0.3)
    assert worse.value > worse.band_high
    mild = judge_day(model, {Metric.MAE: mae * 1.08}, 3_000, ref)
    assert mild.level == "warning"
    better = judge_day(model, {Metric.MAE: mae * 0.7}, 3_000, ref)
    assert better.level == "ok"
    noisy = judge_day(
        make_model(TaskType.REGRESSION, min_labels=5), {Metric.MAE: mae * 1.3}, 6, ref
    )
    assert noisy.level == "ok"


# --------------------------------------------------------------------------- decay_state


def _levels(s: str) -> list[tuple[str, str]]:
    """'o w c -' -> ok, warning, critical, insufficient on consecutive days."""
    code = {"o": "ok", "w": "warning", "c": "critical", "-": "insufficient"}
    return [(f"2025-03-{i + 1:02d}", code[ch]) for i, ch in enumerate(s.split())]


@pytest.mark.parametrize(
    ("history", "persistence", "clear_after", "status", "severity", "since"),
    [
        ("", 2, 2, "ok", None, None),
        ("o o o", 2, 2, "ok", None, None),
        ("o w", 2, 2, "pending", None, None),
        ("o w w", 2, 2, "firing", "warning", "2025-03-02"),
        ("o w c", 2, 2, "firing", "warning", "2025-03-02"),
        ("o c c", 2, 2, "firing", "critical", "2025-03-02"),
        ("w c c", 2, 2, "firing", "critical", "2025-03-01"),
        ("c c w w", 2, 2, "firing", "warning", "2025-03-01"),  # sustained warning: de-escalate
        ("c", 1, 1, "firing", "critical", "2025-03-01"),
        # insufficient days neither break nor extend a run: "consecutive labelled days"
        ("w - - w", 2, 2, "firing", "warning", "2025-03-01"),
        ("w - -", 2, 2, "pending", None, None),
        ("w w -", 2, 2, "firing", "warning", "2025-03-01"),
        # flapping never starts a finding
        ("w o w o w o w", 2, 2, "pending", None, None),
        ("c o c o c", 2, 2, "pending", None, None),
        # ... and never ends one: hysteresis needs clear_after ok days in a row
        ("w w o", 2, 2, "firing", "warning", "2025-03-01"),
        ("w w o w o w o", 2, 2, "firing", "warning", "2025-03-01"),
        ("c c o - o", 2, 2, "resolved", None, "2025-03-01"),
        ("c c o o", 2, 2, "resolved", None, "2025-03-01"),
        ("c c o o o", 2, 2, "ok", None, None),
        ("c c o o -", 2, 2, "ok", None, None),
        ("c c o o", 2, 3, "firing", "critical", "2025-03-01"),
        ("c c o o o", 2, 3, "resolved", None, "2025-03-01"),
        ("w w o o w", 2, 2, "pending", None, None),
        ("w w o o w w", 2, 2, "firing", "warning", "2025-03-05"),
        ("w w w", 3, 1, "firing", "warning", "2025-03-01"),
        ("w w w o", 3, 1, "resolved", None, "2025-03-01"),
        ("- - -", 2, 2, "ok", None, None),
    ],
)
def test_decay_state_table(history, persistence, clear_after, status, severity, since) -> None:
    policy = PerformancePolicy(persistence=persistence, clear_after=clear_after)
    st = decay_state(_levels(history), policy)
    assert (st.status, st.severity, st.since) == (status, severity, since)
    assert st.firing == (status == "firing")
    if status == "firing":
        assert len(st.trigger_days) == persistence
        assert st.trigger_days[0] == since
        assert all(level != "insufficient" for _, level in st.days)
    assert json.dumps(st.to_dict())


def test_decay_state_never_flaps_on_flapping_days() -> None:
    policy = PerformancePolicy(persistence=2, clear_after=2)
    days = _levels("c c o c o w o c o c")
    states = [decay_state(days[: i + 1], policy).status for i in range(len(days))]
    assert states == ["pending"] + ["firing"] * 9


def test_decay_state_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError, match="bad"):
        decay_state([("2025-03-01", "bad")], PerformancePolicy())


# ------------------------------------------------------------------------------ estimate


def _est_vs_real(model, ref, day) -> tuple[dict, dict]:
    est = estimate_performance(model, day, ref)
    real = realized_metrics(model.task, day.label, day.prediction, day.score, model.classes)
    return est, real


def test_estimate_matches_realized_on_calibrated_data(binary_ref) -> None:
    model, _, ref = binary_ref
    for seed in (20, 21, 22):
        est, real = _est_vs_real(model, ref, binary_frame(seed, 5_000))
        assert set(est) == {Metric.ACCURACY, Metric.PRECISION, Metric.RECALL, Metric.F1,
                            Metric.ROC_AUC}  # fmt: skip
        for m in (Metric.ACCURACY, Metric.PRECISION, Metric.ROC_AUC):
            assert est[m] == pytest.approx(real[m], abs=EST_TOL), (seed, m)
        for m in (Metric.RECALL, Metric.F1):
            assert est[m] == pytest.approx(real[m], abs=EST_TOL_F1), (seed, m)


def test_estimate_recalibrates_a_miscalibrated_score() -> None:
    model = make_model(TaskType.BINARY, classes=["0", "1"])

    def warp(df: pd.DataFrame) -> pd.DataFrame:  # same ranking, overconfident score
        return df.assign(score=df.score**2.5)

    ref = reference_performance(model, warp(binary_frame(30, 10_000)), n_boot=20)
    assert ref.calibration["method"] == "isotonic"
    assert ref.calibration["cv_ece_isotonic"] < ref.calibration["cv_ece_raw"]
    est, real = _est_vs_real(model, ref, warp(binary_frame(31, 5_000)))
    for m in (Metric.ACCURACY, Metric.ROC_AUC):
        assert est[m] == pytest.approx(real[m], abs=EST_TOL), m
    # without recalibration the same scores would mislead the estimate
    raw = ReferencePerformance.from_dict(
        {**ref.to_dict(), "calibration": {"method": "identity", "x": [0, 1], "y": [0, 1]}}
    )
    raw_est = estimate_performance(model, warp(binary_frame(31, 5_000)), raw)
    assert abs(raw_est[Metric.ACCURACY] - real[Metric.ACCURACY]) > EST_TOL


def test_estimate_drops_when_scores_move_towards_half(binary_ref) -> None:
    model, _, ref = binary_ref
    est_ok, _ = _est_vs_real(model, ref, binary_frame(40, 5_000))
    est_unsure, real_unsure = _est_vs_real(model, ref, binary_frame(41, 5_000, scale=0.25))
    for m in (Metric.ACCURACY, Metric.ROC_AUC):
        assert est_unsure[m] < est_ok[m] - 0.1, m
        assert est_unsure[m] == pytest.approx(real_unsure[m], abs=EST_TOL_UNSURE), m
    j = judge_estimate(model, est_unsure, 5_000, ref)
    assert j is not None and j.source == "estimated" and j.level == "critical"
    assert judge_estimate(model, est_ok, 5_000, ref).level == "ok"


def test_multiclass_estimate_is_mean_calibrated_p_correct() -> None:
    model = make_model(TaskType.MULTICLASS, classes=CLASSES3)
    ref = reference_performance(model, multiclass_frame(50, 10_000), n_boot=50)
    for temp in (1.0, 2.5):  # flatter probabilities: the estimate must follow accuracy down
        day = multiclass_frame(51, 5_000, temperature=temp)
        est, real = _est_vs_real(model, ref, day)
        assert set(est) == {Metric.ACCURACY}
        tol = EST_TOL if temp == 1.0 else EST_TOL_UNSURE
        assert est[Metric.ACCURACY] == pytest.approx(real[Metric.ACCURACY], abs=tol), temp


def test_no_estimate_for_regression_or_without_score() -> None:
    reg = make_model(TaskType.REGRESSION)
    ref = reference_performance(reg, regression_frame(60, 500), n_boot=10)
    assert estimate_performance(reg, regression_frame(61, 100), ref) == {}
    assert judge_estimate(reg, {}, 100, ref) is None
    bare = make_model(TaskType.BINARY, score=False)
    ref = reference_performance(bare, binary_frame(62, 500).drop(columns="score"), n_boot=10)
    assert ref.calibration is None and math.isnan(ref.metrics[Metric.ROC_AUC])
    assert estimate_performance(bare, binary_frame(63, 100), ref) == {}


def test_expected_auc_equals_realized_auc_on_known_labels() -> None:
    rng = np.random.default_rng(70)
    s = rng.random(500).round(2)  # ties
    y = rng.random(500) < s
    # with q in {0, 1} (labels known) the expected AUC is the realized AUC
    assert expected_roc_auc(s, y.astype(float)) == pytest.approx(skm.roc_auc_score(y, s))


# ------------------------------------------------------------------- segments, findings


def test_segment_metrics(binary_ref) -> None:
    model, ref_df, _ = binary_ref
    day = ref_df.iloc[:3_000]
    seg = segment_metrics(model, day)
    assert set(seg) == {"region"}
    assert seg["region"]["tiny"]["insufficient"] is True
    assert "roc_auc" not in seg["region"]["tiny"]
    north = day[day.region == "north"]
    want = realized_metrics(TaskType.BINARY, north.label, north.prediction, north.score)
    got = seg["region"]["north"]
    assert got["n_labelled"] == len(north) and got["insufficient"] is False
    assert {k: got[str(k)] for k in want} == pytest.approx(want)
    assert json.dumps(seg)


def test_findings_follow_the_state_and_cap_the_estimate(binary_ref) -> None:
    model, _, ref = binary_ref
    value = ref.metrics[Metric.ROC_AUC] * 0.7
    j = judge_day(model, {Metric.ROC_AUC: value}, 2_000, ref, coverage=0.4)
    est = judge_day(model, {Metric.ROC_AUC: value}, 9_000, ref, estimate={Metric.ROC_AUC: value})
    assert j.level == est.level == "critical"
    firing = decay_state(_levels("o c c"), model.performance)
    found = performance_findings(model, "2025-03-03", j, firing, est)
    by_signal = {f.signal: f for f in found}
    decay = by_signal[Signal.PERFORMANCE_DECAY.value]
    assert decay.severity is Severity.CRITICAL and decay.asset == "performance_report"
    assert decay.threshold == pytest.approx(j.critical_threshold)
    ev = decay.to_dict()["evidence"]
    assert ev["trigger_days"] == ["2025-03-02", "2025-03-03"] and ev["coverage"] == 0.4
    assert ev["n_labelled"] == 2_000 and ev["band"] == [j.band_low, j.band_high]
    estimated = by_signal[Signal.ESTIMATED_PERFORMANCE_DECAY.value]
    assert estimated.severity is Severity.WARNING  # an estimate can warn, not act
    json.dumps([f.to_dict() for f in found])
    pending = decay_state(_levels("o o c"), model.performance)
    assert [f.signal for f in performance_findings(model, "d", j, pending, None)] == []
    quiet = make_model(TaskType.BINARY, classes=["0", "1"], estimate_warning=False)
    assert performance_findings(quiet, "d", j, pending, est) == []
