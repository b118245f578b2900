"""SLOs and error budgets (`signals.slo`): exact hourly counts from the day's log, the budget
and burn rates against hand-computed numbers, the workbook's rules adapted to hours, quiet on
a service meeting its objective (small hours included), the config's errors, and the stored
hours on both store backends."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import ModelConfig, SloConfig, parse_config
from aiops_pipelines.core.errors import ConfigError, DataError
from aiops_pipelines.core.findings import Asset, Severity, Signal
from aiops_pipelines.io.sources import Source
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals import day_pass
from aiops_pipelines.signals.operations.day import stream_operations
from aiops_pipelines.signals.slo import (
    EVENTS_HOUR,
    GOOD_HOUR,
    HOURS,
    burn_rate,
    slo_for_day,
    stream_result,
    stream_slo_counts,
)

FIRST = date(2026, 3, 1)

LATENCY = {"name": "fast", "kind": "latency", "objective": 0.99, "threshold_ms": 200}
AVAILABILITY = {"name": "up", "kind": "availability", "objective": 0.999}


def slo_day(
    day: date,
    *,
    per_hour: int | np.ndarray = 200,
    slow: float = 0.001,
    errors: float = 0.0002,
    seed: int = 0,
    burn_from_hour: int | None = None,
    burn_slow: float = 0.5,
) -> pd.DataFrame:
    """A day of predictions: `per_hour` rows an hour (or one count per hour), a share `slow`
    over 200 ms (latency lognormal below it) and `errors` failing; from `burn_from_hour` a
    share `burn_slow` of the rows take 250-900 ms (the latency SLO burns its budget)."""
    rng = np.random.default_rng(seed)
    counts = np.broadcast_to(np.asarray(per_hour), (HOURS,))
    hour = np.repeat(np.arange(HOURS), counts)
    n = hour.size
    ts = pd.Timestamp(day.isoformat(), tz="UTC") + pd.to_timedelta(
        hour * 3600 + rng.uniform(0, 3600, n), unit="s"
    )
    latency = np.minimum(rng.lognormal(np.log(40), 0.4, n), 199.0)
    is_slow = rng.random(n) < slow
    if burn_from_hour is not None:
        is_slow |= (hour >= burn_from_hour) & (rng.random(n) < burn_slow)
    latency = np.where(is_slow, rng.uniform(250, 900, n), latency)
    return pd.DataFrame(
        {
            "request_id": [f"{day}-{i}" for i in range(n)],
            "timestamp": ts,
            "model_version": "1",
            "x": rng.normal(size=n),
            "region": rng.choice(["eu", "us"], n, p=[0.7, 0.3]),
            "prediction": rng.integers(0, 2, n).astype(float),
            "latency_ms": latency.round(3),
            "status": np.where(rng.random(n) < errors, "error", "ok"),
        }
    )


def write_days(tmp_path: Path, frames: list[pd.DataFrame]) -> str:
    url = f"sqlite:///{tmp_path / 'preds.db'}"
    eng = sa.create_engine(url)
    frame = pd.concat(frames, ignore_index=True)
    text = frame.assign(timestamp=frame.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"))
    text.to_sql("preds", eng, index=False, if_exists="replace")
    text.head(500).drop(columns=["request_id", "timestamp"]).to_sql(
        "ref", eng, index=False, if_exists="replace"
    )
    eng.dispose()
    return url


def model_config(url: str, slos: list[dict[str, Any]], **extra: Any) -> ModelConfig:
    model = {
        "name": "churn",
        "task": "binary_classification",
        "features": {"numeric": ["x"], "categorical": ["region"]},
        "segments": ["region"],
        "predictions": {"url": url, "table": "preds", "chunk_rows": 1000},
        "outcomes": {"url": url, "table": "preds"},
        "reference": {"url": url, "table": "ref"},
        "slos": slos,
        **extra,
    }
    raw = {
        "storage": {"store_url": "sqlite://", "mlflow_tracking_uri": "sqlite://"},
        "tenants": [{"name": "acme", "models": [model]}],
    }
    raw["storage"]["artifacts_dir"] = "/tmp"
    return parse_config(raw).models[0]


def run_days(model: ModelConfig, store: MonitoringStore, days: list[date]) -> list:
    """`slo_for_day` day after day, each day's rows stored as the asset stores them."""
    out = []
    for d in days:
        res = slo_for_day(model, d.isoformat(), store)
        store.replace_partition(
            model.tenant,
            model.name,
            d.isoformat(),
            Asset.SLO_REPORT,
            metrics=res.metrics,
            findings=res.findings,
        )
        out.append(res)
    return out


def hours_index(days: int, end: date) -> pd.DatetimeIndex:
    start = pd.Timestamp((end - timedelta(days=days - 1)).isoformat(), tz="UTC")
    return pd.date_range(start, periods=days * HOURS, freq="h")


# -- exact counts ---------------------------------------------------------------------------


def test_hourly_counts_are_exact_at_the_threshold_and_per_segment(tmp_path: Path) -> None:
    frame = slo_day(FIRST, slow=0.05, errors=0.01)
    frame.loc[frame.index[::50], "latency_ms"] = 200.0  # on the threshold: good
    frame.loc[frame.index[1::50], "latency_ms"] = 200.001  # just over: bad
    frame.loc[frame.index[2::97], "latency_ms"] = np.nan  # no latency: not an event
    url = write_days(tmp_path, [frame])
    us = {**LATENCY, "name": "fast-us", "segment": {"column": "region", "value": "us"}}
    slos = [LATENCY, AVAILABILITY, us]
    model = model_config(url, slos)
    counts = stream_slo_counts(model, FIRST.isoformat())
    hour = frame.timestamp.dt.hour
    for h in range(HOURS):
        rows = frame[hour == h]
        lat = rows.latency_ms.dropna()
        assert counts.total["fast"][h] == len(lat)
        assert counts.good["fast"][h] == int((lat <= 200).sum())
        assert counts.total["up"][h] == len(rows)
        assert counts.good["up"][h] == int((rows.status == "ok").sum())
        us = rows[rows.region == "us"].latency_ms.dropna()
        assert counts.total["fast-us"][h] == len(us)
        assert counts.good["fast-us"][h] == int((us <= 200).sum())
    # the availability counts are the ops stream's, hour by hour
    ops = stream_operations(model, FIRST.isoformat())
    assert counts.total["up"].tolist() == ops.hourly_requests.tolist()
    assert (counts.total["up"] - counts.good["up"]).tolist() == ops.hourly_errors.tolist()


def test_the_days_one_read_gives_the_same_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = slo_day(FIRST, slow=0.05, errors=0.01)
    model = model_config(write_days(tmp_path, [frame]), [LATENCY, AVAILABILITY])
    own = stream_slo_counts(model, FIRST.isoformat())
    reads: list[str] = []
    real = Source.iter_window

    def counted(self: Source, *args: Any, **kwargs: Any):
        reads.append(self.describe())
        yield from real(self, *args, **kwargs)

    monkeypatch.setattr(Source, "iter_window", counted)
    day_pass.forget()
    try:
        stream_operations(model, FIRST.isoformat(), read_token="run-1")  # reads for both
        shared = stream_slo_counts(model, FIRST.isoformat(), read_token="run-1")
    finally:
        day_pass.forget()
    assert len(reads) == 1
    assert own.metrics() == shared.metrics()


# -- budget and burn rates against hand-computed numbers -------------------------------------


def test_budget_and_burn_rates_match_hand_computed_numbers() -> None:
    # 3 days of 100 events an hour; 2 bad an hour on day 1, 0 on day 2, 10 bad an hour from
    # 18:00 on day 3 (1 bad before): objective 0.99
    slo = SloConfig(**{**LATENCY, "window_days": 2})
    index = hours_index(3, FIRST + timedelta(days=2))
    total = np.full(72, 100.0)
    bad = np.r_[np.full(24, 2.0), np.zeros(24), np.full(18, 1.0), np.full(6, 10.0)]
    day = (FIRST + timedelta(days=2)).isoformat()
    r = stream_result(slo, index, total - bad, total, day, alpha=1e-4)
    # window = days 2 and 3: 4800 events, 18 + 60 = 78 bad, budget 48
    assert r.budget.events == 4800 and r.budget.bad == 78
    assert r.budget.allowed == pytest.approx(48.0)
    assert r.budget.remaining == pytest.approx(1 - 78 / 48)
    assert r.budget.exhausted and r.budget.days_covered == 2
    # at the day's last hour: 1 h 10/100 -> 10x; 6 h 60/600 -> 10x; 3 d 126/7200 -> 1.75x
    assert r.burn_rates["1h"] == pytest.approx(10.0)
    assert r.burn_rates["6h"] == pytest.approx(10.0)
    assert r.burn_rates["3d"] == pytest.approx(126 / 7200 / 0.01)
    # 10x is under the 14.4x page; the 6 h page (6x) fires when the 6 h window holds
    # enough of the burn: at 18:00 it is (10 + 5) / 600 = 2.5x, at 21:00 (40 + 2) / 600 = 7x
    fired = {f.rule.name: f for f in r.firings}
    assert set(fired) == {"page_6h", "ticket_3d"}
    assert fired["page_6h"].hour == pd.Timestamp(f"{day}T21:00", tz="UTC")
    assert fired["page_6h"].burn_long == pytest.approx(42 / 600 / 0.01)
    assert fired["page_6h"].burn_short == pytest.approx(10.0)
    # 3 d (the series' 72 hours so far): at 18:00 76 bad of 6700, 1.13x, but the 6 h
    # window's 15 of 600 (2.5x) and P(Bin(6700, 1%) >= 76) = 0.15 > alpha; at 20:00 96 of
    # 6900, p = 0.0011; at 21:00 106 of 7000 (1.51x), p = 3.4e-5 <= 1e-4: the ticket
    ticket = fired["ticket_3d"]
    assert ticket.rule.severity is Severity.WARNING
    assert ticket.hour == pd.Timestamp(f"{day}T21:00", tz="UTC")
    assert (ticket.events_long, ticket.bad_long) == (7000, 106)
    assert ticket.burn_long == pytest.approx(106 / 7000 / 0.01)
    assert ticket.p_value == pytest.approx(3.3695e-5, rel=1e-3)
    assert burn_rate(np.array([95.0]), np.array([100.0]), 0.99) == pytest.approx(5.0)


def test_no_traffic_has_no_budget_and_no_finding() -> None:
    slo = SloConfig(**LATENCY)
    index = hours_index(4, FIRST + timedelta(days=3))
    zeros = np.zeros(len(index))
    r = stream_result(slo, index, zeros, zeros, (FIRST + timedelta(days=3)).isoformat(), 1e-4)
    assert r.budget.events == 0 and np.isnan(r.budget.remaining)
    assert not r.budget.exhausted and r.firings == [] and r.level == "no events"
    assert all(np.isnan(v) for v in r.burn_rates.values())


def test_a_window_longer_than_the_history_budgets_the_days_there_are() -> None:
    slo = SloConfig(**LATENCY)  # 28 days, 4 of history
    end = FIRST + timedelta(days=3)
    index = hours_index(4, end)
    total = np.full(len(index), 50.0)
    total[:24] = 0  # the first day: nothing
    bad = np.full(len(index), 0.2)  # 0.4% of the events
    r = stream_result(slo, index, total - bad * (total > 0), total, end.isoformat(), 1e-4)
    assert r.budget.days_covered == 3
    assert r.budget.events == 3 * 24 * 50
    assert r.budget.remaining == pytest.approx(1 - 0.2 * 72 / (0.01 * 3600))


# -- the rules on generated series with known truth -----------------------------------------


def test_one_error_in_a_small_hour_does_not_page() -> None:
    slo = SloConfig(**AVAILABILITY)
    end = FIRST + timedelta(days=3)
    index = hours_index(4, end)
    total = np.full(len(index), 5.0)  # a quiet service: 5 predictions an hour
    good = total.copy()
    good[-10] = 4  # one error: a 20% error ratio, a 200x burn of 99.9% over that hour
    r = stream_result(slo, index, good, total, end.isoformat(), 0.01 / 72)
    assert burn_rate(good[-10:-9], total[-10:-9], 0.999) == pytest.approx(200.0)
    assert r.firings == []
    good[-10] = 1  # four of five failing: evidence
    r = stream_result(slo, index, good, total, end.isoformat(), 0.01 / 72)
    assert [f.rule.name for f in r.firings][0] == "page_1h"
    assert r.firings[0].hour == index[-10]


def test_a_service_meeting_its_objective_is_quiet_across_traffic_levels() -> None:
    rng = np.random.default_rng(3)
    slo = SloConfig(**AVAILABILITY)
    end = FIRST + timedelta(days=3)
    index = hours_index(4, end)
    shape = 0.1 + np.sin(np.linspace(0, np.pi, HOURS)) ** 2  # quiet nights, busy afternoons
    fired = 0
    days = 200
    for i in range(days):
        scale = [5, 50, 500, 5000][i % 4]
        total = rng.poisson(np.tile(shape * scale, 4)).astype(float)
        good = total - rng.binomial(total.astype(int), 0.001)  # exactly at the objective
        fired += bool(stream_result(slo, index, good, total, end.isoformat(), 0.01 / 72).firings)
    assert fired <= 2  # <= 1% of model-days, measured in benchmarks/bench_slo.py


def test_a_lasting_burn_pages_within_the_workbooks_detection_time() -> None:
    rng = np.random.default_rng(5)
    slo = SloConfig(**AVAILABILITY)
    end = FIRST + timedelta(days=3)
    index = hours_index(4, end)
    total = rng.poisson(1000, len(index)).astype(float)
    p = np.full(len(index), 0.0005)
    onset = len(index) - 20  # 04:00 of the last day
    p[onset:] = 0.02  # a 20x burn: the 1 h page within 14.4 / 20 h
    good = total - rng.binomial(total.astype(int), p)
    r = stream_result(slo, index, good, total, end.isoformat(), 0.01 / 72)
    first = {f.rule.name: f.hour for f in r.firings}
    assert first["page_1h"] == index[onset]
    assert first["page_6h"] <= index[onset + 1]  # 6 h x 6 / 20 = 1.8 h
    assert first["ticket_3d"] <= index[onset + 4]  # 72 h x 1 / 20 = 3.6 h


def _window(rng: np.random.Generator, per_hour: float, p: float, burst: int = 1):
    """28 days of hourly counts at `per_hour`, bad events at rate `p` in bursts of `burst`."""
    index = hours_index(28, FIRST + timedelta(days=27))
    total = rng.poisson(per_hour, len(index)).astype(float)
    bad = burst * rng.binomial((total // burst).astype(int), p)
    return index, total - bad, total


def test_bursts_of_errors_count_as_one_piece_of_evidence() -> None:
    rng = np.random.default_rng(11)
    slo = SloConfig(**AVAILABILITY)
    index, good, total = _window(rng, 300, 0.001, burst=5)  # retry storms of 5, on objective
    day = index[-1].date().isoformat()
    quiet = slice(len(index) - 20, len(index) - 19)  # 04:00 of the day: 30 predictions
    total[quiet], good[quiet] = 30, 25  # one storm: 5 of 30 failing, a 167x burn
    r = stream_result(slo, index, good, total, day, 0.01 / 72)
    assert 3 <= r.clumping <= 8
    assert r.firings == []
    good[-12:] = total[-12:] - rng.binomial(total[-12:].astype(int), 0.05)  # a 50x burn
    r = stream_result(slo, index, good, total, day, 0.01 / 72)
    assert r.firings and r.firings[0].rule.name == "page_1h"
    assert r.firings[0].hour == index[-12]


def test_a_past_outage_does_not_blind_the_rules() -> None:
    rng = np.random.default_rng(12)
    slo = SloConfig(**AVAILABILITY)
    index, good, total = _window(rng, 300, 0.0005)
    good[24 * 20 : 24 * 20 + 3] = 0  # three hours of outage a week ago
    assert stream_result(slo, index, good, total, index[-1].date().isoformat(), 1e-4).clumping < 1.5
    good[-6:] = total[-6:] - rng.binomial(total[-6:].astype(int), 0.03)  # a 30x burn
    r = stream_result(slo, index, good, total, index[-1].date().isoformat(), 0.01 / 72)
    assert r.firings[0].rule.name == "page_1h" and r.firings[0].hour == index[-6]


# -- the config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slo", "extra", "message"),
    [
        ({"name": "a", "kind": "latency", "objective": 0.99}, {}, "needs `threshold_ms`"),
        ({**LATENCY, "objective": 1.0}, {}, "objective"),
        ({**LATENCY, "objective": 0}, {}, "objective"),
        ({**AVAILABILITY, "threshold_ms": 5}, {}, "does not apply to a availability"),
        (LATENCY, {"columns": {"latency_ms": None}}, "columns.latency_ms is unset"),
        (AVAILABILITY, {"columns": {"status": None}}, "columns.status is unset"),
        (
            {**LATENCY, "segment": {"column": "plan", "value": "pro"}},
            {},
            "segment column 'plan' is not one of the model's segments",
        ),
        ({"name": "auc", "kind": "metric", "objective": 0.9}, {}, "needs `floor`"),
        (
            {"name": "mae", "kind": "metric", "objective": 0.9, "floor": 1, "metric": "mae"},
            {},
            "does not apply to binary_classification",
        ),
        ({**LATENCY, "name": "Fast"}, {}, "lower-case"),
    ],
)
def test_config_errors_name_the_slo_and_the_setting(
    tmp_path: Path, slo: dict, extra: dict, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model_config(url, [slo], **extra)


def test_config_refuses_two_slos_of_one_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="repeated: \\['fast'\\]"):
        model_config(f"sqlite:///{tmp_path / 'x.db'}", [LATENCY, LATENCY])


# -- stored hours, on both backends ----------------------------------------------------------


def test_stored_hours_feed_the_next_days_and_a_rerun_replaces_its_day(
    tmp_path: Path, store: MonitoringStore
) -> None:
    days = [FIRST + timedelta(days=i) for i in range(3)]
    frames = [slo_day(d, seed=i) for i, d in enumerate(days)]
    frames[2] = slo_day(days[2], seed=2, burn_from_hour=10)  # the latency SLO burns from 10:00
    model = model_config(write_days(tmp_path, frames), [LATENCY, AVAILABILITY])
    res = run_days(model, store, days)
    assert [f.signal for f in res[0].findings + res[1].findings] == []
    fast = next(r for r in res[2].results if r.slo.name == "fast")
    burn = [f for f in res[2].findings if f.signal == Signal.SLO_BURN.value]
    assert [f.column for f in burn] == ["fast"] and burn[0].severity is Severity.CRITICAL
    assert burn[0].evidence["first_hour"] == f"{days[2]}T10:00:00+00:00"
    assert burn[0].evidence["rule"] == "page_1h"
    # the budget counts every stored hour of the three days
    everything = pd.concat(frames)
    assert fast.budget.events == len(everything)
    assert fast.budget.bad == int((everything.latency_ms > 200).sum())
    assert fast.budget.exhausted
    assert {f.signal for f in res[2].findings} == {Signal.SLO_BURN.value, Signal.SLO_BUDGET.value}
    stored = store.metric_history("acme", "churn", asset=Asset.SLO_REPORT)
    hourly = stored[stored.metric.isin([GOOD_HOUR, EVENTS_HOUR])]
    assert len(hourly) == 3 * 24 * 2 * 2
    day3 = stored[(stored.partition == days[2].isoformat()) & (stored.column == "fast")]
    remaining = day3.set_index("metric")["value"]["slo_budget_remaining"]
    assert remaining == pytest.approx(fast.budget.remaining)
    # re-running a day replaces its rows: same rows, same budget
    again = run_days(model, store, [days[2]])[0]
    restored = store.metric_history("acme", "churn", asset=Asset.SLO_REPORT)
    assert len(restored) == len(stored)
    assert next(r for r in again.results if r.slo.name == "fast").budget.bad == fast.budget.bad


def test_metric_slo_counts_labelled_days_meeting_the_floor(
    tmp_path: Path, store: MonitoringStore
) -> None:
    slo = {"name": "auc", "kind": "metric", "objective": 0.8, "floor": 0.8, "window_days": 5}
    model = model_config(write_days(tmp_path, [slo_day(FIRST, per_hour=2)]), [slo])
    aucs = [0.85, None, 0.78, 0.9, 0.75, 0.81]  # day 2: too few labels, no metric stored
    for i, auc in enumerate(aucs):
        metrics = {("n_labelled", ""): 50.0}
        if auc is not None:
            metrics[("roc_auc", "")] = auc
        store.replace_partition(
            "acme",
            "churn",
            (FIRST + timedelta(days=i)).isoformat(),
            Asset.PERFORMANCE_REPORT,
            metrics=metrics,
            findings=[],
        )
    res = slo_for_day(model, (FIRST + timedelta(days=5)).isoformat(), store)
    (r,) = res.results
    # window: days 2-6: labelled days 0.78, 0.9, 0.75, 0.81 -> 4 events, 2 bad, 0.8 allowed
    assert (r.budget.events, r.budget.bad) == (4, 2)
    assert r.budget.remaining == pytest.approx(1 - 2 / 0.8)
    (budget,) = res.findings
    assert budget.signal == Signal.SLO_BUDGET.value
    assert budget.evidence["allowed_bad_events"] == pytest.approx(0.8)
    # 2 bad of 4 is overspent, but P(Bin(4, 0.2) >= 2) = 0.18: recorded, not alerted
    assert budget.evidence["p_value"] == pytest.approx(0.1808)
    assert budget.severity is Severity.INFO


def test_a_log_without_the_latency_column_names_model_day_and_column(tmp_path: Path) -> None:
    frame = slo_day(FIRST).drop(columns=["latency_ms"])
    model = model_config(write_days(tmp_path, [frame]), [LATENCY])
    with pytest.raises(DataError) as err:
        stream_slo_counts(model, FIRST.isoformat())
    assert (err.value.model, err.value.partition) == ("acme.churn", FIRST.isoformat())
    assert err.value.column == "latency_ms"
    fix = "needed by slos ['fast']: map it with columns.latency_ms or remove them"
    assert fix in str(err.value)
