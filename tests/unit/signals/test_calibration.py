"""Drift calibrated on the model's own reference and days: design effects, the corrected tests,
and the verdicts they give on generated days with known truth (independent rows, correlated
groups, lasting changes)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aiops_pipelines.core.config import DriftThresholds
from aiops_pipelines.demo import drift_trials as t
from aiops_pipelines.signals.drift.calibration import (
    BlockTables,
    DayBlocks,
    ReferenceCalibration,
    column_coder,
    design_effect,
    homogeneity,
    recent_design_effect,
)
from aiops_pipelines.signals.drift.compare import (
    category_share_test,
    null_rate_drift,
    pooled_chisquare,
    rank_test,
)
from aiops_pipelines.signals.drift.day import StoredDay, drift_for_day
from aiops_pipelines.signals.profile.builder import build_reference_profile, profile_frame
from aiops_pipelines.signals.profile.profiles import DatasetProfile, ProfileSpec

# E[m^2] / E[m] for groups of m = 2..8 identical rows: the variance inflation of any share
GROUP_DEFF = np.mean(np.arange(2, 9) ** 2) / np.mean(np.arange(2, 9))


def test_homogeneity_is_scipys_chi_square_of_the_table() -> None:
    rng = np.random.default_rng(1)
    table = rng.integers(0, 40, (12, 5))
    table[3] = 0  # an empty block and an empty bin are dropped, as a contingency test must
    table[:, 2] = 0
    x2, dof = homogeneity(table)
    kept = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    ref = stats.chi2_contingency(kept, correction=False)
    assert x2 == pytest.approx(ref.statistic, rel=1e-12) and dof == ref.dof == 10 * 3
    assert homogeneity(np.zeros((3, 4))) == (0.0, 0)


def test_pooled_chisquare_is_scipys_test_then_rao_scott() -> None:
    ref, cur = np.array([400, 300, 200, 100]), np.array([90, 60, 30, 20])
    want = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert pooled_chisquare(ref, cur, 1.0) == pytest.approx(want.pvalue, rel=1e-10)
    # deff 4: the statistic divided by 4 on the same degrees of freedom
    assert pooled_chisquare(ref, cur, 4.0) == pytest.approx(
        stats.chi2.sf(want.statistic / 4, want.dof), rel=1e-10
    )
    # a rare bin (expected 1.5 effective rows) is pooled with the next smallest
    ref2, cur2 = np.array([5000, 3000, 1700, 300]), np.array([250, 150, 85, 15])
    pooled = stats.chi2_contingency(np.array([[5000, 3000, 2000], [250, 150, 100]]), False)
    assert pooled_chisquare(ref2, cur2, 1.0) == pytest.approx(pooled.pvalue, rel=1e-10)


def test_share_test_is_fishers_exact_test_per_category_on_effective_rows() -> None:
    """Each category against the rest, Fisher's exact test (central: twice the smaller one-sided
    p, as SciPy computes them), the smallest times the number of categories. A 3% category
    holding 18 of a 200-row day (6 expected): the normal approximation's p was 78x smaller
    than the exact one."""
    ref, cur = np.array([6000, 3000, 700, 300]), np.array([118, 50, 14, 18])

    def fisher(r: np.ndarray, c: np.ndarray) -> float:
        ps = []
        for i in range(len(r)):
            table = [[c[i], c.sum() - c[i]], [r[i], r.sum() - r[i]]]
            less = stats.fisher_exact(table, alternative="less").pvalue
            greater = stats.fisher_exact(table, alternative="greater").pvalue
            ps.append(min(1.0, 2 * min(less, greater)))
        return min(1.0, len(r) * min(ps))

    exact = category_share_test(ref, cur, 1.0)
    assert exact == pytest.approx(fisher(ref, cur), rel=1e-9)
    pooled = (ref[3] + cur[3]) / (ref.sum() + cur.sum())
    z = (cur[3] / cur.sum() - ref[3] / ref.sum()) / np.sqrt(
        pooled * (1 - pooled) * (1 / ref.sum() + 1 / cur.sum())
    )
    assert 4 * 2 * stats.norm.sf(z) < exact / 50 and exact < 1e-3
    # a design effect of 2: the same test (sparse bins pooled alike) on half the rows a side
    halved = category_share_test(ref // 2, cur // 2, 1.0)
    assert category_share_test(ref, cur, 2.0) == pytest.approx(halved, rel=1e-12)
    assert halved > exact


def test_rank_test_is_scipys_mann_whitney_on_the_profiles_bins() -> None:
    """Mann-Whitney from two profiles: SciPy's asymptotic test on each value's ordered cell (a
    bin's interior or an edge) gives the same p; on the raw values it differs by the ties the
    bins make, little with 1,000 of them. A design effect d tests on n/d rows."""
    rng = np.random.default_rng(2)
    a = rng.lognormal(0, 1, 20_000)
    b = np.concatenate([rng.lognormal(0.06, 1, 7_990), a[:10]])  # values on edges too
    spec = build_reference_profile(lambda: [pd.DataFrame({"x": a})], ["x"], []).spec
    pa = profile_frame(pd.DataFrame({"x": a}), spec, ["x"], []).columns["x"]
    pb = profile_frame(pd.DataFrame({"x": b}), spec, ["x"], []).columns["x"]
    edges = pa.edges

    def cell(x: np.ndarray) -> np.ndarray:
        seg = np.searchsorted(edges, x, side="right")  # segment j = [e_(j-1), e_j)
        on_edge = (seg > 0) & (edges[np.maximum(seg - 1, 0)] == x)
        return np.where(on_edge, 2 * seg - 1, 2 * seg)

    binned = stats.mannwhitneyu(cell(b), cell(a), method="asymptotic").pvalue
    raw = stats.mannwhitneyu(b, a, method="asymptotic").pvalue
    assert 1e-6 < binned < 0.01
    assert rank_test(pa, pb) == pytest.approx(binned, rel=1e-9)
    assert rank_test(pa, pb) == pytest.approx(raw, rel=0.05)
    z = stats.norm.isf(rank_test(pa, pb) / 2)
    assert rank_test(pa, pb, 4.0) == pytest.approx(2 * stats.norm.sf(z / 2), rel=1e-9)


def test_null_rate_test_uses_the_binomial_tail_on_effective_rows() -> None:
    ref = pd.DataFrame({"x": np.where(np.arange(100_000) % 20 == 0, np.nan, 1.0)})  # 5%
    cur = pd.DataFrame({"x": np.where(np.arange(300) < 27, np.nan, 1.0)})  # 9%
    spec = build_reference_profile(lambda: [ref], ["x"], []).spec
    rp = profile_frame(ref, spec, ["x"], []).columns["x"]
    cp = profile_frame(cur, spec, ["x"], []).columns["x"]
    r = null_rate_drift(rp, cp, DriftThresholds())
    # the normal tail of the z-test is thinner than the binomial's for a rare event
    assert r.p_value == pytest.approx(stats.binom.sf(26, 300, 0.05), rel=1e-9)
    assert r.p_value > stats.norm.sf(r.z)
    r3 = null_rate_drift(rp, cp, DriftThresholds(), design_effect=3.0)
    assert r3.p_value == pytest.approx(stats.binom.sf(8, 100, 0.05), rel=1e-9)


def test_reference_blocks_measure_the_design_effect() -> None:
    ind = t.reference(3, 60_000, grouped=False)
    grp = t.reference(3, 60_000, grouped=True)
    shuffled = t.reference(3, 60_000, grouped=True, shuffled=True)
    assert ind.calibration.sizes[0] == 15 and ind.calibration.sizes[-1] <= 60_000 / 16
    # a binary column has 1 degree of freedom a block: its estimate is the noisiest
    for col in t.NUMERIC + t.CATEGORICAL:
        assert ind.calibration.at(col, 1000) == pytest.approx(1.0, abs=0.3), col
        assert grp.calibration.at(col, 1000) == pytest.approx(GROUP_DEFF, rel=0.25), col
        # the shuffled reference cannot tell: the days must (see below)
        assert shuffled.calibration.at(col, 1000) == pytest.approx(1.0, abs=0.3), col
    cal = ReferenceCalibration.from_dict(grp.calibration.to_dict())
    assert cal is not None and cal.sizes == grp.calibration.sizes
    assert cal.at("amount", 10) == cal.deff["amount"][0]  # below the smallest size
    assert cal.at("amount", 10**9) == cal.deff["amount"][-1]  # above the largest
    assert math.isnan(cal.at("nope", 100))


def _day(n: int, grouped: bool, seed: int, hour_mix: bool = False) -> StoredDay:
    rng = np.random.default_rng(seed)
    ref = t.reference(0, 20_000, grouped=False).profile
    df, secs = t.rows(rng, n, grouped=grouped)
    if hour_mix:  # the channel mix follows the hour of day; rows are independent within it
        night = secs < 43_200
        df.loc[night, "channel"] = rng.choice(["web", "app"], int(night.sum()))
        df.loc[~night, "channel"] = rng.choice(["store", "app"], int((~night).sum()))
    return t.day_profile(ref, df, secs, "2026-01-05")


def test_within_day_blocks_measure_the_days_own_correlation() -> None:
    ind, grp = _day(20_000, False, 4), _day(20_000, True, 4)
    for col in t.NUMERIC + t.CATEGORICAL:
        assert recent_design_effect([ind.within_day], col) == pytest.approx(1.0, abs=0.3)
        assert recent_design_effect([grp.within_day], col) == pytest.approx(GROUP_DEFF, rel=0.25)
    # an hour-of-day mix every day repeats is compared within each hour: not correlation
    mixed = _day(20_000, False, 5, hour_mix=True)
    assert recent_design_effect([mixed.within_day], "channel") == pytest.approx(1.0, abs=0.15)
    # the largest of the sources is used, never below 1
    shuffled = t.reference(3, 20_000, grouped=True, shuffled=True).calibration
    used, where = design_effect("plan", 20_000, shuffled, [grp.within_day])
    assert used == where["within_day"] > 4 and where["reference"] < 1.2
    assert design_effect("plan", 100, None, [])[0] == 1.0


def test_day_blocks_code_missing_and_unseen_values() -> None:
    ref = t.reference(0, 5_000, grouped=False).profile
    coder = column_coder(ref.columns["region"])
    codes = coder.codes(pd.Series(["r0", None, "never-seen", "r11"], dtype=object))
    assert codes[1] == coder.n_codes - 1 and codes[2] == coder.n_codes - 2 and codes[0] != codes[3]
    num = column_coder(ref.columns["amount"])
    assert len(num.cuts) == 9  # deciles
    blocks = DayBlocks(ref, ["income"])
    blocks.add(
        pd.DataFrame({"income": [1.0, np.nan]}),
        pd.Series(pd.to_datetime(["2026-01-01 00:00:01+00:00", "2026-01-01 23:59:59+00:00"])),
    )
    table = blocks.tables.tables["income"]
    assert table.sum() == 2 and table[0].sum() == 1 and table[-1, -1] == 1


def _false_alarm_share(n: int, grouped: bool, shuffled: bool, days: int) -> float:
    ref = t.reference(0, 50_000, grouped=grouped, shuffled=shuffled)
    results = t.run_days(t.trial_model(), ref, seed=9, n=n, days=days, grouped=grouped)
    return sum(bool(res.findings) for _, res in results) / days


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "grouped", "shuffled"),
    [(200, False, False), (1000, True, False), (200, True, True), (1000, True, True)],
)
def test_unchanged_days_stay_quiet_with_correlated_rows(
    n: int, grouped: bool, shuffled: bool
) -> None:
    """Without calibration, correlated days flag almost every day (see the benchmark)."""
    assert _false_alarm_share(n, grouped, shuffled, days=60) <= 2 / 60


def _first_detection(
    n: int, change: t.Change, column: str, seed: int, windows: tuple[int, ...] = (1, 3, 7)
) -> tuple[int, object]:
    ref = t.reference(0, 50_000, grouped=False)
    model = t.trial_model(windows=windows)
    for d, res in t.run_days(
        model, ref, seed=seed, n=n, days=change.start + 8, grouped=False, change=change
    ):
        hits = [f for f in res.findings if f.column == column and f.signal == "feature_drift"]
        if d >= change.start and hits:
            return d - change.start + 1, hits[0]
        assert d >= change.start or not res.findings, (d, res.findings)
    return 99, None


def test_a_shift_is_found_on_its_first_day_at_ten_thousand_rows() -> None:
    days, finding = _first_detection(10_000, t.Change(7, numeric_shift=0.2), "amount", 11)
    assert days == 1 and finding.evidence["window_days"] == 1
    assert "design effect" in finding.message and finding.threshold in (0.1, 0.2)


def test_a_category_change_is_found_within_three_days_at_a_thousand_rows() -> None:
    days, finding = _first_detection(1000, t.Change(7, category_points=5.0), "plan", 12)
    assert days <= 3 and finding.evidence["significance_test"] == "chisquare+share"


def test_a_change_too_small_for_one_day_is_found_by_a_window() -> None:
    """+3 points of one plan on 1,000 rows a day: the day alone never sees it (in 8 days),
    the trailing 3-day window does once it holds only changed days (the fourth day here; the
    third at the 4x looser fdr_alpha of 0.01)."""
    small = t.Change(7, category_points=3.0)
    days, finding = _first_detection(1000, small, "plan", 12)
    assert days in (3, 4) and finding.evidence["window_days"] == 3
    assert finding.evidence["n_current"] == pytest.approx(3000, rel=0.01)
    assert _first_detection(1000, small, "plan", 12, windows=(1,)) == (99, None)


def test_windows_need_every_day_on_the_same_bins() -> None:
    ref = t.reference(0, 20_000, grouped=False)
    model = t.trial_model()
    rng = np.random.default_rng(5)
    days = [
        t.day_profile(ref.profile, *t.rows(rng, 500, grouped=False), f"2026-01-0{d}")
        for d in (1, 2, 3)
    ]
    full = drift_for_day(model, "2026-01-03", ref.profile, days[2], history=days[:2])
    gap = drift_for_day(model, "2026-01-03", ref.profile, days[2], history=days[:1])
    n_full = {c.column: c.evidence for c in full.report.features}
    alpha = model.thresholds.fdr_alpha
    assert full.report.fdr_alpha == alpha == 0.0025
    # day 2 missing: only the day is tested, so alpha is split over fewer families
    assert {c.alpha for c in gap.report.features} == {alpha / 2}
    assert {c.alpha for c in full.report.features} == {alpha / 3}
    assert n_full and not full.findings and not gap.findings


def test_day_blocks_place_rows_by_their_utc_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[np.ndarray] = []
    monkeypatch.setattr(BlockTables, "add", lambda self, df, blocks, coded=None: got.append(blocks))
    rng = np.random.default_rng(0)
    ns = rng.integers(-(10**17), 2 * 10**18, 5000)
    ts = pd.Series(pd.to_datetime(ns, unit="ns", utc=True)).dt.tz_convert("Asia/Kolkata")
    blocks = DayBlocks(DatasetProfile(n_rows=0, columns={}, spec=ProfileSpec({}, {})), [])
    blocks.add(pd.DataFrame(index=ts.index), ts)
    blocks.add(pd.DataFrame(index=ts.index), ts.astype(str))  # text: parsed as before
    utc = ts.dt.tz_convert("UTC")
    want = (utc.dt.hour.to_numpy() * 60 + utc.dt.minute.to_numpy()) // 10
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], want)
