"""The human-facing drift report: Evidently's HTML, rendered on bounded samples.

The numbers that drive decisions come from `drift.py` on full-data profiles; Evidently only
draws the picture. It is given the same per-column methods our engine chose, so the page and the
findings tell the same story, and bounded samples keep it to a second or two per partition
(Evidently on a full 1M-row day takes minutes, see `make bench`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

# our method names -> Evidently's stat test registry names
_EVIDENTLY_METHOD = {
    "wasserstein": "wasserstein",
    "jensenshannon": "jensenshannon",
    "ks": "ks",
    "chisquare": "chisquare",
    "psi": "psi",
}


def render_drift_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    path: Path,
    methods: Mapping[str, str] | None = None,
    title: str = "",
) -> Path:
    """Write Evidently's DataDriftPreset HTML for the two samples to `path`."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in numeric if c in reference.columns and c in current.columns]
    categorical = [c for c in categorical if c in reference.columns and c in current.columns]
    cols = [*numeric, *categorical]
    ref = reference[cols].copy()
    cur = current[cols].copy()
    for c in categorical:  # Evidently wants one type per categorical column
        ref[c] = ref[c].astype("string").astype(object)
        cur[c] = cur[c].astype("string").astype(object)
    per_column = {
        c: _EVIDENTLY_METHOD[m]
        for c, m in (methods or {}).items()
        if c in cols and m in _EVIDENTLY_METHOD
    }
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = Report([DataDriftPreset(per_column_method=per_column or None)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    html = snapshot.get_html_str(as_iframe=False)
    if title:
        html = html.replace("<title>", f"<title>{title} · ", 1)
    path.write_text(html)
    return path
