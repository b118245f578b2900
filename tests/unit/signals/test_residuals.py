"""The residual rule on a daily MAE series: a run of anomalous days needs consecutive labelled
days, and a short history judges nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiops_pipelines.signals.anomaly import detect_last_day


def test_a_missing_day_breaks_the_run_and_a_short_history_judges_nothing() -> None:
    rng = np.random.default_rng(3)
    days = pd.date_range("2026-02-02", periods=23, freq="D", tz="UTC")
    mae = pd.Series(np.abs(rng.normal(0.0, 1.0, (23, 300))).mean(axis=1), index=days)
    mae.iloc[-2:] *= 1.5
    z, [a] = detect_last_day(mae, z=4.0, persistence=2, min_history=7)
    assert a.end == days[-1] and a.start == days[-2] and z >= 4
    # the day before has too few labels: not two consecutive labelled days
    z_gap, found = detect_last_day(mae.drop(days[-2]), z=4.0, persistence=2, min_history=7)
    assert found == [] and z_gap == pytest.approx(z)  # same baseline, same z
    z_short, found = detect_last_day(mae.iloc[-8:], z=4.0, persistence=2, min_history=7)
    assert np.isnan(z_short) and found == []  # 6 days before the window: warming up
    assert detect_last_day(mae.iloc[-9:], z=4.0, persistence=2, min_history=7)[1]
