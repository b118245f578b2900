"""Mergeable feature profiles, built in one vectorised pass over streamed chunks.

Why profiles: a drift check must not re-read the reference every day, and its cost must not grow
with the number of rows. The reference is summarised once into a `ProfileSpec` (what the
reference fixes: numeric bin edges and categorical vocabularies) and a `DatasetProfile` (counts
and moments). Every later day is profiled against the *same* spec, so two profiles compare bin by
bin and the drift statistics never touch raw rows. Profiles of chunks, hours or days merge exactly.

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
    CDF inside the bin was off by up to 0.04 standard deviations). How a chunk is binned fast
    is told in `builder`.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

OTHER = "__other__"
"""Vocabulary entry pooling the reference's rarer categories (only when the cap was hit)."""
MAX_UNSEEN_NAMES = 50
"""Unseen values kept by name per column; the rest are counted in `unseen_other`."""
PROFILE_FORMAT = "aiops.profile/1"
Kind = Literal["numeric", "categorical"]


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
            unseen, dropped = top_unseen(unseen, MAX_UNSEEN_NAMES)
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
        count, mean, m2 = merge_moments(
            self.count, self.mean, self.m2, other.count, other.mean, other.m2
        )
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


def merge_moments(
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


def top_unseen(unseen: dict[str, int], keep: int) -> tuple[dict[str, int], int]:
    """The `keep` most frequent names (ties broken by name) and the summed count of the rest."""
    if len(unseen) <= keep:
        return dict(sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))), 0
    items = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(items[:keep]), int(sum(v for _, v in items[keep:]))
