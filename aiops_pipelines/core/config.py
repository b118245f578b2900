"""The YAML config: tenants, their models, data sources, thresholds, and the storage URLs.

`load_config(path)` validates everything up front. A wrong field raises `ConfigError` naming the
file, the tenant/model and the field, so a typo never surfaces as a failed run days later.

Strings may use `${AIOPS_HOME}` (the home folder, see `aiops_home()`) and `${CONFIG_DIR}` (the
folder holding the config file); relative file paths are resolved against the config's folder.
"""

from __future__ import annotations

import fnmatch
import os
import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiops_pipelines.core.errors import ConfigError

HOME_ENV = "AIOPS_HOME"
CONFIG_ENV = "AIOPS_CONFIG"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def aiops_home() -> Path:
    """The one folder every local artefact lives under (`$AIOPS_HOME`, default `~/.aiops`)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".aiops").expanduser().resolve()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Named(_Strict):
    """Tenant and model names become partition keys, table prefixes and MLflow names."""

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("lower-case letters, digits, '_' and '-', starting with a letter")
        return v


class TaskType(StrEnum):
    BINARY = "binary_classification"
    MULTICLASS = "multiclass_classification"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not TaskType.REGRESSION


class SourceConfig(_Strict):
    """Where rows come from: a SQLAlchemy URL with a table or a query, or Parquet files.

    A query may use the bind parameters `:start` and `:end` (the partition's UTC window; on SQLite
    UTC text 'YYYY-MM-DD HH:MM:SS', which compares right only with text written in UTC); the
    window is applied around the query in the database either way.
    """

    url: str | None = Field(None, description="SQLAlchemy URL, e.g. sqlite:////path/world.db")
    table: str | None = Field(None, description="table name (with url)")
    query: str | None = Field(None, description="SQL query (with url); may use :start and :end")
    parquet: str | None = Field(None, description="a Parquet file, a folder of them, or a glob")
    chunk_rows: int = Field(50_000, ge=1_000, description="rows per streamed chunk")
    reader: Literal["auto", "adbc", "sqlalchemy"] = Field(
        "auto",
        description="how a url's rows are read: 'adbc' (Arrow, SQLite and PostgreSQL only, "
        "failing rather than falling back), 'sqlalchemy', or 'auto' (ADBC where it can, "
        "SQLAlchemy otherwise)",
    )
    profile: Literal["stream", "pushdown"] = Field(
        "stream",
        description="how a day of a 'url' predictions source is profiled: 'stream' (its rows "
        "read and profiled here, in chunks) or 'pushdown' (counts, moments, bins, categories "
        "and checks computed by the database in one query, only the results moved: for a "
        "warehouse-sized log). Read only on `predictions`: a source shared with `outcomes` "
        "(one table, a YAML anchor) may carry it there too",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        if self.parquet and (self.url or self.table or self.query):
            raise ValueError("give either 'parquet' or 'url' with 'table'/'query', not both")
        if self.parquet and self.reader != "auto":
            raise ValueError("'reader' applies to a 'url' source, not to 'parquet'")
        if self.parquet and self.profile == "pushdown":
            raise ValueError(
                "'profile: pushdown' runs the profile in a SQL database: it needs a 'url' "
                "source, not 'parquet' (use 'profile: stream')"
            )
        if not self.parquet:
            if not self.url:
                raise ValueError("needs 'url' with 'table' or 'query', or 'parquet'")
            if bool(self.table) == bool(self.query):
                raise ValueError("with 'url', give exactly one of 'table' or 'query'")
        return self

    @property
    def kind(self) -> Literal["sql", "parquet"]:
        return "parquet" if self.parquet else "sql"


class ColumnMap(_Strict):
    """Names of the contract's columns in the model's own tables."""

    request_id: str = "request_id"
    timestamp: str = "timestamp"
    version: str = "model_version"
    prediction: str = "prediction"
    score: str | None = Field(None, description="probability of the positive class (binary)")
    latency_ms: str | None = "latency_ms"
    status: str | None = "status"
    label: str = "label"
    label_timestamp: str = "observed_at"


class FeatureSpec(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> FeatureSpec:
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
        if not self.numeric and not self.categorical:
            raise ValueError("declare at least one numeric or categorical feature")
        for cols in (self.numeric, self.categorical):
            dup = {c for c in cols if cols.count(c) > 1}
            if dup:
                raise ValueError(f"columns listed twice: {sorted(dup)}")
        return self

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class DriftMethod(StrEnum):
    AUTO = "auto"
    KS = "ks"
    WASSERSTEIN = "wasserstein"
    PSI = "psi"
    JENSENSHANNON = "jensenshannon"
    CHISQUARE = "chisquare"


class DriftThresholds(_Strict):
    """Drift thresholds. `warning` levels raise a finding; `critical` levels escalate it."""

    method: DriftMethod = Field(DriftMethod.AUTO, description="test for every column; auto picks")
    per_column_method: dict[str, DriftMethod] = Field(default_factory=dict)
    small_sample: int | None = Field(
        None,
        description="ignored (kept so older configs load): every day now needs a calibrated "
        "significant change and an effect at or above the minimum, whatever its size",
    )
    fdr_alpha: float = Field(
        0.0025,
        gt=0,
        lt=1,
        description="chance of any drift finding on a model-day without change, split over "
        "the families tested (features, predictions, null rates, each window). The default "
        "allows about one chance finding per model and year of daily checks (365 x 0.0025 = "
        "0.9): at 1%, a fleet of 100 models would see one every day",
    )
    windows: list[int] = Field(
        default_factory=lambda: [1, 3, 7],
        description="days pooled per test: the day alone, and trailing windows that find "
        "lasting changes too small to see in one day",
    )
    wasserstein: tuple[float, float] = (0.1, 0.2)
    jensenshannon: tuple[float, float] = Field(
        (0.02, 0.1),
        description="smallest Jensen-Shannon distance that counts (0.02 ~ Cohen's w 0.05, half "
        "a 'small' effect, like W1/std 0.1 for numbers), and the critical level",
    )
    psi: tuple[float, float] = (0.1, 0.25)
    null_rate_increase: tuple[float, float] = Field(
        (0.05, 0.15), description="absolute increase of a column's missing share"
    )
    unseen_share: tuple[float, float] = Field(
        (0.01, 0.05), description="share of rows in categories the reference never had"
    )
    drift_share: tuple[float, float] = Field(
        (0.3, 0.5), description="share of drifted features for dataset drift"
    )
    drift_share_shift: float | None = Field(
        None,
        gt=0,
        le=1,
        description="smallest lasting rise of the drift share reported as a level_shift, "
        "whatever each day's share; default: one feature's share (1 / features tested), since "
        "every drifted feature already passed a calibrated test and an effect-size gate",
    )
    min_rows: int = Field(100, ge=1, description="fewer rows in a day fails the row_count check")

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[int]) -> list[int]:
        if not v or any(w < 1 for w in v) or v[0] != 1 or sorted(set(v)) != v:
            raise ValueError(f"expected increasing days starting with 1, e.g. [1, 3, 7], got {v}")
        return v

    @field_validator(
        "wasserstein", "jensenshannon", "psi", "null_rate_increase", "unseen_share", "drift_share"
    )
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"expected [warning, critical] with 0 < warning <= critical, got {v}")
        return v


class SegmentDriftPolicy(_Strict):
    """Drift per value of the model's `segments` (README: Segment drift)."""

    enabled: bool = Field(
        False,
        description="profile every day per segment value and test drift in each, so a drift "
        "confined to one segment (new sign-ups, one region) is a finding of its own",
    )
    top_k: int = Field(
        5,
        ge=1,
        le=50,
        description="values of each segment tested on their own: the k with the most "
        "reference rows (fixed by the reference, so the same set every day); the rest, values "
        "the reference never had and missing values are pooled as one `__other__` value",
    )
    min_rows: int = Field(
        200,
        ge=10,
        description="a segment value with fewer rows that day is `insufficient`: not tested",
    )
    fdr_alpha: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="level of the Benjamini-Hochberg family over segment values x features "
        "(split over the windows tested): the chance of any segment_drift finding on an "
        "unchanged model-day. Default: half of thresholds.fdr_alpha, so that the nominal chance "
        "of any drift finding at all, whole-model or segment, stays under 1.5 x "
        "thresholds.fdr_alpha",
    )

    def level(self, thresholds: DriftThresholds) -> float:
        """The family's level: `fdr_alpha`, or half of the whole model's."""
        return self.fdr_alpha if self.fdr_alpha is not None else thresholds.fdr_alpha / 2


class MultivariateDriftConfig(_Strict):
    """Multivariate drift of the features' joint distribution, on the profiles' bounded samples:
    a domain classifier's out-of-fold AUC and the PCA reconstruction error, each against its
    null at the day's sample size (README: Multivariate drift)."""

    enabled: bool = Field(True, description="run both detectors on every model-day")
    alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="chance of a multivariate_drift finding on a model-day without change, "
        "split evenly over the two detectors",
    )
    auc: tuple[float, float] = Field(
        (0.55, 0.7),
        description="smallest out-of-fold AUC of the domain classifier that counts (the "
        "effect-size gate, so huge days do not fire on trivia), and the critical level",
    )
    error_ratio: tuple[float, float] = Field(
        (1.2, 1.5),
        description="smallest ratio of the day's mean PCA reconstruction error to the "
        "reference's that counts, and the critical level",
    )
    pca_variance: float = Field(
        0.9, gt=0, lt=1, description="share of the reference's variance the PCA components keep"
    )
    folds: int = Field(
        3,
        ge=2,
        le=10,
        description="folds of the domain classifier (stratified, of blocks of rows in arrival "
        "order); "
        "more folds train on more rows but cost more, and their AUCs correlate more",
    )
    min_rows: int = Field(
        100,
        ge=20,
        description="fewer sampled rows on either side: the day is 'insufficient' (no verdict)",
    )

    @field_validator("auc")
    @classmethod
    def _auc(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.5 < v[0] <= v[1] < 1:
            raise ValueError(
                f"expected [warning, critical] with 0.5 < warning <= critical < 1, got {v}"
            )
        return v

    @field_validator("error_ratio")
    @classmethod
    def _ratio(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 1 < v[0] <= v[1]:
            raise ValueError(f"expected [warning, critical] with 1 < warning <= critical, got {v}")
        return v


class Metric(StrEnum):
    """Realized performance metrics, by task. The same names are used everywhere."""

    ACCURACY = "accuracy"
    PRECISION = "precision"
    RECALL = "recall"
    F1 = "f1"
    ROC_AUC = "roc_auc"
    LOG_LOSS = "log_loss"
    CALIBRATION_ERROR = "calibration_error"
    MACRO_F1 = "macro_f1"
    MAE = "mae"
    RMSE = "rmse"
    MAPE = "mape"
    R2 = "r2"

    @property
    def higher_is_better(self) -> bool:
        return self not in (
            Metric.LOG_LOSS,
            Metric.CALIBRATION_ERROR,
            Metric.MAE,
            Metric.RMSE,
            Metric.MAPE,
        )


TASK_METRICS: dict[TaskType, tuple[Metric, ...]] = {
    TaskType.BINARY: (
        Metric.ACCURACY,
        Metric.PRECISION,
        Metric.RECALL,
        Metric.F1,
        Metric.ROC_AUC,
        Metric.LOG_LOSS,
        Metric.CALIBRATION_ERROR,
    ),
    TaskType.MULTICLASS: (Metric.ACCURACY, Metric.MACRO_F1),
    TaskType.REGRESSION: (Metric.MAE, Metric.RMSE, Metric.MAPE, Metric.R2),
}
DEFAULT_PRIMARY: dict[TaskType, Metric] = {
    TaskType.BINARY: Metric.ROC_AUC,
    TaskType.MULTICLASS: Metric.MACRO_F1,
    TaskType.REGRESSION: Metric.MAE,
}


class PerformancePolicy(_Strict):
    """When realized performance on late labels counts as decay.

    A day is judged on its primary metric against the reference: an absolute `floors` level
    (a ceiling for lower-is-better metrics such as MAE), a `relative_drop` from the reference
    value, both [warning, critical], and only when the change is also outside the sampling band
    of the reference at the day's number of labels (`band_sigma` standard errors). A finding
    fires after `persistence` consecutive labelled days at that level and clears after
    `clear_after` consecutive days below it (hysteresis).
    """

    primary_metric: Metric | None = Field(None, description="default: roc_auc / macro_f1 / mae")
    floors: dict[Metric, tuple[float, float]] = Field(
        default_factory=dict, description="absolute [warning, critical] per metric"
    )
    relative_drop: tuple[float, float] = Field(
        (0.05, 0.15), description="relative degradation of the primary metric vs reference"
    )
    band_sigma: float = Field(3.0, gt=0, description="sampling band width in standard errors")
    min_labels: int = Field(200, ge=1, description="fewer labels: the day is 'insufficient'")
    persistence: int = Field(2, ge=1, description="consecutive labelled days before firing")
    clear_after: int = Field(2, ge=1, description="consecutive good days before clearing")
    label_window_days: int = Field(30, ge=1, description="labels later than this are ignored")
    coverage_drop: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="smallest lasting relative drop of label coverage reported as a level_shift "
        "(days whose label window closed): the label feed is a throughput of outcomes, held to "
        "the same 20% as ops.level_shift_min_change",
    )
    estimate_warning: bool = Field(True, description="label-free estimate may raise a warning")


DEFAULT_TRAINER = "aiops_pipelines.lifecycle.training:default_trainer"
MOVED_TRAINERS = {"aiops_pipelines.training:default_trainer": DEFAULT_TRAINER}
"""Where the default trainer lived before the engine was grouped into packages: configs that
name it explicitly keep working."""


class RetrainPolicy(_Strict):
    """When the retrain sensor launches the retrain job, and how the job trains."""

    enabled: bool = True
    dry_run: bool = Field(False, description="record what would be launched, launch nothing")
    cooldown_days: int = Field(7, ge=1, description="at most one retrain per model per window")
    on_decay: Literal["critical", "warning", "never"] = "critical"
    on_drift_share: float | None = Field(
        0.5, description="dataset drift share that triggers (with enough new labels); null: never"
    )
    min_new_labels: int = Field(1000, ge=0, description="labels needed for a drift-triggered run")
    window_days: int = Field(21, ge=1, description="recent labelled days to train on")
    holdout_fraction: float = Field(0.25, gt=0, lt=1, description="most recent share held out")
    trainer: str = Field(DEFAULT_TRAINER, description="module:function that trains")
    min_improvement: float = Field(
        0.0, ge=0, description="candidate must beat the champion by this much (primary metric)"
    )

    @field_validator("trainer")
    @classmethod
    def _entry_point(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", v):
            raise ValueError("expected 'package.module:function'")
        return MOVED_TRAINERS.get(v, v)


class CanaryPolicy(_Strict):
    """How a canary version is judged against the champion, every day, on per-prediction data.

    The primary comparison is the per-prediction difference canary - champion of correctness
    (classification) or of negated absolute error (regression), with an anytime-valid
    confidence sequence, so looking every day does not inflate false rollbacks. `fail`: the
    canary is credibly worse than `margin`, or a guardrail is breached; `pass`: after
    `min_days` with label coverage above `min_coverage`, credibly not worse than `margin`.
    """

    enabled: bool = True
    dry_run: bool = Field(False, description="record what would be done, change nothing")
    margin: float = Field(
        0.02, ge=0, description="allowed degradation (accuracy points; MAE units for regression)"
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="error rate of the sequential test")
    n_star: int = Field(
        5000, ge=10, description="labelled predictions where the sequence is tightest"
    )
    min_days: int = Field(7, ge=1, description="days of canary traffic before a pass")
    min_coverage: float = Field(0.3, ge=0, le=1, description="label coverage needed to pass")
    min_labels: int = Field(100, ge=1, description="fewer canary labels: inconclusive")
    max_error_rate_increase: float = Field(
        0.02, ge=0, description="guardrail: error (status != ok) rate increase, absolute"
    )
    max_latency_p95_ratio: float = Field(
        1.5, ge=1, description="guardrail: canary p95 latency / champion p95 latency"
    )


class OpsPolicy(_Strict):
    """Operational signals: anomaly detection on hourly series, and the serving cost."""

    unit_cost_per_hour: float | None = Field(
        None, ge=0, description="serving cost per hour; gives cost per 1,000 predictions"
    )
    z: float = Field(4.0, gt=0, description="robust z-score beyond which an hour is anomalous")
    persistence: int = Field(2, ge=1, description="consecutive anomalous hours before a finding")
    history_days: int = Field(28, ge=1, description="days of history for the seasonal baseline")
    level_shift_min_change: float = Field(
        0.2,
        gt=0,
        description="smallest lasting change reported: relative, for throughput (either way) "
        "and latency p95 (up); the critical level is 2.5 times it",
    )
    level_shift_min_error_rate: float = Field(
        0.01, gt=0, le=1, description="smallest lasting increase of the error rate (absolute)"
    )


class SloKind(StrEnum):
    """What an SLO counts: a prediction served within a latency threshold, a prediction
    served with an ok status, or a labelled day whose realized metric meets a floor."""

    LATENCY = "latency"
    AVAILABILITY = "availability"
    METRIC = "metric"


class SloSegment(_Strict):
    """The traffic an SLO is held on: the predictions whose `column` (one of the model's
    `segments`) equals `value`."""

    column: str = Field(description="a categorical feature listed in the model's `segments`")
    value: str = Field(description="the segment value, as read (a string)")


class SloConfig(_Strict):
    """A service level objective of a model and its error budget (`signals.slo`).

    latency: `objective` of predictions (with a latency) take at most `threshold_ms`;
    availability: `objective` of predictions have an ok status; metric: `objective` of the
    labelled days (a day with a realized `metric` on at least `performance.min_labels`
    labels) have it at or above `floor` (at or below, for a lower-is-better metric). The
    budget is the `1 - objective` share of the events of the last `window_days` days.
    """

    name: str = Field(description="the SLO's name: metric column, finding column, gauge label")
    kind: SloKind = Field(description="latency, availability or metric")
    objective: float = Field(gt=0, lt=1, description="target share of good events, e.g. 0.99")
    threshold_ms: float | None = Field(
        None, gt=0, description="latency: a prediction is good when it takes at most this"
    )
    metric: Metric | None = Field(None, description="metric: default the primary metric")
    floor: float | None = Field(
        None,
        description="metric: the day is good when its metric is at least this (at most, "
        "for a lower-is-better metric such as mae)",
    )
    segment: SloSegment | None = Field(None, description="hold the SLO on one segment only")
    window_days: int = Field(28, ge=1, le=366, description="days of the error budget window")

    @field_validator("name")
    @classmethod
    def _slo_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"SLO name {v!r}: lower-case letters, digits, '_' and '-', starting with a letter"
            )
        return v

    @model_validator(mode="after")
    def _kind_fields(self) -> SloConfig:
        fields = {
            SloKind.LATENCY: {"threshold_ms"},
            SloKind.AVAILABILITY: set(),
            SloKind.METRIC: {"metric", "floor"},
        }[self.kind]
        required = {SloKind.LATENCY: "threshold_ms", SloKind.METRIC: "floor"}.get(self.kind)
        if required and getattr(self, required) is None:
            raise ValueError(f"SLO '{self.name}': a {self.kind.value} SLO needs `{required}`")
        for f in ("threshold_ms", "metric", "floor"):
            if getattr(self, f) is not None and f not in fields:
                raise ValueError(
                    f"SLO '{self.name}': `{f}` does not apply to a {self.kind.value} SLO"
                )
        return self


class FairnessMetric(StrEnum):
    """Group-fairness metrics: the same names in the config, the store, MLflow and findings."""

    DEMOGRAPHIC_PARITY_DIFFERENCE = "demographic_parity_difference"
    DISPARATE_IMPACT_RATIO = "disparate_impact_ratio"
    EQUAL_OPPORTUNITY_DIFFERENCE = "equal_opportunity_difference"
    EQUALIZED_ODDS_DIFFERENCE = "equalized_odds_difference"

    @property
    def needs_labels(self) -> bool:
        """Judged on labelled traffic (true/false positive rates), not on predictions alone."""
        return self in (
            FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE,
            FairnessMetric.EQUALIZED_ODDS_DIFFERENCE,
        )

    @property
    def is_ratio(self) -> bool:
        """A ratio (fair at 1, worse as it falls) rather than a difference (fair at 0)."""
        return self is FairnessMetric.DISPARATE_IMPACT_RATIO


#: [warning, critical] per metric. The difference thresholds are the "fair range" of +-0.1
#: used for statistical parity and equal opportunity differences (AIF360's guidance), doubled
#: for critical; the ratio thresholds are the four-fifths rule (0.8) and, for critical, the
#: ratio a 0.2 difference gives at a 50% selection rate (0.3 / 0.5 = 0.6), where the two
#: kinds of threshold meet (a 0.1 difference at 50% is the four-fifths rule's 0.4 / 0.5).
FAIRNESS_THRESHOLDS: dict[FairnessMetric, tuple[float, float]] = {
    FairnessMetric.DEMOGRAPHIC_PARITY_DIFFERENCE: (0.1, 0.2),
    FairnessMetric.DISPARATE_IMPACT_RATIO: (0.8, 0.6),
    FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE: (0.1, 0.2),
    FairnessMetric.EQUALIZED_ODDS_DIFFERENCE: (0.1, 0.2),
}


def _category_text(v: Any) -> Any:
    """A YAML scalar as the category label the data is compared with (1, 1.0 and "1" are "1",
    as `core.values.category_label` makes them)."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, int | float):
        return str(v)
    return v


class FairnessPolicy(_Strict):
    """Group fairness across one sensitive attribute, judged every day in performance_report.

    Each group (a value of `attribute`) is compared with the `privileged` group: the selection
    rate (share of predictions of `positive_class`) on all of the day's predictions, and the
    true and false positive rates on the labelled ones. A metric's day value is its worst
    group's. A finding needs the threshold crossed by the confidence interval at the day's
    sample size, not only by the point value, so small days stay quiet.
    """

    attribute: str = Field(
        description="the sensitive attribute: a categorical feature, or another column of the "
        "prediction log read only for fairness"
    )
    privileged: str = Field(
        description="the attribute's value every other group is compared with (as text: 1, "
        "1.0 and '1' are one value)"
    )
    positive_class: str | None = Field(
        None,
        description="the class that counts as a positive prediction/label; default for binary "
        "classification: `classes[1]`, else '1'; required for multiclass (one class against the "
        "rest)",
    )
    metrics: list[FairnessMetric] = Field(
        default_factory=lambda: list(FairnessMetric),
        description="the metrics judged: demographic_parity_difference and "
        "disparate_impact_ratio on every prediction, equal_opportunity_difference and "
        "equalized_odds_difference on labelled traffic",
    )
    thresholds: dict[FairnessMetric, tuple[float, float]] = Field(
        default_factory=dict,
        description="[warning, critical] per metric, overriding the defaults: differences "
        "[0.1, 0.2] (above is unfair), disparate_impact_ratio [0.8, 0.6] (below is unfair, "
        "the four-fifths rule); a ratio counts either way (0.8 flags 1.25 too)",
    )
    alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="chance of any fairness finding on a model-day whose true disparity is at "
        "the warning threshold (the worst fair case; less for fairer days), split over the "
        "metrics and groups tested (Bonferroni)",
    )
    min_group_size: int = Field(
        30,
        ge=1,
        description="predictions a group needs on a day to enter the prediction-based metrics "
        "(fewer: the group is 'insufficient')",
    )
    min_group_labels: int = Field(
        30,
        ge=1,
        description="labelled positives (and, for equalized odds, negatives) a group needs on "
        "a day to enter the label-based metrics",
    )

    @field_validator("privileged", "positive_class", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        return _category_text(v)

    @field_validator("metrics")
    @classmethod
    def _some_metrics(cls, v: list[FairnessMetric]) -> list[FairnessMetric]:
        if not v:
            raise ValueError("list at least one fairness metric (or remove `fairness`)")
        if len(set(v)) != len(v):
            raise ValueError(f"metrics listed twice: {[str(m) for m in v]}")
        return v

    @field_validator("thresholds")
    @classmethod
    def _ordered(
        cls, v: dict[FairnessMetric, tuple[float, float]]
    ) -> dict[FairnessMetric, tuple[float, float]]:
        for m, (warn, crit) in v.items():
            if m.is_ratio and not 0 < crit <= warn < 1:
                raise ValueError(
                    f"{m.value}: expected [warning, critical] with 1 > warning >= critical > 0 "
                    f"(a ratio below them is unfair), got {[warn, crit]}"
                )
            if not m.is_ratio and not 0 < warn <= crit < 1:
                raise ValueError(
                    f"{m.value}: expected [warning, critical] with 0 < warning <= critical < 1, "
                    f"got {[warn, crit]}"
                )
        return v

    def threshold(self, metric: FairnessMetric) -> tuple[float, float]:
        """[warning, critical] of `metric`: the configured one, else the default."""
        return self.thresholds.get(metric, FAIRNESS_THRESHOLDS[metric])


SEVERITY_NAMES = ("info", "warning", "critical")
SeverityName = Literal["info", "warning", "critical"]


class SignalRule(_Strict):
    """Per-signal overrides of the alert rule (unset fields keep the rule's defaults)."""

    persistence_days: int | None = Field(None, ge=1)
    keep_firing_days: int | None = Field(None, ge=0)
    repeat_interval_days: int | None = Field(None, ge=1)
    min_severity: SeverityName | None = None


#: Signals whose findings come from labels that arrive days late: a day without a finding may
#: just be a day whose labels are not in yet, so they keep firing longer by default.
LABEL_SIGNAL_KEEP_FIRING_DAYS = 7


class InhibitRule(_Strict):
    """A firing alert of `source` (at `source_severity` or above) mutes `target` alerts of the
    same tenant and model. Built in: a critical alert mutes the warnings of the same signal."""

    source: str
    target: str
    source_severity: SeverityName = "critical"


class Silence(_Strict):
    """Mute matching alerts between two dates (inclusive). Patterns are shell globs."""

    tenant: str = "*"
    model: str = "*"
    signal: str = "*"
    column: str = "*"
    starts: str = Field(description="first silenced day, YYYY-MM-DD")
    ends: str = Field(description="last silenced day, YYYY-MM-DD")
    comment: str = ""
    created_by: str = ""

    @field_validator("starts", "ends")
    @classmethod
    def _date(cls, v: str) -> str:
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", str(v)):
            raise ValueError("a date YYYY-MM-DD")
        return str(v)


class Route(_Strict):
    """Where alerts go. Each route picks alerts by tenant/model/signal glob and severity;
    pending alerts of one tenant and model are grouped into one message per route."""

    name: str
    type: Literal["log", "file", "webhook", "slack", "email"]
    tenants: list[str] = Field(default_factory=lambda: ["*"])
    models: list[str] = Field(default_factory=lambda: ["*"])
    signals: list[str] = Field(default_factory=lambda: ["*"])
    min_severity: SeverityName = "warning"
    send_resolved: bool = True
    # webhook / slack
    url: str | None = None
    url_env: str | None = Field(None, description="environment variable holding the URL")
    headers: dict[str, str] = Field(default_factory=dict)
    # file
    path: str | None = Field(None, description="JSON-lines file (type: file)")
    # email
    smtp_host: str | None = None
    smtp_port: int = 25
    sender: str | None = None
    to: list[str] = Field(default_factory=list)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding it")
    timeout_seconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> Route:
        need: dict[str, tuple[bool, str]] = {
            "webhook": (bool(self.url or self.url_env), "url or url_env"),
            "slack": (bool(self.url or self.url_env), "url or url_env"),
            "file": (bool(self.path), "path"),
            "email": (bool(self.smtp_host and self.sender and self.to), "smtp_host, sender, to"),
        }
        ok, what = need.get(self.type, (True, ""))
        if not ok:
            raise ValueError(f"route '{self.name}' of type {self.type} needs {what}")
        return self


class AlertingConfig(_Strict):
    """Alert rules over findings (one alert per fingerprint: tenant, model, signal, column).

    An alert is pending from its first day with a finding and fires after `persistence_days`
    consecutive days; it keeps firing through `keep_firing_days` days without a finding, then
    resolves. While firing it is re-sent every `repeat_interval_days` (and at once when its
    severity rises), unless silenced or inhibited.
    """

    persistence_days: int = Field(1, ge=1)
    keep_firing_days: int = Field(1, ge=0)
    repeat_interval_days: int = Field(7, ge=1)
    min_severity: SeverityName = "warning"
    horizon_days: int = Field(60, ge=1, description="days of findings the rules look back over")
    max_event_age_days: int = Field(
        14, ge=0, description="older alert events (e.g. a first backfill) are not sent"
    )
    signals: dict[str, SignalRule] = Field(default_factory=dict)
    inhibit: list[InhibitRule] = Field(default_factory=list)
    silences: list[Silence] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    max_attempts: int = Field(
        3, ge=1, description="delivery attempts per message and run (one after a timeout)"
    )
    backoff_seconds: float = Field(0.5, ge=0, description="first retry delay, doubling")
    delivery_budget_seconds: float = Field(
        30.0,
        gt=0,
        description="wall-clock bound of one delivery: routes are delivered concurrently, each "
        "until this much time has passed; what is left waits for the next delivery",
    )
    breaker_failures: int = Field(
        3,
        ge=1,
        description="consecutive failed messages after which a route's circuit opens (its "
        "notifications wait, unattempted, for the cool-down)",
    )
    breaker_cooldown_seconds: float = Field(
        600.0, gt=0, description="how long an open route waits before one trial message"
    )
    breaker_max_cooldown_seconds: float = Field(
        3600.0,
        gt=0,
        description="the cool-down doubles after each failed trial, up to this",
    )

    @model_validator(mode="after")
    def _unique_routes(self) -> AlertingConfig:
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be unique: {names}")
        if self.breaker_max_cooldown_seconds < self.breaker_cooldown_seconds:
            raise ValueError(
                f"breaker_max_cooldown_seconds ({self.breaker_max_cooldown_seconds}) is below "
                f"breaker_cooldown_seconds ({self.breaker_cooldown_seconds})"
            )
        return self


class ModelConfig(_Named):
    task: TaskType
    features: FeatureSpec
    columns: ColumnMap = Field(default_factory=ColumnMap)
    predictions: SourceConfig
    outcomes: SourceConfig | None = None
    reference: SourceConfig
    validation: SourceConfig | None = Field(
        None,
        description="held-out labelled rows with the champion's predictions: the reference "
        "performance (default: the reference, optimistic when it is the training set)",
    )
    classes: list[str] | None = Field(None, description="class labels, in score order")
    segments: list[str] = Field(default_factory=list)
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    segment_drift: SegmentDriftPolicy = Field(default_factory=SegmentDriftPolicy)
    multivariate: MultivariateDriftConfig = Field(default_factory=MultivariateDriftConfig)
    performance: PerformancePolicy = Field(default_factory=PerformancePolicy)
    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy)
    canary: CanaryPolicy = Field(default_factory=CanaryPolicy)
    ops: OpsPolicy = Field(default_factory=OpsPolicy)
    slos: list[SloConfig] = Field(
        default_factory=list, description="service level objectives and their error budgets"
    )
    fairness: FairnessPolicy | None = Field(
        None, description="group fairness across a sensitive attribute (performance_report)"
    )
    registered_model: str | None = Field(None, description="MLflow registry name")
    max_string_length: int = Field(
        256,
        ge=16,
        description="text values longer than this (categorical features, the version, a "
        "classifier's predicted class) are cut to it as they are read, before they reach "
        "profiles, metric columns, reports and logs, and a `long_string` warning names the "
        "column: a category is a short name, and one hostile 10 MB value would otherwise be "
        "copied into each of those",
    )
    tenant: str = Field("", description="filled in from the enclosing tenant")

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        reserved = {v for k, v in self.columns.model_dump().items() if v and k not in ("label",)}
        clash = reserved & set(self.features.all)
        if clash:
            raise ValueError(f"features reuse contract columns: {sorted(clash)}")
        unknown = set(self.segments) - set(self.features.categorical)
        if unknown:
            raise ValueError(f"segments must be categorical features, unknown: {sorted(unknown)}")
        if self.segment_drift.enabled and not self.segments:
            raise ValueError("segment_drift.enabled needs `segments` (categorical features)")
        if self.segment_drift.enabled and self.predictions.profile == "pushdown":
            # the database's counts are of the whole day: no per-segment profile to test
            raise ValueError(
                "segment_drift needs the streamed profile: set predictions.profile to "
                "'stream', or segment_drift.enabled to false"
            )
        allowed = set(TASK_METRICS[self.task])
        used = {self.primary_metric, *self.performance.floors}
        wrong = sorted(str(m) for m in used - allowed)
        if wrong:
            raise ValueError(
                f"performance metrics {wrong} do not apply to {self.task.value} "
                f"(use {sorted(str(m) for m in allowed)})"
            )
        self._slos_consistent()
        for c, m in self.thresholds.per_column_method.items():
            if c in self.features.categorical and m in (DriftMethod.KS, DriftMethod.WASSERSTEIN):
                raise ValueError(
                    f"thresholds.per_column_method: '{m.value}' needs an ordered numeric column, "
                    f"'{c}' is categorical"
                )
        return self

    def _slos_consistent(self) -> None:
        names = [s.name for s in self.slos]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"slos: names must be unique, repeated: {twice}")
        for s in self.slos:
            where = f"slos '{s.name}'"
            if s.kind is SloKind.LATENCY and not self.columns.latency_ms:
                raise ValueError(
                    f"{where}: a latency SLO needs the latency column (columns.latency_ms is unset)"
                )
            if s.kind is SloKind.AVAILABILITY and not self.columns.status:
                raise ValueError(
                    f"{where}: an availability SLO needs the status column (columns.status is "
                    "unset)"
                )
            if s.kind is SloKind.METRIC:
                if self.outcomes is None:
                    raise ValueError(f"{where}: a metric SLO needs labels (no `outcomes` source)")
                metric = s.metric or self.primary_metric
                if metric not in TASK_METRICS[self.task]:
                    raise ValueError(
                        f"{where}: metric '{metric.value}' does not apply to {self.task.value} "
                        f"(use {sorted(str(m) for m in TASK_METRICS[self.task])})"
                    )
            if s.segment is not None:
                if s.segment.column not in self.segments:
                    raise ValueError(
                        f"{where}: segment column '{s.segment.column}' is not one of the "
                        f"model's segments {self.segments} (add it to `segments`)"
                    )
                if len(s.segment.value) > self.max_string_length:
                    raise ValueError(
                        f"{where}: segment value is longer than max_string_length "
                        f"({self.max_string_length}): values are cut to it as they are read"
                    )

    @model_validator(mode="after")
    def _fairness_consistent(self) -> ModelConfig:
        f = self.fairness
        if f is None:
            return self
        if not self.task.is_classification:
            raise ValueError(
                "fairness: the metrics compare rates of a predicted class between groups; a "
                "regression model has none (remove `fairness`, or monitor a thresholded "
                "classifier)"
            )
        contract = {v for v in self.columns.model_dump().values() if v}
        if f.attribute in contract:
            raise ValueError(
                f"fairness.attribute '{f.attribute}' is a contract column (request id, "
                "timestamp, version, prediction, score, latency, status, label): name the "
                "column holding the sensitive attribute"
            )
        if f.attribute in self.features.numeric:
            raise ValueError(
                f"fairness.attribute '{f.attribute}' is a numeric feature: groups are values "
                "of a categorical column (log a binned copy of it, e.g. an age band)"
            )
        if self.outcomes is None:
            raise ValueError(
                "fairness is judged by performance_report, which needs an `outcomes` source"
            )
        classes = [_category_text(c) for c in self.classes or []]
        if f.positive_class is None and self.task is TaskType.MULTICLASS:
            raise ValueError(
                "fairness.positive_class is required for multiclass classification: the "
                f"class whose rate is compared between groups (one of {classes or 'classes'})"
            )
        if f.positive_class is not None and classes and f.positive_class not in classes:
            raise ValueError(
                f"fairness.positive_class '{f.positive_class}' is not among the model's "
                f"classes {classes}"
            )
        return self

    @property
    def key(self) -> str:
        """`tenant.model`: the model's partition key and its name in the store and MLflow."""
        return f"{self.tenant}.{self.name}"

    @property
    def primary_metric(self) -> Metric:
        return self.performance.primary_metric or DEFAULT_PRIMARY[self.task]

    @property
    def registry_name(self) -> str:
        """The MLflow registered model name (default: the model key)."""
        return self.registered_model or self.key


class TenantConfig(_Named):
    models: list[ModelConfig]


class StorageConfig(_Strict):
    store_url: str = Field(description="SQLAlchemy URL of the monitoring store")
    mlflow_tracking_uri: str = Field(description="MLflow tracking URI (sqlite:///... locally)")
    artifacts_dir: str = Field(description="folder for HTML reports and samples")
    mlflow_timeout_seconds: int = Field(
        10,
        ge=1,
        le=600,
        description="connect and read timeout of each request to an MLflow tracking server",
    )
    mlflow_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="retries of a failed MLflow request; then the logging is queued in the "
        "store and replayed when MLflow answers (MLflow's own default, 7 retries with "
        "doubling back-off, keeps a day waiting ~20 minutes on a server that is down)",
    )

    def bound_mlflow_requests(self) -> None:
        """Bound every MLflow HTTP request this process makes (MLflow reads these variables
        at each request): `mlflow_timeout_seconds` per attempt, `mlflow_retries` retries, a
        back-off of 1 s doubling from the second retry."""
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(self.mlflow_timeout_seconds)
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.mlflow_retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"


class TelemetryConfig(_Strict):
    """OpenTelemetry over OTLP/HTTP (README: Telemetry). Unset, the standard OTEL_* environment
    variables apply (OTEL_EXPORTER_OTLP_ENDPOINT, ..._TRACES_ENDPOINT, ..._METRICS_ENDPOINT,
    _HEADERS, OTEL_SERVICE_NAME, OTEL_SDK_DISABLED); with neither, telemetry is off."""

    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP base URL of a collector, e.g. http://127.0.0.1:4318 (traces go "
        "to /v1/traces, gauges to /v1/metrics); unset: OTEL_EXPORTER_OTLP_* (else off)",
    )
    traces: bool = Field(
        True,
        description="a trace per pipeline run, a span per asset and partition, when an endpoint "
        "is set (here or in OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)",
    )
    metrics_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="`aiops metrics --otlp`: seconds between two exports of the gauges",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(
                f"telemetry.otlp_endpoint must be an http:// or https:// URL (OTLP/HTTP), got {v!r}"
            )
        return v


class AppConfig(_Strict):
    storage: StorageConfig
    tenants: list[TenantConfig]
    start_date: str | None = Field(
        None,
        description="first day that may be monitored (YYYY-MM-DD): the first daily partition; "
        "default January 1st five years ago",
    )

    @field_validator("start_date")
    @classmethod
    def _iso_day(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                date.fromisoformat(str(v))
            except ValueError:
                raise ValueError(f"expected a day as YYYY-MM-DD, got {v!r}") from None
            return str(v)
        return v

    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    telemetry: TelemetryConfig = Field(
        default_factory=TelemetryConfig,
        description="OpenTelemetry: the gauges and a trace per pipeline run over OTLP",
    )
    path: str = Field("", description="the file this config was loaded from")

    @model_validator(mode="after")
    def _unique(self) -> AppConfig:
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError(f"tenant names must be unique: {names}")
        for t in self.tenants:
            mnames = [m.name for m in t.models]
            if len(set(mnames)) != len(mnames):
                raise ValueError(f"model names must be unique within tenant '{t.name}': {mnames}")
        return self

    @property
    def models(self) -> list[ModelConfig]:
        return [m for t in self.tenants for m in t.models]

    def model(self, key: str) -> ModelConfig:
        for m in self.models:
            if m.key == key:
                return m
        known = ", ".join(m.key for m in self.models)
        raise ConfigError(f"no model '{key}' (known: {known})", path=self.path or None)

    @property
    def artifacts_path(self) -> Path:
        return Path(self.storage.artifacts_dir)


def _substitute(obj: Any, mapping: dict[str, str]) -> Any:
    if isinstance(obj, str):
        for k, v in mapping.items():
            obj = obj.replace("${" + k + "}", v)
        return obj
    if isinstance(obj, list):
        return [_substitute(x, mapping) for x in obj]
    if isinstance(obj, dict):
        return {k: _substitute(v, mapping) for k, v in obj.items()}
    return obj


def _locate(raw: dict[str, Any], loc: tuple[Any, ...]) -> tuple[str | None, str]:
    """Turn a pydantic error location into ('tenant acme / model churn', 'field.path')."""
    where: list[str] = []
    field: list[str] = []
    node: Any = raw
    i = 0
    while i < len(loc):
        part = loc[i]
        if part in ("tenants", "models") and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            idx = loc[i + 1]
            try:
                node = node[part][idx]
                label = node.get("name", f"#{idx}") if isinstance(node, dict) else f"#{idx}"
            except (KeyError, IndexError, TypeError):
                label = f"#{idx}"
            where.append(f"{'tenant' if part == 'tenants' else 'model'} '{label}'")
            i += 2
            continue
        field.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        i += 1
    return (" / ".join(where) or None), ".".join(field)


def _resolve_paths(raw: dict[str, Any], config_dir: Path) -> None:
    """Make relative file paths absolute against the config's folder, so cwd never matters."""

    def fix_url(url: str) -> str:
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:" and not rest.startswith("/"):
                return prefix + str((config_dir / rest).resolve())
        return url

    storage = raw.get("storage")
    if isinstance(storage, dict):
        for key in ("store_url", "mlflow_tracking_uri"):
            if isinstance(storage.get(key), str):
                storage[key] = fix_url(storage[key])
        if isinstance(storage.get("artifacts_dir"), str):
            storage["artifacts_dir"] = str((config_dir / storage["artifacts_dir"]).resolve())
    for tenant in raw.get("tenants") or []:
        if not isinstance(tenant, dict):
            continue
        for model in tenant.get("models") or []:
            if not isinstance(model, dict):
                continue
            for src in ("predictions", "outcomes", "reference", "validation"):
                s = model.get(src)
                if isinstance(s, dict):
                    if isinstance(s.get("url"), str):
                        s["url"] = fix_url(s["url"])
                    if isinstance(s.get("parquet"), str):
                        s["parquet"] = str((config_dir / s["parquet"]).resolve())


def parse_config(raw: Any, *, path: str = "<memory>", config_dir: Path | None = None) -> AppConfig:
    """Validate an already-parsed YAML document (a dict)."""
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping", path=path)
    config_dir = config_dir or Path.cwd()
    raw = _substitute(raw, {HOME_ENV: str(aiops_home()), "CONFIG_DIR": str(config_dir)})
    _resolve_paths(raw, config_dir)
    for tenant in raw.get("tenants") or []:
        if isinstance(tenant, dict):
            for model in tenant.get("models") or []:
                if isinstance(model, dict):
                    if "tenant" in model:
                        raise ConfigError(
                            "is set by the enclosing tenant; remove it",
                            path=path,
                            where=f"model '{model.get('name')}'",
                            field="tenant",
                        )
                    model["tenant"] = tenant.get("name", "")
    try:
        config = AppConfig.model_validate({**raw, "path": path})
    except ValidationError as exc:
        err = exc.errors()[0]
        where, field = _locate(raw, tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
        raise ConfigError(msg + more, path=path, where=where, field=field or None) from None
    problems = route_problems(config)
    if problems:
        field = problems[0][0] if len(problems) == 1 else "alerting.routes"
        raise ConfigError("; ".join(p for _, p in problems), path=path, field=field)
    return config


def route_problems(config: AppConfig) -> list[tuple[str, str]]:
    """(field, problem) for every route glob that matches nothing declared.

    A route whose `tenants` or `models` pattern matches no tenant or model (a typo such as
    `acmee`, or a model key where a name is expected) would validate and then receive nothing,
    silently. A `models` pattern is checked against the models of the tenants the route takes.
    """
    if not config.tenants:
        return []
    tenants = [t.name for t in config.tenants]
    out = []
    for i, route in enumerate(config.alerting.routes):
        for pattern in route.tenants:
            if not any(fnmatch.fnmatchcase(t, pattern) for t in tenants):
                out.append(
                    (
                        f"alerting.routes.{i}.tenants",
                        f"route '{route.name}': tenants pattern '{pattern}' matches no declared "
                        f"tenant (declared: {', '.join(tenants)})",
                    )
                )
        taken = [
            t for t in config.tenants if any(fnmatch.fnmatchcase(t.name, p) for p in route.tenants)
        ]
        names = list(dict.fromkeys(m.name for t in taken for m in t.models))
        for pattern in route.models if taken else []:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                out.append(
                    (
                        f"alerting.routes.{i}.models",
                        f"route '{route.name}': models pattern '{pattern}' matches no model of "
                        f"tenant(s) {', '.join(t.name for t in taken)} (models are matched by "
                        f"name; declared: {', '.join(names)})",
                    )
                )
    return out


def load_config(path: str | os.PathLike[str]) -> AppConfig:
    """Read and validate a config file; raises `ConfigError` naming file, model and field.
    MLflow's requests in this process are bounded as its storage section says."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ConfigError("file not found", path=str(p))
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=str(p)) from None
    config = parse_config(raw, path=str(p), config_dir=p.parent)
    config.storage.bound_mlflow_requests()
    return config


def default_config_path() -> Path:
    """`$AIOPS_CONFIG`, else the demo's config under the home folder."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser() if env else aiops_home() / "demo" / "config.yaml"
