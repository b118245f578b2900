"""Building profiles: one vectorised pass over streamed chunks, on the reference's spec.

The conventions (bins, atoms, tails, category labels, unseen values) are those of `profiles`.
Binning uses the algorithm of `np.histogram` with explicit edges (sort blocks of 65,536 values,
then `searchsorted` the edges into each sorted block, ~7 ms per 1M values; 5-10x faster than
searchsorting the values into the edges). The sorted block is reused for the NaN count, the
+/-inf check, min, max, the tails and the moments, so each value is read by one sort and a few
cache-resident passes. Columns are processed on a small thread pool (numpy's sort and
searchsorted release the GIL).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.values import category_label
from aiops_pipelines.signals.profile.profiles import (
    MAX_UNSEEN_NAMES,
    OTHER,
    ColumnProfile,
    DatasetProfile,
    ProfileSpec,
    merge_moments,
    top_unseen,
)

_BLOCK = 65_536  # np.histogram's block size: a sorted block of float64 stays in L2 cache
_UNSEEN_TRACK_CAP = 5_000  # unseen names tracked while building, before folding into "other"
_PARALLEL_MIN_ROWS = 8_192  # smaller chunks: per-column tasks too short for threads to win


def _numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """float64 values of a numeric column (NaN for missing); DataError for a non-numeric dtype."""
    dtype = series.dtype
    if (
        isinstance(dtype, pd.CategoricalDtype)
        or not ptypes.is_numeric_dtype(dtype)
        or ptypes.is_complex_dtype(dtype)
    ):
        raise DataError(
            f"numeric feature has dtype '{dtype}', expected int, float or bool "
            "(convert it upstream or declare the column categorical)",
            column=name,
        )
    if isinstance(dtype, np.dtype):
        return np.asarray(series.to_numpy(), dtype=np.float64)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _raise_inf(x: np.ndarray, name: str) -> None:
    n_inf = int(np.isinf(x).sum())
    raise DataError(
        f"{n_inf} infinite value(s) (+inf/-inf) in a numeric feature; inf is never valid model "
        "input (write NaN/None for a missing value)",
        column=name,
    )


Coded = tuple[np.ndarray, list[str]]
"""A categorical column's integer codes (-1: missing) and the label of each code."""


ColumnHook = Callable[[str, np.ndarray | Coded], None]
"""Called with a profiled column's name and the values it was profiled from (`start`)."""


def category_codes(series: pd.Series) -> Coded:
    """Integer codes (-1 = missing) and the string label of every code.

    Categorical dtype: its codes directly (free). Otherwise `pd.factorize`, which for pandas'
    Arrow-backed `str` dtype is a pyarrow dictionary encode (~8 ms per 1M values, GIL released)
    and far cheaper than `value_counts` on object dtype or `pd.Categorical(values, vocab)`.
    Labels may repeat (1 and "1" in an object column); callers aggregate by label.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = series.cat.categories
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if ptypes.is_string_dtype(uniques.dtype) and not ptypes.is_object_dtype(uniques.dtype):
        labels = [str(u) for u in uniques.tolist()]
    else:
        labels = [category_label(u) for u in uniques.tolist()]
    return np.asarray(codes, dtype=np.int64), labels


def _label_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """Exact counts per string label, and the number of missing values."""
    codes, labels = category_codes(series)
    per_code = np.bincount(codes + 1, minlength=len(labels) + 1)
    out: dict[str, int] = {}
    for lab, c in zip(labels, per_code[1:].tolist(), strict=True):
        if c:
            out[lab] = out.get(lab, 0) + c
    return out, int(per_code[0])


def _require_columns(df: pd.DataFrame, names: Iterable[str]) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        shown = ", ".join(map(str, list(df.columns)[:20]))
        raise DataError(
            f"column is missing from the data (columns present: {shown})", column=missing[0]
        )


class _NumericAcc:
    """Running state of one numeric column; `update` does one blocked pass over a chunk."""

    def __init__(self, name: str, edges: np.ndarray) -> None:
        self.name = name
        self.edges = edges
        self.lo = float(edges[0])
        self.hi = float(edges[-1])
        k = len(edges)
        self.cum_lt = np.zeros(k, np.int64)  # values < edges[j]
        self.cum_le = np.zeros(k, np.int64)  # values <= edges[j]
        self.sums = np.zeros(k + 1, np.float64)  # sum of the values in each bin
        self.n_rows = 0
        self.n_missing = 0
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.tail_low = 0.0
        self.tail_high = 0.0

    def update(self, series: pd.Series) -> None:
        self.update_values(_numeric_values(series, self.name))

    def update_values(self, x: np.ndarray) -> None:
        """Add a chunk's float64 values (`_numeric_values`)."""
        edges, lo, hi = self.edges, self.lo, self.hi
        cum_lt = np.zeros_like(self.cum_lt)
        cum_le = np.zeros_like(self.cum_le)
        sums = np.zeros_like(self.sums)
        starts = np.zeros(len(edges) + 1, np.int64)
        ends = np.empty(len(edges) + 1, np.int64)
        count, mean, m2 = 0, 0.0, 0.0
        mn, mx, tail_low, tail_high = math.inf, -math.inf, 0.0, 0.0
        for start in range(0, len(x), _BLOCK):
            sa = np.sort(x[start : start + _BLOCK])  # NaN sorts last
            v = len(sa)
            if sa[-1] != sa[-1]:
                v = int(sa.searchsorted(np.nan))
                sa = sa[:v]
                if v == 0:
                    continue
            if sa[0] == -math.inf or sa[-1] == math.inf:
                _raise_inf(x, self.name)
            lt = sa.searchsorted(edges, "left")
            # values equal to an edge (atoms) are rare in continuous data: search only those
            on_edge = sa[np.minimum(lt, v - 1)] == edges
            le = lt.copy()
            if on_edge.any():
                le[on_edge] = sa.searchsorted(edges[on_edge], "right")
            cum_lt += lt
            cum_le += le
            # per-bin sums over the sorted block: one reduceat over the non-empty bins, which
            # are contiguous, so each sum runs exactly to the next non-empty bin's start
            starts[1:] = lt
            ends[:-1] = lt
            ends[-1] = v
            filled = ends > starts
            sums[filled] += np.add.reduceat(sa, starts[filled])
            mn = min(mn, float(sa[0]))
            mx = max(mx, float(sa[-1]))
            if lt[0]:
                tail_low += float((lo - sa[: lt[0]]).sum())
            above = v - int(le[-1])
            if above:
                tail_high += float((sa[v - above :] - hi).sum())
            mb = float(sa.sum()) / v
            d = sa - mb
            np.square(d, out=d)  # not np.dot: BLAS threads fight the pool's threads
            count, mean, m2 = merge_moments(count, mean, m2, v, mb, float(d.sum()))
        self.n_rows += len(x)
        self.n_missing += len(x) - count
        self.cum_lt += cum_lt
        self.cum_le += cum_le
        self.sums += sums
        self.count, self.mean, self.m2 = merge_moments(
            self.count, self.mean, self.m2, count, mean, m2
        )
        self.min = min(self.min, mn)
        self.max = max(self.max, mx)
        self.tail_low += tail_low
        self.tail_high += tail_high

    def result(self) -> ColumnProfile:
        counts = np.empty(len(self.edges) + 1, np.int64)
        counts[0] = self.cum_lt[0]
        counts[1:-1] = np.diff(self.cum_lt)
        counts[-1] = self.count - self.cum_lt[-1]
        empty = self.count == 0
        return ColumnProfile(
            name=self.name,
            kind="numeric",
            n_rows=self.n_rows,
            n_missing=self.n_missing,
            count=self.count,
            mean=self.mean,
            m2=self.m2,
            min=math.nan if empty else self.min,
            max=math.nan if empty else self.max,
            counts=counts,
            atoms=self.cum_le - self.cum_lt,
            sums=self.sums.copy(),
            tail_low=self.tail_low,
            tail_high=self.tail_high,
            edges=self.edges,
        )


class _CategoricalAcc:
    """Running counts of one categorical column over the spec's vocabulary."""

    def __init__(self, name: str, vocab: list[str]) -> None:
        self.name = name
        self.vocab = vocab
        self.index = {v: i for i, v in enumerate(vocab)}
        self.other = self.index.get(OTHER)  # capped vocabulary: outside values count as other
        self.counts = np.zeros(len(vocab), np.int64)
        self.unseen: dict[str, int] = {}
        self.unseen_other = 0
        self.n_rows = 0
        self.n_missing = 0

    def update(self, series: pd.Series, coded: Coded | None = None) -> None:
        codes, labels = coded if coded is not None else category_codes(series)
        per_code = np.bincount(codes + 1, minlength=len(labels) + 1)
        self.n_rows += len(codes)
        self.n_missing += int(per_code[0])
        per_code = per_code[1:]
        target = np.fromiter(
            (self.index.get(lab, -1) for lab in labels), dtype=np.int64, count=len(labels)
        )
        if self.other is not None:
            target[target < 0] = self.other
        known = target >= 0
        np.add.at(self.counts, target[known], per_code[known])
        for i in np.flatnonzero(~known & (per_code > 0)).tolist():
            lab = labels[i]
            self.unseen[lab] = self.unseen.get(lab, 0) + int(per_code[i])
        if len(self.unseen) > _UNSEEN_TRACK_CAP:
            self.unseen, dropped = top_unseen(self.unseen, _UNSEEN_TRACK_CAP // 2)
            self.unseen_other += dropped

    def result(self) -> ColumnProfile:
        unseen, dropped = top_unseen(self.unseen, MAX_UNSEEN_NAMES)
        n_unseen = sum(self.unseen.values()) + self.unseen_other
        return ColumnProfile(
            name=self.name,
            kind="categorical",
            n_rows=self.n_rows,
            n_missing=self.n_missing,
            count=int(self.counts.sum()) + n_unseen,
            counts={v: int(c) for v, c in zip(self.vocab, self.counts.tolist(), strict=True)},
            unseen=unseen,
            unseen_other=self.unseen_other + dropped,
        )


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor | None:
    """A shared pool sized to the machine; None on a single core (threads would only cost).

    Keyed by process id: a forked child inherits the pool object but not its threads, and
    would wait forever on it.
    """
    global _POOL
    workers = min(4, os.cpu_count() or 1)
    if workers < 2:
        return None
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="aiops-profile"))
    return _POOL[1]


def _start_all(tasks: list[Callable[[], None]], n_rows: int) -> Callable[[], None]:
    """Start per-column updates, on threads when the chunk is big; the returned function waits
    for them, raising the first error in column order (serially, they ran already).

    Measured on 2 cores (load average 2.2-2.5), a 1M-row Parquet day x (20 numeric + 5
    categorical) in 50k-row chunks, when the main thread also coded the categories and built
    the block tables: `profile_for_day` 1.30-1.39 s with threads vs 1.98-2.18 s serially.
    With those in the columns' tasks (~1 ms each), and another process using about one core
    (load average 1.2-1.6): 1.10-1.40 s vs 1.14-1.34 s, for ~15% more CPU with threads.
    """
    pool = _pool() if n_rows >= _PARALLEL_MIN_ROWS and len(tasks) > 1 else None
    if pool is None:
        for t in tasks:
            t()
        return lambda: None
    futures = [pool.submit(t) for t in tasks]

    def wait() -> None:
        for f in futures:
            f.result()

    return wait


class ProfileBuilder:
    """Streams chunks into a `DatasetProfile` on a fixed spec (memory independent of rows).

    `update(df)` per chunk, `result()` at the end. Updating with chunks or with the whole frame
    gives the same counts exactly, and the same moments up to float rounding. After `update`
    raised a `DataError` the builder holds a partial chunk and must be discarded.
    """

    def __init__(self, spec: ProfileSpec, numeric: list[str], categorical: list[str]) -> None:
        unknown = [c for c in numeric if c not in spec.numeric] + [
            c for c in categorical if c not in spec.categorical
        ]
        if unknown:
            raise ValueError(f"columns not in the profile spec: {unknown}")
        self.spec = spec.subset(numeric, categorical)
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self._num = [_NumericAcc(c, spec.numeric[c]) for c in self.numeric]
        self._cat = [_CategoricalAcc(c, spec.categorical[c]) for c in self.categorical]
        self.n_rows = 0

    def update(self, df: pd.DataFrame, coded: Mapping[str, Coded] | None = None) -> ProfileBuilder:
        """Add one chunk (`coded`: the `category_codes` of categorical columns, when the
        caller has them already). Raises DataError naming the column on a contract violation."""
        self.start(df, coded)()
        return self

    def start(
        self,
        df: pd.DataFrame,
        coded: Mapping[str, Coded] | None = None,
        then: ColumnHook | None = None,
    ) -> Callable[[], None]:
        """`update` on the pool, returning the function that waits for it (and raises its
        DataError), so that the caller can work meanwhile. `then(name, values)` runs in each
        column's task after its update, with what it was profiled from: a numeric column's
        float64 values, a categorical column's `category_codes`."""
        _require_columns(df, [*self.numeric, *self.categorical])
        given = coded or {}
        tasks: list[Callable[[], None]] = []
        for acc in self._num:
            tasks.append(lambda a=acc, s=df[acc.name]: self._numeric(a, s, then))
        for acc in self._cat:
            tasks.append(
                lambda a=acc, s=df[acc.name]: self._categorical(a, s, given.get(a.name), then)
            )
        wait = _start_all(tasks, len(df))
        self.n_rows += len(df)
        return wait

    @staticmethod
    def _numeric(acc: _NumericAcc, series: pd.Series, then: ColumnHook | None) -> None:
        x = _numeric_values(series, acc.name)
        acc.update_values(x)
        if then is not None:
            then(acc.name, x)

    @staticmethod
    def _categorical(
        acc: _CategoricalAcc, series: pd.Series, coded: Coded | None, then: ColumnHook | None
    ) -> None:
        coded = coded if coded is not None else category_codes(series)
        acc.update(series, coded)
        if then is not None:
            then(acc.name, coded)

    def result(self) -> DatasetProfile:
        cols = [a.result() for a in self._num] + [a.result() for a in self._cat]
        return DatasetProfile(n_rows=self.n_rows, columns={c.name: c for c in cols}, spec=self.spec)


def profile_frame(
    df: pd.DataFrame, spec: ProfileSpec, numeric: list[str], categorical: list[str]
) -> DatasetProfile:
    """Profile one in-memory frame (convenience over `ProfileBuilder`)."""
    return ProfileBuilder(spec, numeric, categorical).update(df).result()


class SampleKeeper:
    """Uniform random sample of at most `max_rows` rows over all chunks seen.

    Each row gets an independent uniform key and the sample is the `max_rows` rows with the
    smallest keys, which is a uniform sample without replacement of everything seen, however it
    was chunked. Vectorised: chunks are buffered and compacted with one `argpartition` when the
    buffer reaches 2 x max_rows, so the cost is O(rows) amortised and memory stays below
    2 x max_rows rows plus one chunk. Only a chunk's rows that can still be in the sample are
    buffered: its own `max_rows` smallest keys, and once `max_rows` keys were seen below some
    bound, only those below it (a 50k-row chunk cost ~6 ms, copied whole into the buffer; now
    its rows that can still be in the sample, ~3 ms). Used to feed a bounded Evidently HTML
    report.
    """

    def __init__(self, max_rows: int, seed: int = 0) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.max_rows = int(max_rows)
        self._rng = np.random.default_rng(seed)
        self._frames: list[pd.DataFrame] = []
        self._keys: list[np.ndarray] = []
        self._buffered = 0
        self._bound: float | None = None
        self._types: list[object] | None = None
        self.n_seen = 0

    def update(self, df: pd.DataFrame, columns: Sequence[str] | None = None) -> SampleKeeper:
        """Add a chunk (of its `columns` only, when given)."""
        if len(df) == 0:
            return self
        keys = self._rng.random(len(df))
        self.n_seen += len(df)
        rows = self._candidates(keys)
        names = list(df.columns) if columns is None else list(columns)
        types = df.dtypes.to_dict()
        types = [types[n] for n in names]
        if not self._frames:
            self._types = types
        # a chunk of other types than the buffer's changes its types (concat): kept whole
        if rows is not None and types == self._types:
            if not len(rows):
                return self
            keys = keys[rows]
            part = df.iloc[rows, df.columns.get_indexer(names)]
        else:
            part = df if columns is None else df[names]
        self._frames.append(part)
        self._keys.append(keys)
        self._buffered += len(keys)
        if self._buffered >= 2 * self.max_rows:
            self._compact()
        return self

    def _candidates(self, keys: np.ndarray) -> np.ndarray | None:
        """The rows of a chunk (its `keys`) that can be in the sample (None: every row)."""
        rows = np.flatnonzero(keys <= self._bound) if self._bound is not None else None
        left = keys if rows is None else keys[rows]
        if len(left) > self.max_rows:
            best = np.sort(np.argpartition(left, self.max_rows - 1)[: self.max_rows])
            rows = best if rows is None else rows[best]
            # `max_rows` keys at or below it seen: no key above it can be in the sample
            self._bound = float(left[best].max())
        return rows

    def _compact(self) -> None:
        if len(self._frames) <= 1 and self._buffered <= self.max_rows:
            return
        keys = np.concatenate(self._keys)
        frame = pd.concat(self._frames, ignore_index=True)
        if len(keys) > self.max_rows:
            keep = np.sort(np.argpartition(keys, self.max_rows - 1)[: self.max_rows])
            keys = keys[keep]
            frame = frame.take(keep).reset_index(drop=True)
        self._frames, self._keys, self._buffered = [frame], [keys], len(frame)
        self._types = frame.dtypes.tolist()
        if len(keys) == self.max_rows:
            self._bound = float(keys.max())

    def sample(self) -> pd.DataFrame:
        """The sample, rows in arrival order (an empty frame if nothing was seen)."""
        if not self._frames:
            return pd.DataFrame()
        self._compact()
        return self._frames[0].reset_index(drop=True)


class _CategoryCounter:
    """Category counts for choosing the vocabulary, with memory bounded by `cap` names.

    Exact while a column has at most `cap` distinct values. Beyond that it becomes a
    Misra-Gries summary: all counts drop by the (cap/2)-th largest count and non-positive ones
    are removed, which keeps every category more frequent than 2/cap of the rows. Only the
    choice of the vocabulary depends on this; the profile's own counts come from pass 2.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.exact = True

    def add(self, counts: dict[str, int]) -> None:
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        if len(self.counts) > self.cap:
            values = np.fromiter(self.counts.values(), dtype=np.int64, count=len(self.counts))
            cut = int(np.partition(values, -(self.cap // 2))[-(self.cap // 2)])
            self.counts = {k: v - cut for k, v in self.counts.items() if v > cut}
            self.exact = False


def _edges(sample: np.ndarray, vmin: float, vmax: float, n_bins: int) -> np.ndarray:
    """Unique sample quantiles at n_bins+1 levels, or every distinct value when there are few.

    Quantiles are taken by nearest rank, so every edge is an observed value and a discrete
    column's edges are exactly its values. The first and last edges are the exact reference
    min and max (tracked over all rows, not just the sample).
    """
    s = np.sort(sample)
    distinct = s[np.concatenate(([True], s[1:] != s[:-1]))] if len(s) else s
    if len(distinct) <= n_bins + 1:  # every value its own bin (plus any unsampled extreme)
        return np.unique(np.concatenate((distinct, [vmin, vmax])))
    q = s[np.round(np.linspace(0, len(s) - 1, n_bins + 1)).astype(np.int64)]
    q[0], q[-1] = vmin, vmax  # the sample's extremes give way to the exact ones
    return np.unique(q)


def build_reference_profile(
    chunks: Callable[[], Iterable[pd.DataFrame]],
    numeric: list[str],
    categorical: list[str],
    *,
    n_bins: int = 1000,
    max_sample: int = 1_000_000,
    seed: int = 0,
    max_categories: int = 500,
) -> DatasetProfile:
    """Build the spec from the reference and profile the reference on it, in two passes.

    Pass 1 keeps a uniform row sample of the numeric columns (at most `max_sample` rows, so
    quantiles are exact when the reference fits), exact min/max, and category counts. The spec's
    edges are the unique sample quantiles at `n_bins + 1` evenly spaced levels (1000 bins: KS
    within ~1e-4 and W1 within ~1e-3 of the full-data values, see `signals.drift.statistics`).
    Pass 2 profiles every row with `ProfileBuilder`. `chunks` is called once per pass, so it
    must be re-iterable (e.g. a function reopening a Parquet file or re-running a query).
    Memory is bounded by `max_sample`, not by the number of rows.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    keeper = SampleKeeper(max_sample, seed)
    vmin = {c: math.inf for c in numeric}
    vmax = {c: -math.inf for c in numeric}
    counters = {c: _CategoryCounter(max(100 * max_categories, 10_000)) for c in categorical}
    for df in chunks():
        _require_columns(df, [*numeric, *categorical])
        values: dict[str, np.ndarray] = {}
        for c in numeric:
            x = _numeric_values(df[c], c)
            if len(x):
                lo, hi = float(x.min()), float(x.max())
                if math.isnan(lo) or math.isnan(hi):
                    xv = x[~np.isnan(x)]
                    lo, hi = (float(xv.min()), float(xv.max())) if len(xv) else (math.nan,) * 2
                if lo == -math.inf or hi == math.inf:
                    _raise_inf(x, c)
                if not math.isnan(lo):
                    vmin[c], vmax[c] = min(vmin[c], lo), max(vmax[c], hi)
            values[c] = x
        if numeric:
            keeper.update(pd.DataFrame(values, copy=False))
        for c in categorical:
            counters[c].add(_label_counts(df[c])[0])
    sample = keeper.sample()
    edges: dict[str, np.ndarray] = {}
    for c in numeric:
        if vmin[c] == math.inf:
            raise DataError(
                "the reference has no non-missing value in this numeric feature", column=c
            )
        col = sample[c].to_numpy(dtype=np.float64)
        edges[c] = _edges(col[~np.isnan(col)], vmin[c], vmax[c], n_bins)
    vocab: dict[str, list[str]] = {}
    for c in categorical:
        ranked = sorted(counters[c].counts.items(), key=lambda kv: (-kv[1], kv[0]))
        names = [k for k, _ in ranked[:max_categories]]
        if len(ranked) > max_categories or not counters[c].exact:
            names = [n for n in names if n != OTHER] + [OTHER]
        vocab[c] = names
    spec = ProfileSpec(numeric=edges, categorical=vocab)
    builder = ProfileBuilder(spec, numeric, categorical)
    for df in chunks():
        builder.update(df)
    return builder.result()
