"""The human-facing drift report: the day's verdicts as JSON, and Evidently's HTML rendered on
bounded samples.

The numbers that drive decisions come from `signals.drift` on full-data profiles; Evidently only
draws the picture. It is given the same per-column methods our engine chose, so the page and the
findings tell the same story, and bounded samples keep it to a second or two per partition
(Evidently on a full 1M-row day takes minutes, see `make bench`).

Evidently embeds the data as JSON inside `<script>` elements without escaping `</`, so a
category value `</script><img onerror=...>` would end the script and run as markup in the
reader's browser. Every text it is given (category values and column names) is neutralised
first (`neutral_text`): the report is evidence, and a look-alike character there is as
readable as the raw one.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.files import replace_file
from aiops_pipelines.core.findings import Asset, Finding, Severity
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.signals.drift.day import DriftResult
from aiops_pipelines.signals.profile.day import profiled_columns

# our method names -> Evidently's stat test registry names
_EVIDENTLY_METHOD = {
    "wasserstein": "wasserstein",
    "jensenshannon": "jensenshannon",
    "ks": "ks",
    "chisquare": "chisquare",
    "psi": "psi",
}

# the characters that let text become markup, as look-alikes that stay text in any context
_NEUTRAL = str.maketrans(
    {"<": "\u2039", ">": "\u203a", "&": "\uff06", '"': "\u201d", "'": "\u2019"}
)


def neutral_text(value: Any) -> Any:
    """A string with `< > & " '` replaced by look-alikes (‹ › ＆ ” ’); anything else as it is."""
    return value.translate(_NEUTRAL) if isinstance(value, str) else value


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
    """Write Evidently's DataDriftPreset HTML for the two samples to `path`, every text from the
    data (category values, column names) and the title neutralised or escaped."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in numeric if c in reference.columns and c in current.columns]
    categorical = [c for c in categorical if c in reference.columns and c in current.columns]
    cols = [*numeric, *categorical]
    ref = reference[cols].copy()
    cur = current[cols].copy()
    for c in categorical:  # Evidently wants one type per categorical column
        ref[c] = ref[c].astype("string").astype(object).map(neutral_text)
        cur[c] = cur[c].astype("string").astype(object).map(neutral_text)
    names = {c: neutral_text(c) for c in cols}
    ref, cur = ref.rename(columns=names), cur.rename(columns=names)
    per_column = {
        names[c]: _EVIDENTLY_METHOD[m]
        for c, m in (methods or {}).items()
        if c in cols and m in _EVIDENTLY_METHOD
    }
    definition = DataDefinition(
        numerical_columns=[names[c] for c in numeric],
        categorical_columns=[names[c] for c in categorical],
    )
    report = Report([DataDriftPreset(per_column_method=per_column or None)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
    page = snapshot.get_html_str(as_iframe=False)
    if title:
        page = page.replace("<title>", f"<title>{html.escape(title)} · ", 1)
    return replace_file(path, lambda tmp: tmp.write_text(page))


def drift_onset(
    store: MonitoringStore, model: ModelConfig, day: str, findings: Sequence[Finding]
) -> bool:
    """Whether `findings` (the day's drift findings) hold one the previous day's drift report
    did not: a (signal, column) it did not find, or found less severe. A lasting drift gets its
    picture on the day it began (and on the day it worsened), not again every day it lasts;
    every other day's is one `aiops report --html` away."""
    if not findings:
        return False
    before = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
    prev = store.findings(model.tenant, model.name, start=before, end=before)
    prev = prev[prev["asset"] == Asset.DRIFT_REPORT.value]
    seen: dict[tuple[str, str], int] = {}
    for row in prev[["signal", "column", "severity"]].itertuples(index=False):
        key = (row.signal, row.column)
        seen[key] = max(seen.get(key, -1), Severity(row.severity).rank)
    return any(seen.get((f.signal, f.column), -1) < f.severity.rank for f in findings)


def write_drift_reports(
    result: DriftResult,
    model: ModelConfig,
    day: str,
    reports_dir: Path,
    *,
    reference_sample: Path | None = None,
    day_sample: Path | None = None,
) -> dict[str, Path]:
    """The day's report files: `report_json` (every verdict with its evidence) always, and
    `report` (Evidently's HTML) when both samples are given and exist."""
    text = json.dumps(result.report.to_dict(), default=str, indent=1)
    json_path = replace_file(reports_dir / f"drift_{day}.json", lambda p: p.write_text(text))
    out = {"report_json": json_path}
    if (
        reference_sample is not None
        and day_sample is not None
        and reference_sample.exists()
        and day_sample.exists()
    ):
        out["report"] = render_day_html(
            result, model, day, reports_dir / f"drift_{day}.html", reference_sample, day_sample
        )
    return out


def render_day_html(
    result: DriftResult,
    model: ModelConfig,
    day: str,
    path: Path,
    reference_sample: Path,
    day_sample: Path,
) -> Path:
    """Evidently's HTML of a model-day at `path`, on the kept samples, each column tested with
    the method our verdict used."""
    cols = profiled_columns(model)
    return render_drift_html(
        pd.read_parquet(reference_sample),
        pd.read_parquet(day_sample),
        numeric=cols.numeric,
        categorical=cols.categorical,
        path=path,
        methods={c.column: c.method for c in result.columns},
        title=f"{model.key} {day}",
    )
