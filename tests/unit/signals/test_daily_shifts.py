"""Lasting level shifts of the daily series (drift share, primary metric, label coverage): found
with their onset and every day they last, not for dips or noise, coverage compared only on
days whose labels are all in; and wired into the drift and performance reports with a real
SQLite store."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiops_pipelines.core.config import ModelConfig, parse_config
from aiops_pipelines.core.errors import ConfigError
from aiops_pipelines.core.findings import Asset
from aiops_pipelines.demo import drift_trials as dt
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.signals.changepoints import current_shift
from aiops_pipelines.signals.daily_shifts import (
    MIN_DURATION_DAYS,
    DailyShift,
    daily_history,
    daily_shifts,
    shift_findings,
)
from aiops_pipelines.signals.drift.day import drift_for_day
from aiops_pipelines.signals.performance.day import performance_for_day
from aiops_pipelines.signals.profile.day import reference_for_model

START = date(2026, 1, 5)
LEVEL_SHIFT = "level_shift"
FOUND_ON = MIN_DURATION_DAYS - 1
"""A change on day i is first reported on day i + FOUND_ON (its 14th day)."""


def _day(i: int) -> str:
    return (START + timedelta(days=i)).isoformat()


def _model(task: str = "binary_classification", **sections: dict) -> ModelConfig:
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
                        "name": "m",
                        "task": task,
                        "features": {
                            "numeric": [f"x{i}" for i in range(6)],
                            "categorical": ["a", "b", "c"],
                        },
                        "predictions": {"url": "sqlite://", "table": "p"},
                        "outcomes": {"url": "sqlite://", "table": "o"},
                        "reference": {"url": "sqlite://", "table": "r"},
                        **sections,
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


def _frame(asset: Asset, series: dict[str, np.ndarray], upto: int) -> pd.DataFrame:
    """The store's metric history frame of days 0..upto-1 (NaN values are not stored)."""
    rows = [
        ("acme", "m", _day(i), asset.value, metric, "", float(values[i]))
        for metric, values in series.items()
        for i in range(upto)
        if math.isfinite(values[i])
    ]
    cols = ["tenant", "model", "partition", "asset", "metric", "column", "value"]
    return pd.DataFrame(rows, columns=cols)


def _judge(
    model: ModelConfig, asset: Asset, series: dict[str, np.ndarray], i: int, **kw: object
) -> list[DailyShift]:
    """The shifts raised by day i's report: the days before from the store, day i its own."""
    today = {(m, ""): float(v[i]) for m, v in series.items() if math.isfinite(v[i])}
    return daily_shifts(model, _day(i), _frame(asset, series, i), asset=asset, today=today, **kw)


def _performance(rng: np.random.Generator, days: int, auc: float = 0.85) -> dict[str, np.ndarray]:
    """A binary model's days, every label in: roc_auc with the sampling noise of ~1,300 labels."""
    n_pred = rng.poisson(2000, days).astype(float)
    n_lab = rng.binomial(n_pred.astype(int), 0.65).astype(float)
    return {
        "roc_auc": auc + rng.normal(0, 0.4 / np.sqrt(n_lab)),
        "n_labelled": n_lab,
        "n_predictions": n_pred,
        "coverage": n_lab / n_pred,
    }


def _found(shifts: list[DailyShift], series: str) -> DailyShift | None:
    return next((s for s in shifts if s.series == series), None)


def _perf_judge(model: ModelConfig, series: dict[str, np.ndarray]) -> Callable[[int], object]:
    return lambda i: _found(_judge(model, Asset.PERFORMANCE_REPORT, series, i), "roc_auc")


def test_a_lasting_drop_of_the_primary_metric_is_found_with_its_onset_every_day_it_lasts() -> None:
    model = _model()
    series = _performance(np.random.default_rng(1), 100)
    series["roc_auc"][60:] -= 0.07  # 8% worse than 0.85: past relative_drop[0] (5%)
    judge = _perf_judge(model, series)
    found = {i: judge(i) for i in range(45, 100)}
    first = min(i for i, s in found.items() if s is not None)
    assert abs(first - (60 + FOUND_ON)) <= 1
    assert all(found[i] is not None for i in range(first, 100))  # and stays found
    onsets = {found[i].onset_day for i in range(first, 100)}
    assert onsets <= {_day(59), _day(60), _day(61)} and len(onsets) == 1  # one onset, kept
    s = found[99]
    assert s.shift.direction == "down" and s.change == pytest.approx(0.07 / 0.85, abs=0.01)
    assert s.gate == model.performance.relative_drop[0] and s.relative


def test_a_one_day_dip_and_a_short_episode_are_not_shifts() -> None:
    model = _model()
    series = _performance(np.random.default_rng(2), 100)
    series["roc_auc"][50] = 0.60  # one bad day
    series["roc_auc"][70:75] -= 0.1  # five bad days, then back
    judge = _perf_judge(model, series)
    assert [i for i in range(30, 100) if judge(i) is not None] == []


def test_a_better_metric_is_not_reported_and_error_metrics_shift_up() -> None:
    rng = np.random.default_rng(3)
    better = _performance(rng, 80)
    better["roc_auc"][40:] += 0.07
    assert _perf_judge(_model(), better)(79) is None
    regression = _model("regression")
    mae = 2.3 + rng.normal(0, 0.05, 80)
    days = {"mae": mae, "n_labelled": np.full(80, 1500.0)}
    up = dict(days, mae=np.where(np.arange(80) >= 40, mae * 1.3, mae))
    [s] = _judge(regression, Asset.PERFORMANCE_REPORT, up, 79)
    assert s.series == "mae" and s.shift.direction == "up" and s.onset_day == _day(40)
    down = dict(days, mae=np.where(np.arange(80) >= 40, mae * 0.7, mae))
    assert _judge(regression, Asset.PERFORMANCE_REPORT, down, 79) == []


def test_days_with_too_few_labels_are_left_out_of_the_metric_series() -> None:
    model = _model()
    series = _performance(np.random.default_rng(4), 80)
    # the last 20 days are judged on a handful of labels: noisy, and not days the decay judges
    series["n_labelled"][60:] = 50
    series["roc_auc"][60:] = 0.6
    assert _perf_judge(model, series)(79) is None


def test_returning_to_the_level_clears_the_finding() -> None:
    model = _model()
    series = _performance(np.random.default_rng(5), 110)
    series["roc_auc"][40:80] -= 0.07
    judge = _perf_judge(model, series)
    assert judge(79) is not None and judge(79).onset_day in {_day(39), _day(40), _day(41)}
    back = [i for i in range(80, 110) if judge(i) is not None]
    assert back and max(back) <= 80 + 6  # confirmed once back for a week (7-day segment)


def _drift(rng: np.random.Generator, days: int) -> dict[str, np.ndarray]:
    """The drift share of 9 features: almost always 0, a feature flagged now and then."""
    flagged = rng.random((days, 9)) < 0.003
    return {"drift_share": flagged.mean(axis=1), "n_features": np.full(days, 9.0)}


def test_a_drift_share_that_rises_and_stays_is_found_though_each_day_is_below_the_threshold() -> (
    None
):
    model = _model()
    series = _drift(np.random.default_rng(6), 90)
    series["drift_share"][50:] = 2 / 9  # two features drifted for good: 22% < 30% every day
    assert (series["drift_share"] < model.thresholds.drift_share[0]).all()
    found = {i: _judge(model, Asset.DRIFT_REPORT, series, i) for i in range(40, 90)}
    first = min(i for i, s in found.items() if s)
    assert first == 50 + FOUND_ON and all(found[i] for i in range(first, 90))
    [s] = found[89]
    assert s.series == "drift_share" and s.onset_day == _day(50)
    assert (s.shift.before, s.shift.after) == (0.0, pytest.approx(2 / 9))
    assert s.gate == pytest.approx(1 / 9)  # one feature's share, by default
    # the gate is configurable: a rise of two features in nine is under 30%
    strict = _model(thresholds={"drift_share_shift": 0.3})
    assert _judge(strict, Asset.DRIFT_REPORT, series, 89) == []


def test_a_share_flat_for_weeks_is_segmented_with_its_resolution_as_noise_floor() -> None:
    days = pd.date_range(START, periods=34, freq="D", tz="UTC")
    flat = pd.Series(np.r_[np.zeros(20), np.full(14, 2 / 9)], index=days)
    params = dict(min_size=7, min_duration=14, min_baseline=14, settled=28)
    # no day-to-day noise at all: sigma falls back to the spread of the series, step included,
    # against which one straight line fits about as well as the step
    assert current_shift(flat, **params) is None
    sh = current_shift(flat, **params, min_sigma=1 / 9 / math.sqrt(12))
    assert sh is not None and sh.onset == days[20] and sh.after == pytest.approx(2 / 9)


def test_a_stable_drift_share_with_stray_flags_raises_nothing() -> None:
    model = _model()
    for seed in range(20):
        series = _drift(np.random.default_rng([7, seed]), 120)
        assert _judge(model, Asset.DRIFT_REPORT, series, 119) == [], seed


def _coverage_as_of(final: np.ndarray, upto: int, window: int = 30) -> np.ndarray:
    """Each day's coverage as stored at the end of day `upto`: labels arrive over days (a 3-day
    mean lag), and day d is final once its label window closed (the end of day d + window)."""
    age = upto - np.arange(final.size)
    arrived = np.where(age >= window, 1.0, 1 - np.exp(-np.maximum(age, 0) / 3.0))
    return final * arrived


def test_a_coverage_drop_is_found_once_the_label_windows_of_its_days_closed() -> None:
    model = _model()  # label_window_days 30
    rng = np.random.default_rng(8)
    final = 0.65 + rng.normal(0, 0.01, 130)
    final[40:] *= 0.6  # the label feed loses 40% of the outcomes from day 40 on

    def judge(i: int) -> DailyShift | None:
        stored = {"coverage": _coverage_as_of(final, i), "n_predictions": np.full(130, 2000.0)}
        return _found(_judge(model, Asset.PERFORMANCE_REPORT, stored, i), "coverage")

    # day 40's window closes at the end of day 70: the drop is reported once 14 days are final
    first = 40 + FOUND_ON + model.performance.label_window_days
    assert judge(first - 1) is None and judge(60) is None
    s = judge(first)
    assert s is not None and s.onset_day == _day(40) and s.shift.direction == "down"
    assert s.change == pytest.approx(0.4, abs=0.03) and s.gate == model.performance.coverage_drop
    assert s.evidence["last_closed_day"] == _day(first - 30)
    assert judge(first + 20) is not None


def test_young_days_with_low_coverage_do_not_raise_a_coverage_shift() -> None:
    model = _model()
    rng = np.random.default_rng(9)
    final = 0.65 + rng.normal(0, 0.01, 120)
    for i in range(40, 120, 5):
        stored = {"coverage": _coverage_as_of(final, i), "n_predictions": np.full(120, 2000.0)}
        stored["coverage"][i - 10 : i + 1] = 0.0  # and the labels of the last 10 days are late
        assert _judge(model, Asset.PERFORMANCE_REPORT, stored, i) == [], i
    # the same days all counted, as if young days were final, would look like a lasting drop
    young = _coverage_as_of(final, 119)
    young[100:] = 0.0
    later = datetime.combine(START + timedelta(days=160), datetime.min.time(), tzinfo=UTC)
    stored = {"coverage": young, "n_predictions": np.full(120, 2000.0)}
    shifts = _judge(model, Asset.PERFORMANCE_REPORT, stored, 119, as_of=later)
    assert _found(shifts, "coverage") is not None


def test_level_shift_findings_carry_the_onset_and_both_levels() -> None:
    model = _model()
    series = _performance(np.random.default_rng(10), 90)
    series["roc_auc"][55:] -= 0.07
    [s] = _judge(model, Asset.PERFORMANCE_REPORT, series, 89)
    [f] = shift_findings(model, _day(89), [s])
    assert (f.signal, f.column, f.asset, f.severity.value) == (
        LEVEL_SHIFT,
        "roc_auc",
        "performance_report",
        "warning",
    )
    assert f.partition == _day(89) and f.value == pytest.approx(s.change) and f.threshold == 0.05
    assert f"since {s.onset_day}" in f.message and "lasting" in f.message
    assert f"{s.shift.before:.4g}" in f.message and f"{s.shift.after:.4g}" in f.message
    assert f.evidence["onset"] == s.onset_day and f.evidence["days_at_new_level"] >= 34


def test_new_config_fields_are_validated() -> None:
    with pytest.raises(ConfigError, match="drift_share_shift"):
        _model(thresholds={"drift_share_shift": 1.5})
    with pytest.raises(ConfigError, match="coverage_drop"):
        _model(performance={"coverage_drop": 1.0})


def _store_days(store: MonitoringStore, model: ModelConfig, series: dict, days: range) -> None:
    for i in days:
        metrics = {(m, ""): float(v[i]) for m, v in series.items()}
        store.replace_partition(
            model.tenant,
            model.name,
            _day(i),
            Asset.PERFORMANCE_REPORT,
            metrics=metrics,
            findings=[],
        )


def test_a_rerun_of_the_partition_replaces_its_level_shift_finding(tmp_path: Path) -> None:
    model = _model()
    series = _performance(np.random.default_rng(11), 80)
    series["roc_auc"][50:] -= 0.07
    store = MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}")
    _store_days(store, model, series, range(79))

    def run(i: int) -> pd.DataFrame:  # performance_report of day i: the engine, then publish
        today = {(m, ""): float(v[i]) for m, v in series.items()}
        history = daily_history(store, model, _day(i), Asset.PERFORMANCE_REPORT)
        shifts = daily_shifts(model, _day(i), history, asset=Asset.PERFORMANCE_REPORT, today=today)
        store.replace_partition(
            model.tenant,
            model.name,
            _day(i),
            Asset.PERFORMANCE_REPORT,
            metrics=today,
            findings=shift_findings(model, _day(i), shifts),
        )
        return store.findings(model.tenant, model.name, signal=LEVEL_SHIFT, start=_day(i))

    for _ in range(2):  # twice: one finding, not two
        found = run(79)
        assert list(found["column"]) == ["roc_auc"] and found.iloc[0]["partition"] == _day(79)
        assert found.iloc[0]["evidence"]["onset"] == _day(50)
    # re-judged days say otherwise (e.g. the bad days' labels were wrong): the re-run clears it
    series["roc_auc"][50:] += 0.07
    _store_days(store, model, series, range(50, 79))
    assert run(79).empty


def test_drift_report_raises_the_drift_share_shift_from_the_stored_history(tmp_path: Path) -> None:
    model = dt.trial_model()  # 8 features: one drifted is 12.5%, under the 30% warning
    ref = dt.reference(0, 4000, grouped=False)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}")
    rng = np.random.default_rng(12)
    change = dt.Change(start=20, numeric_shift=1.0)  # "amount" moves by one sd and stays
    history, raised = [], {}
    for i in range(36):
        day = (dt.START + timedelta(days=i)).isoformat()
        df, secs = dt.rows(rng, 1500, grouped=False, change=change if i >= 20 else None)
        today = dt.day_profile(ref.profile, df, secs, day)
        res = drift_for_day(
            model,
            day,
            ref.profile,
            today,
            calibration=ref.calibration,
            history=history[-7:],
            metric_history=daily_history(store, model, day, Asset.DRIFT_REPORT),
        )
        store.replace_partition(
            model.tenant,
            model.name,
            day,
            Asset.DRIFT_REPORT,
            metrics=res.metrics,
            findings=res.findings,
        )
        history.append(today)
        raised[i] = [f for f in res.findings if f.signal == LEVEL_SHIFT]
        shown = res.summary()["level_shifts"]
        assert shown == "none" if not raised[i] else shown.startswith("drift_share up since")
    assert [i for i in raised if raised[i]] == list(range(20 + FOUND_ON, 36))
    f = raised[35][0]
    assert f.column == "drift_share" and f.asset == "drift_report"
    assert f.evidence["onset"] == (dt.START + timedelta(days=20)).isoformat()
    assert f.evidence["before"] == 0 and f.evidence["after"] == pytest.approx(1 / 8)


def _regression_world(folder: Path, days: int, change: int) -> ModelConfig:
    """A regression model's reference, log and outcomes (Parquet): from day `change` on, its
    predictions are off by 1 (MAE +45%) and half of the outcomes never arrive."""
    rng = np.random.default_rng(13)

    def frame(day: date | None, n: int, off: bool) -> pd.DataFrame:
        x = rng.normal(0, 1, n)
        y = 30 + 5 * x + rng.gamma(2.0, 2.0, n)
        out = pd.DataFrame({"x": x, "prediction": y + off + rng.normal(0, 1, n), "label": y})
        if day is not None:
            secs = np.sort(rng.random(n)) * 86_400
            out["timestamp"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(secs, unit="s")
            out["request_id"] = [f"{day:%m%d}-{k}" for k in range(n)]
            out["model_version"] = "1"
        return out

    frame(None, 2000, False).to_parquet(folder / "reference.parquet")
    log = pd.concat(
        [frame(START + timedelta(days=i), 600, i >= change) for i in range(days)],
        ignore_index=True,
    )
    late = pd.to_timedelta(rng.uniform(30, 60, len(log)), unit="h")
    kept = (log["timestamp"] < pd.Timestamp(START + timedelta(days=change), tz="UTC")) | (
        rng.random(len(log)) < 0.5
    )
    outcomes = log.loc[kept, ["request_id", "label"]].assign(
        observed_at=log.loc[kept, "timestamp"] + late[kept.to_numpy()]
    )
    outcomes.to_parquet(folder / "outcomes.parquet")
    log.drop(columns="label").to_parquet(folder / "predictions.parquet")
    return _model(
        "regression",
        predictions={"parquet": str(folder / "predictions.parquet")},
        outcomes={"parquet": str(folder / "outcomes.parquet")},
        reference={"parquet": str(folder / "reference.parquet")},
        features={"numeric": ["x"]},
        performance={"label_window_days": 3},
    )


def test_performance_report_raises_metric_and_coverage_shifts_as_labels_arrive(
    tmp_path: Path,
) -> None:
    model = _regression_world(tmp_path, 50, change=30)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}")
    ref = reference_for_model(model, sample_rows=100)
    store.replace_partition(
        model.tenant,
        model.name,
        REFERENCE_PARTITION,
        Asset.REFERENCE_PROFILE,
        metrics=ref.metrics,
        findings=[],
        profile=("reference", ref.payload, ref.n_rows),
    )
    raised: dict[int, dict[str, dict]] = {}
    for i in range(50):
        # judged once its label window (3 days) has closed: every point at the same label age
        as_of = datetime.combine(START + timedelta(days=i + 5), datetime.min.time(), tzinfo=UTC)
        res = performance_for_day(model, _day(i), as_of, store)
        store.replace_partition(
            model.tenant,
            model.name,
            _day(i),
            Asset.PERFORMANCE_REPORT,
            metrics=res.metrics,
            findings=res.findings,
        )
        raised[i] = {f.column: f.evidence for f in res.findings if f.signal == LEVEL_SHIFT}
    assert [i for i in raised if raised[i]] == list(range(30 + FOUND_ON, 50))
    assert set(raised[49]) == {"mae", "coverage"}
    for ev in raised[49].values():
        assert ev["onset"] == _day(30) and ev["detected_at"]
    assert raised[49]["mae"]["after"] / raised[49]["mae"]["before"] == pytest.approx(1.45, abs=0.1)
    assert raised[49]["coverage"]["after"] == pytest.approx(0.5, abs=0.05)


QUIET_DAYS = 120


class QuietModel:
    """A model's unchanged days with known truth: its daily series as the store holds them at
    the end of each day. roc_auc 0.85 on ~450 labels a day (sampling sd 0.019, so the 5% gate
    is 2.2 sd) with a weekend effect of a third of that; labels arriving over days (3-day mean
    lag), so young days are judged on fewer labels and their coverage is low; the drift share
    of 9 features with a stray feature flagged for 1-7 days (a 7-day window keeps a flag) from
    0.25% of the days on: about 1% of the days have one, the drift tests' `fdr_alpha`."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng([14, seed])
        n = QUIET_DAYS
        self.n_pred = self.rng.poisson(700, n).astype(float)
        self.final_labels = self.rng.binomial(self.n_pred.astype(int), 0.65).astype(float)
        weekend = np.where(pd.date_range(START, periods=n).dayofweek >= 5, -0.006, 0.0)
        self.auc = 0.85 + weekend + self.rng.normal(0, 0.4 / np.sqrt(self.final_labels))
        flagged = np.zeros((n, 9), dtype=bool)
        for d, f in zip(*np.nonzero(self.rng.random((n, 9)) < 0.0025 / 9), strict=True):
            flagged[d : d + int(self.rng.integers(1, 8)), f] = True
        self.share = flagged.mean(axis=1)
        self.days = np.array([_day(i) for i in range(n)])

    def _frame(self, asset: Asset, series: dict[str, np.ndarray], upto: int) -> pd.DataFrame:
        metrics = list(series)
        values = np.concatenate([series[m][: upto + 1] for m in metrics])
        keep = np.isfinite(values)
        return pd.DataFrame(
            {
                "tenant": "acme",
                "model": "m",
                "partition": np.tile(self.days[: upto + 1], len(metrics))[keep],
                "asset": asset.value,
                "metric": np.repeat(metrics, upto + 1)[keep],
                "column": "",
                "value": values[keep],
            }
        )

    def shifts(self, model: ModelConfig, i: int) -> list[DailyShift]:
        """What the drift and performance reports of day i raise."""
        age = i - np.arange(QUIET_DAYS)
        arrived = np.where(age >= 30, 1.0, 1 - np.exp(-np.maximum(age, 0) / 3.0))
        labels = np.round(self.final_labels * arrived)
        # fewer labels, more noise around the day's value on all of them
        extra = np.sqrt(np.maximum(0.16 / np.maximum(labels, 1) - 0.16 / self.final_labels, 0))
        auc = np.where(labels > 0, self.auc + self.rng.normal(0, extra), np.nan)
        perf = {
            "roc_auc": auc,
            "n_labelled": labels,
            "n_predictions": self.n_pred,
            "coverage": labels / self.n_pred,
        }
        drift = {"drift_share": self.share, "n_features": np.full(QUIET_DAYS, 9.0)}
        day = _day(i)
        return [
            *daily_shifts(
                model, day, self._frame(Asset.DRIFT_REPORT, drift, i), asset=Asset.DRIFT_REPORT
            ),
            *daily_shifts(
                model,
                day,
                self._frame(Asset.PERFORMANCE_REPORT, perf, i),
                asset=Asset.PERFORMANCE_REPORT,
            ),
        ]


def test_unchanged_models_raise_no_level_shift_on_their_last_day() -> None:
    model = _model()
    raised = [s for s in range(200) if QuietModel(s).shifts(model, QUIET_DAYS - 1)]
    assert len(raised) <= 2, raised  # at most 1% of 200 series


def quiet_series_raising_a_shift(seeds: range) -> list[int]:
    """The seeds whose unchanged series, judged every other day from the 28th on, raise a
    level shift on some day (a shift lasts, so one found on a day skipped is found on the
    next). `benchmarks/bench_level_shift_false_alarms.py` measures the rate on 200 series."""
    model = _model()
    return [
        s for s in seeds if any(QuietModel(s).shifts(model, i) for i in range(28, QUIET_DAYS, 2))
    ]


@pytest.mark.slow
def test_unchanged_models_judged_day_after_day_rarely_raise_a_level_shift() -> None:
    # 30 series here (the suite's time: 17 s); the benchmark's 200 measured 0-2 (<= 1%)
    raised = quiet_series_raising_a_shift(range(30))
    assert len(raised) <= 1, raised
