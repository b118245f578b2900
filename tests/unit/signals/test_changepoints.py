"""Lasting level shifts with their onset: segmentation checked against ruptures' own PELT,
the generated suite with known change points, and the ops series' level-shift findings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import ruptures as rpt

from aiops_pipelines.demo import changepoint_suite as cs
from aiops_pipelines.demo.drift_trials import trial_model
from aiops_pipelines.signals.changepoints import (
    _clip_outliers,
    change_points,
    current_shift,
    robust_sigma,
)
from aiops_pipelines.signals.operations.day import level_shifts, shift_finding


def _traffic(hours: int, drop_at: int | None = None, frac: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    rate = 200 * np.exp(0.5 * np.sin(2 * np.pi * ((h % 24) - 6) / 24) - 0.4 * ((h // 24) % 7 >= 5))
    if drop_at is not None:
        rate = np.where(h >= drop_at, rate * frac, rate)
    index = pd.date_range("2026-01-05", periods=hours, freq="h", tz="UTC")
    return pd.Series(rng.poisson(rate).astype(float), index=index)


def test_segmentation_is_ruptures_pelt_on_the_standardised_series() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 200), rng.normal(3, 1, 150), rng.normal(-1, 1, 250)])
    ours = change_points(x)
    sigma = robust_sigma(x)
    y = _clip_outliers(x, sigma, 6) / sigma
    pelt = rpt.Pelt(model="l2", min_size=6, jump=1).fit(y.reshape(-1, 1))
    assert ours == [b for b in pelt.predict(pen=4 * math.log(x.size)) if b < x.size]
    assert all(abs(a - b) <= 2 for a, b in zip(ours, [200, 350], strict=True))


@pytest.mark.parametrize("seed", [0, 1])
def test_suite_scores_at_least_pelt_and_binseg(seed: int) -> None:
    def bic(v: np.ndarray) -> float:
        s = robust_sigma(v) or 1.0
        return 2 * s * s * math.log(v.size)

    totals = {"ours": 0.0, "pelt": 0.0, "binseg": 0.0}
    for case in cs.suite(seed):
        x = case.values
        preds = {
            "ours": change_points(x, period=168, scale=case.scale),
            "pelt": rpt.Pelt(model="l2").fit(x.reshape(-1, 1)).predict(pen=bic(x))[:-1],
            "binseg": rpt.Binseg(model="l2").fit(x.reshape(-1, 1)).predict(pen=bic(x))[:-1],
        }
        for k, p in preds.items():
            totals[k] += cs.f1_score(case.truth, p)
        if not case.truth and case.name != "variance change":  # quiet where nothing changed
            assert preds["ours"] == [], case.name
    assert totals["ours"] >= max(totals["pelt"], totals["binseg"])


def test_scores_follow_the_benchmark_definitions() -> None:
    assert cs.f1_score([], []) == 1.0  # the start counts on both sides
    assert cs.f1_score([100], []) == pytest.approx(2 / 3)
    assert cs.f1_score([100], [104]) == 1.0 and cs.f1_score([100], [106]) == pytest.approx(0.5)
    assert cs.covering([100], [100], 200) == 1.0
    assert cs.covering([100], [], 200) == pytest.approx(0.5)


def test_a_drop_that_lasts_is_reported_with_its_onset_until_it_recovers() -> None:
    drop = 24 * 24 + 9  # day 25, 09:00
    s = _traffic(24 * 28, drop, 0.5)
    shift = current_shift(s, period=168, scale="log")
    assert shift is not None and shift.direction == "down"
    assert abs((shift.onset - s.index[drop]).total_seconds()) <= 3 * 3600
    assert shift.ratio == pytest.approx(0.5, abs=0.08) and shift.sigmas > 5
    # back to the old level two days later: a recovery, not a new shift
    back = _traffic(24 * 30, drop, 0.5)
    back.iloc[drop + 48 :] = _traffic(24 * 30, seed=3).iloc[drop + 48 :]
    assert current_shift(back, period=168, scale="log") is None
    assert current_shift(_traffic(24 * 28), period=168, scale="log") is None


def test_ops_level_shift_findings_name_the_series_and_the_onset() -> None:
    model = trial_model()
    day = "2026-02-01"
    hours = pd.date_range("2026-01-04", f"{day} 23:00", freq="h", tz="UTC")
    drop = len(hours) - 40
    thr = _traffic(len(hours), drop, 0.4).set_axis(hours)
    errors = (thr * 0.01).round()
    errors.iloc[drop:] = (thr.iloc[drop:] * 0.05).round()  # 1% -> 5% failing
    latency = pd.Series(120.0, index=hours) + np.random.default_rng(2).normal(0, 5, len(hours))
    shifts = level_shifts({"throughput": thr, "errors": errors, "latency": latency}, model, day)
    assert set(shifts) == {"throughput", "error_rate"}  # latency did not move
    f = shift_finding("throughput", shifts["throughput"], model, day)
    assert f.signal == "level_shift" and f.column == "throughput"
    assert f.severity.value == "critical"  # 40% of the level before
    assert "since 2026-01-31" in f.message and f.evidence["onset"].startswith("2026-01-31")
    e = shift_finding("error_rate", shifts["error_rate"], model, day)
    assert e.value == pytest.approx(0.04, abs=0.01) and e.threshold == 0.01
    # a 10% dip is below ops.level_shift_min_change (20%): not reported
    small = _traffic(len(hours), drop, 0.9).set_axis(hours)
    assert "throughput" not in level_shifts({"throughput": small}, model, day)


def _sparse_errors(
    seed: int, per_hour: float, rate: float, *, shift_at: int | None = None, after: float = 0.0
) -> tuple[pd.Series, pd.Series]:
    """28 days of hourly requests (Poisson around `per_hour`, with a daily cycle) and their
    failures (binomial at `rate`, `after` from hour `shift_at` on)."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2026-01-04", periods=28 * 24, freq="h", tz="UTC")
    load = 1 + 0.6 * np.sin(2 * np.pi * (np.asarray(hours.hour) - 9) / 24)
    n = rng.poisson(per_hour * load)
    p = np.full(n.size, rate)
    if shift_at is not None:
        p[shift_at:] = after
    return (
        pd.Series(rng.binomial(n, p).astype(float), index=hours),
        pd.Series(n.astype(float), index=hours),
    )


def test_sparse_error_counts_shift_on_pooled_rates_and_a_count_test() -> None:
    """At 25 requests an hour most hours read 0% failing: the median level before is 0% and
    the hour-to-hour MAD says nothing of the noise. The shift is judged on counts instead."""
    model = trial_model()
    day = "2026-01-31"
    # unchanged 2% at 25 an hour: never a lasting shift (the medians of 0% and 4% hours were)
    for seed in range(40):
        errors, thr = _sparse_errors(seed, 25, 0.02)
        assert "error_rate" not in level_shifts({"throughput": thr, "errors": errors}, model, day)
    # a real rise, 0.5% -> 6% for the last 30 hours: found, with both levels as pooled rates
    errors, thr = _sparse_errors(7, 25, 0.005, shift_at=28 * 24 - 30, after=0.06)
    sh = level_shifts({"throughput": thr, "errors": errors}, model, day)["error_rate"]
    onset = thr.index >= sh.onset
    assert sh.before == pytest.approx(errors[~onset].sum() / thr[~onset].sum())
    assert sh.after == pytest.approx(errors[onset].sum() / thr[onset].sum())
    assert 0.002 < sh.before < 0.01 and sh.after > 0.04 and sh.sigmas >= 4
    e = shift_finding("error_rate", sh, model, day)
    assert e.value == pytest.approx(sh.after - sh.before)
