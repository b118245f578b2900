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

MISSING = "n/a"
"""The text of a number that is not known."""


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
