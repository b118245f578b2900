"""Drift per segment value on generated days with known truth: a drift confined to one segment
is its own finding while the whole model stays quiet, unchanged days stay quiet (correlated
rows, small segments), the statistics are SciPy's on the segment's rows, and the segment
profiles survive the store on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js

from aiops_pipelines.core.config import ModelConfig, SegmentDriftPolicy, parse_config
from aiops_pipelines.core.errors import ConfigError
from aiops_pipelines.core.findings import Signal
from aiops_pipelines.demo import drift_trials as t
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.signals.drift.calibration import ReferenceCalibration, calibrate_reference
from aiops_pipelines.signals.drift.day import DriftResult, StoredDay, drift_for_day
from aiops_pipelines.signals.drift.segments import (
    SegmentDriftResult,
    segment_drift_for_day,
    segment_drift_for_stored_day,
)
from aiops_pipelines.signals.profile.builder import build_reference_profile
from aiops_pipelines.signals.profile.day import profile_for_day, profile_reference
from aiops_pipelines.signals.profile.profiles import OTHER, DatasetProfile
from aiops_pipelines.signals.profile.segments import (
    SegmentProfiler,
    SegmentProfiles,
    SegmentReference,
    _slot_of_rows,
    segment_plan,
)

SEGMENTS = ["channel", "region"]


def segment_model(
    *, top_k: int = 5, min_rows: int = 200, windows: tuple[int, ...] = (1, 3, 7), **source
) -> ModelConfig:
    """The drift trials' model (`demo.drift_trials`) with segment drift on channel and region
    (its sources are never opened unless `source` names them)."""
    sources = {
        "predictions": {"url": "sqlite://", "table": "p"},
        "reference": {"url": "sqlite://", "table": "r"},
        **source,
    }
    raw = {
        "storage": {
            "store_url": "sqlite://",
            "mlflow_tracking_uri": "sqlite://",
            "artifacts_dir": "/tmp",
        },
        "tenants": [
            {
                "name": "bench",
                "models": [
                    {
                        "name": "trial",
                        "task": "binary_classification",
                        "features": {"numeric": t.NUMERIC, "categorical": t.CATEGORICAL},
                        **sources,
                        "columns": {"score": "score", "latency_ms": None, "status": None},
                        "segments": SEGMENTS,
                        "segment_drift": {
                            "enabled": True,
                            "top_k": top_k,
                            "min_rows": min_rows,
                        },
                        "thresholds": {"windows": list(windows)},
                    }
                ],
            }
        ],
    }
    return parse_config(raw).models[0]


@dataclass
class Reference:
    profile: DatasetProfile
    calibration: ReferenceCalibration
    segments: SegmentReference


def reference(
    model: ModelConfig, seed: int, n: int, *, grouped: bool, shuffled: bool = False
) -> Reference:
    """The drift trials' reference, its segment profiles and blocks from 10k-row chunks."""
    rng = np.random.default_rng([seed, 0])
    df, _ = t.rows(rng, n, grouped=grouped)
    if shuffled:
        df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    profile = build_reference_profile(lambda: [df], t.NUMERIC, t.CATEGORICAL)
    seg = SegmentProfiler(model, segment_plan(model, profile), profile.spec, calibrate=profile)
    for start in range(0, len(df), 10_000):
        seg.add(df.iloc[start : start + 10_000])
    calibration = calibrate_reference([df], profile, t.NUMERIC + t.CATEGORICAL)
    return Reference(profile, calibration, seg.reference())


@dataclass(frozen=True)
class SegmentShift:
    """From day `start` on, `column` moves by `shift` reference standard deviations in the rows
    whose `segment` is `value` only."""

    start: int
    segment: str = "channel"
    value: str = "store"
    column: str = "amount"
    shift: float = 0.4


def run_days(
    model: ModelConfig,
    ref: Reference,
    *,
    seed: int,
    n: int,
    days: int,
    grouped: bool,
    change: SegmentShift | None = None,
) -> Iterator[tuple[int, pd.DataFrame, DriftResult, SegmentDriftResult]]:
    """Each generated day's rows, whole-model drift and segment drift."""
    rng = np.random.default_rng([seed, 1])
    history: list[StoredDay] = []
    seg_history: dict[str, SegmentProfiles] = {}
    plan = ref.segments.profiles.plan
    for d in range(days):
        df, secs = t.rows(rng, n, grouped=grouped)
        if change is not None and d >= change.start:
            rows = (df[change.segment] == change.value).to_numpy()
            std = ref.profile.columns[change.column].std
            df.loc[rows, change.column] += change.shift * std
        partition = (t.START + timedelta(days=d)).isoformat()
        today = t.day_profile(ref.profile, df, secs, partition)
        profiler = SegmentProfiler(model, plan, ref.profile.spec)
        profiler.add(df)
        segments = profiler.result()
        whole = drift_for_day(
            model,
            partition,
            ref.profile,
            today,
            calibration=ref.calibration,
            history=history[-7:],
        )
        recent = [today.within_day] + [h.within_day for h in history[-6:]]
        seg = segment_drift_for_day(
            model, partition, ref.segments, segments, recent=recent, history=seg_history
        )
        history.append(today)
        seg_history[partition] = segments
        yield d, df, whole, seg


@pytest.fixture(scope="module")
def shifted_store_day() -> tuple[Reference, pd.DataFrame, DriftResult, SegmentDriftResult]:
    """+0.4 std of amount in channel=store (20% of traffic) on the 8th day of 5,000 rows;
    a segment value needs 300 rows that day."""
    model = segment_model(min_rows=300)
    ref = reference(model, 0, 50_000, grouped=False)
    *_, last = run_days(model, ref, seed=3, n=5000, days=8, grouped=False, change=SegmentShift(7))
    return ref, *last[1:]


def test_drift_confined_to_one_segment_value_is_a_finding_of_its_own(
    shifted_store_day,
) -> None:
    _, _, whole, seg = shifted_store_day
    # diluted to 1/5 in the whole model: W1/std ~0.08, under the 0.1 minimum effect
    assert not [f for f in whole.findings if f.signal in ("feature_drift", "dataset_drift")]
    assert [f.column for f in seg.findings] == ["channel=store"]
    (finding,) = seg.findings
    assert finding.signal == Signal.SEGMENT_DRIFT.value
    assert finding.severity == "critical"  # 0.4 std >= the critical W1/std 0.2
    ev = finding.evidence
    assert [f["column"] for f in ev["features"]] == ["amount"]
    amount = ev["features"][0]
    assert amount["statistic"] == pytest.approx(0.4, abs=0.05)
    assert amount["q_value"] < ev["alpha"] and amount["window_days"] == 1
    assert ev["n_current"] == pytest.approx(1000, rel=0.1)
    assert ev["n_reference"] == pytest.approx(10_000, rel=0.05)
    assert "channel=store" in finding.message and "amount" in finding.message
    # its own alert: another fingerprint than any whole-model finding on amount
    assert finding.fingerprint not in {f.fingerprint for f in whole.findings}
    assert seg.metrics[("segment_drift_share", "channel=store")] == pytest.approx(1 / 7)
    assert seg.metrics[("segment_drift_share", "channel=web")] == 0.0
    assert seg.metrics[("segments_drifted", "")] == 1.0
    # MLflow refuses "=" in a metric name
    assert seg.mlflow_metrics["segment_drift_share.channel:store"] == pytest.approx(1 / 7)
    (check,) = seg.checks()
    assert not check.passed and check.severity == "error"
    assert check.metadata["drifted"] == "channel=store"


def test_small_segment_values_are_insufficient_and_not_tested(shifted_store_day) -> None:
    _, df, _, seg = shifted_store_day
    by_label = {v.label: v for v in seg.verdicts}
    # channel has 3 values: its `other` is empty in the reference; region's 5th is ~4%
    assert by_label[f"channel={OTHER}"].status == "insufficient"
    small = by_label["region=r4"]
    assert small.n_current == int((df["region"] == "r4").sum()) < 300
    assert small.status == "insufficient" and not small.columns
    assert ("segment_drift_share", "region=r4") not in seg.metrics
    assert seg.metrics[("segment_rows", "region=r4")] == small.n_current
    assert "region=r4" in seg.checks()[0].metadata["insufficient"]
    # the others: every feature but the segment itself, in every window of the family
    tested = [v for v in seg.verdicts if v.status == "tested"]
    assert {v.label for v in tested} >= {"channel=web", "channel=app", "region=r0"}
    assert all(len(v.columns) == 7 for v in tested)
    assert seg.n_tests == 3 * 7 * len(tested)  # windows 1, 3, 7 over 7 features each


def test_statistics_agree_with_scipy_on_the_segments_rows(shifted_store_day) -> None:
    """The segment's numbers are those of SciPy on the rows of that segment value alone."""
    rng = np.random.default_rng([0, 0])
    ref_df, _ = t.rows(rng, 50_000, grouped=False)  # the fixture's reference, regenerated
    ref, day_df, _, seg = shifted_store_day
    r = ref_df[ref_df["channel"] == "store"]
    c = day_df[day_df["channel"] == "store"]
    store = next(v for v in seg.verdicts if v.label == "channel=store")
    cols = {cd.column: cd for cd in store.columns}
    assert store.n_current == len(c) and store.n_reference == len(r)
    assert ref.segments.profiles.profiles["channel"]["store"].n_rows == len(r)
    amount = cols["amount"]
    ks = stats.ks_2samp(r["amount"], c["amount"])
    assert amount.evidence["ks_d"] <= ks.statistic + 1e-12 <= amount.evidence["ks_d_upper"] + 1e-12
    w1 = stats.wasserstein_distance(r["amount"], c["amount"]) / r["amount"].std(ddof=0)
    assert amount.statistic == pytest.approx(w1, abs=0.002)
    assert amount.evidence["current_mean"] == pytest.approx(c["amount"].mean(), rel=1e-12)
    assert amount.evidence["reference_std"] == pytest.approx(r["amount"].std(ddof=0), rel=1e-9)
    # a categorical feature: chi-square and Jensen-Shannon on the segment's plan counts
    plan = cols["plan"]
    vocab = sorted(ref_df["plan"].unique())
    rc = r["plan"].value_counts().reindex(vocab, fill_value=0).to_numpy()
    cc = c["plan"].value_counts().reindex(vocab, fill_value=0).to_numpy()
    chi = stats.chi2_contingency(np.vstack([rc, cc]), correction=False)
    assert plan.evidence["chi2"] == pytest.approx(chi.statistic, rel=1e-9)
    assert plan.evidence["chi2_p_independent"] == pytest.approx(chi.pvalue, rel=1e-6)
    assert plan.statistic == pytest.approx(scipy_js(rc / rc.sum(), cc / cc.sum()), abs=1e-9)
    assert plan.p_value is not None and plan.q_value is not None and not plan.drifted


def test_segment_values_are_the_references_top_k_and_the_rest_pooled() -> None:
    model = segment_model(top_k=2)
    ref = reference(model, 0, 20_000, grouped=False)
    plan = ref.segments.profiles.plan
    assert plan.values == {"channel": ["web", "app"], "region": ["r0", "r1"]}
    slots = _slot_of_rows(
        pd.Series(["r1", None, "never-seen", "r0", "r7"], dtype=object), plan.slots("region")
    )
    assert slots.tolist() == [1, 2, 2, 0, 2]  # missing, unseen and rarer values: `other`
    # the pooled value holds every other row: the values' rows add up to the reference
    by_value = ref.segments.profiles.profiles["region"]
    assert sum(p.n_rows for p in by_value.values()) == ref.profile.n_rows
    assert "region" not in by_value["r0"].columns  # constant within a value
    assert set(ref.segments.calibration["region"]) == {"r0", "r1", OTHER}


def test_segment_drift_needs_segments_and_the_streamed_profile() -> None:
    with pytest.raises(ConfigError, match="profile to 'stream'"):
        segment_model(predictions={"url": "sqlite://", "table": "p", "profile": "pushdown"})
    raw = segment_model().model_dump(mode="json")
    raw["segments"] = []
    with pytest.raises(ValueError, match="segment_drift.enabled needs `segments`"):
        ModelConfig.model_validate(raw)


def _false_alarm_share(n: int, grouped: bool, shuffled: bool, days: int) -> float:
    model = segment_model()
    ref = reference(model, 1, 50_000, grouped=grouped, shuffled=shuffled)
    results = run_days(model, ref, seed=5, n=n, days=days, grouped=grouped)
    return sum(bool(seg.findings) for *_, seg in results) / days


@pytest.mark.slow
def test_unchanged_days_raise_no_segment_drift() -> None:
    """Correlated rows (groups of 2-8 sharing every value), small segment values (~100-1,000
    rows): at most 1% of unchanged model-days. The other settings (independent rows, a
    shuffled reference) are measured over 300 days each by `benchmarks/bench_segments.py`."""
    assert _false_alarm_share(2000, True, False, days=100) <= 0.01


# --------------------------------------------------------------- real sources and the store


def _with_contract(df: pd.DataFrame, day: str, seconds: np.ndarray) -> pd.DataFrame:
    out = df.copy()
    out["request_id"] = [f"{day}-{i}" for i in range(len(df))]
    out["timestamp"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    out["model_version"] = "1"
    out["prediction"] = (out["amount"] > 100).astype(int)
    out["score"] = 0.5
    return out


def _parquet_model(tmp: Path, days: int, change: SegmentShift | None) -> ModelConfig:
    rng = np.random.default_rng(7)
    ref, secs = t.rows(rng, 30_000, grouped=False)
    _with_contract(ref, "2025-12-01", secs % 86_399).to_parquet(tmp / "reference.parquet")
    for d in range(days):
        day = (t.START + timedelta(days=d)).isoformat()
        df, secs = t.rows(rng, 4000, grouped=False)
        if change is not None and d >= change.start:
            rows = (df[change.segment] == change.value).to_numpy()
            df.loc[rows, change.column] += change.shift * 15
        _with_contract(df, day, secs).to_parquet(tmp / f"day-{day}.parquet")
    return segment_model(
        predictions={"parquet": str(tmp / "day-*.parquet")},
        reference={"parquet": str(tmp / "reference.parquet")},
    )


def test_segment_profiles_round_trip_through_the_store(store: MonitoringStore, tmp_path) -> None:
    model = _parquet_model(tmp_path, 4, SegmentShift(3))
    res = profile_reference(model, sample_rows=100)
    assert res.segments is not None
    store.save_profile(
        model.tenant, model.name, "reference", REFERENCE_PARTITION, res.payload, res.n_rows
    )
    ref_payload = store.load_profile(model.tenant, model.name, "reference", REFERENCE_PARTITION)
    spec = DatasetProfile.from_dict(ref_payload["profile"]).spec
    back = SegmentReference.from_dict(ref_payload["segments"], spec)
    assert back.profiles.plan == res.segments.profiles.plan
    for seg, by_value in res.segments.profiles.profiles.items():
        for value, p in by_value.items():
            assert back.profiles.profiles[seg][value] == p
            assert (
                back.calibration[seg][value].to_dict()
                == res.segments.calibration[seg][value].to_dict()
            )
    ref = DatasetProfile.from_dict(ref_payload["profile"])
    for d in range(4):
        day = (t.START + timedelta(days=d)).isoformat()
        prof = profile_for_day(model, day, ref, sample_rows=100)
        assert prof.segments is not None
        # the segment values' rows add up to the day, their counts to the whole profile's
        for by_value in prof.segments.profiles.values():
            assert sum(p.n_rows for p in by_value.values()) == prof.n_rows
            merged = DatasetProfile.merge_all(by_value.values()).columns["amount"]
            assert np.array_equal(merged.counts, prof.profile.columns["amount"].counts)
        store.save_profile(model.tenant, model.name, "daily", day, prof.payload, prof.n_rows)
        payload = store.load_profile(model.tenant, model.name, "daily", day)
        assert SegmentProfiles.from_dict(payload["segments"], spec).profiles == (
            prof.segments.profiles
        )
    last = (t.START + timedelta(days=3)).isoformat()
    result = segment_drift_for_stored_day(
        store, model, last, ref_payload, store.load_profile(model.tenant, model.name, "daily", last)
    )
    assert [f.column for f in result.findings] == ["channel=store"]
    # the stored days before make the 3-day window (not the 7-day one): half of the whole
    # model's fdr_alpha, over 2 windows
    assert result.alpha == pytest.approx(model.thresholds.fdr_alpha / 2 / 2)
    assert result.n_tests == 2 * 7 * sum(v.status == "tested" for v in result.verdicts)


def test_a_reference_without_segment_profiles_is_a_clear_error(store, tmp_path) -> None:
    model = _parquet_model(tmp_path, 1, None)
    off = model.model_copy(update={"segment_drift": SegmentDriftPolicy()})
    res = profile_reference(off, sample_rows=100)
    day = t.START.isoformat()
    prof = profile_for_day(model, day, res.profile, sample_rows=100)
    with pytest.raises(ConfigError, match="--refresh-reference"):
        segment_drift_for_stored_day(store, model, day, res.payload, prof.payload)


def test_a_day_profiled_on_another_segment_plan_is_refused() -> None:
    """`top_k` changed since the reference was built: the day's values are not the
    reference's, and comparing them would test the wrong rows."""
    ref = reference(segment_model(top_k=2), 0, 20_000, grouped=False)
    model = segment_model(top_k=3)
    df, _ = t.rows(np.random.default_rng(1), 2000, grouped=False)
    profiler = SegmentProfiler(model, segment_plan(model, ref.profile), ref.profile.spec)
    profiler.add(df)
    with pytest.raises(ConfigError, match="refresh-reference"):
        segment_drift_for_day(model, "2026-01-05", ref.segments, profiler.result())
