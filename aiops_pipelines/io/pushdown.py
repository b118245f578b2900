"""Push-down profiling: a day's profile numbers computed by the SQL database, in one statement.

A streamed day moves every row of the window to this process; a warehouse-sized log should not.
`profile_query` builds one SQL statement (SQLite or PostgreSQL) whose result is a few thousand
small rows, whatever the day's size:

* part 0, one row: rows in the window, rows served, failed requests, and the counts the data
  contract checks (missing request ids and predictions, bad scores, tz-naive timestamps);
* part 1, per numeric column and bin of the reference's edges: rows, non-missing values, values
  exactly on the bin's lower edge (atoms), the sum of the values, the sums of (x - c) and
  (x - c)^2 around the reference's mean c (moments without cancellation), min, max and the
  distances of out-of-range values to the range (tails);
* part 2, per profiled column: rows per 10-minute block of the day and coarse bin (the
  within-day design effect, `signals.drift.calibration.DayBlocks`);
* part 3, per text-valued column (categorical features, the version, a classifier's
  prediction): rows per value, cut to `max_string_length` as the streamed read cuts it, with
  how many were cut and the longest length;
* part 4: up to five request ids seen twice in the window.

Bins on the reference's quantile edges: PostgreSQL `width_bucket(x, ARRAY[...])`, a binary
search; SQLite a balanced tree of `CASE WHEN x < edge` (10 comparisons for 1000 edges). Edges
and every other number are bound parameters, never SQL literals: SQLite 3.40 parses about one
decimal literal in a thousand to a neighbouring double, which would move values on an edge.

The window is exact in the database: instants compared as instants (PostgreSQL
`timestamptz`, or text cast to it, to the microsecond); SQLite text through its own parse
(`strftime`) of the text with its fraction of a second cut to milliseconds: SQLite rounds
fractions to the millisecond (23:59:59.9996 would become the next day), while a cut one floors
the instant, which is exact against bounds at whole milliseconds (midnights). Text SQLite
does not parse (e.g. '+0500' without a colon) is counted, and a day with such rows is refused
with a message pointing at `profile: stream`, whose parser reads it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa

from aiops_pipelines.core.errors import DataError
from aiops_pipelines.core.values import CUT
from aiops_pipelines.io.sources import Source, _quote, engine_for, written_dates

DUPLICATES_SHOWN = 5
_PG_TEXT = {25, 1042, 1043, 19}  # text, char(n), varchar(n), name
_PG_INT = {20, 21, 23}
_PG_FLOAT = {700, 701, 1700}
_PG_BOOL = 16
_PG_TIMESTAMPTZ = 1184
_PG_TIMESTAMP = 1114
_OFFSET_RE = r"(Z|[+-][0-9][0-9]:?[0-9][0-9])\s*$"  # as `io.sources` tells an offset
_TEXT_TYPES = "'text', 'blob'"


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column as the profile bins it: the reference's edges, the coarse cuts of the
    within-day blocks, and the reference mean the moments are summed around."""

    name: str
    edges: np.ndarray
    cuts: np.ndarray
    center: float


@dataclass(frozen=True)
class KeyedColumn:
    """A column counted per value: `top` are the labels the within-day blocks keep by name
    (None: no block table, a column counted only for its values and their cut)."""

    name: str
    top: tuple[str, ...] | None


@dataclass(frozen=True)
class DayQuery:
    """What one day's push-down statement computes."""

    request_id: str
    timestamp: str
    version: str
    prediction: str
    status: str | None
    score: str | None
    latency: str | None
    regression: bool
    numeric: list[NumericColumn]
    keyed: list[KeyedColumn]
    capped: tuple[str, ...]
    max_length: int
    profiled: list[str]
    """Profiled columns in order (numeric then categorical): the within-day blocks."""


@dataclass
class NumericBins:
    """Part 1 of one numeric column, summed over its rows."""

    n_rows: int = 0
    count: int = 0
    counts: np.ndarray | None = None
    atoms: np.ndarray | None = None
    sums: np.ndarray | None = None
    s1: float = 0.0
    s2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    tail_low: float = 0.0
    tail_high: float = 0.0
    n_text: int = 0
    n_real: int = 0
    n_inf: int = 0


@dataclass
class DayNumbers:
    """The result of a day's statement, by part."""

    totals: dict[str, int]
    numeric: dict[str, NumericBins]
    keys: dict[str, list[tuple[object, bool, int]]]
    """Per keyed column: (value as the database returned it, served, rows)."""
    cut: dict[str, tuple[int, int]]
    """Per capped column with values over the cap: (values cut, longest length)."""
    blocks: dict[str, list[tuple[int, int, int]]]
    """Per profiled column: (block, coarse code, rows)."""
    duplicates: list[str]
    families: dict[str, str] = field(default_factory=dict)
    """Column type families the database declares (PostgreSQL; empty for SQLite)."""
    result_rows: int = 0


_TOTALS = (
    "n_read",
    "n_rows",
    "n_errors",
    "null_ids",
    "null_predictions",
    "bad_predictions",
    "bad_scores",
    "bad_latency",
    "naive",
    "unsure",
)
_INTS = 5
_FLOATS = 6
_LAYOUT = ["part", "col", "k1", "k2", "kt", "kf", "n"] + [f"i{j}" for j in range(_INTS)]
_LAYOUT += [f"f{j}" for j in range(_FLOATS)]


class _Statement:
    """Builds the SQL text of one dialect and its bound parameters."""

    def __init__(self, eng: sa.Engine) -> None:
        self.eng = eng
        self.pg = eng.dialect.name == "postgresql"
        if not self.pg and eng.dialect.name != "sqlite":
            raise DataError(
                f"'profile: pushdown' supports SQLite and PostgreSQL sources, not "
                f"{eng.dialect.name} (use 'profile: stream')"
            )
        self.params: dict[str, object] = {}

    def bind(self, value: object) -> str:
        name = f"pd{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def q(self, name: str) -> str:
        return _quote(self.eng, name, "column")

    @staticmethod
    def flag(cond: str) -> str:
        return f"CASE WHEN {cond} THEN 1 ELSE 0 END"

    def typed(self, expr: str, kind: str) -> str:
        """A layout column's NULL or value, typed so PostgreSQL can union the parts."""
        if not self.pg:
            return expr
        sql_type = {"int": "BIGINT", "text": "TEXT", "float": "DOUBLE PRECISION"}[kind]
        return f"CAST({expr} AS {sql_type})"

    def row(self, **values: str) -> str:
        kinds = {"part": "int", "col": "int", "k1": "int", "k2": "int", "kt": "text"}
        kinds |= {"kf": "float", "n": "int"}
        kinds |= {f"i{j}": "int" for j in range(_INTS)} | {f"f{j}": "float" for j in range(_FLOATS)}
        return ", ".join(f"{self.typed(values.get(c, 'NULL'), kinds[c])} AS {c}" for c in _LAYOUT)

    def bucket(self, x: str, edges: np.ndarray, *, atoms: bool) -> str:
        """The number of `edges` at or below `x` (NULL for NULL); with `atoms` on SQLite, twice
        that plus 1 when `x` equals the bin's lower edge (decoded in `_read`)."""
        if not len(edges):
            return f"CASE WHEN {x} IS NULL THEN NULL ELSE 0 END"
        if self.pg:
            return f"width_bucket({x}, {self.bind([float(e) for e in edges])})"
        names = sqlite_numbers([float(e) for e in edges])

        def below(j: int) -> str:  # x < edges[j]
            # '-1.5' is not a literal but a constant expression, which SQLite's prepare
            # factors out at a cost growing with their count: -x > 1.5 instead
            e = names[j]
            return f"-{x} > {e[1:]}" if e.startswith("-") else f"{x} < {e}"

        def on(j: int) -> str:  # x = edges[j]
            e = names[j]
            return f"-{x} = {e[1:]}" if e.startswith("-") else f"{x} = {e}"

        def tree(lo: int, hi: int) -> str:
            if lo == hi:
                if not atoms:
                    return str(lo)
                if lo == 0:
                    return "0"
                return f"{2 * lo} + ({on(lo - 1)})"
            mid = (lo + hi) // 2
            return f"CASE WHEN {below(mid)} THEN {tree(lo, mid)} ELSE {tree(mid + 1, hi)} END"

        return f"CASE WHEN {x} IS NULL THEN NULL ELSE {tree(0, len(edges))} END"


def sqlite_real(x: float) -> str:
    """A finite double as a SQLite expression that evaluates to exactly it: its integer
    mantissa (exact as an int64 and as a double) scaled by powers of two, each exact."""
    if not math.isfinite(x):
        raise ValueError(f"not a finite double: {x!r}")
    if x == 0.0:
        return "0.0"
    mantissa, exponent = math.frexp(x)
    m, e = int(mantissa * 2**53), exponent - 53
    while m % 2 == 0:
        m, e = m // 2, e + 1
    out = f"CAST({m} AS REAL)"
    while e:
        step = max(-62, min(62, e))
        out = f"({out} {'*' if step > 0 else '/'} {2 ** abs(step)})"
        e -= step
    return out


def sqlite_numbers(values: Sequence[float], batch: int = 500) -> list[str]:
    """SQLite text for each double that SQLite reads as exactly that double.

    The shortest round-trip decimal (`repr`) where SQLite parses it exactly, else
    `sqlite_real`. SQLite 3.40 parses about one such decimal in 2,000 to a neighbouring
    double (so a value on an edge would change bins), hence the check, by the very library
    that will run the statement. Not every number as `sqlite_real`: SQLite's prepare slows
    quadratically with the count of constant expressions it factors out (19 s for 20 columns
    of 1000 edges, most of a 100,000-row day), as it does with bound parameters (12 s).
    """
    out = [repr(float(v)) for v in values]
    con = sqlite3.connect(":memory:")
    try:
        for lo in range(0, len(out), batch):
            got = con.execute(f"SELECT {', '.join(out[lo : lo + batch])}").fetchone()
            for i, (read, want) in enumerate(zip(got, values[lo : lo + batch], strict=True)):
                if read != want:
                    out[lo + i] = sqlite_real(float(want))
    finally:
        con.close()
    return out


def _families(types: dict[str, int | None]) -> dict[str, str]:
    out = {}
    for name, code in types.items():
        if code in _PG_INT:
            out[name] = "integer"
        elif code in _PG_FLOAT:
            out[name] = "float"
        elif code == _PG_BOOL:
            out[name] = "bool"
        elif code in (_PG_TIMESTAMPTZ, _PG_TIMESTAMP):
            out[name] = "datetime"
        else:
            out[name] = "string"
    return out


def _describe(src: Source, eng: sa.Engine, start: datetime, end: datetime) -> dict[str, object]:
    """The source's columns and their PostgreSQL type oids (None on SQLite), no row read."""
    sql = f"SELECT * FROM {src._from(eng)} LIMIT 0"
    with eng.connect() as conn:
        try:
            res = conn.execute(sa.text(sql), src._query_params(eng, start, end))
        except sa.exc.SQLAlchemyError as exc:
            raise DataError(f"reading {src.describe()} failed: {exc.orig or exc}") from None
        return {d[0]: d[1] for d in res.cursor.description}


def _numeric_value(st: _Statement, name: str, code: object) -> str:
    """The column as a double, NaN as NULL (a missing value, as pandas reads it)."""
    q = st.q(name)
    if not st.pg:
        return q
    if code in _PG_TEXT:
        raise DataError(
            "numeric feature has a text type in the database, expected int, float or bool "
            "(convert it upstream or declare the column categorical)",
            column=name,
        )
    if code == _PG_BOOL:
        q = f"CAST({q} AS INTEGER)"
    return f"NULLIF(CAST({q} AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION))"


def _is_missing(st: _Statement, name: str, code: object) -> str:
    q = st.q(name)
    if st.pg and code in _PG_FLOAT:
        return f"({q} IS NULL OR {q} = CAST('NaN' AS DOUBLE PRECISION))"
    return f"{q} IS NULL"


def _key(st: _Statement, name: str, code: object, max_length: int, cut: bool) -> tuple[str, str]:
    """(text key, float key) of a value counted per value: text cut to `max_length` as
    `StringCap` cuts it; PostgreSQL floats as floats (labelled here, NaN missing)."""
    q = st.q(name)
    cut_text = (
        f"CASE WHEN length({q}) > {max_length} THEN substr({q}, 1, {max_length - 1}) || "
        f"{st.bind(CUT)} ELSE {q} END"
    )
    if not st.pg:
        text = f"CASE WHEN typeof({q}) = 'text' THEN ({cut_text}) ELSE {q} END" if cut else q
        return text, "NULL"
    no_float = "CAST(NULL AS DOUBLE PRECISION)"
    if code in _PG_FLOAT:
        nan = "CAST('NaN' AS DOUBLE PRECISION)"
        return "CAST(NULL AS TEXT)", f"NULLIF(CAST({q} AS DOUBLE PRECISION), {nan})"
    if code == _PG_BOOL:
        return f"CASE WHEN {q} THEN 'True' WHEN NOT {q} THEN 'False' END", no_float
    if code in _PG_TEXT:
        return (cut_text if cut else q), no_float
    return f"CAST({q} AS TEXT)", no_float


def _length(st: _Statement, name: str, code: object) -> str | None:
    """The character length of a text value (NULL for others), for the cut's counts."""
    q = st.q(name)
    if not st.pg:
        return f"CASE WHEN typeof({q}) = 'text' THEN length({q}) END"
    return f"length({q})" if code in _PG_TEXT else None


def _label_matches(st: _Statement, key: str, fkey: str, label: str, code: object) -> str:
    """SQL true when a key is the category `label` (compared as `category_label` compares)."""
    try:
        number = float(label)
    except ValueError:
        number = None
    if st.pg and code in _PG_FLOAT:
        return (
            f"{fkey} = {st.bind(number)}"
            if number is not None and math.isfinite(number)
            else "1 = 0"
        )
    if st.pg or number is None or not math.isfinite(number):
        return f"{key} = {st.bind(label)}"
    return f"({key} = {st.bind(label)} OR {key} = {st.bind(number)})"


def _window(
    src: Source, day: DayQuery, start: datetime, end: datetime
) -> tuple[_Statement, str, dict[str, object]]:
    """The statement builder, the SELECT of the day's window with every value the parts use
    (`w`), and the source's column types."""
    eng = engine_for(src.config.url or "")
    st = _Statement(eng)
    types = _describe(src, eng, start, end)
    wanted = [day.request_id, day.timestamp, day.version, day.prediction]
    wanted += [x for x in (day.status, day.score, day.latency) if x]
    wanted += [c.name for c in day.numeric] + [c.name for c in day.keyed]
    missing = [c for c in dict.fromkeys(wanted) if c not in types]
    if missing:
        raise DataError(
            f"column missing from {src.describe()} (has: {', '.join(types)})", column=missing[0]
        )
    ts_code = types[day.timestamp]
    qts = st.q(day.timestamp)
    where, select = [], []
    text_ts = not st.pg or ts_code in _PG_TEXT
    if st.pg and ts_code == _PG_TIMESTAMP:
        raise DataError(
            "timestamps are timezone-naive; store them in UTC with an explicit time zone",
            column=day.timestamp,
        )
    lo, hi = written_dates(start, end)
    if text_ts:
        where.append(f"{qts} >= {st.bind(lo)} AND {qts} < {st.bind(hi)}")
    if st.pg:
        instant = f"CAST({qts} AS TIMESTAMPTZ)" if text_ts else qts
        b_start = st.bind(start)
        where.append(f"{instant} >= {b_start} AND {instant} < {st.bind(end)}")
        seconds = f"EXTRACT(EPOCH FROM ({instant} - CAST({b_start} AS TIMESTAMPTZ)))"
        select.append(f"CAST(FLOOR({seconds} / 600) AS INTEGER) AS bk")
        naive = f"{qts} !~ {st.bind(_OFFSET_RE)}" if text_ts else "1 = 0"
        select.append(f"{st.flag(naive)} AS nv")
    else:
        utc = _sqlite_utc(qts)
        where.append(
            f"{utc} >= {st.bind(f'{start:%Y-%m-%d %H:%M:%S}.000')} "
            f"AND {utc} < {st.bind(f'{end:%Y-%m-%d %H:%M:%S}.000')}"
        )
        minute = (
            f"CAST(substr({utc}, 12, 2) AS INTEGER) * 60 + CAST(substr({utc}, 15, 2) AS INTEGER)"
        )
        select.append(f"({minute}) / 10 AS bk")
        offset = f"({qts} GLOB '*Z' OR {qts} GLOB '*[+-][0-9][0-9]:[0-9][0-9]')"
        select.append(f"{st.flag('NOT ' + offset)} AS nv")
    pred_missing = _is_missing(st, day.prediction, types[day.prediction])
    if day.status:
        status_ok = f"CAST({st.q(day.status)} AS TEXT) = 'ok'"
        select.append(
            f"CASE WHEN {pred_missing} AND NOT COALESCE({status_ok}, 1 = 0) THEN 0 ELSE 1 END AS s"
        )
        select.append(f"CASE WHEN {status_ok} THEN 0 ELSE 1 END AS er")
    else:
        select += ["1 AS s", "0 AS er"]
    select.append(f"{st.flag(_is_missing(st, day.request_id, types[day.request_id]))} AS idn")
    select.append(f"{st.flag(pred_missing)} AS pn")
    rid = st.q(day.request_id)
    select.append(f"{'CAST(' + rid + ' AS TEXT)' if st.pg else rid} AS rid")
    bad_pred = "1 = 0"
    pq = st.q(day.prediction)
    if day.regression:
        if st.pg and types[day.prediction] not in _PG_INT | _PG_FLOAT:
            raise DataError(
                "regression predictions must be numeric, got a non-numeric type",
                column=day.prediction,
            )
        inf = f"{pq} IN ({st.bind(math.inf)}, {st.bind(-math.inf)})"
        bad_pred = inf if st.pg else f"(typeof({pq}) IN ('text', 'blob') OR {inf})"
    select.append(f"{st.flag(bad_pred)} AS bp")
    bad_score = "1 = 0"
    if day.score:
        sq = st.q(day.score)
        if st.pg and types[day.score] not in _PG_INT | _PG_FLOAT:
            raise DataError("scores must be numeric, got a non-numeric type", column=day.score)
        bad_score = f"({sq} IS NULL OR NOT ({sq} >= 0 AND {sq} <= 1))"
        if not st.pg:
            bad_score = f"(typeof({sq}) IN ('text', 'blob') OR {bad_score})"
    select.append(f"{st.flag(bad_score)} AS bs")
    bad_latency = "1 = 0"
    if day.latency:
        lq = st.q(day.latency)
        if st.pg and types[day.latency] not in _PG_INT | _PG_FLOAT:
            raise DataError("latency must be numeric, got a non-numeric type", column=day.latency)
        if not st.pg:
            bad_latency = f"typeof({lq}) IN ('text', 'blob')"
    select.append(f"{st.flag(bad_latency)} AS bl")
    for i, col in enumerate(day.numeric):
        select.append(f"{_numeric_value(st, col.name, types[col.name])} AS v{i}")
        if not st.pg:
            q = st.q(col.name)
            select.append(f"{st.flag(f'typeof({q}) IN ({_TEXT_TYPES})')} AS vt{i}")
    for j, col in enumerate(day.keyed):
        key, fkey = _key(st, col.name, types[col.name], day.max_length, col.name in day.capped)
        select.append(f"{key} AS kt{j}")
        select.append(f"{fkey} AS kf{j}")
        length = _length(st, col.name, types[col.name]) if col.name in day.capped else None
        select.append(f"{length or st.typed('NULL', 'int')} AS ln{j}")
    window = f"SELECT {', '.join(select)} FROM {src._from(eng)} WHERE {' AND '.join(where)}"
    return st, window, types


def profile_query(
    src: Source, day: DayQuery, start: datetime, end: datetime
) -> tuple[str, dict[str, object], dict[str, object]]:
    """The day's statement, its parameters, and the source's column types."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    st, window, types = _window(src, day, start, end)
    eng = st.eng
    qts = st.q(day.timestamp)
    lo, hi = written_dates(start, end)
    parts = [_totals(st)]
    for i, col in enumerate(day.numeric):
        parts.append(_numeric_part(st, i, col))
    for j, col in enumerate(day.keyed):
        parts.append(_keyed_part(st, j, col, day.max_length))
    by_name = {c.name: (i, c) for i, c in enumerate(day.numeric)}
    keyed = {c.name: (j, c) for j, c in enumerate(day.keyed)}
    codes = []
    for name in day.profiled:
        if name in by_name:
            i, ncol = by_name[name]
            code = st.bucket(f"v{i}", ncol.cuts, atoms=False)
            missing_code = len(ncol.cuts) + 1
        else:
            j, kcol = keyed[name]
            top = kcol.top or ()
            whens = " ".join(
                f"WHEN {_label_matches(st, f'kt{j}', f'kf{j}', label, types[name])} THEN {k}"
                for k, label in enumerate(top)
            )
            null = f"kt{j} IS NULL AND kf{j} IS NULL"
            code = f"CASE WHEN {null} THEN {len(top) + 1} {whens} ELSE {len(top)} END"
            missing_code = len(top) + 1
        codes.append(f"COALESCE({code}, {missing_code})")
    parts += _block_parts(st, codes)
    parts.append(
        f"SELECT {st.row(part='4', kt='rid', n='COUNT(*)')} FROM w WHERE rid IS NOT NULL "
        f"GROUP BY rid HAVING COUNT(*) > 1"
    )
    parts[-1] = f"SELECT * FROM ({parts[-1]} LIMIT {DUPLICATES_SHOWN}) AS d"
    if not st.pg:
        parts.append(_unsure_part(st, src, eng, qts, lo, hi))
    sql = f"WITH w AS MATERIALIZED ({window}) " + " UNION ALL ".join(parts)
    params = {**src._query_params(eng, start, end), **st.params}
    return sql, params, types


def _block_parts(st: _Statement, codes: list[str]) -> list[str]:
    """Rows per 10-minute block and coarse code of each profiled column, one result row per
    column and block with its counts as text 'code:rows,...' (integers: exact as text; one
    row instead of up to 21 keeps the result small). PostgreSQL: one pass, a grouping set
    per column (the row's column is the one set whose code is grouped); SQLite, without
    grouping sets: a GROUP BY per column."""
    pairs = "CAST(c AS TEXT) || ':' || CAST(n AS TEXT)"
    packed = f"string_agg({pairs}, ',')" if st.pg else f"group_concat({pairs}, ',')"
    row = st.row(part="2", col="p", k2="bk", kt=packed)
    if not st.pg:
        return [
            f"SELECT {row} FROM (SELECT {p} AS p, bk, c, COUNT(*) AS n FROM "
            f"(SELECT bk, {code} AS c FROM w WHERE s = 1) AS b{p} GROUP BY bk, c) AS g{p} "
            "GROUP BY bk"
            for p, code in enumerate(codes)
        ]
    inner = ", ".join(f"{code} AS c{p}" for p, code in enumerate(codes))
    which = " ".join(f"WHEN GROUPING(c{p}) = 0 THEN {p}" for p in range(len(codes)))
    grouped = ", ".join(f"c{p}" for p in range(len(codes)))
    sets = ", ".join(f"(bk, c{p})" for p in range(len(codes)))
    return [
        f"SELECT {row} FROM (SELECT CASE {which} END AS p, bk, COALESCE({grouped}) AS c, "
        f"COUNT(*) AS n FROM (SELECT bk, {inner} FROM w WHERE s = 1) AS b "
        f"GROUP BY GROUPING SETS ({sets})) AS g GROUP BY p, bk"
    ]


def _totals(st: _Statement) -> str:
    """One row per count of `_TOTALS` (a narrow result row, not a wide one)."""
    sums = {
        "n_read": "COUNT(*)",
        "n_rows": "SUM(s)",
        "n_errors": "SUM(er)",
        "null_ids": "SUM(s * idn)",
        "null_predictions": "SUM(s * pn)",
        "bad_predictions": "SUM(s * bp)",
        "bad_scores": "SUM(s * bs)",
        "bad_latency": "SUM(s * bl)",
        "naive": "SUM(nv)",
        "unsure": "0",
    }
    agg = ", ".join(f"COALESCE({sums[name]}, 0) AS t{j}" for j, name in enumerate(_TOTALS))
    which = " ".join(f"WHEN {j} THEN t{j}" for j in range(len(_TOTALS)))
    index = " UNION ALL ".join(f"SELECT {j} AS i" for j in range(len(_TOTALS)))
    row = st.row(part="0", col="k.i", n=f"CASE k.i {which} END")
    return f"SELECT {row} FROM (SELECT {agg} FROM w) AS t CROSS JOIN ({index}) AS k"


def _numeric_part(st: _Statement, i: int, col: NumericColumn) -> str:
    lo, hi, c = (st.bind(float(x)) for x in (col.edges[0], col.edges[-1], col.center))
    v = f"v{i}"
    if st.pg:
        edges = st.bind([float(e) for e in col.edges])
        inner = f"width_bucket({v}, {edges}) AS b, {v} AS v, 0 AS t"
        atoms = f"SUM(CASE WHEN v = ({edges})[b] THEN 1 ELSE 0 END)"
        inf = f"SUM(CASE WHEN v IN ({st.bind(math.inf)}, {st.bind(-math.inf)}) THEN 1 ELSE 0 END)"
        real = "0"
    else:
        inner = f"{st.bucket(v, col.edges, atoms=True)} AS b, {v} AS v, vt{i} AS t"
        atoms = "0"
        inf = (
            f"SUM(CASE WHEN typeof(v) = 'real' AND abs(v) = {st.bind(math.inf)} THEN 1 ELSE 0 END)"
        )
        real = "SUM(CASE WHEN typeof(v) = 'real' THEN 1 ELSE 0 END)"
    values = st.row(
        part="1",
        col=str(i),
        k1="b",
        n="COUNT(*)",
        i0="COUNT(v)",
        i1=atoms,
        i2="SUM(t)",
        i3=real,
        i4=inf,
        f0="SUM(v)",
        f1=f"SUM(v - {c})",
        f2=f"SUM((v - {c}) * (v - {c}))",
        f3="MIN(v)",
        f4="MAX(v)",
        f5=f"SUM(CASE WHEN v < {lo} THEN {lo} - v WHEN v > {hi} THEN v - {hi} END)",
    )
    return f"SELECT {values} FROM (SELECT {inner} FROM w WHERE s = 1) AS n{i} GROUP BY b"


def _keyed_part(st: _Statement, j: int, col: KeyedColumn, max_length: int) -> str:
    values = st.row(
        part="3",
        col=str(j),
        k1="s",
        kt=f"kt{j}",
        kf=f"kf{j}",
        n="COUNT(*)",
        i0=f"SUM(CASE WHEN ln{j} > {max_length} THEN 1 ELSE 0 END)",
        i1=f"MAX(ln{j})",
    )
    return f"SELECT {values} FROM w GROUP BY kt{j}, kf{j}, s"


def _sqlite_utc(qts: str) -> str:
    """SQLite: the UTC instant of ISO-8601 text as 'YYYY-MM-DD HH:MM:SS.SSS', the fraction of
    a second cut (not rounded) to milliseconds first; NULL for text SQLite does not parse."""
    dot = f"instr({qts}, '.')"
    tail = f"CASE WHEN {qts} GLOB '*Z' THEN 1 ELSE 6 END"  # 'Z' or '+HH:MM'
    digits = f"length({qts}) - {dot} - {tail}"
    cut = (
        f"CASE WHEN {dot} > 0 AND {digits} > 3 THEN substr({qts}, 1, {dot} + 3) || "
        f"substr({qts}, length({qts}) - {tail} + 1) ELSE {qts} END"
    )
    return f"strftime('%Y-%m-%d %H:%M:%f', {cut})"


def _unsure_part(st: _Statement, src: Source, eng: sa.Engine, qts: str, lo: str, hi: str) -> str:
    """SQLite: the rows of the written dates around the window whose text it does not parse."""
    count = f"SUM(CASE WHEN {_sqlite_utc(qts)} IS NULL THEN 1 ELSE 0 END)"
    return (
        f"SELECT {st.row(part='5', n=f'COALESCE({count}, 0)')} FROM {src._from(eng)} "
        f"WHERE {qts} >= {st.bind(lo)} AND {qts} < {st.bind(hi)}"
    )


def run_day_query(src: Source, day: DayQuery, start: datetime, end: datetime) -> DayNumbers:
    """Run the day's statement and sort its rows by part."""
    sql, params, types = profile_query(src, day, start, end)
    eng = engine_for(src.config.url or "")
    with eng.connect() as conn:
        try:
            rows = conn.execute(sa.text(sql), params).fetchall()
        except sa.exc.SQLAlchemyError as exc:
            raise DataError(
                f"the push-down profile of {src.describe()} failed: {exc.orig or exc}"
            ) from None
    return _read(rows, day, eng.dialect.name == "postgresql", types)


def _read(rows: Sequence[sa.Row], day: DayQuery, pg: bool, types: dict[str, object]) -> DayNumbers:
    totals: dict[str, int] = {}
    numeric = {
        c.name: NumericBins(
            counts=np.zeros(len(c.edges) + 1, np.int64),
            atoms=np.zeros(len(c.edges), np.int64),
            sums=np.zeros(len(c.edges) + 1, np.float64),
        )
        for c in day.numeric
    }
    keys: dict[str, list[tuple[object, bool, int]]] = {c.name: [] for c in day.keyed}
    cut: dict[str, tuple[int, int]] = {}
    blocks: dict[str, list[tuple[int, int, int]]] = {c: [] for c in day.profiled}
    duplicates: list[str] = []
    unsure = 0
    for r in rows:
        part, col = int(r.part), r.col
        if part == 0:
            totals[_TOTALS[int(col)]] = int(r.n)
        elif part == 1:
            c = day.numeric[int(col)]
            acc = numeric[c.name]
            acc.n_rows += int(r.n)
            acc.n_text += int(r.i2 or 0)
            acc.n_real += int(r.i3 or 0)
            acc.n_inf += int(r.i4 or 0)
            if r.k1 is None:  # the missing values' group
                continue
            b = int(r.k1)
            if not pg:
                b, on_edge = b >> 1, b & 1
                atoms = int(r.n) if on_edge else 0
            else:
                atoms = int(r.i1 or 0)
            n = int(r.i0)
            acc.count += n
            acc.counts[b] += n
            if atoms:
                acc.atoms[b - 1] += atoms
            acc.sums[b] += float(r.f0)
            acc.s1 += float(r.f1)
            acc.s2 += float(r.f2)
            acc.min = min(acc.min, float(r.f3))
            acc.max = max(acc.max, float(r.f4))
            if b == 0:
                acc.tail_low += float(r.f5 or 0.0)
            elif b == len(c.edges):
                acc.tail_high += float(r.f5 or 0.0)
        elif part == 2:
            for pair in str(r.kt).split(","):
                code, n = pair.split(":")
                blocks[day.profiled[int(col)]].append((int(r.k2), int(code), int(n)))
        elif part == 3:
            name = day.keyed[int(col)].name
            value = r.kf if pg and r.kf is not None else r.kt
            keys[name].append((value, bool(r.k1), int(r.n)))
            if r.i0:
                was = cut.get(name, (0, 0))
                cut[name] = (was[0] + int(r.i0), max(was[1], int(r.i1)))
        elif part == 4:
            duplicates.append(str(r.kt))
        elif part == 5:
            unsure = int(r.n)
    totals["unsure"] = unsure
    return DayNumbers(
        totals=totals,
        numeric=numeric,
        keys=keys,
        cut=cut,
        blocks=blocks,
        duplicates=duplicates,
        families=_families(types) if pg else {},
        result_rows=len(rows),
    )


def sample_query(
    src: Source, day: DayQuery, start: datetime, end: datetime, n: int
) -> tuple[str, dict[str, object]]:
    """A uniform random sample of `n` served rows of the profiled columns (`ORDER BY
    random() LIMIT n`: the database keeps the n smallest keys, moving only those rows)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    st, window, types = _window(src, day, start, end)
    names = {c.name: f"v{i}" for i, c in enumerate(day.numeric)}
    for j, c in enumerate(day.keyed):
        names[c.name] = f"kf{j}" if st.pg and types[c.name] in _PG_FLOAT else f"kt{j}"
    cols = ", ".join(f"{names[c]} AS {st.q(c)}" for c in day.profiled)
    sql = f"WITH w AS MATERIALIZED ({window}) SELECT {cols} FROM w WHERE s = 1 "
    sql += f"ORDER BY random() LIMIT {int(n)}"
    return sql, {**src._query_params(st.eng, start, end), **st.params}
