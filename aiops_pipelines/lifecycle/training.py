"""Retraining: train a candidate on recent labelled traffic and let it challenge the champion.

`retrain(model, ...)` is what the retrain job runs when the retrain sensor decides a model has
decayed or drifted. It never deploys anything by itself:

1. `labelled_window` reads the model's logged predictions of the last `retrain.window_days`
   days (day by day, in bounded chunks) and joins the outcomes observed up to `as_of`.
2. The window is split by time: the most recent `retrain.holdout_fraction` is held out, the
   rest trains the candidate with the configured trainer (`retrain.trainer`, 'module:function').
   A random split would leak the future into training and flatter a candidate whose world has
   already moved on; a time split asks the question that matters: "does it do better on the
   traffic that came after the data it saw?"
3. The candidate and the current champion (`models:/<registry name>@champion`) score the SAME
   held-out rows; the model's primary metric decides.
4. The candidate is logged and registered as a new version in every case (the audit needs the
   losers too), its run holds `candidate.*` and `champion.*` metrics, its version is tagged.
5. Only a candidate that beats the champion by at least `retrain.min_improvement` gets the
   `challenger` alias. `champion` is never touched here: promotion is a separate, gated step
   (canary analysis or a human). With no champion yet, the candidate becomes the challenger.

No Dagster here: the Dagster job, the CLI and the tests all call these functions.
"""

from __future__ import annotations

import importlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from aiops_pipelines.core.config import Metric, ModelConfig, TaskType
from aiops_pipelines.core.errors import AiopsError, ConfigError, DataError
from aiops_pipelines.core.findings import jsonable
from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.io.sources import Source, day_window
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import (
    TAG_ASSET,
    TAG_MODEL,
    TAG_TENANT,
    ensure_experiment,
    fluent_uri,
    prepare_tracking_store,
    trusted_types,
)
from aiops_pipelines.signals.performance.join import validate_labels
from aiops_pipelines.signals.performance.metrics import class_labels, realized_metrics

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
ASSET = "retrain"
ACTOR = "retrain_job"
#: Fewer labelled rows than this in either part and the comparison is noise, so we refuse.
MIN_TRAIN_ROWS = 200
MIN_HOLDOUT_ROWS = 100

# Tags on the retrain run and on the registered version (the same keys on both, so a sensor or
# a human can filter either with one vocabulary).
TAG_REASON = "aiops.reason"
TAG_WINDOW_START = "aiops.window_start"
TAG_WINDOW_END = "aiops.window_end"
TAG_BEATS = "aiops.beats_champion"
TAG_PRIMARY = "aiops.primary_metric"
TAG_CHAMPION_VERSION = "aiops.champion_version"
TAG_RUN_ID = "aiops.run_id"


class Estimator(Protocol):
    """What a trainer must return: a fitted scikit-learn-style model."""

    def predict(self, X: pd.DataFrame) -> Any: ...


Trainer = Callable[..., Estimator]


class InsufficientLabelsError(DataError):
    """The window has too few labelled rows to train and to judge a candidate fairly."""


class RetrainError(AiopsError):
    """The retrain could not compare or register the candidate (e.g. the champion won't load)."""


@dataclass(frozen=True)
class RetrainResult:
    """What one retrain produced.

    `beats_champion` is also what set the `challenger` alias. With no champion yet it is True
    (nothing to beat: the first candidate becomes the challenger), `champion_version` is None
    and `champion_metrics` is empty. `improvement` is the candidate's gain on the primary
    metric (positive = better, whatever the metric's direction), None without a champion.
    """

    version: str
    run_id: str
    beats_champion: bool
    candidate_metrics: dict[Metric, float]
    champion_metrics: dict[Metric, float]
    primary_metric: Metric
    n_train: int
    n_holdout: int
    window_start: date
    window_end: date
    champion_version: str | None = None
    improvement: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Trainers
# --------------------------------------------------------------------------------------------


def default_trainer(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: TaskType,
    numeric: list[str],
    categorical: list[str],
    classes: list[str] | None,
    seed: int,
) -> Pipeline:
    """Gradient boosting on one-hot categories: strong on tabular data with no tuning.

    Missing numerics go to the trees as NaN (handled natively, so a feed outage in the window
    does not need an imputer); unseen categories at predict time are ignored rather than
    failing a request. Labels stay as the data has them (0/1 ints, class strings), so the
    candidate predicts in the same vocabulary as the champion and the outcomes table.
    """
    one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    prep = ColumnTransformer(
        [("num", "passthrough", list(numeric)), ("cat", one_hot, list(categorical))]
    )
    kw: dict[str, Any] = {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "l2_regularization": 1.0,
        "random_state": seed,
    }
    est: HistGradientBoostingRegressor | HistGradientBoostingClassifier
    if task is TaskType.REGRESSION:
        est = HistGradientBoostingRegressor(**kw)
    else:
        est = HistGradientBoostingClassifier(**kw)
    pipe = Pipeline([("prep", prep), ("model", est)])
    pipe.fit(X[[*numeric, *categorical]], y)
    return pipe


def load_trainer(entry: str, *, where: str | None = None) -> Trainer:
    """Import a 'package.module:function' trainer, failing with a `ConfigError` that names it.

    Resolved when the job starts (not at config load) so a config can name a trainer that only
    the training environment has installed.
    """
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"trainer '{entry}' is not of the form 'package.module:function'",
            where=where,
            field="retrain.trainer",
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an ImportError or whatever the module raises on import
        raise ConfigError(
            f"trainer '{entry}': cannot import module '{module_name}': {exc}",
            where=where,
            field="retrain.trainer",
        ) from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ConfigError(
            f"trainer '{entry}': module '{module_name}' has no callable '{attr}'",
            where=where,
            field="retrain.trainer",
        )
    return fn  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# The labelled window
# --------------------------------------------------------------------------------------------


def window_bounds(
    model: ModelConfig, end_day: date, start_day: date | None = None
) -> tuple[date, date]:
    """The first and last day (inclusive) of the retrain window ending at `end_day`.

    `start_day` narrows it: after a concept shift, rows from before the decay started teach
    the old relationship, so a decay-triggered retrain starts where the decay did.
    """
    first = end_day - timedelta(days=model.retrain.window_days - 1)
    if start_day is not None and first < start_day <= end_day:
        first = start_day
    return first, end_day


def _days(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights: one index-friendly query per day."""
    lo = start
    while lo < end:
        hi = min(day_window(lo.date())[1], end)
        yield lo, hi
        lo = hi


def _clean_categories(s: pd.Series) -> pd.Series:
    """Chunks that are all NULL come back as object/None; encoders need NaN for missing."""
    if s.dtype == object:
        return s.where(s.notna(), np.nan)
    return s


def labelled_window(
    model: ModelConfig, end_day: date, as_of: datetime, start_day: date | None = None
) -> pd.DataFrame:
    """The window's predictions (features, request id, timestamp) with their observed labels.

    Predictions of the `retrain.window_days` days ending at `end_day` are joined with the
    outcomes observed before `as_of` (so a backfilled retrain sees only what was known then)
    and within `performance.label_window_days` of their day (as the performance monitoring
    counts them); unlabelled rows are dropped, a request labelled twice keeps its latest label,
    and the rows come sorted by prediction time. Both sources are read one UTC day at a time
    in bounded chunks; only the window's rows (which are the training set) stay in memory.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    if model.outcomes is None:
        raise DataError("no outcomes source is configured: nothing to train on", model=model.key)
    cols = model.columns
    rid, ts, label, label_ts = cols.request_id, cols.timestamp, cols.label, cols.label_timestamp
    features = model.features.all
    first, last = window_bounds(model, end_day, start_day)
    start, end = day_window(first)[0], day_window(last)[1]
    where = f"{first.isoformat()}..{last.isoformat()}"

    preds = Source(model.predictions)
    parts: list[pd.DataFrame] = []
    for lo, hi in _days(start, end):
        try:
            parts.extend(preds.iter_window(ts, lo, hi, [rid, ts, *features]))
        except DataError as exc:
            raise exc.located(model=model.key, partition=lo.date().isoformat()) from None
    if not parts:
        return pd.DataFrame(columns=[rid, ts, *features, label])
    frame = pd.concat(parts, ignore_index=True)
    frame["_key"] = frame[rid].astype(str)
    # the contract says request ids are unique; if a log repeats one, keep the latest record
    frame = frame.sort_values(ts, kind="stable").drop_duplicates("_key", keep="last")
    wanted = set(frame["_key"])

    # labels observed more than `performance.label_window_days` after their prediction's day
    # are ignored, as the performance monitoring ignores them; it also bounds the scan
    late = timedelta(days=model.performance.label_window_days + 1)
    until = min(as_of.astimezone(UTC), end - timedelta(days=1) + late)
    outcomes = Source(model.outcomes)
    labels: list[pd.DataFrame] = []
    for lo, hi in _days(start, max(start, until)):
        try:
            for chunk in outcomes.iter_window(label_ts, lo, hi, [rid, label, label_ts]):
                key = chunk[rid].astype(str)
                keep = (key.isin(wanted) & chunk[label].notna()).to_numpy()
                if keep.any():
                    part = chunk.loc[keep, [label, label_ts]]
                    labels.append(part.assign(_key=key[keep].to_numpy()))
        except DataError as exc:
            raise exc.located(model=model.key, partition=where) from None
    if not labels:
        return pd.DataFrame(columns=[rid, ts, *features, label])
    observed = pd.concat(labels, ignore_index=True).rename(columns={label_ts: "_observed"})
    out = frame.merge(observed, on="_key", how="inner", validate="one_to_many")
    out = out[(out["_observed"] < out[ts].dt.floor("D") + late).to_numpy()]
    out = out.sort_values("_observed", kind="stable").drop_duplicates("_key", keep="last")
    out = out.sort_values(ts, kind="stable").reset_index(drop=True)
    # fail on labels outside the model's classes (or non-numeric targets) before training on
    # them; classification labels keep the data's own type (0/1 ints stay ints), so the
    # candidate predicts in the champion's vocabulary
    checked = validate_labels(out[label], model, where)
    if not model.task.is_classification:
        out[label] = checked
    for c in model.features.numeric:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = pd.to_numeric(out[c], errors="coerce")
    for c in model.features.categorical:
        out[c] = _clean_categories(out[c])
    return out[[rid, ts, *features, label]]


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _positive_column(est: Any, classes: list[str] | None) -> int | None:
    """The predict_proba column of the positive class, as `realized_metrics` defines it
    (`classes[1]`, else the label 1 or True), with labels compared as strings (1 == 1.0 == "1").
    """
    known = [str(c) for c in class_labels(np.asarray(getattr(est, "classes_", []), dtype=object))]
    if classes:
        target = str(class_labels([classes[1]])[0])
    else:
        target = "True" if "1" not in known and "True" in known else "1"
    return known.index(target) if target in known else None


def evaluate(model: ModelConfig, est: Any, X: pd.DataFrame, y: pd.Series) -> dict[Metric, float]:
    """Realized metrics of `est` on labelled rows, computed as the monitoring computes them."""
    with warnings.catch_warnings():
        # categories the training window never saw are ignored on purpose (handle_unknown)
        warnings.filterwarnings("ignore", message=".*unknown categories.*")
        y_pred = np.asarray(est.predict(X))
        score = None
        if model.task is TaskType.BINARY:
            proba = np.asarray(est.predict_proba(X))
            col = _positive_column(est, model.classes)
            # trained on one class only: it never predicts the positive one
            score = np.zeros(len(X)) if col is None else proba[:, col]
    return realized_metrics(model.task, y, y_pred, score=score, classes=model.classes)


def improvement(metric: Metric, candidate: float, champion: float) -> float:
    """How much better the candidate is (positive = better), whatever the metric's direction."""
    return candidate - champion if metric.higher_is_better else champion - candidate


def _beats(metric: Metric, candidate: float, champion: float, min_improvement: float) -> bool:
    """Strictly better, by at least `min_improvement`; an undefined metric never wins."""
    if not (math.isfinite(candidate) and math.isfinite(champion)):
        return False
    gain = improvement(metric, candidate, champion)
    return gain > 0 and gain >= min_improvement


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------


def _champion(client: Any, name: str) -> str | None:
    """The version behind the `champion` alias, or None when there is none (yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None  # no registered model, or no champion alias on it
        raise


def load_version(tracking_uri: str, name: str, version: str) -> Any:
    """Load one registered version of `name` as its scikit-learn object.

    Pinned to a version number, not an alias, so a promotion racing the caller cannot swap the
    model between resolving the alias and loading it. MLflow reads the skops trusted types
    from the version's MLmodel file (the demo and `retrain` log them), but MLflow 3.17 gates
    every format, skops included, behind MLFLOW_ALLOW_PICKLE_DESERIALIZATION (default true);
    an operator who turned it off gets a RetrainError that says so, not a bare MLflow error.
    """
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    uri = f"models:/{name}/{version}"
    try:
        with fluent_uri(tracking_uri):
            return mlflow.sklearn.load_model(uri)
    except MlflowException as exc:
        if "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" in str(exc):
            raise RetrainError(
                f"cannot load {uri}: model deserialization is disabled "
                "(MLFLOW_ALLOW_PICKLE_DESERIALIZATION is not 'true'); a candidate cannot be "
                "compared with the champion without loading it"
            ) from None
        raise RetrainError(f"cannot load {uri}: {exc}") from None


def _requirements() -> list[str]:
    """Pinned so MLflow does not infer them (which loads the model in a subprocess: slow)."""
    import sklearn
    import skops

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"skops=={skops.__version__}",
    ]


def _estimator_name(est: Any) -> str:
    """The final estimator's class (a Pipeline's last step), for the run's params."""
    steps = getattr(est, "steps", None)
    return type(steps[-1][1] if steps else est).__name__


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


def retrain(
    model: ModelConfig,
    *,
    tracking_uri: str,
    artifacts_dir: str,
    reason: str,
    evidence: dict[str, Any],
    end_day: date,
    as_of: datetime,
    store: MonitoringStore | None = None,
    seed: int = 0,
    min_train_rows: int = MIN_TRAIN_ROWS,
    min_holdout_rows: int = MIN_HOLDOUT_ROWS,
    start_day: date | None = None,
) -> RetrainResult:
    """Train a candidate on the window ending at `end_day`, compare it with the champion on the
    same held-out rows, register it, and make it `challenger` only if it wins.

    `reason` (e.g. 'performance_decay') and `evidence` (what the sensor saw) are kept on the
    run, the version and the audit entry, so a version can always answer "why do I exist?".
    Raises `InsufficientLabelsError` when the window has too few labels, `ConfigError` for a
    trainer that cannot be imported, `RetrainError` when the champion cannot be loaded.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    policy = model.retrain
    metric = model.primary_metric
    first, last = window_bounds(model, end_day, start_day)
    where = f"{first.isoformat()}..{last.isoformat()}"
    trainer = load_trainer(policy.trainer, where=f"model '{model.key}'")

    data = labelled_window(model, end_day, as_of, start_day)
    cols = model.columns
    n = len(data)
    if n:
        k = min(n - 1, math.ceil(n * (1 - policy.holdout_fraction)))
        cutoff = data[cols.timestamp].iloc[k]
        held = (data[cols.timestamp] >= cutoff).to_numpy()
    else:
        cutoff, held = None, np.zeros(0, dtype=bool)
    train, holdout = data.loc[~held], data.loc[held]
    if len(train) < min_train_rows or len(holdout) < min_holdout_rows:
        raise InsufficientLabelsError(
            f"only {n} labelled rows in the retrain window {where} (labels observed before "
            f"{as_of.isoformat()}): {len(train)} to train and {len(holdout)} held out, need at "
            f"least {min_train_rows} and {min_holdout_rows}",
            model=model.key,
            partition=where,
        )

    features = model.features.all
    x_train, y_train = train[features], train[cols.label]
    x_hold, y_hold = holdout[features], holdout[cols.label]
    candidate = trainer(
        x_train,
        y_train,
        task=model.task,
        numeric=list(model.features.numeric),
        categorical=list(model.features.categorical),
        classes=list(model.classes) if model.classes else None,
        seed=seed,
    )
    needs = ["predict", "predict_proba"] if model.task.is_classification else ["predict"]
    missing = [m for m in needs if not callable(getattr(candidate, m, None))]
    if missing:
        raise ConfigError(
            f"trainer '{policy.trainer}' returned {type(candidate).__name__} without "
            f"{', '.join(missing)}",
            where=f"model '{model.key}'",
            field="retrain.trainer",
        )
    cand_metrics = evaluate(model, candidate, x_hold, y_hold)

    prepare_tracking_store(tracking_uri, artifacts_dir)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = model.registry_name
    with fluent_uri(tracking_uri):
        champ_version = _champion(client, name)
        champ_metrics: dict[Metric, float] = {}
        if champ_version is not None:
            champion = load_version(tracking_uri, name, champ_version)
            try:
                champ_metrics = evaluate(model, champion, x_hold, y_hold)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # e.g. the config's features changed since the champion was trained
                raise RetrainError(
                    f"[model={model.key}] champion {name} v{champ_version} cannot score the "
                    f"held-out rows of {where}: {exc}"
                ) from exc

        cand_value = cand_metrics.get(metric, float("nan"))
        if champ_version is None:
            beats, gain = True, None  # no champion yet: the first candidate is the challenger
        else:
            champ_value = champ_metrics.get(metric, float("nan"))
            beats = _beats(metric, cand_value, champ_value, policy.min_improvement)
            gain = improvement(metric, cand_value, champ_value)

        params: dict[str, Any] = {
            "trainer": policy.trainer,
            "estimator": _estimator_name(candidate),
            "task": model.task.value,
            "window_days": policy.window_days,
            "holdout_fraction": policy.holdout_fraction,
            "holdout_from": cutoff.isoformat() if cutoff is not None else "",
            "as_of": as_of.isoformat(),
            "min_improvement": policy.min_improvement,
            "primary_metric": metric.value,
            "n_train": len(train),
            "n_holdout": len(holdout),
            "seed": seed,
            "champion_version": champ_version or "",
            "features": ",".join(features),
        }
        tags = {
            TAG_TENANT: model.tenant,
            TAG_MODEL: model.name,
            TAG_ASSET: ASSET,
            TAG_REASON: reason,
            TAG_WINDOW_START: first.isoformat(),
            TAG_WINDOW_END: last.isoformat(),
            TAG_PRIMARY: metric.value,
            TAG_CHAMPION_VERSION: champ_version or "",
            TAG_BEATS: str(beats).lower(),
        }
        metrics = {f"candidate.{m.value}": v for m, v in cand_metrics.items()}
        metrics.update({f"champion.{m.value}": v for m, v in champ_metrics.items()})
        if gain is not None:
            metrics[f"improvement.{metric.value}"] = gain

        exp_id = ensure_experiment(client, model.key, artifacts_dir)
        sample = x_train.head(200)
        with warnings.catch_warnings():
            # MLflow warns about integer columns that could hold missing values, and about
            # its own deprecations; neither is actionable for a job's log
            warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow\..*")
            with mlflow.start_run(
                experiment_id=exp_id, run_name=f"retrain:{last.isoformat()}", tags=tags
            ) as run:
                mlflow.log_params(params)
                mlflow.log_metrics(_finite(metrics))
                mlflow.log_dict(jsonable({"reason": reason, "evidence": evidence}), "evidence.json")
                info = mlflow.sklearn.log_model(
                    candidate,
                    name="model",
                    registered_model_name=name,
                    signature=infer_signature(sample, np.asarray(candidate.predict(sample))),
                    pip_requirements=_requirements(),
                    skops_trusted_types=trusted_types(candidate),
                    await_registration_for=60,
                )
                run_id = run.info.run_id
                version = str(info.registered_model_version)
                mlflow.set_tag("aiops.registered_version", version)

    version_tags = {
        **{k: v for k, v in tags.items() if k not in (TAG_TENANT, TAG_MODEL, TAG_ASSET)},
        TAG_RUN_ID: run_id,
        **{f"candidate.{m.value}": fmt_number(v, ".6g") for m, v in cand_metrics.items()},
        **{f"champion.{m.value}": fmt_number(v, ".6g") for m, v in champ_metrics.items()},
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, value)
    summary = f"{metric.value}={fmt_number(cand_value, '.6g')}"
    if champ_version is not None:
        champ_value = champ_metrics.get(metric, float("nan"))
        summary += f" vs champion v{champ_version} {fmt_number(champ_value, '.6g')}"
    client.update_model_version(
        name,
        version,
        description=f"retrain ({reason}) on {where}: {summary}; "
        + ("challenger" if beats else "does not beat the champion"),
    )
    if beats:
        # the alias moves to this version; `champion` is never touched by a retrain
        client.set_registered_model_alias(name, CHALLENGER, version)
    log.info(
        "retrained %s on %s: version %s, %s; %s",
        model.key,
        where,
        version,
        summary,
        "challenger" if beats else "no challenger",
    )

    window = {"start": first.isoformat(), "end": last.isoformat(), "as_of": as_of.isoformat()}
    if store is not None:
        store.record_action(
            ACTOR,
            "retrain",
            model.tenant,
            model.name,
            partition=last.isoformat(),
            details={
                "version": version,
                "run_id": run_id,
                "registered_model": name,
                "reason": reason,
                "evidence": evidence,
                "window": window,
                "primary_metric": metric.value,
                "candidate_metrics": {m.value: v for m, v in cand_metrics.items()},
                "champion_metrics": {m.value: v for m, v in champ_metrics.items()},
                "champion_version": champ_version,
                "beats_champion": beats,
                "improvement": gain,
                "n_train": len(train),
                "n_holdout": len(holdout),
            },
        )
    return RetrainResult(
        version=version,
        run_id=run_id,
        beats_champion=beats,
        candidate_metrics=dict(cand_metrics),
        champion_metrics=dict(champ_metrics),
        primary_metric=metric,
        n_train=len(train),
        n_holdout=len(holdout),
        window_start=first,
        window_end=last,
        champion_version=champ_version,
        improvement=gain,
        params=params,
    )
