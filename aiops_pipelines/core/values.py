"""How values compare and print the same way everywhere: category labels, missing numbers."""

from __future__ import annotations

from typing import Any

import numpy as np


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
