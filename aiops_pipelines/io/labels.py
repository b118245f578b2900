"""Late labels: which outcomes a day has so far, and which days new outcomes belong to.

Outcomes arrive days after their predictions and only for part of the traffic. Everything
here takes an `as_of` time: the outcomes observed up to then are the ones that exist, which is
what makes a day's label coverage (and its metric) a value that changes as time passes, and
what lets the demo replay label arrival day by day.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from aiops_pipelines.core.config import ModelConfig
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.io.sources import Source, StringCap, day_window, parse_timestamps, served
from aiops_pipelines.io.store import MonitoringStore


def outcomes_source(model: ModelConfig) -> Source:
    if model.outcomes is None:
        raise DataError("no outcomes source configured", model=model.key)
    return Source(model.outcomes)


def group_columns(model: ModelConfig) -> list[str]:
    """The columns performance slices the day by: the segments and the fairness attribute.
    Their values become metric columns (`column=value`)."""
    attribute = [model.fairness.attribute] if model.fairness else []
    return list(dict.fromkeys([*model.segments, *attribute]))


def prediction_columns(model: ModelConfig) -> list[str]:
    """What performance (and fairness) needs from the prediction log."""
    c = model.columns
    cols = [c.request_id, c.timestamp, c.version, c.prediction]
    if c.score:
        cols.append(c.score)
    return list(dict.fromkeys([*cols, *group_columns(model)]))


def read_day_predictions(model: ModelConfig, partition: str) -> pd.DataFrame:
    """The day's predictions (only the columns performance needs)."""
    start, end = day_window(partition)
    # segment (and fairness group) values become metric columns (`seg=value`): cut as
    # feature_profile cuts (and reports) them; predictions stay whole, they are compared with
    # the labels
    src = Source(
        model.predictions, strings=StringCap(model.max_string_length, (*group_columns(model),))
    )
    c = model.columns
    cols = prediction_columns(model)
    try:
        # performance needs no status column; when the log has one, failed requests without a
        # prediction are left out (see sources.served)
        has_status = bool(c.status) and c.status not in cols and c.status in src.columns()
        read = [*cols, c.status] if has_status else cols
        chunks = [
            served(chunk, c.prediction, c.status)[cols]
            for chunk in src.iter_window(c.timestamp, start, end, read)
        ]
    except DataError as exc:
        raise exc.located(model=model.key, partition=partition) from None
    if not chunks:
        raise DataError(
            "no predictions for this day (empty partition)", model=model.key, partition=partition
        )
    return pd.concat(chunks, ignore_index=True)


def read_day_outcomes(model: ModelConfig, partition: str, as_of: datetime) -> pd.DataFrame:
    """Outcomes observed up to `as_of` that can belong to the day's predictions.

    Labels for a day's predictions are observed between that day and `label_window_days`
    later, so only that window of the outcomes source is read.
    """
    c = model.columns
    start, _ = day_window(partition)
    until = min(as_of, start + timedelta(days=model.performance.label_window_days + 1))
    cols = [c.request_id, c.label, c.label_timestamp]
    empty = pd.DataFrame({c.request_id: [], c.label: [], c.label_timestamp: []})
    if until <= start:
        return empty
    try:
        chunks = list(outcomes_source(model).iter_window(c.label_timestamp, start, until, cols))
    except DataError as exc:
        raise exc.located(model=model.key, partition=partition) from None
    return pd.concat(chunks, ignore_index=True) if chunks else empty


@dataclass
class LabelArrivals:
    """Outcomes observed in (since, until], grouped by the day of their prediction."""

    since: datetime | None
    until: datetime
    by_day: dict[str, int] = field(default_factory=dict)
    n_outcomes: int = 0
    n_unknown: int = 0
    unknown_examples: list[str] = field(default_factory=list)
    last_observed: datetime | None = None


def record_unknown_outcomes(
    store: MonitoringStore, model: ModelConfig, arrivals: LabelArrivals
) -> None:
    """Count the outcomes that matched no prediction in the audit trail (`unknown_outcomes`),
    with a few of their request ids: they point at a broken join key upstream."""
    if not arrivals.n_unknown:
        return
    store.record_action(
        "late_labels_sensor",
        "unknown_outcomes",
        model.tenant,
        model.name,
        details={
            "count": arrivals.n_unknown,
            "examples": arrivals.unknown_examples,
            "since": arrivals.since.isoformat() if arrivals.since else None,
            "until": arrivals.until.isoformat(),
        },
    )


def label_arrivals(
    model: ModelConfig, since: datetime | None, until: datetime, *, batch_rows: int = 50_000
) -> LabelArrivals:
    """Which prediction days the outcomes observed in (since, until] belong to.

    Outcomes whose request id matches no prediction are counted (and a few named) rather than
    silently ignored: they point at a broken join key upstream.
    """
    c = model.columns
    out = LabelArrivals(since=since, until=until)
    lower = since or datetime(1970, 1, 1, tzinfo=until.tzinfo)
    by_day: Counter[str] = Counter()
    preds = Source(model.predictions)
    for chunk in outcomes_source(model).iter_window(
        c.label_timestamp,
        lower,
        until + timedelta(microseconds=1),
        [c.request_id, c.label_timestamp],
    ):
        if since is not None:
            chunk = chunk[chunk[c.label_timestamp] > since]
        if chunk.empty:
            continue
        out.n_outcomes += len(chunk)
        latest = chunk[c.label_timestamp].max().to_pydatetime()
        out.last_observed = max(out.last_observed or latest, latest)
        ids = chunk[c.request_id].astype(str)
        for lo in range(0, len(ids), batch_rows):
            part = ids.iloc[lo : lo + batch_rows]
            found = pd.concat(
                list(preds.lookup(c.request_id, part.tolist(), [c.timestamp]))
                or [pd.DataFrame({c.request_id: [], c.timestamp: []})],
                ignore_index=True,
            )
            known = set(found[c.request_id].astype(str))
            unknown = [i for i in part if i not in known]
            out.n_unknown += len(unknown)
            out.unknown_examples.extend(unknown[: max(0, 5 - len(out.unknown_examples))])
            if len(found):
                ts = parse_timestamps(found[c.timestamp], column=c.timestamp)
                by_day.update(ts.dt.strftime("%Y-%m-%d").value_counts().to_dict())
    out.by_day = dict(sorted(by_day.items()))
    return out


def read_reference_labelled(model: ModelConfig) -> pd.DataFrame | None:
    """Labels with the champion's predictions on held-out data (None when absent).

    This is what reference performance is measured on: the `validation` source when given
    (rows the champion never trained on), else the reference. A source without the champion's
    outputs has no performance to compare a day with.
    """
    c = model.columns
    src = Source(model.validation or model.reference)
    wanted = [c.label, c.prediction] + ([c.score] if c.score else [])
    present = set(src.columns())
    if not all(col in present for col in wanted):
        return None
    cols = list(dict.fromkeys([*wanted, *model.segments]))
    chunks = list(src.iter_all(cols))
    return pd.concat(chunks, ignore_index=True) if chunks else None
