"""Drift statistics on profiles, checked against SciPy and Evidently, and the verdict rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js

from aiops_pipelines.core.config import DriftMethod, DriftThresholds
from aiops_pipelines.core.errors import ConfigError
from aiops_pipelines.core.findings import Finding, Severity, Signal
from aiops_pipelines.signals.drift.compare import compare_profiles, null_rate_drift
from aiops_pipelines.signals.drift.day import report_findings
from aiops_pipelines.signals.drift.statistics import (
    benjamini_hochberg,
    categorical_bins,
    chisquare,
    jensenshannon,
    ks_from_profiles,
    ks_pvalue,
    numeric_bins,
    psi,
    wasserstein_distance,
    wasserstein_normed,
)
from aiops_pipelines.signals.profile.builder import build_reference_profile, profile_frame
from aiops_pipelines.signals.profile.profiles import DatasetProfile

# Stated tolerances (also in py's docstring):
# |normed W1 from a profile with 1000 quantile bins - exact normed W1| (py docstring):
W1_TOL = 0.002  # normal and exponential data
W1_TOL_HEAVY = 0.006  # log-normal: wide extreme bins where the two CDFs can cross
JS_TOL = 1e-6  # categorical Jensen-Shannon vs Evidently (the algebra is exact)


def profiles(
    ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str], categorical: list[str], **kw
) -> tuple[DatasetProfile, DatasetProfile]:
    rp = build_reference_profile(lambda: [ref], numeric, categorical, **kw)
    return rp, profile_frame(cur, rp.spec, numeric, categorical)


# ------------------------------------------------------------------------ SciPy agreement


@pytest.fixture(scope="module")
def numeric_pairs() -> list[tuple[pd.DataFrame, pd.DataFrame, DatasetProfile, DatasetProfile]]:
    rng = np.random.default_rng(11)
    out = []
    for n_ref, n_cur, shift in [
        (5_000, 5_000, 0.0),
        (5_000, 3_000, 0.3),
        (20_000, 8_000, 0.05),
        (2_000, 500, 0.0),
    ]:
        ref = pd.DataFrame(
            {
                "normal": rng.normal(0, 1, n_ref),
                "expo": rng.exponential(1, n_ref),
                "ints": rng.integers(0, 30, n_ref),
                "lognormal": rng.lognormal(0, 1, n_ref),
            }
        )
        cur = pd.DataFrame(
            {
                "normal": rng.normal(shift, 1 + shift, n_cur),
                "expo": rng.exponential(1 + shift, n_cur),
                "ints": rng.integers(0, 30 + int(10 * shift), n_cur),
                "lognormal": rng.lognormal(shift, 1, n_cur),
            }
        )
        rp, cp = profiles(ref, cur, list(ref), [])
        out.append((ref, cur, rp, cp))
    return out


def test_ks_brackets_scipy(numeric_pairs) -> None:
    for ref, cur, rp, cp in numeric_pairs:
        for col in ("normal", "expo", "lognormal"):
            ks = ks_from_profiles(rp.columns[col], cp.columns[col])
            exact = stats.ks_2samp(ref[col], cur[col], method="asymp")
            # the edges give a lower bound, the stated bound an upper bound, of the exact D
            assert ks.statistic <= exact.statistic + 1e-12
            assert exact.statistic <= ks.statistic_upper_bound + 1e-12
            # the upper bound is at most D_edges + the largest bin mass
            mass = max(
                (rp.columns[col].counts / len(ref)).max(), (cp.columns[col].counts / len(cur)).max()
            )
            assert ks.statistic_upper_bound <= ks.statistic + mass + 1e-12
            # with ~1000 reference-quantile bins D is within 1e-3 of the exact one
            assert exact.statistic - ks.statistic < 1e-3
            # p-value: scipy's asymptotic formula at D_edges, so never below scipy's own
            n = len(ref) * len(cur) / (len(ref) + len(cur))
            assert ks.p_value == pytest.approx(stats.kstwo.sf(ks.statistic, round(n)), rel=1e-12)
            assert ks.p_value >= exact.pvalue * (1 - 1e-12)
            assert abs(ks.p_value - exact.pvalue) < 0.03 or ks.p_value < 1e-6


def test_ks_and_w1_exact_on_discrete_columns(numeric_pairs) -> None:
    for ref, cur, rp, cp in numeric_pairs:
        ks = ks_from_profiles(rp.columns["ints"], cp.columns["ints"])
        exact = stats.ks_2samp(ref["ints"], cur["ints"], method="asymp")
        assert ks.statistic == pytest.approx(exact.statistic, abs=1e-12)
        assert ks.statistic_upper_bound == pytest.approx(exact.statistic, abs=1e-12)
        assert ks.p_value == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-300)
        w1 = stats.wasserstein_distance(ref["ints"], cur["ints"]) / np.std(ref["ints"])
        assert wasserstein_normed(rp.columns["ints"], cp.columns["ints"]) == (
            pytest.approx(w1, rel=1e-9)
        )


def test_w1_close_to_scipy_on_continuous_columns(numeric_pairs) -> None:
    for ref, cur, rp, cp in numeric_pairs:
        for col, tol in (("normal", W1_TOL), ("expo", W1_TOL), ("lognormal", W1_TOL_HEAVY)):
            exact = stats.wasserstein_distance(ref[col], cur[col]) / np.std(ref[col])
            ours = wasserstein_normed(rp.columns[col], cp.columns[col])
            assert abs(ours - exact) < tol, (col, ours, exact)


def test_w1_tails_are_exact() -> None:
    # everything of the current lies above the reference range: W1 is exact
    ref = pd.DataFrame({"v": np.linspace(0, 1, 1001)})
    cur = pd.DataFrame({"v": np.linspace(5, 7, 300)})
    rp, cp = profiles(ref, cur, ["v"], [])
    exact = stats.wasserstein_distance(ref["v"], cur["v"])
    assert wasserstein_distance(rp.columns["v"], cp.columns["v"]) == pytest.approx(exact, rel=1e-9)


def test_chisquare_is_scipy_homogeneity_test_without_yates() -> None:
    ref = np.array([120, 80, 0, 35, 5])
    cur = np.array([100, 90, 0, 20, 17])
    ours = chisquare(ref, cur)
    table = np.vstack([ref, cur])[:, [0, 1, 3, 4]]  # empty categories dropped
    exp = stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(exp.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(exp.pvalue, rel=1e-9)
    assert ours.dof == exp.dof == 3
    # 2 x 2: scipy applies Yates' correction by default, we do not; ours is the z-test squared
    ref2, cur2 = np.array([300, 700]), np.array([340, 660])
    two = chisquare(ref2, cur2)
    plain = stats.chi2_contingency(np.vstack([ref2, cur2]), correction=False)
    yates = stats.chi2_contingency(np.vstack([ref2, cur2]))
    assert two.p_value == pytest.approx(plain.pvalue, rel=1e-9)
    assert two.p_value < yates.pvalue
    pooled = (300 + 340) / 2000
    z = (0.34 - 0.30) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert two.statistic == pytest.approx(z * z, rel=1e-12)
    # degenerate tables
    assert chisquare([5, 0], [7, 0]).p_value == 1.0
    assert math.isnan(chisquare([5, 3], [0, 0]).p_value)


def test_jensenshannon_and_psi() -> None:
    ref = np.array([50, 30, 20, 0])
    cur = np.array([30, 30, 30, 10])
    assert jensenshannon(ref, cur) == pytest.approx(scipy_js(ref, cur), rel=1e-12)
    assert jensenshannon(ref, ref * 3) == 0.0
    # merging categories the reference never had leaves JS unchanged (the unseen bucket)
    split = jensenshannon([50, 30, 20, 0, 0], [30, 30, 30, 4, 6])
    assert split == pytest.approx(jensenshannon(ref, cur), rel=1e-12)
    # PSI by hand, with Evidently's zero fill (an empty share becomes 1e-4)
    p = np.array([0.5, 0.3, 0.2, 1e-4])
    q = np.array([0.3, 0.3, 0.3, 0.1])
    assert psi(ref, cur) == pytest.approx(float(np.sum((p - q) * np.log(p / q))))
    assert psi(ref, ref) == 0.0
    # bins empty on both sides carry no information and change nothing
    assert psi([*ref, 0, 0], [*cur, 0, 0]) == psi(ref, cur)


def test_ks_pvalue_large_samples_use_the_limiting_distribution() -> None:
    # exact finite-n formula (scipy's) up to n*m/(n+m) = 10,000, then the Kolmogorov limit
    assert ks_pvalue(0.02, 20_000, 20_000) == stats.kstwo.sf(0.02, 10_000)
    d = 0.003  # p ~ 2e-4 at 1M vs 1M; scipy's kstwo.sf takes ~0.5 s here
    ours = ks_pvalue(d, 1_000_000, 1_000_000)
    assert ours == pytest.approx(stats.kstwobign.sf(math.sqrt(500_000) * d), rel=1e-12)
    assert ours == pytest.approx(stats.kstwo.sf(d, 500_000), rel=0.01)


def test_benjamini_hochberg() -> None:
    p = [0.01, 0.04, 0.03, 0.20, 0.005]
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.20 times 5/rank = .025, .025, .05, .05, .20
    expected = [0.025, 0.05, 0.05, 0.20, 0.025]
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-12)
    rng = np.random.default_rng(3)
    many = rng.random(200) ** 3
    np.testing.assert_allclose(
        benjamini_hochberg(many), stats.false_discovery_control(many, method="bh"), rtol=1e-12
    )
    assert benjamini_hochberg([]).size == 0
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1, float("nan")])


def test_null_rate_drift_matches_two_proportion_z_test() -> None:
    from statsmodels.stats.proportion import proportions_ztest

    ref = pd.DataFrame({"v": np.where(np.arange(2_000) % 10 == 0, np.nan, 1.0)})  # 10% null
    cur = pd.DataFrame({"v": np.where(np.arange(1_000) % 4 == 0, np.nan, 1.0)})  # 25% null
    rp, cp = profiles(ref, cur, ["v"], [])
    res = null_rate_drift(rp.columns["v"], cp.columns["v"], DriftThresholds())
    z, p = proportions_ztest([250, 200], [1_000, 2_000], alternative="larger")
    assert res.increase == pytest.approx(0.15)
    assert res.z == pytest.approx(z, rel=1e-12) and res.p_value == pytest.approx(p, rel=1e-9)
    assert res.drifted and res.severity == "critical"  # +15 points >= 0.15


# --------------------------------------------------------------------- Evidently agreement


@pytest.fixture(scope="module")
def evidently_run() -> tuple[dict[str, tuple[str, float]], DatasetProfile, DatasetProfile]:
    """One Evidently run (its import is ~10 s, so once per module) on > 1000 reference rows."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    rng = np.random.default_rng(0)
    n_ref, n_cur = 3_000, 2_000
    ref = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n_ref),
            "x_shift": rng.normal(0, 1, n_ref),
            "y": rng.exponential(1, n_ref),
            "y_shift": rng.exponential(1, n_ref),
            "few": rng.integers(0, 4, n_ref).astype(float),
            "cat": rng.choice(list("abc"), n_ref, p=[0.5, 0.3, 0.2]),
            "bin": rng.choice(["u", "v"], n_ref),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n_cur),
            "x_shift": rng.normal(0.3, 1, n_cur),
            "y": rng.exponential(1, n_cur),
            "y_shift": rng.exponential(1.3, n_cur),
            "few": rng.integers(0, 4, n_cur).astype(float),
            # two categories the reference never had
            "cat": rng.choice(list("abcde"), n_cur, p=[0.3, 0.3, 0.3, 0.05, 0.05]),
            "bin": rng.choice(["u", "v"], n_cur, p=[0.45, 0.55]),
        }
    )
    numeric = ["x", "x_shift", "y", "y_shift", "few"]
    categorical = ["cat", "bin"]
    dd = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    metrics = [ValueDrift(column=c) for c in numeric + categorical]
    metrics += [ValueDrift(column=c, method="psi") for c in ("bin", "few")]
    snap = Report(metrics).run(
        Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd)
    )
    values = {}
    for m in snap.dict()["metrics"]:
        key = m["config"]["column"] + ("/psi" if m["config"]["method"].lower() == "psi" else "")
        values[key] = (m["config"]["method"], float(m["value"]))
    rp, cp = profiles(ref, cur, numeric, categorical)
    return values, rp, cp


def test_normed_wasserstein_matches_evidently(evidently_run) -> None:
    values, rp, cp = evidently_run
    for col in ("x", "x_shift", "y", "y_shift"):
        method, value = values[col]
        assert method == "Wasserstein distance (normed)"
        ours = wasserstein_normed(rp.columns[col], cp.columns[col])
        assert abs(ours - value) < W1_TOL, (col, ours, value)
    assert values["x_shift"][1] > 0.1 > values["x"][1]  # the shift is visible to both


def test_jensenshannon_matches_evidently(evidently_run) -> None:
    values, rp, cp = evidently_run
    for col in ("cat", "bin"):
        method, value = values[col]
        assert method == "Jensen-Shannon distance"
        r, c = categorical_bins(rp.columns[col], cp.columns[col])
        assert abs(jensenshannon(r, c) - value) < JS_TOL
    # a numeric column with 4 values: Evidently also uses JS over the values
    method, value = values["few"]
    assert method == "Jensen-Shannon distance"
    r, c, how = numeric_bins(rp.columns["few"], cp.columns["few"])
    assert how == "values" and abs(jensenshannon(r, c) - value) < JS_TOL
    # PSI with Evidently's zero fill, on the same category counts
    assert abs(psi(r, c) - values["few/psi"][1]) < JS_TOL
    r, c = categorical_bins(rp.columns["bin"], cp.columns["bin"])
    assert abs(psi(r, c) - values["bin/psi"][1]) < JS_TOL


def test_report_matches_evidently_verdicts(evidently_run) -> None:
    values, rp, cp = evidently_run
    # with Evidently's effect levels (JS 0.1) the verdicts agree: on 2,000 rows the calibrated
    # significance gate never vetoes an effect that large, nor passes one below it
    evidently_levels = DriftThresholds(jensenshannon=(0.1, 0.2))
    report = compare_profiles(rp, cp, evidently_levels, features=list(rp.columns))
    by_col = {c.column: c for c in report.features}
    for col, (_, value) in values.items():
        if col.endswith("/psi"):
            continue
        assert by_col[col].method in ("wasserstein", "jensenshannon")
        assert by_col[col].drifted == (value >= 0.1), col  # Evidently: score >= 0.1


# ---------------------------------------------------------------------------- verdicts


def frame(
    n: int, seed: int, shifts: dict[str, float] | None = None, n_num: int = 16, n_cat: int = 4
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shifts = shifts or {}
    data: dict[str, np.ndarray] = {}
    for i in range(n_num):
        data[f"f{i}"] = rng.normal(shifts.get(f"f{i}", 0.0), 1.0, n)
    for i in range(n_cat):
        data[f"c{i}"] = rng.choice(
            np.array(["a", "b", "c", "d"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1]
        )
    return pd.DataFrame(data)


NUMS = [f"f{i}" for i in range(16)]
CATS = [f"c{i}" for i in range(4)]


@pytest.mark.parametrize("n", [300, 5_000])
def test_no_false_drift_on_same_distribution(n: int) -> None:
    rp, cp = profiles(frame(n, seed=21), frame(n, seed=22), NUMS, CATS)
    report = compare_profiles(rp, cp, DriftThresholds(), features=NUMS + CATS)
    assert report.n_features == 20
    assert report.n_drifted == 0 and report.dataset_drift_severity == "none"
    # the same effect sizes at every n; what changes with n is the significance behind them
    assert {c.method for c in report.features} == {"wasserstein", "jensenshannon"}
    assert report_findings(report, tenant="t", model="m", partition="2025-01-01") == []


def test_injected_mean_shift_detected_on_shifted_columns_only() -> None:
    shifted = {"f1": 0.5, "f4": 0.15, "f9": -0.4}
    rp, cp = profiles(frame(5_000, seed=31), frame(4_000, seed=32, shifts=shifted), NUMS, CATS)
    report = compare_profiles(rp, cp, DriftThresholds(), features=NUMS + CATS)
    assert sorted(c.column for c in report.drifted_features) == sorted(shifted)
    sev = {c.column: c.severity for c in report.drifted_features}
    assert sev == {"f1": "critical", "f4": "warning", "f9": "critical"}  # W1/std ~ |shift|
    f1 = next(c for c in report.features if c.column == "f1")
    assert f1.method == "wasserstein" and f1.q_value < 1e-10
    assert f1.evidence["current_mean"] - f1.evidence["reference_mean"] == pytest.approx(
        0.5, abs=0.06
    )
    assert report.drift_share == pytest.approx(3 / 20)
    assert report.dataset_drift_severity == "none"  # 15% < 30%
    findings = report_findings(report, tenant="acme", model="churn", partition="2025-01-02")
    assert [f.column for f in findings] == ["f1", "f4", "f9"]
    f = findings[0]
    assert isinstance(f, Finding) and f.signal == Signal.FEATURE_DRIFT.value
    assert f.severity is Severity.CRITICAL and f.threshold == 0.2 and f.value >= 0.2
    assert f.evidence["n_reference"] == 5_000 and f.evidence["n_current"] == 4_000
    assert f.evidence["q_value"] == f1.q_value and "ks_p" in f.evidence
    json.dumps(f.to_dict(), allow_nan=False)
    json.dumps(report.to_dict(), allow_nan=False)


def test_dataset_drift_when_many_features_drift() -> None:
    shifted = {f"f{i}": 0.5 for i in range(8)}
    rp, cp = profiles(frame(3_000, seed=41), frame(3_000, seed=42, shifts=shifted), NUMS, CATS)
    report = compare_profiles(rp, cp, DriftThresholds(), features=NUMS + CATS)
    assert report.n_drifted == 8 and report.dataset_drift_severity == "warning"  # 40%
    findings = report_findings(report, tenant="t", model="m", partition="p")
    ds = [f for f in findings if f.signal == Signal.DATASET_DRIFT.value]
    assert len(ds) == 1 and ds[0].value == pytest.approx(0.4) and ds[0].threshold == 0.3


def test_small_samples_need_significance_and_an_effect() -> None:
    rp, cp = profiles(frame(400, seed=51), frame(400, seed=52, shifts={"f0": 0.8}), NUMS, CATS)
    report = compare_profiles(rp, cp, DriftThresholds(), features=NUMS + CATS)
    f0 = next(c for c in report.features if c.column == "f0")
    assert f0.method == "wasserstein" and f0.evidence["significance_test"] == "ks+rank"
    assert f0.drifted and f0.severity == "critical" and f0.q_value < 0.001
    assert [c.column for c in report.drifted_features] == ["f0"]
    # on 400 rows sampling noise alone puts some Jensen-Shannon distances past the 0.02
    # minimum: the significance gate is what keeps them quiet
    noisy = [c for c in report.features if c.kind == "categorical" and c.statistic >= 0.02]
    assert noisy and not any(c.drifted for c in noisy)


def test_few_distinct_numeric_values_tested_as_categories() -> None:
    rng = np.random.default_rng(61)
    ref = pd.DataFrame({"k": rng.integers(0, 3, 4_000)})
    cur = pd.DataFrame({"k": rng.choice([0, 1, 2], 4_000, p=[0.2, 0.3, 0.5])})
    rp, cp = profiles(ref, cur, ["k"], [])
    col = compare_profiles(rp, cp, DriftThresholds(), features=["k"]).features[0]
    assert col.method == "jensenshannon" and col.evidence["n_distinct_reference"] == 3
    assert col.evidence["significance_test"] == "chisquare+share" and col.drifted


def test_null_rate_jump_detected() -> None:
    ref, cur = frame(3_000, seed=71), frame(3_000, seed=72)
    cur.loc[cur.index[:600], "f3"] = np.nan  # 0% -> 20% missing
    cur.loc[cur.index[:90], "c1"] = None  # 0% -> 3%: below the 5-point threshold
    rp, cp = profiles(ref, cur, NUMS, CATS)
    report = compare_profiles(rp, cp, DriftThresholds(), features=NUMS + CATS)
    flagged = [r for r in report.null_rates if r.drifted]
    assert [(r.column, r.severity) for r in flagged] == [("f3", "critical")]
    assert flagged[0].increase == pytest.approx(0.2) and flagged[0].p_value < 1e-10
    assert report.n_drifted == 0  # the non-missing values did not change
    findings = report_findings(report, tenant="t", model="m", partition="p")
    assert [(f.signal, f.column) for f in findings] == [(Signal.NULL_RATE_DRIFT.value, "f3")]


def test_unseen_category_detected() -> None:
    ref, cur = frame(2_000, seed=81), frame(2_000, seed=82)
    cur.loc[cur.index[:60], "c2"] = "zebra"  # 3% unseen
    rp, cp = profiles(ref, cur, NUMS, CATS)
    report = compare_profiles(rp, cp, DriftThresholds(), features=NUMS + CATS)
    flagged = [u for u in report.unseen if u.drifted]
    assert len(flagged) == 1 and flagged[0].column == "c2"
    assert flagged[0].share == pytest.approx(0.03) and flagged[0].top == [("zebra", 60)]
    assert flagged[0].severity == "warning"
    findings = report_findings(report, tenant="t", model="m", partition="p")
    unseen = [f for f in findings if f.signal == Signal.UNSEEN_CATEGORY.value]
    assert len(unseen) == 1 and "zebra" in unseen[0].message


def test_prediction_columns_form_their_own_family() -> None:
    rng = np.random.default_rng(91)
    ref = frame(3_000, seed=91).assign(score=rng.beta(2, 5, 3_000))
    cur = frame(3_000, seed=92).assign(score=rng.beta(3, 4, 3_000))
    rp, cp = profiles(ref, cur, [*NUMS, "score"], CATS)
    report = compare_profiles(
        rp, cp, DriftThresholds(), features=NUMS + CATS, prediction_columns=["score"]
    )
    (pred,) = report.predictions
    assert pred.role == "prediction" and pred.drifted and pred.q_value == pred.p_value
    assert report.n_features == 20 and report.n_drifted == 0
    signals = [f.signal for f in report_findings(report, tenant="t", model="m", partition="p")]
    assert signals == [Signal.PREDICTION_DRIFT.value]


def test_method_overrides() -> None:
    rp, cp = profiles(
        frame(3_000, seed=101), frame(3_000, seed=102, shifts={"f2": 0.6}), NUMS, CATS
    )
    thresholds = DriftThresholds(method=DriftMethod.KS, per_column_method={"f2": "psi"})
    report = compare_profiles(rp, cp, thresholds, features=NUMS + CATS)
    methods = {c.column: c.method for c in report.features}
    tests = {c.column: c.evidence["significance_test"] for c in report.features}
    # a test method keeps its kind's effect size: KS with W1/std, chi-square with JS
    assert methods["f2"] == "psi" and methods["f0"] == "wasserstein" and tests["f0"] == "ks"
    assert methods["c0"] == "jensenshannon" and tests["c0"] == "chisquare"
    assert "method_note" in next(c for c in report.features if c.column == "c0").evidence
    f2 = next(c for c in report.features if c.column == "f2")
    assert f2.drifted and f2.threshold == 0.1 and f2.statistic == f2.evidence["psi"]
    auto = DriftThresholds(method=DriftMethod.PSI, per_column_method={"f0": DriftMethod.AUTO})
    report = compare_profiles(rp, cp, auto, features=["f0", "f1"])
    assert [c.method for c in report.features] == ["wasserstein", "psi"]
    with pytest.raises(ConfigError, match="categorical"):
        compare_profiles(
            rp, cp, DriftThresholds(per_column_method={"c1": "wasserstein"}), features=NUMS + CATS
        )


def test_compare_checks_the_spec_of_compared_columns_only() -> None:
    ref = frame(500, seed=111)
    rp = build_reference_profile(lambda: [ref], NUMS, CATS)
    other = build_reference_profile(lambda: [ref.iloc[:300]], NUMS, CATS)
    with pytest.raises(ValueError, match="spec"):
        compare_profiles(rp, other, DriftThresholds(), features=NUMS)
    # a day profiled on some of the reference's columns compares on those
    day = profile_frame(frame(400, seed=112), rp.spec, ["f0", "f1"], ["c0"])
    report = compare_profiles(rp, day, DriftThresholds(), features=["f0", "f1", "c0"])
    assert report.n_features == 3 and report.n_drifted == 0
    with pytest.raises(ValueError, match="not in both"):
        compare_profiles(rp, day, DriftThresholds(), features=["f0", "f2"])
