"""Profiles: exact merging, serialisation, streaming, binning convention and the data contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aiops_pipelines.core.errors import DataError
from aiops_pipelines.signals.profile.builder import (
    ProfileBuilder,
    SampleKeeper,
    build_reference_profile,
    profile_frame,
)
from aiops_pipelines.signals.profile.profiles import (
    OTHER,
    ColumnProfile,
    DatasetProfile,
    ProfileSpec,
    merge_all,
)

NUM = ["x", "skew", "disc"]
CAT = ["color", "code"]


def make_frame(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    color = rng.choice(
        np.array(["red", "green", "blue", "teal"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1]
    )
    color[rng.random(n) < 0.03] = None
    return pd.DataFrame(
        {
            "x": x,
            "skew": rng.lognormal(0.0, 1.0, n),
            "disc": rng.integers(0, 4, n),  # int dtype, 4 distinct values
            "color": color,
            "code": rng.integers(0, 12, n),  # integer codes used as categories
        }
    )


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, DatasetProfile]:
    df = make_frame(20_000, seed=1)
    return df, build_reference_profile(lambda: [df], NUM, CAT, n_bins=200)


def assert_counts_equal(a: DatasetProfile, b: DatasetProfile) -> None:
    assert a.n_rows == b.n_rows
    for name, ca in a.columns.items():
        cb = b.columns[name]
        assert (ca.n_rows, ca.n_missing, ca.count) == (cb.n_rows, cb.n_missing, cb.count)
        if ca.kind == "numeric":
            np.testing.assert_array_equal(ca.counts, cb.counts)
            np.testing.assert_array_equal(ca.atoms, cb.atoms)
            np.testing.assert_allclose(ca.sums, cb.sums, rtol=1e-9, atol=1e-9)
            assert (ca.min, ca.max) == (cb.min, cb.max)
            assert ca.mean == pytest.approx(cb.mean, rel=1e-9, abs=1e-12)
            assert ca.std == pytest.approx(cb.std, rel=1e-9)
            assert ca.tail_low == pytest.approx(cb.tail_low, rel=1e-9)
            assert ca.tail_high == pytest.approx(cb.tail_high, rel=1e-9)
        else:
            assert ca.counts == cb.counts
            assert ca.unseen_total == cb.unseen_total


def test_reference_profile_matches_pandas(reference) -> None:
    df, prof = reference
    x = prof.columns["x"]
    assert x.n_rows == len(df)
    assert x.n_missing == int(df["x"].isna().sum()) and x.count == int(df["x"].notna().sum())
    assert x.mean == pytest.approx(df["x"].mean(), rel=1e-12)
    assert x.std == pytest.approx(df["x"].std(ddof=0), rel=1e-12)
    assert x.null_rate == pytest.approx(df["x"].isna().mean())
    edges = prof.spec.numeric["x"]
    assert edges[0] == df["x"].min() and edges[-1] == df["x"].max()
    assert len(edges) <= 201 and np.all(np.diff(edges) > 0)
    # the reference's own values never fall outside its range; its max is in the last bin
    assert x.counts[0] == 0 and x.tail_low == 0 and x.tail_high == 0
    assert x.counts.sum() == x.count and x.counts[-1] >= 1
    # quantile bins hold about the same number of reference values (200 bins of ~95 values)
    inner = x.counts[1:-1]
    assert inner.min() >= 80 and inner.max() <= 110
    color = prof.columns["color"]
    assert color.counts == df["color"].value_counts().to_dict()
    assert color.n_missing == int(df["color"].isna().sum()) and color.unseen_total == 0


def test_merge_of_halves_equals_whole(reference) -> None:
    _, ref = reference
    df = make_frame(30_001, seed=2, shift=0.4)  # shifted: values below and above the range
    whole = profile_frame(df, ref.spec, NUM, CAT)
    a = profile_frame(df.iloc[:12_345], ref.spec, NUM, CAT)
    b = profile_frame(df.iloc[12_345:], ref.spec, NUM, CAT)
    merged = a.merge(b)
    assert_counts_equal(merged, whole)
    assert merged.columns["x"].tail_high > 0  # the tails were exercised
    assert_counts_equal(merge_all([a, b]), whole)
    with pytest.raises(ValueError):
        merge_all([])


def test_merge_rejects_different_specs(reference) -> None:
    df, ref = reference
    other = build_reference_profile(lambda: [df.iloc[:500]], NUM, CAT, n_bins=50)
    with pytest.raises(ValueError, match="spec"):
        ref.merge(other)


def test_json_round_trip_is_exact(reference) -> None:
    df, ref = reference
    cur = profile_frame(make_frame(5_000, seed=3, shift=0.5), ref.spec, NUM, CAT)
    for prof in (ref, cur):
        text = json.dumps(prof.to_dict(), allow_nan=False)  # strictly JSON, no NaN
        back = DatasetProfile.from_dict(json.loads(text))
        assert back == prof
        assert back.columns["x"].mean == prof.columns["x"].mean  # bit-exact floats
    spec_back = ProfileSpec.from_dict(json.loads(json.dumps(ref.spec.to_dict())))
    assert spec_back == ref.spec
    col = cur.columns["skew"]
    assert ColumnProfile.from_dict(json.loads(json.dumps(col.to_dict()))) == col


def test_streamed_chunks_equal_one_shot(reference) -> None:
    _, ref = reference
    # 150k rows: more than one 65,536-value sort block, and big enough for the thread pool
    df = make_frame(150_000, seed=4, shift=0.2)
    one_shot = profile_frame(df, ref.spec, NUM, CAT)
    builder = ProfileBuilder(ref.spec, NUM, CAT)
    bounds = [0, 1, 17, 9_000, 70_000, 70_001, 150_000]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        builder.update(df.iloc[lo:hi])
    assert_counts_equal(builder.result(), one_shot)
    # and the counts agree with a direct computation on the raw values
    x = df["x"].dropna().to_numpy()
    edges = ref.spec.numeric["x"]
    expected = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    np.testing.assert_array_equal(one_shot.columns["x"].counts, expected)
    bins = np.searchsorted(edges, x, side="right")
    sums = np.bincount(bins, weights=x, minlength=len(edges) + 1)
    np.testing.assert_allclose(one_shot.columns["x"].sums, sums, rtol=1e-9, atol=1e-9)


def test_bin_convention_atoms_and_tails() -> None:
    spec = ProfileSpec(numeric={"v": np.array([0.0, 1.0, 2.0])})
    df = pd.DataFrame({"v": [-1.5, 0.0, 0.5, 1.0, 2.0, 2.0, 3.0, np.nan]})
    col = profile_frame(df, spec, ["v"], []).columns["v"]
    # bins: (<0), [0,1), [1,2), (>=2)
    assert col.counts.tolist() == [1, 2, 1, 3]
    assert col.atoms.tolist() == [1, 1, 2]  # values exactly on 0, 1, 2
    assert col.sums.tolist() == [-1.5, 0.5, 1.0, 7.0]  # sum of the values in each bin
    assert col.tail_low == 1.5 and col.tail_high == 1.0
    assert (col.n_rows, col.n_missing, col.count, col.min, col.max) == (8, 1, 7, -1.5, 3.0)


def test_discrete_numeric_column_gets_one_bin_per_value(reference) -> None:
    df, ref = reference
    edges = ref.spec.numeric["disc"]
    np.testing.assert_array_equal(edges, [0.0, 1.0, 2.0, 3.0])
    col = ref.columns["disc"]
    counts = df["disc"].value_counts().sort_index().to_numpy()
    np.testing.assert_array_equal(col.atoms, counts)
    # one value per bin, the largest value (3) alone in the last bin
    np.testing.assert_array_equal(col.counts, [0, *counts])
    # a value between two reference values is counted in the bin, not as an atom
    cur = profile_frame(pd.DataFrame({"disc": [1.5, 1.0, 3.0, 4.0]}), ref.spec, ["disc"], [])
    c = cur.columns["disc"]
    assert c.counts.tolist() == [0, 0, 2, 0, 2] and c.atoms.tolist() == [0, 1, 0, 1]
    assert c.tail_high == 1.0


def test_missing_values_are_counted_not_errors(reference) -> None:
    _, ref = reference
    df = pd.DataFrame(
        {
            "x": pd.array([1.0, None, 2.0, None], dtype="Float64"),
            "skew": [1.0, np.nan, np.nan, np.nan],
            "disc": pd.array([1, None, 2, 3], dtype="Int64"),
            "color": ["red", None, np.nan, pd.NA],
            "code": pd.array([1, 2, None, 3], dtype="Int64"),
        }
    )
    prof = profile_frame(df, ref.spec, NUM, CAT)
    miss = {c: (p.n_missing, p.count) for c, p in prof.columns.items()}
    assert miss == {"x": (2, 2), "skew": (3, 1), "disc": (1, 3), "color": (3, 1), "code": (1, 3)}
    assert prof.columns["skew"].null_rate == 0.75
    empty = profile_frame(df.iloc[:0], ref.spec, NUM, CAT)
    assert empty.columns["x"].count == 0 and np.isnan(empty.columns["x"].std)


def test_categories_compare_as_strings() -> None:
    spec = ProfileSpec(categorical={"c": ["1", "2", "a"]})
    as_int = profile_frame(pd.DataFrame({"c": [1, 2, 2]}), spec, [], ["c"]).columns["c"]
    as_float = profile_frame(pd.DataFrame({"c": [1.0, 2.0, 2.0, np.nan]}), spec, [], ["c"])
    mixed = profile_frame(
        pd.DataFrame({"c": pd.Series(["1", 2, "2"], dtype=object)}), spec, [], ["c"]
    )
    as_cat = profile_frame(pd.DataFrame({"c": pd.Categorical(["1", "2", "2"])}), spec, [], ["c"])
    for prof in (as_int, as_float.columns["c"], mixed.columns["c"], as_cat.columns["c"]):
        assert prof.counts == {"1": 1, "2": 2, "a": 0} and prof.unseen_total == 0


def test_unseen_values_bucketed_with_exact_total() -> None:
    spec = ProfileSpec(categorical={"c": ["a", "b"]})
    values = ["a"] * 5 + ["b"] * 3
    for i in range(60):  # 60 unseen values, value n{i} seen i + 1 times
        values += [f"n{i:02d}"] * (i + 1)
    col = profile_frame(pd.DataFrame({"c": values}), spec, [], ["c"]).columns["c"]
    assert col.counts == {"a": 5, "b": 3}
    assert len(col.unseen) == 50
    assert min(col.unseen.values()) == 11  # the 50 most frequent kept by name
    assert col.unseen_total == sum(range(1, 61))
    assert col.unseen_other == sum(range(1, 11))
    assert col.count == 8 + col.unseen_total


def test_vocabulary_is_capped_with_other_bucket() -> None:
    df = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 40 + ["c"] * 30 + ["d"] * 2 + ["e"]})
    prof = build_reference_profile(lambda: [df], [], ["c"], max_categories=3)
    assert prof.spec.categorical["c"] == ["a", "b", "c", OTHER]
    assert prof.columns["c"].counts == {"a": 50, "b": 40, "c": 30, OTHER: 3}
    # with a capped vocabulary, any value outside it is pooled in __other__
    cur = profile_frame(pd.DataFrame({"c": ["a", "zzz", "d"]}), prof.spec, [], ["c"])
    assert cur.columns["c"].counts[OTHER] == 2 and cur.columns["c"].unseen_total == 0


def test_reference_sample_keeps_exact_range() -> None:
    rng = np.random.default_rng(5)
    # four chunks around 0, the last around 10: a uniform sample puts ~20% of edges above 5
    chunks = [pd.DataFrame({"v": rng.normal(10.0 if i == 4 else 0.0, 1, 10_000)}) for i in range(5)]
    prof = build_reference_profile(lambda: iter(chunks), ["v"], [], n_bins=100, max_sample=2_000)
    allv = pd.concat(chunks)["v"]
    edges = prof.spec.numeric["v"]
    assert len(edges) == 101
    assert edges[0] == allv.min() and edges[-1] == allv.max()
    assert 16 <= int((edges > 5).sum()) <= 24  # 2,000-row sample: sd of the count ~ 0.9
    col = prof.columns["v"]
    assert col.count == 50_000 and col.counts[0] == 0 and col.tail_high == 0
    # sample quantiles: each of the 100 bins holds ~1% of all values (20 sample points each)
    shares = col.counts[1:-1] / col.count
    assert np.abs(shares - 0.01).mean() < 0.003 and shares.min() > 0.001


def test_inf_raises_data_error_naming_column(reference) -> None:
    _, ref = reference
    df = make_frame(100, seed=6)
    df.loc[[3, 7], "skew"] = [np.inf, -np.inf]
    with pytest.raises(DataError, match="2 infinite") as exc:
        profile_frame(df, ref.spec, NUM, CAT)
    assert exc.value.column == "skew"
    with pytest.raises(DataError) as exc:
        build_reference_profile(lambda: [df], NUM, CAT)
    assert exc.value.column == "skew" and "2 infinite" in str(exc.value)


def test_wrong_dtype_raises_data_error(reference) -> None:
    _, ref = reference
    df = make_frame(100, seed=7)
    df["x"] = df["x"].astype(str)
    with pytest.raises(DataError, match="dtype") as exc:
        profile_frame(df, ref.spec, NUM, CAT)
    assert exc.value.column == "x"


def test_missing_column_raises_data_error(reference) -> None:
    _, ref = reference
    df = make_frame(100, seed=8).drop(columns=["code"])
    with pytest.raises(DataError, match="missing") as exc:
        profile_frame(df, ref.spec, NUM, CAT)
    assert exc.value.column == "code"
    with pytest.raises(DataError):
        build_reference_profile(lambda: [df], NUM, CAT)


def test_sample_keeper_is_uniform_and_bounded() -> None:
    keeper = SampleKeeper(max_rows=1_000, seed=0)
    sizes = [7_000, 3, 2_997, 10_000]  # halves: rows 0..9,999 and 10,000..19,999
    start = 0
    for size in sizes:
        keeper.update(pd.DataFrame({"i": np.arange(start, start + size)}))
        start += size
    sample = keeper.sample()
    assert len(sample) == 1_000 and sample["i"].is_unique
    assert sample["i"].is_monotonic_increasing  # arrival order
    # each half should hold ~500 rows (sd ~ 16); 420..580 is a 5-sigma band
    assert 420 <= int((sample["i"] < 10_000).sum()) <= 580
    # the same seed and chunks give the same sample
    again = SampleKeeper(max_rows=1_000, seed=0)
    start = 0
    for size in sizes:
        again.update(pd.DataFrame({"i": np.arange(start, start + size)}))
        start += size
    pd.testing.assert_frame_equal(again.sample(), sample)
    small = SampleKeeper(max_rows=10).update(pd.DataFrame({"i": [3, 1, 2]}))
    assert small.sample()["i"].tolist() == [3, 1, 2]


def test_sample_keeper_keeps_the_rows_with_the_smallest_keys_whatever_the_chunks() -> None:
    """Only the rows that can still be in the sample are buffered, yet the sample is the rows
    of the smallest keys over every chunk, of the columns asked for, typed as all the chunks
    together (a chunk of another type widens the column, as concatenating them would)."""
    rng = np.random.default_rng(5)
    sizes = [12_000, 0, 50, 9_000, 3_000, 20_000, 1, 7_000]
    chunks = []
    for n in sizes:
        chunks.append(
            pd.DataFrame(
                {
                    "i": np.arange(sum(len(c) for c in chunks), sum(len(c) for c in chunks) + n),
                    "x": rng.normal(size=n),
                    "plan": pd.Series(rng.choice(["a", "b"], n), dtype="str"),
                    "dropped": 1,
                }
            )
        )
    chunks[4] = chunks[4].assign(x=chunks[4].x.astype(object))  # another type, mid-way
    keeper = SampleKeeper(max_rows=1_000, seed=9)
    for chunk in chunks:
        keeper.update(chunk, ["i", "x", "plan"])
    draws = np.random.default_rng(9)
    keys = np.concatenate([draws.random(len(c)) for c in chunks if len(c)])
    every = pd.concat([c[["i", "x", "plan"]] for c in chunks], ignore_index=True)
    want = every.take(np.sort(np.argsort(keys)[:1_000])).reset_index(drop=True)
    got = keeper.sample()
    assert str(got.x.dtype) == "object" and keeper.n_seen == sum(sizes)
    pd.testing.assert_frame_equal(got, want)
