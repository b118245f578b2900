"""Service level objectives of a model, their error budgets and burn-rate alerts
(`slo_for_day`, the entry point).

Events. A latency SLO counts the predictions with a latency, good when it is at most
`threshold_ms`; an availability SLO counts every prediction, good when its status is "ok" (the
error definition of `ops_report`). Both are counted exactly, per hour, in the day's one read
(`SloStream`, a part of `signals.day_pass`): the latency histogram of `ops_report` is
log-spaced and 200 ms is not one of its edges, so it cannot say how many were under it. The
hourly good/total counts are stored as metric history (`slo_good_hour`, `slo_events_hour`,
column `<slo>@<YYYY-MM-DDTHH>`), so the budget of any window is a sum of stored hours and a
re-run of a day replaces that day's hours.

A metric SLO counts labelled days: a day whose realized metric `performance_report` stored
(it does so on at least `performance.min_labels` labels), good when the metric meets the
floor. A metric such as ROC AUC, F1 or RMSE has no per-prediction good/bad, and a day's metric
on fewer labels is noise; labels arrive days late, so a page on them is meaningless: a metric
SLO has a budget (and `slo_budget`), no burn-rate rules.

Budget over the window (the `window_days` days ending with the day): budget = (1 - objective)
x events; consumed = bad events; remaining = 1 - bad / budget (<= 0: exhausted). An exhausted
budget is an `slo_budget` finding: critical when the window's bad events are also too many for
a service meeting its objective (binomial tail <= 1% / the model's SLOs), else info (recorded,
not alerted): a service exactly at its objective overspends in about half of its windows.

Burn-rate alerts: the SRE workbook's multi-window, multi-burn-rate rules (ch. 5, "Alerting on
SLOs"), burn rate = error ratio / (1 - objective):

| workbook (long / short, burn)  | here (hourly data)      | severity |
| page:   1 h / 5 min, 14.4x     | 1 h / 1 h, 14.4x        | critical |
| page:   6 h / 30 min, 6x       | 6 h / 1 h, 6x           | critical |
| ticket: 3 d / 6 h, 1x          | 72 h / 6 h, 1x          | warning  |

The short window (1/12 of the long one) only makes the alert stop soon after the burn stops;
an hourly series cannot resolve less than an hour, so 5 and 30 minutes become one hour (for the
first pair the two windows are then the same hour). The long windows and thresholds are the
workbook's, so each rule still fires when it has consumed the workbook's share of the budget
(2%, 5%, 10% of a 30-day budget), and at busy traffic within the workbook's detection time
rounded up to the hour (`benchmarks/bench_slo.py` measures it). Each hour of the day is
evaluated, its windows reaching back into the stored hours of the previous days.

Few events. A ratio over an hour of 5 predictions pages on one error (a 20% error ratio is a
200x burn of a 99.9% objective). A rule fires only when the long window's bad events are also
too many for a service that meets its objective exactly: the binomial tail
P(Bin(n, 1 - objective) >= bad) at most `ALPHA_PER_MODEL_DAY` / (24 hours x 3 rules x the
model's streamed SLOs), so a service meeting its objective pages on at most 1% of model-days
at any traffic (Bonferroni over the day's evaluations; they overlap, so it is conservative).
At busy hours the tail is far below that whenever the burn rate is over the threshold, and the
rules are the workbook's; at quiet hours the rule waits for enough errors to be evidence. Bad
events that arrive in bursts (a retry storm: k errors at once are one piece of evidence, not k)
are counted per burst, the burst size measured on the window's previous hours (`clumping`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from aiops_pipelines.core.checks import Check
from aiops_pipelines.core.config import ModelConfig, SloConfig, SloKind
from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal
from aiops_pipelines.io.sources import Source, StringCap, day_window
from aiops_pipelines.io.store import MonitoringStore

HOURS = 24
GOOD_HOUR, EVENTS_HOUR = "slo_good_hour", "slo_events_hour"
"""Stored hourly counts of a streamed SLO, column `<slo>@<YYYY-MM-DDTHH>`."""
ALPHA_PER_MODEL_DAY = 0.01
"""False pages (and tickets) allowed per model-day for a service meeting its objectives."""


@dataclass(frozen=True)
class BurnRule:
    """One multi-window burn-rate rule: both windows' burn rates at least `burn`."""

    name: str
    long_hours: int
    short_hours: int
    burn: float
    severity: Severity
    workbook: str
    """The workbook's windows this rule adapts."""


RULES: tuple[BurnRule, ...] = (
    BurnRule("page_1h", 1, 1, 14.4, Severity.CRITICAL, "1h / 5m at 14.4x"),
    BurnRule("page_6h", 6, 1, 6.0, Severity.CRITICAL, "6h / 30m at 6x"),
    BurnRule("ticket_3d", 72, 6, 1.0, Severity.WARNING, "3d / 6h at 1x"),
)
BURN_WINDOWS = {"1h": 1, "6h": 6, "3d": 72}
"""Burn rates stored at the day's last hour (`slo_burn_rate_<window>`), one per rule window."""


def streamed(model: ModelConfig) -> list[SloConfig]:
    """The SLOs counted from the predictions (latency, availability)."""
    return [s for s in model.slos if s.kind is not SloKind.METRIC]


# -- the day's exact hourly counts ------------------------------------------------------------


@dataclass
class SloCounts:
    """A day's good and total events per hour, per streamed SLO."""

    partition: str
    good: dict[str, np.ndarray]
    total: dict[str, np.ndarray]

    def metrics(self) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for name in self.total:
            for h in range(HOURS):
                col = f"{name}@{self.partition}T{h:02d}"
                out[(GOOD_HOUR, col)] = float(self.good[name][h])
                out[(EVENTS_HOUR, col)] = float(self.total[name][h])
        return out


class SloStream:
    """The hourly good/total counts of a model's streamed SLOs, chunk by chunk (as `OpsStream`:
    `read_columns` read with the `cut`, `add` each chunk, then `result`)."""

    def __init__(self, model: ModelConfig, partition: str) -> None:
        c = model.columns
        self.model, self.partition = model, partition
        self.slos = streamed(model)
        segments = [s.segment.column for s in self.slos if s.segment]
        kinds = {s.kind for s in self.slos}
        self.read_columns = list(
            dict.fromkeys(
                [c.timestamp]
                + ([c.latency_ms] if SloKind.LATENCY in kinds and c.latency_ms else [])
                + ([c.status] if SloKind.AVAILABILITY in kinds and c.status else [])
                + segments
            )
        )
        # segment values are compared with the configured value as `read_day_predictions` cuts
        # them (the config refuses a value longer than the cut)
        self.cut = StringCap(model.max_string_length, tuple(dict.fromkeys(segments)))
        self.good = {s.name: np.zeros(HOURS, dtype=np.int64) for s in self.slos}
        self.total = {s.name: np.zeros(HOURS, dtype=np.int64) for s in self.slos}

    def add(self, chunk: pd.DataFrame) -> None:
        c = self.model.columns
        hour = chunk[c.timestamp].dt.hour.to_numpy().astype(np.int64)
        for s in self.slos:
            rows = np.ones(len(chunk), dtype=bool)
            if s.segment is not None:
                values = chunk[s.segment.column]
                rows = (values.notna() & (values.astype(str) == s.segment.value)).to_numpy()
            if s.kind is SloKind.LATENCY:
                assert c.latency_ms is not None and s.threshold_ms is not None  # config checked
                lat = pd.to_numeric(chunk[c.latency_ms], errors="coerce").to_numpy(dtype=float)
                counted = rows & np.isfinite(lat)  # no latency recorded: not a latency event
                good = counted & (lat <= s.threshold_ms)
            else:
                assert c.status is not None  # config checked
                counted = rows
                good = rows & (chunk[c.status].astype(str) == "ok").to_numpy()
            self.total[s.name] += np.bincount(hour[counted], minlength=HOURS)
            self.good[s.name] += np.bincount(hour[good], minlength=HOURS)

    def result(self) -> SloCounts:
        return SloCounts(self.partition, self.good, self.total)


def stream_slo_counts(
    model: ModelConfig, partition: str, *, read_token: str | None = None
) -> SloCounts:
    """The day's hourly counts of the streamed SLOs in one pass over its log (with a
    `read_token`, from the day's one read for every daily signal, `signals.day_pass`)."""
    if read_token is not None:
        from aiops_pipelines.signals.day_pass import day_slo_counts  # it builds on this module

        return day_slo_counts(model, partition, read_token=read_token)
    counts = SloStream(model, partition)
    start, end = day_window(partition)
    src = Source(model.predictions, strings=counts.cut)
    try:
        for chunk in src.iter_window(model.columns.timestamp, start, end, counts.read_columns):
            counts.add(chunk)
    except DataError as exc:
        raise _for_slos(exc, model).located(model=model.key, partition=partition) from None
    return counts.result()


def _for_slos(exc: DataError, model: ModelConfig) -> DataError:
    """The read's error, saying which SLO needs the column and the setting that maps it."""
    c = model.columns
    setting = {c.latency_ms: "columns.latency_ms", c.status: "columns.status"}
    needs = [
        s.name
        for s in streamed(model)
        if exc.column
        in (
            c.latency_ms if s.kind is SloKind.LATENCY else c.status,
            s.segment.column if s.segment else None,
        )
    ]
    if not needs or exc.column is None:
        return exc
    fix = setting.get(exc.column, "the segment")
    return DataError(
        f"{exc.detail}; needed by slos {needs}: map it with {fix} or remove them",
        model=exc.model,
        partition=exc.partition,
        column=exc.column,
    )


# -- budget and burn rates ----------------------------------------------------------------------


@dataclass
class Budget:
    """An SLO's error budget over its window."""

    events: float
    bad: float
    objective: float
    days_covered: int
    """Days of the window with any event (fewer than `window_days`: a young history)."""

    @property
    def allowed(self) -> float:
        """The budget, in bad events."""
        return (1 - self.objective) * self.events

    @property
    def remaining(self) -> float:
        """Share of the budget left: 1 untouched, <= 0 exhausted; NaN without events."""
        return 1 - self.bad / self.allowed if self.events > 0 else math.nan

    @property
    def exhausted(self) -> bool:
        return self.events > 0 and self.bad > self.allowed

    @property
    def sli(self) -> float:
        """Share of good events in the window."""
        return 1 - self.bad / self.events if self.events > 0 else math.nan


def burn_rate(good: np.ndarray, total: np.ndarray, objective: float) -> float:
    """Error ratio over the events / the ratio the objective allows; NaN without events."""
    n = float(total.sum())
    return (n - float(good.sum())) / n / (1 - objective) if n > 0 else math.nan


def tail_p(bad: float, n: float, objective: float) -> float:
    """P(Bin(n, 1 - objective) >= bad): how often a service meeting its objective exactly has
    this many bad events or more in n."""
    if bad <= 0:
        return 1.0
    return float(stats.binom.sf(int(round(bad)) - 1, int(round(n)), 1 - objective))


@dataclass
class Firing:
    """A rule's first firing hour of the day, with the evidence at that hour."""

    rule: BurnRule
    hour: pd.Timestamp
    hours_fired: int
    burn_long: float
    burn_short: float
    events_long: int
    bad_long: int
    p_value: float


MIN_BAD_HOURS = 3
"""Hours with bad events needed to measure how clumped they arrive."""


CHI2_1_MEDIAN = float(stats.chi2(1).median())


def clumping(good: np.ndarray, total: np.ndarray) -> float:
    """How many bad events arrive together (a retry storm, a burst of slow requests): the
    dispersion of the hourly bad counts over what independent events give. The bad ratio is
    the median of the days' (`good`, `total`: whole days of hours), and two medians estimate
    the dispersion, so that the hours of a past incident (a minority) move none of them: over
    the hours with bad events, their bad events over what independent events give in an hour
    that has some (lambda / (1 - e^-lambda), lambda = the hour's events x the ratio: right
    when bad events are rare); and, when an hour expects at least one, over every hour with
    events, the squared Pearson residual over the median of chi2(1) (right when they are
    many). 1 for independent events, about k for bursts of k; at least 1, and 1 with fewer
    than `MIN_BAD_HOURS` hours with bad events."""
    bad = total - good
    hit = bad > 0
    if hit.sum() < MIN_BAD_HOURS:
        return 1.0
    day_total = total.reshape(-1, HOURS).sum(axis=1)
    day_bad = bad.reshape(-1, HOURS).sum(axis=1)
    ratio = float(np.median(day_bad[day_total > 0] / day_total[day_total > 0]))
    if ratio <= 0:  # most days without a bad event: the pooled ratio
        ratio = float(bad.sum() / total.sum())
    lam = total[hit] * ratio
    out = max(1.0, float(np.median(bad[hit] / (lam / -np.expm1(-lam)))))
    served = total > 0
    expected = total[served] * ratio
    if expected.mean() >= 1:
        out = max(out, float(np.median((bad[served] - expected) ** 2 / expected)) / CHI2_1_MEDIAN)
    return out


def evaluate_rules(
    index: pd.DatetimeIndex,
    good: np.ndarray,
    total: np.ndarray,
    objective: float,
    day: str,
    alpha: float,
    clump: float = 1.0,
) -> list[Firing]:
    """Each rule evaluated at every hour of `day` over the hourly series (`index` regular and
    hourly, reaching back at least 71 hours before the day): its first firing, or nothing.
    The guard counts bad events in groups of `clump` (`clumping`): k events that arrive
    together are one piece of evidence, not k."""
    cg = np.concatenate([[0], np.cumsum(good)])
    ct = np.concatenate([[0], np.cumsum(total)])
    first = int(index.get_loc(pd.Timestamp(day, tz="UTC")))
    out = []
    for rule in RULES:
        hits: list[tuple[int, float, float, int, int, float]] = []
        for i in range(first, first + HOURS):
            lo_l, lo_s = max(0, i + 1 - rule.long_hours), max(0, i + 1 - rule.short_hours)
            n_l, n_s = ct[i + 1] - ct[lo_l], ct[i + 1] - ct[lo_s]
            if n_l <= 0 or n_s <= 0:
                continue
            bad_l, bad_s = n_l - (cg[i + 1] - cg[lo_l]), n_s - (cg[i + 1] - cg[lo_s])
            b_l, b_s = bad_l / n_l / (1 - objective), bad_s / n_s / (1 - objective)
            if b_l < rule.burn or b_s < rule.burn:
                continue
            p = tail_p(bad_l / clump, n_l / clump, objective)
            if p <= alpha:
                hits.append((i, b_l, b_s, int(n_l), int(bad_l), p))
        if hits:
            i, b_l, b_s, n_l, bad_l, p = hits[0]
            out.append(Firing(rule, index[i], len(hits), b_l, b_s, n_l, bad_l, p))
    return out


@dataclass
class SloResult:
    """One SLO's day: its budget over the window, the burn rates at the day's end, the rules
    that fired."""

    slo: SloConfig
    budget: Budget
    burn_rates: dict[str, float]
    firings: list[Firing]
    clumping: float
    """Bad events per burst in the window's previous days (`clumping`), 1 when independent."""
    day_events: int
    day_bad: int

    @property
    def level(self) -> str:
        """ "exhausted", "burning" (a rule fired), "ok", or "no events"."""
        if self.budget.exhausted:
            return "exhausted"
        if self.firings:
            return "burning"
        return "ok" if self.budget.events > 0 else "no events"


@dataclass
class SloDay:
    """A model-day's SLOs: the hourly counts stored, each SLO's result and the findings."""

    partition: str
    counts: SloCounts
    results: list[SloResult]
    findings: list[Finding]
    alpha: float

    @property
    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows of the store's metric history: the hourly counts, and per SLO (column: its
        name) the budget and the burn rates at the day's end."""
        out = self.counts.metrics()
        for r in self.results:
            name, b = r.slo.name, r.budget
            out[("slo_budget_remaining", name)] = b.remaining
            out[("slo_events_window", name)] = b.events
            out[("slo_bad_events_window", name)] = b.bad
            out[("slo_sli_window", name)] = b.sli
            out[("slo_objective", name)] = r.slo.objective
            for w, v in r.burn_rates.items():
                out[(f"slo_burn_rate_{w}", name)] = v
        return out

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        return {
            f"{m}.{c}": v for (m, c), v in self.metrics.items() if m not in (GOOD_HOUR, EVENTS_HOUR)
        }

    def summary(self) -> dict[str, Any]:
        if not self.results:
            return {"slos": "none configured"}
        out: dict[str, Any] = {"slos": len(self.results), "alpha_per_rule_hour": self.alpha}
        for r in self.results:
            b = r.budget
            out[f"{r.slo.name} budget_remaining"] = float(b.remaining)
            out[f"{r.slo.name} level"] = r.level
            out[f"{r.slo.name} events_window"] = float(b.events)
            out[f"{r.slo.name} bad_events_window"] = float(b.bad)
            for w, v in r.burn_rates.items():
                out[f"{r.slo.name} burn_rate_{w}"] = float(v)
            out[f"{r.slo.name} rules_fired"] = (
                ", ".join(f"{f.rule.name} at {f.hour:%H:%M}" for f in r.firings) or "none"
            )
        return out

    def checks(self) -> list[Check]:
        """`slo_budget` fails when a budget is exhausted (an error when its finding is
        critical, beyond the noise of the objective), `slo_burn` (warning) when a burn-rate
        rule fired."""
        exhausted = [r for r in self.results if r.budget.exhausted]
        burning = [r for r in self.results if r.firings]
        critical = any(
            f.signal == Signal.SLO_BUDGET.value and f.severity is Severity.CRITICAL
            for f in self.findings
        )
        return [
            Check(
                "slo_budget",
                not exhausted,
                "error" if critical else "warn",
                {
                    "exhausted": ", ".join(
                        f"{r.slo.name} ({r.budget.remaining:.0%} left)" for r in exhausted
                    )
                    or "none"
                },
            ),
            Check(
                "slo_burn",
                not burning,
                "warn",
                {
                    "burning": "; ".join(
                        f"{r.slo.name}: "
                        + ", ".join(f"{f.rule.name} {f.burn_long:.1f}x" for f in r.firings)
                        for r in burning
                    )
                    or "none"
                },
            ),
        ]


def _hourly_history(
    store: MonitoringStore, model: ModelConfig, first: date, last: date
) -> dict[str, pd.DataFrame]:
    """Stored hourly counts per SLO name: a frame (hour index, good, total)."""
    if last < first:
        return {}
    rows = store.metric_history(
        model.tenant,
        model.name,
        metric=[GOOD_HOUR, EVENTS_HOUR],
        asset=Asset.SLO_REPORT,
        start=first.isoformat(),
        end=last.isoformat(),
    )
    if rows.empty:
        return {}
    parts = rows["column"].str.rsplit("@", n=1, expand=True)
    rows = rows.assign(slo=parts[0], hour=pd.to_datetime(parts[1] + ":00:00+00:00", utc=True))
    wide = rows.pivot_table(index=["slo", "hour"], columns="metric", values="value", aggfunc="sum")
    return {
        str(name): g.droplevel(0).rename(columns={GOOD_HOUR: "good", EVENTS_HOUR: "total"})
        for name, g in wide.groupby(level=0)
    }


def _series(
    slo: SloConfig,
    counts: SloCounts,
    history: dict[str, pd.DataFrame],
    start: pd.Timestamp,
    day: str,
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """The SLO's hourly good/total from `start` to the day's last hour: the stored hours of the
    previous days (missing hours: no events), then the day's own counts."""
    day_start = pd.Timestamp(day, tz="UTC")
    index = pd.date_range(start, day_start + pd.Timedelta(hours=HOURS - 1), freq="h")
    good = np.zeros(len(index))
    total = np.zeros(len(index))
    past = history.get(slo.name)
    if past is not None:
        past = past[(past.index >= start) & (past.index < day_start)].fillna(0.0)
        pos = index.get_indexer(past.index)
        good[pos] = past.get("good", 0.0)
        total[pos] = past.get("total", 0.0)
    good[-HOURS:] = counts.good[slo.name]
    total[-HOURS:] = counts.total[slo.name]
    return index, good, total


def stream_result(
    slo: SloConfig,
    index: pd.DatetimeIndex,
    good: np.ndarray,
    total: np.ndarray,
    day: str,
    alpha: float,
) -> SloResult:
    """A streamed SLO's budget over its window, burn rates at the day's end and rule firings,
    from its hourly series (`index` ending with the day's last hour)."""
    window_start = pd.Timestamp(day, tz="UTC") - pd.Timedelta(days=slo.window_days - 1)
    w = index >= window_start
    days = pd.Series(total[w], index=index[w]).groupby(index[w].normalize()).sum()
    budget = Budget(
        float(total[w].sum()),
        float(total[w].sum() - good[w].sum()),
        slo.objective,
        int((days > 0).sum()),
    )
    burn = {
        name: burn_rate(good[-hours:], total[-hours:], slo.objective)
        for name, hours in BURN_WINDOWS.items()
    }
    before = w & (index < pd.Timestamp(day, tz="UTC"))
    clump = clumping(good[before], total[before])
    firings = evaluate_rules(index, good, total, slo.objective, day, alpha, clump)
    return SloResult(
        slo,
        budget,
        burn,
        firings,
        clump,
        int(total[-HOURS:].sum()),
        int(total[-HOURS:].sum() - good[-HOURS:].sum()),
    )


def metric_result(
    slo: SloConfig, model: ModelConfig, store: MonitoringStore, day: str
) -> SloResult:
    """A metric SLO's budget over its labelled days: the days of the window whose realized
    metric `performance_report` stored, good when it meets the floor."""
    metric = slo.metric or model.primary_metric
    first = date.fromisoformat(day) - timedelta(days=slo.window_days - 1)
    column = f"{slo.segment.column}={slo.segment.value}" if slo.segment else ""
    rows = store.metric_history(
        model.tenant,
        model.name,
        metric=str(metric),
        column=column,
        asset=Asset.PERFORMANCE_REPORT,
        start=first.isoformat(),
        end=day,
    )
    values = rows["value"].dropna().to_numpy(dtype=float)
    assert slo.floor is not None  # config checked
    good = values >= slo.floor if metric.higher_is_better else values <= slo.floor
    n, bad = float(values.size), float((~good).sum())
    today = rows.loc[rows["partition"] == day, "value"].dropna()
    return SloResult(
        slo,
        Budget(n, bad, slo.objective, int(values.size)),
        {},
        [],
        1.0,
        int(today.size),
        int((today < slo.floor).sum() if metric.higher_is_better else (today > slo.floor).sum()),
    )


def _burn_finding(r: SloResult, model: ModelConfig, day: str, alpha: float) -> Finding:
    """One `slo_burn` finding per SLO and day: the most severe rule that fired (the page
    pairs before the ticket), every rule's firing in the evidence."""
    top = r.firings[0]  # RULES are in order of severity, then of reaction time
    slo = r.slo
    return Finding(
        tenant=model.tenant,
        model=model.name,
        partition=day,
        asset=Asset.SLO_REPORT,
        signal=Signal.SLO_BURN.value,
        severity=top.rule.severity,
        value=float(top.burn_long),
        threshold=float(top.rule.burn),
        column=slo.name,
        message=f"SLO '{slo.name}' ({_describe(slo)}) burning its error budget "
        f"{top.burn_long:.1f}x over {top.rule.long_hours} h from {top.hour:%Y-%m-%d %H:00} UTC "
        f"({top.bad_long} bad of {top.events_long} events; {top.rule.name}, workbook "
        f"{top.rule.workbook}); budget left {_share(r.budget.remaining)}",
        evidence={
            "slo": slo.name,
            "kind": slo.kind.value,
            "objective": slo.objective,
            "rule": top.rule.name,
            "first_hour": top.hour.isoformat(),
            "burn_rate_long": top.burn_long,
            "burn_rate_short": top.burn_short,
            "long_window_hours": top.rule.long_hours,
            "short_window_hours": top.rule.short_hours,
            "burn_threshold": top.rule.burn,
            "events_long_window": top.events_long,
            "bad_events_long_window": top.bad_long,
            "p_value": top.p_value,
            "alpha": alpha,
            "clumping": r.clumping,
            "hours_fired": top.hours_fired,
            "rules_fired": [
                {
                    "rule": f.rule.name,
                    "first_hour": f.hour.isoformat(),
                    "burn_rate_long": f.burn_long,
                    "burn_rate_short": f.burn_short,
                    "burn_threshold": f.rule.burn,
                    "events_long_window": f.events_long,
                    "bad_events_long_window": f.bad_long,
                    "p_value": f.p_value,
                    "hours_fired": f.hours_fired,
                }
                for f in r.firings
            ],
            "budget_remaining": r.budget.remaining,
            "window_days": slo.window_days,
            "method": "SRE workbook multi-window multi-burn-rate rules on hourly counts, short "
            "windows rounded up to 1 h; the long window's bad events must also reject a "
            "service exactly at its objective (binomial tail <= alpha)",
        },
    )


def _budget_finding(r: SloResult, model: ModelConfig, day: str, alpha: float) -> Finding:
    """An exhausted budget: critical when the bad events are also too many for a service
    meeting its objective (binomial tail <= `alpha`), info otherwise: a service exactly at its
    objective overspends its budget in about half of its windows, and a window of few events
    overspends on one bad event; the level and the gauge still say "exhausted"."""
    slo, b = r.slo, r.budget
    unit = "labelled days" if slo.kind is SloKind.METRIC else "events"
    p = tail_p(b.bad / r.clumping, b.events / r.clumping, slo.objective)
    significant = p <= alpha
    noise = "" if significant else f"; within the noise of the objective at n={b.events:.0f}"
    return Finding(
        tenant=model.tenant,
        model=model.name,
        partition=day,
        asset=Asset.SLO_REPORT,
        signal=Signal.SLO_BUDGET.value,
        severity=Severity.CRITICAL if significant else Severity.INFO,
        value=float(b.remaining),
        threshold=0.0,
        column=slo.name,
        message=f"SLO '{slo.name}' ({_describe(slo)}) has exhausted its error budget over "
        f"{_window_text(slo, b)}: {b.bad:.0f} bad of {b.events:.0f} {unit}, "
        f"{b.allowed:.1f} allowed ({_share(b.remaining)} left, p={p:.2g}{noise})",
        evidence={
            "slo": slo.name,
            "kind": slo.kind.value,
            "objective": slo.objective,
            "events_window": b.events,
            "bad_events_window": b.bad,
            "allowed_bad_events": b.allowed,
            "budget_remaining": b.remaining,
            "sli_window": b.sli,
            "window_days": slo.window_days,
            "days_covered": b.days_covered,
            "p_value": p,
            "alpha": alpha,
            "clumping": r.clumping,
        },
    )


def _describe(slo: SloConfig) -> str:
    if slo.kind is SloKind.LATENCY:
        what = f"{slo.objective:.4g} of predictions within {slo.threshold_ms:g} ms"
    elif slo.kind is SloKind.AVAILABILITY:
        what = f"{slo.objective:.4g} of predictions with an ok status"
    else:
        metric = slo.metric or "the primary metric"
        what = f"{slo.objective:.4g} of labelled days with {metric} meeting {slo.floor:g}"
    return what + (f", {slo.segment.column}={slo.segment.value}" if slo.segment else "")


def _window_text(slo: SloConfig, b: Budget) -> str:
    if slo.kind is SloKind.METRIC or b.days_covered >= slo.window_days:
        return f"{slo.window_days} days"
    return f"the {b.days_covered} days with events of its {slo.window_days}-day window"


def _share(x: float) -> str:
    return "n/a (no events)" if math.isnan(x) else f"{x:.0%}"


def slo_for_day(
    model: ModelConfig, day: str, store: MonitoringStore, *, read_token: str | None = None
) -> SloDay:
    """The model's SLOs on `day`: the day's hourly counts (one pass, `read_token`: see
    `stream_slo_counts`), each budget over its window and the burn-rate rules at every hour of
    the day, with the previous days' stored hours as history."""
    slos = streamed(model)
    counts = (
        stream_slo_counts(model, day, read_token=read_token) if slos else SloCounts(day, {}, {})
    )
    alpha = ALPHA_PER_MODEL_DAY / (HOURS * len(RULES) * max(len(slos), 1))
    budget_alpha = ALPHA_PER_MODEL_DAY / max(len(model.slos), 1)
    today = date.fromisoformat(day)
    reach = max([s.window_days for s in slos] + [max(BURN_WINDOWS.values()) // HOURS + 1])
    first = today - timedelta(days=reach - 1)
    history = _hourly_history(store, model, first, today - timedelta(days=1)) if slos else {}
    start = pd.Timestamp(first.isoformat(), tz="UTC")
    results = []
    for slo in model.slos:
        if slo.kind is SloKind.METRIC:
            results.append(metric_result(slo, model, store, day))
        else:
            index, good, total = _series(slo, counts, history, start, day)
            results.append(stream_result(slo, index, good, total, day, alpha))
    findings = []
    for r in results:
        if r.firings:
            findings.append(_burn_finding(r, model, day, alpha))
        if r.budget.exhausted:
            findings.append(_budget_finding(r, model, day, budget_alpha))
    return SloDay(day, counts, results, findings, alpha)
