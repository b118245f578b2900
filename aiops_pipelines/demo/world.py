"""The demo world: two tenants, three real models, two months of traffic, known incidents.

`build_world(home)` writes everything a demo (and the end-to-end tests) needs under one folder:

- `world.db`: one SQLite file holding, per model, the reference set, the prediction log and the
  late, partial outcomes, exactly in the shape of the data contract (README, "Config").
- `mlflow.db` + `artifacts/`: the models really trained on their reference sets and registered
  under aliases (`champion`; `canary` for the model that gets a worse canary version).
- `config.yaml`: a config that `aiops_pipelines.core.config.load_config` accepts, pointing at both.
- `manifest.json`: the ground truth: which incident was injected into which model, columns and
  days, and which signals a monitor should (and may) raise for it.

The incidents come from `incidents`, the models from `models`, and `grading` holds a pipeline's
findings against the manifest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from threadpoolctl import threadpool_limits

from aiops_pipelines.demo.incidents import (
    BAD_BATCH_VALUE,
    CALENDAR,
    CALENDAR_DAYS,
    CANARY_SHARE,
    CHARGES_SHIFT_SD,
    GOOD_CANARY_MARGIN,
    GOOD_CANARY_SHARE,
    NULL_RATE_TO,
    TENURE_SHIFT_SD,
    THROUGHPUT_FACTOR,
    UNSEEN_SHARE,
    UNSEEN_VALUE,
    Incident,
    scheduled_incidents,
)
from aiops_pipelines.demo.models import (
    SPEC_BY_KEY,
    SPECS,
    ModelData,
    ModelSpec,
    predict,
    register_in_mlflow,
    train,
    train_canary,
    validation_rows,
)

log = logging.getLogger(__name__)
WORLD_DB = "world.db"
CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
MLFLOW_DB = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
#: What a rebuild deletes: only the files the world owns, never anything else under home.
ALERTS_FILE = "alerts.jsonl"
OWNED = (WORLD_DB, CONFIG_FILE, MANIFEST_FILE, MLFLOW_DB, ARTIFACTS_DIR, ALERTS_FILE)
#: The demo's webhook routes read their URLs from these variables (set by `aiops demo` to the
#: receiver it starts); elsewhere they are unset and those notifications stay pending.
DEMO_WEBHOOK_ENV = "AIOPS_DEMO_WEBHOOK_URL"
DEMO_SLACK_ENV = "AIOPS_DEMO_SLACK_URL"
#: Labels arrive 1 to this many days after the prediction (see `_generate`).
MAX_LABEL_LAG_DAYS = 14
_DAY_US = 86_400_000_000


@dataclass(frozen=True)
class DemoWorld:
    """What `build_world` made: the folder, its config, its ground truth and its model keys."""

    home: Path
    config_path: Path
    manifest: dict[str, Any]
    models: list[str]

    @property
    def world_db(self) -> Path:
        return self.home / WORLD_DB

    @property
    def manifest_path(self) -> Path:
        return self.home / MANIFEST_FILE

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / MLFLOW_DB}"


def _ts_strings(us: np.ndarray) -> np.ndarray:
    """UTC microsecond timestamps as '2026-03-01 13:45:12.123456+00:00'.

    A space (not 'T') separates date and time, so plain string comparison with day bounds such
    as `timestamp >= '2026-03-01' AND timestamp < '2026-03-02'` selects exactly that UTC day,
    and the explicit offset makes every reader parse the value as tz-aware UTC.
    """
    s = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return np.char.add(np.char.replace(s, "T", " "), "+00:00")


def _day_us(d: date) -> int:
    return int(np.datetime64(d, "us").astype(np.int64))


def _hours(rng: np.random.Generator, spec: ModelSpec, n: int) -> np.ndarray:
    return rng.choice(24, size=n, p=np.asarray(spec.hour_profile))


def _reference(spec: ModelSpec, rows: int, seed: int, idx: int) -> pd.DataFrame:
    """The champion's training/validation data: the same process as a normal day."""
    rng = np.random.default_rng([seed, idx, 1])
    x = spec.features(rng, _hours(rng, spec, rows))
    x["label"] = spec.labels(rng, x, np.zeros(rows, dtype=bool))
    return x


def _daily_counts(
    spec: ModelSpec,
    rng: np.random.Generator,
    start: date,
    days: int,
    rows_per_day: int,
    incidents: list[Incident],
) -> np.ndarray:
    """Rows per day: the mean, a weekday rhythm, a little day-to-day noise, and any drop."""
    dow = np.array([(start + timedelta(days=d)).weekday() for d in range(days)])
    factor = np.asarray(spec.weekday_factor)[dow] * np.exp(rng.normal(0, 0.03, days))
    for inc in incidents:
        if inc.kind == "throughput_drop":
            factor = np.where(inc.active(np.arange(days)), factor * THROUGHPUT_FACTOR, factor)
    return np.maximum(np.round(rows_per_day * factor), 1).astype(np.int64)


def _generate(
    spec: ModelSpec,
    idx: int,
    *,
    start: date,
    days: int,
    rows_per_day: int,
    reference_rows: int,
    seed: int,
    incidents: list[Incident],
) -> ModelData:
    """One model's reference, prediction log and outcomes, with its incidents injected."""
    mine = [i for i in incidents if i.model == spec.key]
    reference = _reference(spec, reference_rows, seed, idx)
    champion, metrics, params = train(spec, reference, seed)
    pred, score = predict(spec, champion, reference[spec.numeric + spec.categorical])
    reference["prediction"] = pred
    if score is not None:
        reference["score"] = score

    rng = np.random.default_rng([seed, idx, 2])
    counts = _daily_counts(spec, rng, start, days, rows_per_day, mine)
    n = int(counts.sum())
    day = np.repeat(np.arange(days), counts)
    hour = _hours(rng, spec, n)
    us = _day_us(start) + day * _DAY_US + hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)
    order = np.argsort(us, kind="stable")  # rows of a day stay together: days are in order
    day, hour, us = day[order], hour[order], us[order]
    x = spec.features(rng, hour)
    ref_sd = reference[spec.numeric].std()

    concept = np.zeros(n, dtype=bool)
    canary_rows = np.zeros(n, dtype=bool)
    for inc in mine:
        rows = inc.active(day)
        if inc.kind == "covariate_drift":
            tenure = x["tenure_months"].to_numpy(dtype=float)
            tenure = tenure - TENURE_SHIFT_SD * ref_sd["tenure_months"] * rows
            # clipping at 0 would eat part of the shift: fold the few negatives back instead
            x["tenure_months"] = np.abs(tenure).round().astype(np.int64)
            x["monthly_charges"] = (
                x["monthly_charges"] + CHARGES_SHIFT_SD * ref_sd["monthly_charges"] * rows
            ).round(2)
        elif inc.kind == "null_rate":
            col = inc.columns[0]
            extra = (NULL_RATE_TO - 0.02) / 0.98
            x.loc[rows & (rng.random(n) < extra), col] = np.nan
        elif inc.kind == "unseen_category":
            col = inc.columns[0]
            vals = x[col].to_numpy(dtype=object)
            vals[rows & (rng.random(n) < UNSEEN_SHARE)] = UNSEEN_VALUE
            x[col] = vals.astype(str)
        elif inc.kind == "concept_shift":
            concept |= rows
        elif inc.kind == "correlation_flip":
            col = inc.columns[-1]
            x[col] = _mirrored(x[col].to_numpy(dtype=float), day, rows)
        elif inc.kind == "segment_drift":
            col, p = inc.columns[0], inc.params
            hit = rows & (x[p["segment"]].to_numpy() == p["value"])
            x[col] = (x[col] + p["shift_sd"] * ref_sd[col] * hit).round(2)
        elif inc.kind in ("canary", "canary_good"):
            share = GOOD_CANARY_SHARE if inc.kind == "canary_good" else CANARY_SHARE
            canary_rows |= rows & (rng.random(n) < share)
    labels = spec.labels(rng, x, concept)

    feats = x[spec.numeric + spec.categorical]
    pred, score = predict(spec, champion, feats)
    data = ModelData(reference, pd.DataFrame(), pd.DataFrame(), {}, champion, metrics, params)
    # reference performance must be measured on rows the champion never trained on
    data.validation = reference[validation_rows(reference, seed)].reset_index(drop=True)
    canary_inc = next((i for i in mine if i.kind in ("canary", "canary_good")), None)
    if canary_inc is not None:
        if canary_inc.kind == "canary":
            data.canary, data.canary_metrics, data.canary_params = train_canary(
                spec, reference, seed
            )
        else:  # as good as the champion: the same recipe on the same rows, another seed
            data.canary, data.canary_metrics, data.canary_params = train(spec, reference, seed + 1)
        data.canary_start = (start + timedelta(days=canary_inc.start)).isoformat()
        if canary_rows.any():
            cpred, cscore = predict(spec, data.canary, feats[canary_rows])
            pred = pred.copy()
            pred[canary_rows] = cpred
            if score is not None and cscore is not None:
                score = score.copy()
                score[canary_rows] = cscore

    for inc in mine:
        if inc.kind == "biased_scores" and score is not None:
            p = inc.params
            hit = inc.active(day) & (feats[p["attribute"]].to_numpy() == p["group"])
            score, pred = score.copy(), pred.copy()
            score[hit] = np.clip(score[hit] + p["score_shift"], 0, 1).round(6)
            pred[hit] = (score[hit] >= 0.5).astype(pred.dtype)

    status = np.where(rng.random(n) < 0.005, "error", "ok")
    latency = spec.latency_median_ms * rng.lognormal(0, 0.35, n)
    latency *= 1 + 0.25 * np.asarray(spec.hour_profile)[hour] * 24 / 2  # busier hours: slower
    for inc in mine:
        if inc.kind == "slo_burn":
            p = inc.params
            slow = inc.active(day) & (hour >= p["first_hour"]) & (hour <= p["last_hour"])
            latency = np.where(slow & (rng.random(n) < p["share"]), p["latency_ms"], latency)
    latency = np.where(status == "error", latency * 3, latency).round(3)
    day_str = [(start + timedelta(days=d)).strftime("%Y%m%d") for d in range(days)]
    seq = np.concatenate([np.arange(c) for c in counts])
    head = f"{spec.tenant}-{spec.name}-"
    ids = np.array([f"{head}{day_str[d]}-{s:06d}" for d, s in zip(day, seq, strict=True)])
    predictions = pd.DataFrame(
        {
            "request_id": ids,
            "timestamp": _ts_strings(us),
            "model_version": np.where(canary_rows, "2", "1"),
        }
    )
    predictions = pd.concat([predictions, feats.reset_index(drop=True)], axis=1)
    # An 'error' row is a request that failed after the model answered (a downstream timeout or
    # a rejected response): the log still has the model's output, as the contract requires a
    # prediction (and score) on every row.
    predictions["prediction"] = pred
    if score is not None:
        predictions["score"] = score
    predictions["latency_ms"] = latency
    predictions["status"] = status

    # Labels arrive for part of the traffic, 1 to 14 days later, and only those observed before
    # the world's "now" (midnight after the last day) exist yet.
    lag_days = 1 + np.minimum(rng.exponential(2.0, n), MAX_LABEL_LAG_DAYS - 1)
    observed = us + (lag_days * _DAY_US).astype(np.int64)
    now = _day_us(start + timedelta(days=days))
    keep = (rng.random(n) < spec.label_rate) & (observed < now)
    outcomes = pd.DataFrame(
        {
            "request_id": predictions["request_id"].to_numpy()[keep],
            "label": labels[keep],
            "observed_at": _ts_strings(observed[keep]),
            "_sort": observed[keep],
        }
    ).sort_values("_sort", kind="stable")
    data.predictions = predictions
    data.outcomes = outcomes.drop(columns="_sort").reset_index(drop=True)
    data.daily_rows = {
        (start + timedelta(days=d)).isoformat(): int(c) for d, c in enumerate(counts)
    }
    return data


def _mirrored(values: np.ndarray, day: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`values` with each day's `rows` given their mirror-rank value: the row of rank r among
    that day's rows takes the value of rank n - 1 - r. Each day keeps exactly the same values
    (its marginal distribution is untouched) while every correlation with the column flips."""
    out = values.copy()
    for d in np.unique(day[rows]):
        idx = np.flatnonzero(rows & (day == d))
        order = np.argsort(values[idx], kind="stable")
        out[idx[order]] = values[idx[order[::-1]]]
    return out


def _sql_type(s: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        return "INTEGER"
    if pd.api.types.is_float_dtype(s):
        return "REAL"
    return "TEXT"


def _pylist(s: pd.Series) -> list[Any]:
    """A column as plain Python values with None for missing, which sqlite3 stores as NULL."""
    if pd.api.types.is_float_dtype(s):
        arr = s.to_numpy(dtype=float)
        out = arr.astype(object)
        out[np.isnan(arr)] = None
        return out.tolist()
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
        return s.to_numpy().tolist()
    return s.astype(object).where(s.notna(), None).tolist()


def _write_table(
    con: sqlite3.Connection,
    table: str,
    df: pd.DataFrame,
    *,
    unique: str | None = None,
    index: str | None = None,
    chunk: int = 50_000,
) -> None:
    """Create `table` with explicit column types and bulk-insert `df` in chunks."""
    cols = ", ".join(
        f'"{c}" {_sql_type(df[c])}' + (" NOT NULL UNIQUE" if c == unique else "")
        for c in df.columns
    )
    con.execute(f'CREATE TABLE "{table}" ({cols})')
    marks = ", ".join("?" for _ in df.columns)
    names = ", ".join(f'"{c}"' for c in df.columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
    for lo in range(0, len(df), chunk):
        part = df.iloc[lo : lo + chunk]
        con.executemany(sql, zip(*(_pylist(part[c]) for c in part.columns), strict=True))
    if index:
        con.execute(f'CREATE INDEX "ix_{table}_{index}" ON "{table}" ("{index}")')


def _config(start: date) -> dict[str, Any]:
    """The YAML config document: every path relative to the config's own folder."""
    db = "sqlite:///${CONFIG_DIR}/" + WORLD_DB
    tenants: dict[str, list[dict[str, Any]]] = {}
    for spec in SPECS:
        columns: dict[str, Any] = {}
        if spec.task.is_classification:
            columns["score"] = "score"
        m: dict[str, Any] = {
            "name": spec.name,
            "task": spec.task.value,
            "registered_model": spec.key,
            "features": {"numeric": list(spec.numeric), "categorical": list(spec.categorical)},
            "columns": columns,
            "segments": list(spec.segments),
            "predictions": {"url": db, "table": f"{spec.prefix}_predictions"},
            "outcomes": {"url": db, "table": f"{spec.prefix}_outcomes"},
            "reference": {"url": db, "table": f"{spec.prefix}_reference"},
            "validation": {"url": db, "table": f"{spec.prefix}_validation"},
        }
        if spec.classes:
            m["classes"] = list(spec.classes)
        if any(kind == "canary_good" and model == spec.key for _, kind, model, _, _ in CALENDAR):
            m["canary"] = {"margin": GOOD_CANARY_MARGIN}
        kinds = {kind for _, kind, model, _, _ in CALENDAR if model == spec.key}
        if "biased_scores" in kinds:
            m["fairness"] = {"attribute": "region", "privileged": "north"}
        if "segment_drift" in kinds:
            m["segment_drift"] = {"enabled": True}
        if "slo_burn" in kinds:
            # availability at 99%: the world's ~0.5% error rate would exhaust a 99.9% budget
            m["slos"] = [
                {"name": "fast", "kind": "latency", "objective": 0.99, "threshold_ms": 200},
                {"name": "up", "kind": "availability", "objective": 0.99},
            ]
        if not columns:
            del m["columns"]
        tenants.setdefault(spec.tenant, []).append(m)
    return {
        "start_date": start.isoformat(),
        "storage": {
            "store_url": "sqlite:///${CONFIG_DIR}/store.db",
            "mlflow_tracking_uri": "sqlite:///${CONFIG_DIR}/" + MLFLOW_DB,
            "artifacts_dir": "${CONFIG_DIR}/" + ARTIFACTS_DIR,
        },
        "tenants": [{"name": t, "models": ms} for t, ms in tenants.items()],
        "alerting": {
            "routes": [
                {"name": "alerts-file", "type": "file", "path": "${CONFIG_DIR}/" + ALERTS_FILE},
                {
                    "name": "acme-webhook",
                    "type": "webhook",
                    "url_env": DEMO_WEBHOOK_ENV,
                    "tenants": ["acme"],
                },
                {
                    "name": "globex-slack",
                    "type": "slack",
                    "url_env": DEMO_SLACK_ENV,
                    "tenants": ["globex"],
                },
            ]
        },
    }


_CONFIG_HEADER = """\
# The demo world's config, written by aiops_pipelines.demo.world.build_world.
# ${CONFIG_DIR} is the folder of this file: the world moves with it. Thresholds are the
# defaults; the ground truth of what was injected where is in manifest.json beside this file.
"""


def _refuse_foreign(home: Path) -> None:
    """Refuse to wipe a folder that holds someone's real config or MLflow data.

    `home` is meant to be a folder of its own (e.g. `$AIOPS_HOME/demo`); pointing the demo at
    `$AIOPS_HOME` itself would otherwise delete a real `mlflow.db` and `artifacts/`.
    """
    config = home / CONFIG_FILE
    if config.is_file() and not config.read_text(errors="replace").startswith(_CONFIG_HEADER[:40]):
        raise ValueError(f"{config} was not written by the demo: refusing to rebuild over it")
    if not any((home / n).exists() for n in (CONFIG_FILE, MANIFEST_FILE, WORLD_DB)) and any(
        (home / n).exists() for n in (MLFLOW_DB, ARTIFACTS_DIR)
    ):
        raise ValueError(
            f"{home} holds MLflow data but no demo world: refusing to delete it; "
            "give the demo a folder of its own"
        )


def _wipe(home: Path) -> None:
    """Delete what a previous build left (only the world's own files)."""
    for name in (*OWNED, WORLD_DB + ".tmp"):
        p = home / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def build_world(
    home: Path,
    *,
    days: int = 64,
    end_date: date | None = None,
    rows_per_day: int = 3000,
    reference_rows: int = 20000,
    seed: int = 7,
    register_models: bool = True,
    incident_scale: float | None = None,
) -> DemoWorld:
    """Build (or rebuild from scratch) the demo world under `home`; returns what it made.

    `end_date` is the last demo day (default: yesterday, UTC), so the world always ends just
    before "now", like a live system. The incident calendar is written for 64 days and scaled
    by `incident_scale` (default `days / 64`), so a small test world keeps every incident.
    The same arguments give the same data (the MLflow run ids differ).
    """
    t0 = time.perf_counter()
    if days < 1 or rows_per_day < 1 or reference_rows < 100:
        raise ValueError("need days >= 1, rows_per_day >= 1 and reference_rows >= 100")
    home = Path(home).expanduser().resolve()
    end = end_date or (datetime.now(UTC).date() - timedelta(days=1))
    start = end - timedelta(days=days - 1)
    incidents = scheduled_incidents(
        days, days / CALENDAR_DAYS if incident_scale is None else incident_scale
    )

    home.mkdir(parents=True, exist_ok=True)
    _refuse_foreign(home)
    _wipe(home)
    data: dict[str, ModelData] = {}
    tmp = home / (WORLD_DB + ".tmp")
    # One OpenMP/BLAS thread: gradient boosting's workers busy-wait when the (2-core) machine is
    # shared with a test run or Dagster, which made generation several times slower; a single
    # thread costs ~20% on an idle machine and keeps the build time predictable.
    with threadpool_limits(limits=1), closing(sqlite3.connect(tmp)) as con:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        for idx, spec in enumerate(SPECS):
            d = _generate(
                spec,
                idx,
                start=start,
                days=days,
                rows_per_day=rows_per_day,
                reference_rows=reference_rows,
                seed=seed,
                incidents=incidents,
            )
            data[spec.key] = d
            _write_table(con, f"{spec.prefix}_reference", d.reference)
            _write_table(con, f"{spec.prefix}_validation", d.validation)
            _write_table(
                con,
                f"{spec.prefix}_predictions",
                d.predictions,
                unique="request_id",
                index="timestamp",
            )
            for inc in incidents:  # after the load: a type error a loader would not catch
                if inc.kind == "bad_batch" and inc.model == spec.key:
                    lo = (start + timedelta(days=inc.start)).isoformat()
                    hi = (start + timedelta(days=(inc.end or inc.start) + 1)).isoformat()
                    con.execute(
                        f'UPDATE "{spec.prefix}_predictions" SET "{inc.columns[0]}" = ? '
                        "WHERE timestamp >= ? AND timestamp < ?",
                        (BAD_BATCH_VALUE, lo, hi),
                    )
            _write_table(
                con,
                f"{spec.prefix}_outcomes",
                d.outcomes,
                unique="request_id",
                index="observed_at",
            )
            con.commit()
    os.replace(tmp, home / WORLD_DB)
    t_data = time.perf_counter() - t0

    registered = (
        register_in_mlflow(f"sqlite:///{home / MLFLOW_DB}", home / ARTIFACTS_DIR, data)
        if register_models
        else {}
    )
    if register_models:
        # the MLflow file is in WAL mode (`io.tracking`) and this process keeps its
        # connections: what it wrote goes into the file itself, so a copy of the file is whole
        with closing(sqlite3.connect(home / MLFLOW_DB, timeout=30)) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    manifest: dict[str, Any] = {
        "generator": "aiops_pipelines.demo.world.build_world",
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": days,
        "rows_per_day": rows_per_day,
        "reference_rows": reference_rows,
        "labels_observed_before": (end + timedelta(days=1)).isoformat(),
        "models": {
            key: {
                "task": SPEC_BY_KEY[key].task.value,
                "tables": {
                    kind: f"{SPEC_BY_KEY[key].prefix}_{kind}"
                    for kind in ("reference", "validation", "predictions", "outcomes")
                },
                "registered": registered.get(key, {}),
                "training_metrics": {
                    "champion": d.champion_metrics,
                    **({"canary": d.canary_metrics} if d.canary is not None else {}),
                },
                "label_rate": SPEC_BY_KEY[key].label_rate,
                "daily_rows": d.daily_rows,
            }
            for key, d in data.items()
        },
        "incidents": [
            {
                "id": i.id,
                "kind": i.kind,
                "model": i.model,
                "start": (start + timedelta(days=i.start)).isoformat(),
                "end": None if i.end is None else (start + timedelta(days=i.end)).isoformat(),
                "columns": i.columns,
                "expected_signals": i.expected,
                "allowed_signals": i.allowed,
                "description": i.description,
                "params": i.params,
            }
            for i in incidents
        ],
    }
    config_path = home / CONFIG_FILE
    config_path.write_text(
        _CONFIG_HEADER + yaml.safe_dump(_config(start), sort_keys=False, width=100)
    )
    (home / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    log.info(
        "demo world in %s: %d days, data %.1fs, total %.1fs",
        home,
        days,
        t_data,
        time.perf_counter() - t0,
    )
    return DemoWorld(home, config_path, manifest, [s.key for s in SPECS])
