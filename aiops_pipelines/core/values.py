"""How values compare and print the same way everywhere: category labels, numbers, missing values.

A number that is not known (None, NaN, inf, not a number at all) prints as `MISSING` in finding
messages, the terminal table and the HTML page alike; an empty text cell prints as "-".
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MISSING = "n/a"
"""The text of a number that is not known."""

CUT = "…"
"""Ends a text that was cut short, so a reader sees it is not the whole value."""


def category_label(v: Any) -> str:
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


def as_number(value: Any) -> float:
    """`value` as a float; NaN when it is None or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def is_finite(value: Any) -> bool:
    return math.isfinite(as_number(value))


def as_text(value: Any) -> str:
    """Display text of a cell: '' for None/NaN."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if value is pd.NaT:
        return ""
    return str(value)


def fmt_number(value: Any, spec: str = ".3g") -> str:
    """`value` formatted with `spec`, or `MISSING`."""
    number = as_number(value)
    return format(number, spec) if math.isfinite(number) else MISSING


def fmt_percent(value: Any, digits: int = 0) -> str:
    number = as_number(value)
    return f"{number:.{digits}%}" if math.isfinite(number) else MISSING


def version_label(version: Any) -> str:
    """A model version as people write it: "v3" for 3; a version the log already names
    ("v3", "V3", "blue-7") is shown as it is, never "vv3"."""
    text = as_text(version).strip()
    return f"v{text}" if text[:1].isdigit() else text


def fmt_count(value: Any) -> str:
    number = as_number(value)
    return f"{number:,.0f}" if math.isfinite(number) else MISSING


def one_line(text: Any, limit: int | None = None) -> str:
    """Collapse whitespace (a failed run's message has a traceback's newlines)."""
    out = re.sub(r"\s+", " ", as_text(text)).strip()
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)] + "…"
    return out


def cap_strings(values: pd.Series, max_length: int) -> tuple[pd.Series, int, int]:
    """`values` with every string longer than `max_length` characters cut to its first
    `max_length - 1` and `CUT` (so it still fits), the number of values cut and the longest
    length among them; `values` itself, unchanged, when none is longer.

    A category value becomes a profile key, a metric column, a finding's message and a cell of
    an HTML report: one 10 MB value would be copied into each. Cheap when nothing is long: the
    lengths of the distinct values (object dtype) or one Arrow pass (string dtype).
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if _longest(values.cat.categories) <= max_length:
            return values, 0, 0
        values = values.astype(object)
        dtype = values.dtype
    if isinstance(dtype, pd.StringDtype):
        # a string has at least as many bytes as characters: no byte length over the limit,
        # no value over it (2 ms per 1M values, 10x faster than counting characters)
        if (pc.max(pc.binary_length(pa.array(values))).as_py() or 0) <= max_length:
            return values, 0, 0
        lengths = values.str.len().to_numpy(dtype=np.float64, na_value=0.0)
    elif pd.api.types.is_object_dtype(dtype):
        codes, uniques = pd.factorize(values)
        per_unique = np.fromiter(
            (len(u) if isinstance(u, str) else 0 for u in uniques), np.int64, len(uniques)
        )
        if not len(per_unique) or per_unique.max() <= max_length:
            return values, 0, 0
        lengths = np.where(codes >= 0, per_unique[codes], 0)
    else:
        return values, 0, 0
    long = lengths > max_length
    if not long.any():
        return values, 0, 0
    out = values.copy()
    out[long] = values[long].str.slice(0, max_length - 1) + CUT
    return out, int(long.sum()), int(lengths.max())


def _longest(names: pd.Index) -> int:
    return max((len(n) for n in names if isinstance(n, str)), default=0)


def quoted(value: Any, limit: int = 80) -> str:
    """`repr(value)` for an error message, cut to `limit` characters: the message names the
    offending value without copying all of a hostile one into every log."""
    text = repr(value)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + CUT
