"""Mergeable feature profiles, built in one vectorised pass over streamed chunks.

Why profiles: a drift check must not re-read the reference every day, and its cost must not grow
with the number of rows. The reference is summarised once into a `ProfileSpec` (what the
reference fixes: numeric bin edges and categorical vocabularies) and a `DatasetProfile` (counts
and moments). Every later day is profiled against the *same* spec, so two profiles compare bin by
bin and `drift.py` never touches raw rows. Profiles of chunks, hours or days merge exactly.

Numeric columns
    `edges` are sorted unique quantiles of the reference (`n_bins + 1` levels, edges[0] = the
    reference minimum, edges[-1] = the reference maximum). With few distinct values the edges
    collapse to the distinct values, so every value has its own bin.

    Bin convention (len(edges) + 1 bins, `counts[i]`):

    * bin 0: ``x < edges[0]`` (below the reference range),
    * bin i for 1 <= i < len(edges): ``edges[i-1] <= x < edges[i]`` (half open),
    * last bin: ``x >= edges[-1]``.

    Every bin is half open on the right, so each edge belongs to the bin that *starts* at it. The
    reference's own maximum therefore lands in the last bin, together with anything above it;
    the part strictly above the reference range is described exactly by `tail_high` (sum of
    ``x - edges[-1]`` over ``x > edges[-1]``), the part below by `tail_low`. The half-open rule is
    what gives a discrete column one bin per value (with the closed last bin of `np.histogram`
    the two largest values would share a bin). `atoms[i]` counts the values exactly equal to
    ``edges[i]``: with them the empirical CDF is known exactly at every edge, which makes the KS
    statistic exact and W1 exact on discrete and mixed (e.g. zero-inflated) columns. They cost
    one extra `searchsorted` of the edges per sorted block, i.e. nothing measurable. `sums[i]`
    is the sum of the values in bin i: with it the integral of each CDF over each bin is exact,
    so W1 stays exact in wide, sparsely filled bins (the tail of a log-normal, where a linear
    CDF inside the bin was off by up to 0.04 standard deviations).

    Binning uses the algorithm of `np.histogram` with explicit edges (sort blocks of 65,536
    values, then `searchsorted` the edges into each sorted block, ~7 ms per 1M values; 5-10x
    faster than searchsorting the values into the edges). The sorted block is reused for the
    NaN count, the +/-inf check, min, max, the tails and the moments, so each value is read by
    one sort and a few cache-resident passes. Columns are processed on a small thread pool
    (numpy's sort and searchsorted release the GIL).

Categorical columns
    Values are compared **as strings**: the int 1, the float 1.0 and the string "1" are the same
    category (integral floats are written without ".0", because a nullable integer column often
    arrives as float64 once it has a NaN). None/NaN/pd.NA are missing; the empty string is a
    category. The vocabulary holds the reference's `max_categories` most frequent values; if the
    reference had more, the rest are pooled in the `__other__` bucket, which is part of the
    vocabulary, and from then on *any* value outside the vocabulary counts as `__other__` (a new
    value cannot be told from a rare known one without storing every rare one). For columns
    whose vocabulary is complete, values outside it are "unseen": counted by name (the 50 most
    frequent) plus `unseen_other`, so the unseen total is exact.

Missing values and errors
    NaN/None in a numeric column is a missing value (counted in `n_missing`, not an error).
    +/-inf, a non-numeric dtype in a numeric column and a missing column raise `DataError`
    naming the column: they break the data contract and must not be silently dropped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from aiops_pipelines.core.errors import DataError

OTHER = "__other__"
"""Vocabulary entry pooling the reference's rarer categories (only when the cap was hit)."""
MAX_UNSEEN_NAMES = 50
"""Unseen values kept by name per column; the rest are counted in `unseen_other`."""
PROFILE_FORMAT = "aiops.profile/1"

_BLOCK = 65_536  # np.histogram's block size: a sorted block of float64 stays in L2 cache
_UNSEEN_TRACK_CAP = 5_000  # unseen names tracked while building, before folding into "other"
_PARALLEL_MIN_ROWS = 2 * _BLOCK  # smaller chunks: per-column tasks too short for threads to win

Kind = Literal["numeric", "categorical"]


# --------------------------------------------------------------------------------------- spec


@dataclass(eq=False)
class ProfileSpec:
    """What the reference fixes: numeric bin edges and categorical vocabularies.

    Two profiles are comparable (and mergeable) only when built with equal specs, because the
    drift statistics compare them bin by bin and category by category.
    """

    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fixed: dict[str, np.ndarray] = {}
        for name, edges in self.numeric.items():
            arr = np.asarray(edges, dtype=np.float64).reshape(-1)
            if arr.size == 0:
                raise ValueError(f"numeric column '{name}': at least one bin edge is needed")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"numeric column '{name}': bin edges must be finite")
            if arr.size > 1 and not np.all(np.diff(arr) > 0):
                raise ValueError(f"numeric column '{name}': bin edges must be strictly increasing")
            fixed[name] = arr
        self.numeric = fixed
        self.categorical = {
            name: [str(v) for v in vocab] for name, vocab in self.categorical.items()
        }
        for name, vocab in self.categorical.items():
            if len(set(vocab)) != len(vocab):
                raise ValueError(f"categorical column '{name}': vocabulary has duplicates")
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns both numeric and categorical: {sorted(both)}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProfileSpec):
            return NotImplemented
        return (
            self.numeric.keys() == other.numeric.keys()
            and all(np.array_equal(v, other.numeric[k]) for k, v in self.numeric.items())
            and self.categorical == other.categorical
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it is

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe copy; floats survive a JSON round trip exactly (Python writes repr)."""
        return {
            "numeric": {k: [float(x) for x in v] for k, v in self.numeric.items()},
            "categorical": {k: list(v) for k, v in self.categorical.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProfileSpec:
        return cls(
            numeric={k: np.asarray(v, dtype=np.float64) for k, v in d.get("numeric", {}).items()},
            categorical={k: list(v) for k, v in d.get("categorical", {}).items()},
        )

    def subset(self, numeric: Iterable[str], categorical: Iterable[str]) -> ProfileSpec:
        """The spec restricted to some columns (a model may monitor a subset)."""
        return ProfileSpec(
            numeric={c: self.numeric[c] for c in numeric},
            categorical={c: self.categorical[c] for c in categorical},
        )


# ----------------------------------------------------------------------------------- profiles


def _f(x: float) -> float | None:
    """JSON has no NaN: write None."""
    return None if x is None or not math.isfinite(x) else float(x)


def _unf(x: Any) -> float:
    return math.nan if x is None else float(x)


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@dataclass(eq=False)
class ColumnProfile:
    """Counts and moments of one column, on the spec's bins or vocabulary.

    Numeric: `counts` is an int64 array of len(edges) + 1 (convention in the module docstring),
    `atoms` an int64 array of len(edges) (values exactly on each edge), `sums` a float64 array
    like `counts` (sum of the values in each bin), `mean`/`m2` the running
    mean and sum of squared deviations (merged by Chan's formula), `tail_low`/`tail_high` the
    summed distances of out-of-range values to the range (they make W1 exact in the tails).
    Categorical: `counts` maps every vocabulary entry to its count; `unseen` holds the most
    frequent values outside the vocabulary and `unseen_other` the rest of them.
    `count` is the number of non-missing values for both kinds. Numeric profiles carry their
    spec's `edges` so that a column profile alone is enough for W1 (`drift.wasserstein_normed`).
    """

    name: str
    kind: Kind
    n_rows: int = 0
    n_missing: int = 0
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.nan
    max: float = math.nan
    counts: Any = None  # np.ndarray (numeric) or dict[str, int] (categorical)
    atoms: np.ndarray | None = None
    sums: np.ndarray | None = None
    tail_low: float = 0.0
    tail_high: float = 0.0
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_other: int = 0
    edges: np.ndarray | None = field(default=None, repr=False)

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0), the one Evidently normalises W1 by."""
        return math.sqrt(self.m2 / self.count) if self.count > 0 else math.nan

    @property
    def null_rate(self) -> float:
        """Share of rows that are missing (0.0 for an empty profile)."""
        return self.n_missing / self.n_rows if self.n_rows else 0.0

    @property
    def unseen_total(self) -> int:
        """Exact number of values outside the vocabulary (categorical only)."""
        return int(sum(self.unseen.values()) + self.unseen_other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ColumnProfile):
            return NotImplemented
        if (self.name, self.kind, self.n_rows, self.n_missing, self.count) != (
            other.name,
            other.kind,
            other.n_rows,
            other.n_missing,
            other.count,
        ):
            return False
        if self.kind == "categorical":
            return (
                self.counts == other.counts
                and self.unseen == other.unseen
                and self.unseen_other == other.unseen_other
            )
        return (
            np.array_equal(self.counts, other.counts)
            and np.array_equal(self.atoms, other.atoms)
            and np.array_equal(self.sums, other.sums)
            and np.array_equal(self.edges, other.edges)
            and all(
                _same_float(getattr(self, a), getattr(other, a))
                for a in ("mean", "m2", "min", "max", "tail_low", "tail_high")
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """Exact merge: counts add, moments combine by Chan et al.'s parallel formula."""
        if (self.name, self.kind) != (other.name, other.kind):
            raise ValueError(f"cannot merge column '{self.name}' with column '{other.name}'")
        if self.kind == "categorical":
            if self.counts.keys() != other.counts.keys():
                raise ValueError(f"column '{self.name}': vocabularies differ")
            unseen = dict(self.unseen)
            for k, v in other.unseen.items():
                unseen[k] = unseen.get(k, 0) + v
            unseen, dropped = _top_unseen(unseen, MAX_UNSEEN_NAMES)
            return ColumnProfile(
                name=self.name,
                kind="categorical",
                n_rows=self.n_rows + other.n_rows,
                n_missing=self.n_missing + other.n_missing,
                count=self.count + other.count,
                counts={k: v + other.counts[k] for k, v in self.counts.items()},
                unseen=unseen,
                unseen_other=self.unseen_other + other.unseen_other + dropped,
            )
        if not np.array_equal(self.edges, other.edges):
            raise ValueError(f"column '{self.name}': bin edges differ")
        count, mean, m2 = _chan(self.count, self.mean, self.m2, other.count, other.mean, other.m2)
        return ColumnProfile(
            name=self.name,
            kind="numeric",
            n_rows=self.n_rows + other.n_rows,
            n_missing=self.n_missing + other.n_missing,
            count=count,
            mean=mean,
            m2=m2,
            min=float(np.fmin(self.min, other.min)),
            max=float(np.fmax(self.max, other.max)),
            counts=self.counts + other.counts,
            atoms=self.atoms + other.atoms,
            sums=self.sums + other.sums,
            tail_low=self.tail_low + other.tail_low,
            tail_high=self.tail_high + other.tail_high,
            edges=self.edges,
        )

    def to_dict(self, *, with_edges: bool = True) -> dict[str, Any]:
        """JSON-safe copy. `DatasetProfile` leaves the edges out: its spec already holds them."""
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "n_rows": int(self.n_rows),
            "n_missing": int(self.n_missing),
            "count": int(self.count),
        }
        if self.kind == "categorical":
            d["counts"] = {k: int(v) for k, v in self.counts.items()}
            d["unseen"] = {k: int(v) for k, v in self.unseen.items()}
            d["unseen_other"] = int(self.unseen_other)
        else:
            d.update(
                mean=_f(self.mean),
                m2=_f(self.m2),
                min=_f(self.min),
                max=_f(self.max),
                counts=[int(x) for x in self.counts],
                atoms=[int(x) for x in self.atoms],
                sums=[float(x) for x in self.sums],
                tail_low=_f(self.tail_low),
                tail_high=_f(self.tail_high),
            )
            if with_edges and self.edges is not None:
                d["edges"] = [float(x) for x in self.edges]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnProfile:
        common = dict(
            name=d["name"],
            kind=d["kind"],
            n_rows=int(d["n_rows"]),
            n_missing=int(d["n_missing"]),
            count=int(d["count"]),
        )
        if d["kind"] == "categorical":
            return cls(
                **common,
                counts={k: int(v) for k, v in d["counts"].items()},
                unseen={k: int(v) for k, v in d["unseen"].items()},
                unseen_other=int(d["unseen_other"]),
            )
        if d["kind"] != "numeric":
            raise ValueError(f"unknown column kind {d['kind']!r}")
        return cls(
            **common,
            mean=_unf(d["mean"]),
            m2=_unf(d["m2"]),
            min=_unf(d["min"]),
            max=_unf(d["max"]),
            counts=np.asarray(d["counts"], dtype=np.int64),
            atoms=np.asarray(d["atoms"], dtype=np.int64),
            sums=np.asarray(d["sums"], dtype=np.float64),
            tail_low=_unf(d["tail_low"]),
            tail_high=_unf(d["tail_high"]),
            edges=np.asarray(d["edges"], dtype=np.float64) if "edges" in d else None,
        )


@dataclass(eq=False)
class DatasetProfile:
    """Column profiles of one dataset (a chunk, a day, the reference) plus the spec behind them."""

    n_rows: int
    columns: dict[str, ColumnProfile]
    spec: ProfileSpec

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetProfile):
            return NotImplemented
        return (
            self.n_rows == other.n_rows
            and self.spec == other.spec
            and list(self.columns) == list(other.columns)
            and all(c == other.columns[k] for k, c in self.columns.items())
        )

    __hash__ = None  # type: ignore[assignment]

    def merge(self, other: DatasetProfile) -> DatasetProfile:
        """Profile of the union of both datasets (exact). Raises ValueError if specs differ."""
        if self.spec != other.spec:
            raise ValueError("cannot merge profiles built with different specs (bins/vocabulary)")
        if list(self.columns) != list(other.columns):
            raise ValueError(
                f"cannot merge profiles of different columns: {list(self.columns)} vs "
                f"{list(other.columns)}"
            )
        return DatasetProfile(
            n_rows=self.n_rows + other.n_rows,
            columns={k: c.merge(other.columns[k]) for k, c in self.columns.items()},
            spec=self.spec,
        )

    @staticmethod
    def merge_all(profiles: Iterable[DatasetProfile]) -> DatasetProfile:
        """Merge many profiles (e.g. hourly into daily). Raises ValueError when given none."""
        it = iter(profiles)
        try:
            acc = next(it)
        except StopIteration:
            raise ValueError("merge_all needs at least one profile") from None
        for p in it:
            acc = acc.merge(p)
        return acc

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; `from_dict(json.loads(json.dumps(p.to_dict())))` equals `p` exactly."""
        return {
            "format": PROFILE_FORMAT,
            "n_rows": int(self.n_rows),
            "spec": self.spec.to_dict(),
            "columns": [c.to_dict(with_edges=False) for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetProfile:
        if d.get("format") != PROFILE_FORMAT:
            raise ValueError(f"not a profile of format {PROFILE_FORMAT}: {d.get('format')!r}")
        spec = ProfileSpec.from_dict(d["spec"])
        cols = [ColumnProfile.from_dict(c) for c in d["columns"]]
        for c in cols:
            if c.kind == "numeric":
                c.edges = spec.numeric[c.name]
        return cls(n_rows=int(d["n_rows"]), columns={c.name: c for c in cols}, spec=spec)


merge_all = DatasetProfile.merge_all


def _chan(
    na: int, ma: float, m2a: float, nb: int, mb: float, m2b: float
) -> tuple[int, float, float]:
    """Chan et al. (1979) pairwise update of (count, mean, M2); stable for any split."""
    if nb == 0:
        return na, ma, m2a
    if na == 0:
        return nb, mb, m2b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n


def _top_unseen(unseen: dict[str, int], keep: int) -> tuple[dict[str, int], int]:
    """The `keep` most frequent names (ties broken by name) and the summed count of the rest."""
    if len(unseen) <= keep:
        return dict(sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))), 0
    items = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(items[:keep]), int(sum(v for _, v in items[keep:]))


# ------------------------------------------------------------------------ value coercion


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


def _label(v: Any) -> str:
    """The string a categorical value is compared as (1, 1.0 and "1" are all "1")."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return "True" if v else "False"
    if isinstance(v, float | np.floating):
        f = float(v)
        if f.is_integer() and abs(f) < 2**63:
            return str(int(f))
        return repr(f)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
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
        labels = [_label(u) for u in uniques.tolist()]
    return np.asarray(codes, dtype=np.int64), labels


def _label_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """Exact counts per string label, and the number of missing values."""
    codes, labels = _codes(series)
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


# ------------------------------------------------------------------------------ accumulators


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
        x = _numeric_values(series, self.name)
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
            count, mean, m2 = _chan(count, mean, m2, v, mb, float(d.sum()))
        self.n_rows += len(x)
        self.n_missing += len(x) - count
        self.cum_lt += cum_lt
        self.cum_le += cum_le
        self.sums += sums
        self.count, self.mean, self.m2 = _chan(self.count, self.mean, self.m2, count, mean, m2)
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

    def update(self, series: pd.Series) -> None:
        codes, labels = _codes(series)
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
            self.unseen, dropped = _top_unseen(self.unseen, _UNSEEN_TRACK_CAP // 2)
            self.unseen_other += dropped

    def result(self) -> ColumnProfile:
        unseen, dropped = _top_unseen(self.unseen, MAX_UNSEEN_NAMES)
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


def _run_all(tasks: list[Callable[[], None]], n_rows: int) -> None:
    """Run per-column updates, on threads when the chunk is big; errors raise in column order.

    Measured on 2 cores, 1M x (20 numeric + 5 categorical): one 1M-row chunk 0.17-0.21 s with
    threads vs 0.21 s serial; 50k-row chunks gain nothing from threads (GIL hand-offs between
    short tasks), so they run serially (0.24 s).
    """
    pool = _pool() if n_rows >= _PARALLEL_MIN_ROWS and len(tasks) > 1 else None
    if pool is None:
        for t in tasks:
            t()
        return
    futures = [pool.submit(t) for t in tasks]
    for f in futures:
        f.result()


# ----------------------------------------------------------------------------------- builder


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

    def update(self, df: pd.DataFrame) -> ProfileBuilder:
        """Add one chunk. Raises DataError naming the column on a contract violation."""
        _require_columns(df, [*self.numeric, *self.categorical])
        tasks: list[Callable[[], None]] = []
        for acc in self._num:
            tasks.append(lambda a=acc: a.update(df[a.name]))
        for acc in self._cat:
            tasks.append(lambda a=acc: a.update(df[a.name]))
        _run_all(tasks, len(df))
        self.n_rows += len(df)
        return self

    def result(self) -> DatasetProfile:
        cols = [a.result() for a in self._num] + [a.result() for a in self._cat]
        return DatasetProfile(n_rows=self.n_rows, columns={c.name: c for c in cols}, spec=self.spec)


def profile_frame(
    df: pd.DataFrame, spec: ProfileSpec, numeric: list[str], categorical: list[str]
) -> DatasetProfile:
    """Profile one in-memory frame (convenience over `ProfileBuilder`)."""
    return ProfileBuilder(spec, numeric, categorical).update(df).result()


# ------------------------------------------------------------------------------ sampling


class SampleKeeper:
    """Uniform random sample of at most `max_rows` rows over all chunks seen.

    Each row gets an independent uniform key and the sample is the `max_rows` rows with the
    smallest keys, which is a uniform sample without replacement of everything seen, however it
    was chunked. Vectorised: chunks are buffered and compacted with one `argpartition` when the
    buffer reaches 2 x max_rows, so the cost is O(rows) amortised and memory stays below
    2 x max_rows rows plus one chunk. Used to feed a bounded Evidently HTML report.
    """

    def __init__(self, max_rows: int, seed: int = 0) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.max_rows = int(max_rows)
        self._rng = np.random.default_rng(seed)
        self._frames: list[pd.DataFrame] = []
        self._keys: list[np.ndarray] = []
        self._buffered = 0
        self.n_seen = 0

    def update(self, df: pd.DataFrame) -> SampleKeeper:
        if len(df) == 0:
            return self
        self._frames.append(df)
        self._keys.append(self._rng.random(len(df)))
        self._buffered += len(df)
        self.n_seen += len(df)
        if self._buffered >= 2 * self.max_rows:
            self._compact()
        return self

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

    def sample(self) -> pd.DataFrame:
        """The sample, rows in arrival order (an empty frame if nothing was seen)."""
        if not self._frames:
            return pd.DataFrame()
        self._compact()
        return self._frames[0].reset_index(drop=True)


# ---------------------------------------------------------------------------- reference build


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
    within ~1e-4 and W1 within ~1e-3 of the full-data values, see drift.py). Pass 2 profiles
    every row with `ProfileBuilder`. `chunks` is called once per pass, so it must be
    re-iterable (e.g. a function reopening a Parquet file or re-running a query). Memory is
    bounded by `max_sample`, not by the number of rows.
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
