"""Multivariate drift on the profiles' samples: a correlation flip that no single feature shows
is found, unchanged days (small, large, in correlated groups) are not, and the numbers are
scikit-learn's."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from aiops_pipelines.core.config import ModelConfig, MultivariateDriftConfig, parse_config
from aiops_pipelines.demo import drift_trials as t
from aiops_pipelines.demo.generators import eta_features
from aiops_pipelines.signals.drift.calibration import calibrate_reference
from aiops_pipelines.signals.drift.day import drift_for_day
from aiops_pipelines.signals.drift.multivariate import (
    MAX_LAG,
    _classifier_matrix,
    _PcaCoder,
    blocked_folds,
    design_effect_series,
    domain_classifier,
    multivariate_drift,
    out_of_fold_scores,
    placements,
)
from aiops_pipelines.signals.profile.builder import (
    ProfileBuilder,
    SampleKeeper,
    build_reference_profile,
)

NUMERIC = ["x1", "x2", "amount", "visits"]
CATEGORICAL = ["plan", "channel"]
FEATURES = NUMERIC + CATEGORICAL
GROUP_DEFF = np.mean(np.arange(2, 9) ** 2) / np.mean(np.arange(2, 9))


def joint_model(
    numeric: list[str] = NUMERIC, categorical: list[str] = CATEGORICAL, **multivariate: object
) -> ModelConfig:
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": "/tmp",
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    {
                        "name": "joint",
                        "task": "binary_classification",
                        "features": {"numeric": numeric, "categorical": categorical},
                        "predictions": {"url": "sqlite://", "table": "p"},
                        "reference": {"url": "sqlite://", "table": "r"},
                        "thresholds": {"windows": [1]},
                        "multivariate": multivariate,
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


def correlation_flip_rows(
    rng: np.random.Generator, n: int, *, rho: float = 0.8, grouped: bool = False
) -> pd.DataFrame:
    """n rows in arrival order whose x1 ~ N(50, 10) and x2 ~ N(5, 2) have correlation `rho`:
    the marginals are the same whatever `rho`, so only the joint distribution can tell +0.8
    from -0.8. With `grouped`, rows arrive in groups of 2-8 sharing every value."""
    sizes = t.group_sizes(rng, n, grouped)
    k = len(sizes)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], k)
    frame = pd.DataFrame(
        {
            "x1": 50 + 10 * z[:, 0],
            "x2": 5 + 2 * z[:, 1],
            "amount": rng.normal(100, 15, k),
            "visits": rng.poisson(3, k).astype(float),
            "plan": rng.choice([f"p{i}" for i in range(5)], k, p=t.PLAN_SHARES),
            "channel": rng.choice(["web", "app", "store"], k, p=[0.5, 0.3, 0.2]),
        }
    )
    return frame.iloc[np.repeat(np.arange(k), sizes)].reset_index(drop=True)


def reverse_coupling(frame: pd.DataFrame, a: str, b: str, rng: np.random.Generator) -> pd.DataFrame:
    """The demo's correlation flip: `b`'s values re-paired with `a`'s in reverse rank order
    (ties of `a` broken at random), so both marginals stay exactly as they were and a positive
    dependence becomes the most negative one the marginals allow."""
    order = np.lexsort((rng.random(len(frame)), frame[a].to_numpy()))
    out = frame.reset_index(drop=True).copy()
    values = np.sort(out[b].to_numpy())[::-1]  # no missing values in `b`
    out.loc[order, b] = values
    return out


def kept_sample(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """What a profile keeps of these rows: SampleKeeper's 5,000-row sample in arrival order."""
    return SampleKeeper(5000, seed=seed).update(frame).sample()


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return correlation_flip_rows(np.random.default_rng(1), 20_000)


def test_correlation_flip_is_found_by_multivariate_drift_and_by_no_feature(
    reference: pd.DataFrame,
) -> None:
    model = joint_model()
    day = correlation_flip_rows(np.random.default_rng(2), 3000, rho=-0.8)
    profile = build_reference_profile(lambda: [reference], NUMERIC, CATEGORICAL)
    calibration = calibrate_reference([reference], profile, FEATURES)
    # the day on the reference's bins, as feature_profile stores it
    today = ProfileBuilder(profile.spec, NUMERIC, CATEGORICAL).update(day).result()
    univariate = drift_for_day(model, "2026-03-02", profile, today, calibration=calibration)
    assert univariate.findings == [] and univariate.report.n_drifted == 0

    res = multivariate_drift(model, "2026-03-02", kept_sample(reference, 0), kept_sample(day, 1))
    assert res.status == "critical"
    [finding] = res.findings
    assert finding.signal == "multivariate_drift" and finding.asset == "drift_report"
    d = res.domain
    assert d is not None and d.drifted and d.auc > 0.8 and d.p_value < 1e-10
    assert finding.value == d.auc and finding.threshold == d.threshold == 0.55
    assert {c for c, _ in d.top_features[:2]} == {"x1", "x2"}
    ev = finding.evidence
    assert ev["n_reference"] == 5000 and ev["n_day"] == 3000
    assert ev["domain_classifier"]["auc"] == d.auc
    assert ev["pca"]["error_ratio"] == res.pca.error_ratio
    assert ev["domain_classifier"]["top_features"][0][0] in ("x1", "x2")
    assert set(res.metrics) == {
        ("domain_auc", ""),
        ("domain_auc_p_value", ""),
        ("pca_error_ratio", ""),
        ("pca_error_p_value", ""),
    }


def test_demo_eta_kitchen_time_decoupled_from_order_size_is_found_by_multivariate_only() -> None:
    # the recipe for the demo's case: model eta, `prep_time_min` re-paired with `num_items` in
    # reverse rank order on the incident's days (marginals unchanged, correlation +0.6 -> -0.6)
    numeric = ["distance_km", "num_items", "prep_time_min", "traffic_index"]
    categorical = ["city", "vehicle_type", "weather"]
    model = joint_model(numeric, categorical)
    rng = np.random.default_rng(8)
    ref = eta_features(rng, rng.integers(0, 24, 20_000))
    day = eta_features(rng, rng.integers(0, 24, 3000))
    flipped = reverse_coupling(day, "num_items", "prep_time_min", rng)
    assert flipped["prep_time_min"].sort_values().tolist() == sorted(day["prep_time_min"])
    assert day["num_items"].corr(day["prep_time_min"]) > 0.5
    assert flipped["num_items"].corr(flipped["prep_time_min"]) < -0.5
    profile = build_reference_profile(lambda: [ref], numeric, categorical)
    calibration = calibrate_reference([ref], profile, numeric + categorical)
    today = ProfileBuilder(profile.spec, numeric, categorical).update(flipped).result()
    univariate = drift_for_day(model, "2026-03-02", profile, today, calibration=calibration)
    assert univariate.findings == []
    res = multivariate_drift(model, "2026-03-02", kept_sample(ref, 0), kept_sample(flipped, 1))
    assert res.status == "critical" and res.domain is not None
    assert {c for c, _ in res.domain.top_features[:2]} == {"num_items", "prep_time_min"}
    calm = multivariate_drift(model, "2026-03-01", kept_sample(ref, 0), kept_sample(day, 1))
    assert calm.status == "ok"


def test_pca_reconstruction_error_rises_when_the_discarded_direction_fills() -> None:
    # two features only: PCA keeps the (x1 + x2) axis and discards (x1 - x2); the flip swaps
    # their variances, so the day's rows no longer lie near the kept axis
    model = joint_model(["x1", "x2"], [], pca_variance=0.8)
    rng = np.random.default_rng(3)
    ref = correlation_flip_rows(rng, 5000)[["x1", "x2"]]
    day = correlation_flip_rows(rng, 1000, rho=-0.8)[["x1", "x2"]]
    res = multivariate_drift(model, "d", ref, day)
    assert res.pca is not None and res.pca.n_components == 1 and res.pca.drifted
    assert res.pca.error_ratio > 3  # 1.8 / 0.2 = 9, less with errors capped at q99.5
    same = multivariate_drift(model, "d", ref, correlation_flip_rows(rng, 1000)[["x1", "x2"]])
    assert same.pca is not None and not same.pca.drifted and same.findings == []


@pytest.mark.parametrize("grouped", [False, True])
def test_unchanged_days_are_not_found(reference: pd.DataFrame, grouped: bool) -> None:
    model = joint_model()
    rng = np.random.default_rng(4)
    ref = kept_sample(correlation_flip_rows(rng, 20_000, grouped=grouped), 0)
    for seed in range(4):
        day = correlation_flip_rows(rng, 2000, grouped=grouped)
        res = multivariate_drift(model, "d", ref, kept_sample(day, seed), seed=seed)
        assert res.status == "ok", res.evidence()
        assert res.findings == [] and res.domain is not None and res.pca is not None
    if grouped:  # the day's own sample is the day: its groups inflate the AUC's variance
        assert res.domain.design_effect_day > 2


def test_small_unchanged_day_does_not_fire_and_a_tiny_one_is_insufficient(
    reference: pd.DataFrame,
) -> None:
    model = joint_model()
    ref = kept_sample(reference, 0)
    rng = np.random.default_rng(5)
    for seed in range(4):
        res = multivariate_drift(model, "d", ref, correlation_flip_rows(rng, 150), seed=seed)
        assert res.status == "ok" and res.findings == []
        assert res.domain is not None and res.domain.threshold > 0.55  # the null is wider
    tiny = multivariate_drift(model, "d", ref, correlation_flip_rows(rng, 60, rho=-0.8))
    assert tiny.status == "insufficient" and tiny.findings == [] and tiny.metrics == {}
    assert "multivariate.min_rows = 100" in tiny.reason
    missing = multivariate_drift(model, "d", None, correlation_flip_rows(rng, 500))
    assert missing.status == "insufficient" and "no reference sample" in missing.reason
    lacking = multivariate_drift(model, "d", ref.drop(columns="plan"), ref)
    assert lacking.status == "insufficient" and "lacks plan" in lacking.reason
    off = multivariate_drift(joint_model(enabled=False), "d", ref, ref)
    assert off.status == "off" and off.findings == []


def test_auc_is_sklearns_roc_auc_of_the_out_of_fold_scores(reference: pd.DataFrame) -> None:
    cfg = MultivariateDriftConfig()
    rng = np.random.default_rng(6)
    ref = kept_sample(reference, 0).iloc[:1500]
    day = correlation_flip_rows(rng, 700, rho=0.3)
    x, mask = _classifier_matrix(ref, day, NUMERIC, CATEGORICAL)
    y = np.r_[np.zeros(len(ref), int), np.ones(len(day), int)]
    scores, fold, models = out_of_fold_scores(x, y, mask, cfg.folds)
    d = domain_classifier(ref, day, NUMERIC, CATEGORICAL, cfg)
    # the tested AUC is the mean of the folds' AUCs; the pooled one is kept beside it
    per_fold = [roc_auc_score(y[fold == f], scores[fold == f]) for f in range(cfg.folds)]
    assert d.fold_aucs == pytest.approx(per_fold, abs=1e-6)
    assert d.auc == pytest.approx(np.mean(per_fold), rel=1e-12)
    assert d.pooled_auc == roc_auc_score(y, scores)
    # each fold holds both classes in proportion (to a block of rows), and every row is scored
    # by a model that never saw it: fold 1's model scores fold 1's rows
    for f in range(cfg.folds):
        assert abs((y[fold == f] == 1).sum() - len(day) / cfg.folds) <= MAX_LAG
    test = fold == 1
    assert np.allclose(models[1].predict_proba(x[test])[:, 1], scores[test])
    # DeLong: a fold's AUC is the mean of either side's placement values
    v_pos, v_neg = placements(scores[test], y[test])
    assert v_pos.mean() == pytest.approx(per_fold[1]) and v_neg.mean() == pytest.approx(per_fold[1])


def test_pca_errors_are_sklearns_reconstruction_errors(reference: pd.DataFrame) -> None:
    ref = kept_sample(reference, 0)
    coder = _PcaCoder(ref, NUMERIC, CATEGORICAL)
    x = coder.transform(ref)
    # every feature weighs the same: unit variance per number, per categorical block
    assert x[:, :4].var(axis=0) == pytest.approx(np.ones(4), rel=1e-6)
    assert x[:, 4:11].var(axis=0).sum() == pytest.approx(1.0, rel=1e-6)
    pca = PCA(n_components=0.9, svd_solver="full").fit(x)
    rebuilt = pca.inverse_transform(pca.transform(x))
    centred = x - pca.mean_
    proj = centred @ pca.components_.T
    ours = (centred * centred).sum(axis=1) - (proj * proj).sum(axis=1)
    assert ours == pytest.approx(((x - rebuilt) ** 2).sum(axis=1), abs=1e-9)


def test_identical_rows_share_a_fold_and_groups_inflate_the_design_effect() -> None:
    rng = np.random.default_rng(7)
    y = np.r_[np.zeros(100, int), np.ones(60, int)]
    x = rng.normal(size=(160, 2))
    x[150] = x[101]  # a day row repeated far from its twin (a sample in random order)
    folds = blocked_folds(y, 5, x)
    assert folds[150] == folds[101] == 0
    assert np.bincount(blocked_folds(y, 5)[y == 1]).tolist() == [12] * 5
    sizes = t.group_sizes(rng, 20_000, True)
    grouped = np.repeat(rng.random(len(sizes)), sizes)
    assert design_effect_series(grouped) == pytest.approx(GROUP_DEFF, rel=0.15)
    assert design_effect_series(rng.random(20_000)) == pytest.approx(1.0, abs=0.05)


def test_thresholds_out_of_range_are_refused() -> None:
    with pytest.raises(ValidationError, match="0.5 < warning <= critical < 1"):
        MultivariateDriftConfig(auc=(0.5, 0.7))
    with pytest.raises(ValidationError, match="1 < warning <= critical"):
        MultivariateDriftConfig(error_ratio=(1.5, 1.2))
    assert math.isclose(MultivariateDriftConfig().alpha, 0.01)
