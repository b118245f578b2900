"""Multivariate drift: a change in the joint distribution of the features that no single
feature's test can see (two features whose correlation flipped, a mix of segments that kept
every marginal), on the bounded uniform samples every profile keeps (`SampleKeeper`): the
reference's and the day's, rows in arrival order.

Two detectors, each a test with an analytic null at the day's sample size, plus an effect-size
gate so a huge day does not fire on a trivial difference:

* **Domain classifier**: a gradient-boosted classifier (`HistGradientBoostingClassifier`:
  interactions, categoricals natively, missing numbers as such) learns to tell the day's rows
  from the reference's over stratified k folds (default 3); the statistic is the mean of the
  folds' AUCs, each on the scores of a model that never saw the fold. Under no change a fold's
  labels are exchangeable with its rows, so its AUC is the Mann-Whitney statistic of an
  uninformative score: mean 1/2, variance (1/n_day + 1/n_ref) / 12 at the fold's sizes (less
  with ties). The folds' models share training rows, so their AUCs correlate (~0.2 between 5
  folds at 150 rows a day, by no formula); the mean of the folds' standard deviations bounds
  the standard deviation of their mean whatever the correlation, and is the null's. The test
  is one-sided, z = (AUC - 1/2) / sd. (The AUC of the pooled out-of-fold scores, kept as
  evidence, mixes k models' scales: under no change it spreads ~1.4x wider than Mann-Whitney
  at 150 rows, so it is not what is tested.)
* **PCA reconstruction error**: numbers standardised, categories one-hot coded (each feature's
  block scaled to unit variance, so every feature weighs the same), PCA fitted on one half of
  the reference keeping `pca_variance` of its variance; the other half's reconstruction errors
  are the null. The day's mean error against that half's mean is a two-sample z-test; the
  reported `pca_error_ratio` is their ratio. Errors are capped at the null half's 99.5th
  percentile on both sides, so a few extreme rows cannot swing a small day's mean.

Rows arriving in correlated groups (a household, a session, a batch) are not independent, so
both tests would spread wider than their null says. The defences, as in `calibration`: the
folds are made of blocks of contiguous rows in arrival order, identical rows kept in one fold
(a group arrives together, so it lands in one fold and the classifier cannot recognise a test
row from its twin in training), and each side's variance is multiplied by its design effect: the
larger of 1 + 2 x the initial positive autocorrelations (Geyer's initial positive sequence) of
that side's per-row contributions in arrival order (placement values for the AUC, errors for
PCA) and, for the day, how much more its sample repeats identical rows than as many reference
rows do (`excess_duplication`, which sees groups in a sample drawn in random order): about
E[m^2]/E[m] for groups of m identical rows, 1 for independent rows. A day larger than the
sample keeps only scattered members of each group, and its design effect is near 1
accordingly.

Family-wise: each detector is tested at alpha / 2 (Bonferroni), so a model-day without change
raises a `multivariate_drift` finding with probability <= alpha (default 1%). A sample missing
or below `min_rows` makes the day "insufficient": no verdict either way.

The nulls being analytic at the day's n, nothing needs caching per (model, n): the reference
half's error distribution is refitted per day from the stored sample (a few ms).
`benchmarks/bench_multivariate.py` measures the false-alarm rate and the detection rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from aiops_pipelines.core.config import ModelConfig, MultivariateDriftConfig
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal
from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.io.store import REFERENCE_PARTITION
from aiops_pipelines.signals.profile.day import sample_path

MAX_LAG = 32
"""Autocorrelation lags summed at most for a design effect (groups of up to ~30 rows)."""
MAX_CLASSIFIER_CATEGORIES = 63
"""Categories kept by name for the classifier (its categories must fit its 64 bins)."""
MAX_PCA_CATEGORIES = 10
"""Categories one-hot coded for PCA (by reference frequency); the rest share one column."""
ERROR_CAP_QUANTILE = 0.995
"""Reconstruction errors are capped at this quantile of the null half's errors."""
TOP_FEATURES = 3


@dataclass
class DomainClassifier:
    """The domain classifier's cross-validated AUC (the mean of its folds') and its test."""

    auc: float
    p_value: float
    threshold: float
    """The AUC the day needed: the larger of the effect-size gate and the null's critical value."""
    critical_value: float
    null_sd: float
    pooled_auc: float
    """AUC of the out-of-fold scores pooled over the folds (`roc_auc_score`), for reference."""
    fold_aucs: list[float]
    design_effect_day: float
    design_effect_reference: float
    folds: int
    drifted: bool
    top_features: list[tuple[str, float]] = field(default_factory=list)
    """Permutation importance (drop of AUC) of the most useful features, when it drifted."""


@dataclass
class PcaReconstruction:
    """The day's mean PCA reconstruction error against the reference's held-out half."""

    error_ratio: float
    p_value: float
    threshold: float
    """The ratio the day needed: the larger of the effect-size gate and the critical value."""
    critical_value: float
    mean_error_day: float
    mean_error_reference: float
    n_components: int
    n_inputs: int
    explained_variance: float
    design_effect_day: float
    design_effect_reference: float
    drifted: bool


@dataclass
class MultivariateResult:
    """A model-day's multivariate drift: its status, the two detectors' evidence, findings and
    rows of the metric history."""

    status: str
    """"off" (`multivariate.enabled` false), "insufficient" (no verdict), "ok", "warning" or
    "critical"."""
    reason: str
    n_reference: int
    n_day: int
    features: list[str]
    alpha: float
    domain: DomainClassifier | None = None
    pca: PcaReconstruction | None = None
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def metrics(self) -> dict[tuple[str, str], float]:
        """Rows of the store's metric history (none on an insufficient day)."""
        out: dict[tuple[str, str], float] = {}
        if self.domain is not None:
            out[("domain_auc", "")] = self.domain.auc
            out[("domain_auc_p_value", "")] = self.domain.p_value
        if self.pca is not None:
            out[("pca_error_ratio", "")] = self.pca.error_ratio
            out[("pca_error_p_value", "")] = self.pca.p_value
        return out

    @property
    def mlflow_metrics(self) -> dict[str, float]:
        return {name: v for (name, _), v in self.metrics.items()}

    @property
    def metadata(self) -> dict[str, Any]:
        """Numbers for the asset's metadata (the UI plots them across partitions)."""
        out: dict[str, Any] = {
            "multivariate_status": self.status,
            **self.mlflow_metrics,
            "multivariate_seconds": round(self.seconds, 3),
        }
        if self.reason:
            out["multivariate_reason"] = self.reason
        return out

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "alpha": self.alpha,
            "alpha_per_detector": self.alpha / 2,
            "n_reference": self.n_reference,
            "n_day": self.n_day,
            "features": self.features,
        }
        if self.domain is not None:
            d = asdict(self.domain)
            d["top_features"] = [[c, v] for c, v in self.domain.top_features]
            out["domain_classifier"] = d
        if self.pca is not None:
            out["pca"] = asdict(self.pca)
        return out


def design_effect_series(values: np.ndarray) -> float:
    """Variance inflation of the mean of `values` (in arrival order) from their correlation:
    1 + 2 x the initial positive autocorrelations (lags 1..`MAX_LAG`, stopping at the first
    that is not positive), at least 1."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 8:
        return 1.0
    v = v - v.mean()
    var = float(v @ v)
    if var <= 0:
        return 1.0
    total = 1.0
    for k in range(1, min(MAX_LAG, n // 4) + 1):
        rho = float(v[:-k] @ v[k:]) / var
        if rho <= 0:
            break
        total += 2 * rho
    return max(1.0, total)


def blocked_folds(y: np.ndarray, k: int, x: np.ndarray | None = None) -> np.ndarray:
    """Fold of every row: within each class, the rows in arrival order are cut into blocks of
    up to `MAX_LAG` contiguous rows (fewer on a small day, so each fold gets at least 4), dealt
    to the k folds in turn. Every fold then holds each class in the same proportion
    (stratified) and spans the whole day (an hour-of-day mix is not confused with a change),
    while rows that arrived together stay in one fold, so the classifier cannot recognise a
    test row from its twin in training.

    With `x`, identical rows of a class form one group wherever they sit (a sample drawn in
    random order, `pushdown`): a group goes where its first row goes. Should that leave a fold
    without a class, the rows are dealt without grouping instead."""
    folds = np.empty(len(y), np.int64)
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        block = max(1, min(MAX_LAG, len(idx) // (4 * k)))
        plain = np.arange(len(idx)) // block % k
        folds[idx] = plain
        if x is not None:
            keys = pd.util.hash_pandas_object(pd.DataFrame(x[idx]), index=False).to_numpy()
            _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            grouped = plain[first[inverse.ravel()]]
            if len(np.unique(grouped)) == k:
                folds[idx] = grouped
    return folds


def placements(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: for each positive row the share of negatives scored below it
    (ties count half), for each negative the share of positives scored above it."""
    ranks_all = stats.rankdata(scores)
    pos, neg = y == 1, y == 0
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    v_pos = (ranks_all[pos] - stats.rankdata(scores[pos])) / n_neg
    v_neg = 1.0 - (ranks_all[neg] - stats.rankdata(scores[neg])) / n_pos
    return v_pos, v_neg


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(x), x, np.nan)


def _text(frame: pd.DataFrame, col: str) -> pd.Series:
    """A categorical column as text (missing: <NA>)."""
    return frame[col].astype("string")


def _ranked_categories(ref: pd.DataFrame, col: str, keep: int) -> list[str]:
    counts = _text(ref, col).value_counts(dropna=True)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [str(k) for k, _ in ranked[:keep]]


def _category_codes(frame: pd.DataFrame, col: str, names: list[str]) -> np.ndarray:
    """Index of every value in `names`, len(names) for any other value, NaN for missing."""
    text = _text(frame, col)
    # get_indexer gives -1 for a value outside `names` (a Categorical built from such values
    # is deprecated in pandas and will raise)
    codes = pd.Index(names).get_indexer(text).astype(np.float64)
    missing = text.isna().to_numpy()
    codes[(codes < 0) & ~missing] = len(names)
    codes[missing] = np.nan
    return codes


def _classifier_matrix(
    ref: pd.DataFrame, day: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of both samples (reference first) as floats for the classifier, and the mask of
    its categorical columns: codes of the reference's most frequent categories, one code for
    every other value (rare or unseen), NaN for missing."""
    both = pd.concat([ref, day], ignore_index=True)
    cols = [_numeric(both, c) for c in numeric]
    for c in categorical:
        names = _ranked_categories(ref, c, MAX_CLASSIFIER_CATEGORIES - 1)
        cols.append(_category_codes(both, c, names))
    x = np.column_stack(cols) if cols else np.empty((len(both), 0))
    mask = np.array([False] * len(numeric) + [True] * len(categorical))
    return x, mask


def _classifier(mask: np.ndarray, seed: int) -> HistGradientBoostingClassifier:
    # small and fixed: the model must see interactions, not be the best possible; 30 rounds
    # of 15-leaf trees on 64 bins keep 5 folds at 5,000 + 5,000 rows to a few hundred ms on
    # one core (benchmarks/bench_multivariate.py), with AUCs within 0.005 of 60 rounds on 255
    return HistGradientBoostingClassifier(
        max_iter=30,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        max_bins=64,
        early_stopping=False,
        categorical_features=mask if mask.any() else None,
        random_state=seed,
    )


def out_of_fold_scores(
    x: np.ndarray, y: np.ndarray, mask: np.ndarray, folds: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[HistGradientBoostingClassifier]]:
    """Every row's score from the model fitted on the other folds (`blocked_folds`), the
    folds, and the fitted models."""
    fold = blocked_folds(y, folds, x)
    scores = np.empty(len(y))
    models = []
    for f in range(folds):
        test = fold == f
        clf = _classifier(mask, seed).fit(x[~test], y[~test])
        scores[test] = clf.predict_proba(x[test])[:, 1]
        models.append(clf)
    return scores, fold, models


def _top_features(
    model: HistGradientBoostingClassifier,
    x: np.ndarray,
    y: np.ndarray,
    names: list[str],
    seed: int,
) -> list[tuple[str, float]]:
    """Permutation importance on one held-out fold: the AUC lost when a feature's values are
    shuffled, which breaks its link with the others as well as with the label (so both
    features of a flipped correlation show)."""
    rng = np.random.default_rng(seed)
    base = roc_auc_score(y, model.predict_proba(x)[:, 1])
    out = []
    for j, name in enumerate(names):
        xp = x.copy()
        xp[:, j] = xp[rng.permutation(len(xp)), j]
        out.append((name, float(base - roc_auc_score(y, model.predict_proba(xp)[:, 1]))))
    out.sort(key=lambda kv: -kv[1])
    return [(n, round(v, 4)) for n, v in out[:TOP_FEATURES]]


def duplication(rows: pd.DataFrame) -> float:
    """sum(m^2) / sum(m) over the groups of identical rows: the variance inflation of a mean
    over the rows when each group of m copies counts as one draw repeated m times."""
    if rows.empty:
        return 1.0
    _, counts = np.unique(pd.util.hash_pandas_object(rows, index=False), return_counts=True)
    return float((counts.astype(np.float64) ** 2).sum() / counts.sum())


def excess_duplication(ref: pd.DataFrame, day: pd.DataFrame, seed: int = 0) -> float:
    """How much more the day's sample repeats identical rows than as many rows drawn from the
    reference's sample do (`duplication`), at least 1: groups of copies wherever they sit in
    the sample (one drawn in random order hides them from the autocorrelations), while
    features with few values, which repeat by chance on both sides, count for nothing."""
    rng = np.random.default_rng(seed)
    n = min(len(day), len(ref))
    like = ref.iloc[np.sort(rng.choice(len(ref), n, replace=False))]
    return max(1.0, duplication(day) / duplication(like))


def domain_classifier(
    ref: pd.DataFrame,
    day: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    cfg: MultivariateDriftConfig,
    *,
    seed: int = 0,
    day_duplication: float = 1.0,
) -> DomainClassifier:
    """Cross-validated AUC of reference (0) vs day (1), the mean of the folds' AUCs, and its
    one-sided test at alpha / 2.

    Each fold's AUC is the Mann-Whitney statistic of scores from a model that never saw the
    fold, so under no change it has the Mann-Whitney null given that model; their mean has the
    mean of those variances / k. The AUC of the pooled out-of-fold scores is kept as evidence
    (`pooled_auc`): it mixes k models' scales, which under no change spreads it ~1.4x wider
    than Mann-Whitney at 150 rows a day, so it is not what is tested."""
    x, mask = _classifier_matrix(ref, day, numeric, categorical)
    y = np.r_[np.zeros(len(ref), np.int64), np.ones(len(day), np.int64)]
    scores, fold, models = out_of_fold_scores(x, y, mask, cfg.folds, seed)
    aucs, place = [], np.empty(len(y))
    for f in range(cfg.folds):
        m = fold == f
        aucs.append(float(roc_auc_score(y[m], scores[m])))
        v_pos, v_neg = placements(scores[m], y[m])
        # centred within the fold: a fold's own level is its AUC's noise, not a correlation
        place[m & (y == 1)], place[m & (y == 0)] = v_pos - v_pos.mean(), v_neg - v_neg.mean()
    auc = float(np.mean(aucs))
    deff_day = max(design_effect_series(place[y == 1]), day_duplication)
    deff_ref = design_effect_series(place[y == 0])
    # the mean of the folds' sds bounds the sd of the mean of their AUCs whatever their
    # correlation (1 at worst): the folds' models share training rows, and their AUCs do
    # correlate (~0.2 between 5 folds at 150 rows a day), by an amount no formula gives
    sd = float(
        np.mean(
            [
                math.sqrt(
                    (
                        deff_day / int(((fold == f) & (y == 1)).sum())
                        + deff_ref / int(((fold == f) & (y == 0)).sum())
                    )
                    / 12
                )
                for f in range(cfg.folds)
            ]
        )
    )
    p = float(stats.norm.sf((auc - 0.5) / sd))
    critical = 0.5 + float(stats.norm.isf(cfg.alpha / 2)) * sd
    threshold = max(cfg.auc[0], critical)
    drifted = auc >= threshold and p < cfg.alpha / 2
    top = []
    if drifted:
        test = fold == 0
        top = _top_features(models[0], x[test], y[test], [*numeric, *categorical], seed)
    return DomainClassifier(
        auc=auc,
        p_value=p,
        threshold=threshold,
        critical_value=critical,
        null_sd=sd,
        pooled_auc=float(roc_auc_score(y, scores)),
        fold_aucs=[round(a, 6) for a in aucs],
        design_effect_day=deff_day,
        design_effect_reference=deff_ref,
        folds=cfg.folds,
        drifted=drifted,
        top_features=top,
    )


class _PcaCoder:
    """Reference-fixed coding of the features into a numeric matrix with unit variance per
    feature: numbers standardised (missing: 0, the mean, plus a missing indicator when the
    reference has missing values), categories one-hot with the block scaled to variance 1."""

    def __init__(self, fit: pd.DataFrame, numeric: list[str], categorical: list[str]) -> None:
        self.numeric, self.categorical = numeric, categorical
        self.stats: dict[str, tuple[float, float, float]] = {}
        for c in numeric:
            x = _numeric(fit, c)
            ok = ~np.isnan(x)
            mean = float(x[ok].mean()) if ok.any() else 0.0
            sd = float(x[ok].std()) if ok.sum() > 1 else 0.0
            self.stats[c] = (mean, sd if sd > 0 else 1.0, float(1 - ok.mean()))
        self.levels: dict[str, list[str]] = {}
        self.block: dict[str, tuple[np.ndarray, float]] = {}
        for c in categorical:
            self.levels[c] = _ranked_categories(fit, c, MAX_PCA_CATEGORIES)
            share = self._onehot(fit, c).mean(axis=0)
            total = float((share * (1 - share)).sum())
            self.block[c] = (share, math.sqrt(total) if total > 0 else 1.0)

    def _onehot(self, frame: pd.DataFrame, col: str) -> np.ndarray:
        """Columns: each named category, then "other", then "missing"."""
        names = self.levels[col]
        codes = _category_codes(frame, col, names)
        codes[np.isnan(codes)] = len(names) + 1
        out = np.zeros((len(frame), len(names) + 2))
        out[np.arange(len(frame)), codes.astype(np.int64)] = 1.0
        return out

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        cols = []
        for c in self.numeric:
            mean, sd, missing = self.stats[c]
            x = _numeric(frame, c)
            isnan = np.isnan(x)
            cols.append(np.where(isnan, 0.0, (x - mean) / sd)[:, None])
            if 0 < missing < 1:
                cols.append(((isnan - missing) / math.sqrt(missing * (1 - missing)))[:, None])
        for c in self.categorical:
            mean, scale = self.block[c]
            cols.append((self._onehot(frame, c) - mean) / scale)
        return np.hstack(cols) if cols else np.empty((len(frame), 0))


def pca_reconstruction(
    ref: pd.DataFrame,
    day: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    cfg: MultivariateDriftConfig,
    *,
    seed: int = 0,
    day_duplication: float = 1.0,
) -> PcaReconstruction:
    """The day's mean reconstruction error against the reference's held-out half (one-sided
    two-sample z-test at alpha / 2; see the module docstring)."""
    rng = np.random.default_rng(seed)
    half = np.zeros(len(ref), bool)
    half[rng.permutation(len(ref))[: len(ref) // 2]] = True
    fit, null = ref[half], ref[~half]  # each keeps the arrival order
    coder = _PcaCoder(fit, numeric, categorical)
    x_fit = coder.transform(fit)
    pca = PCA(n_components=cfg.pca_variance, svd_solver="full").fit(x_fit)

    def errors(frame: pd.DataFrame) -> np.ndarray:
        x = coder.transform(frame) - pca.mean_
        proj = x @ pca.components_.T
        return np.maximum((x * x).sum(axis=1) - (proj * proj).sum(axis=1), 0.0)

    e_null, e_day = errors(null), errors(day)
    cap = float(np.quantile(e_null, ERROR_CAP_QUANTILE))
    e_null, e_day = np.minimum(e_null, cap), np.minimum(e_day, cap)
    m_null, m_day = float(e_null.mean()), float(e_day.mean())
    deff_day = max(design_effect_series(e_day), day_duplication)
    deff_ref = design_effect_series(e_null)
    # the null's variance is the reference's: under no change the day's errors spread alike
    var = float(e_null.var(ddof=1))
    sd = math.sqrt(var * (deff_day / len(day) + deff_ref / len(null)))
    if m_null <= 0 or sd <= 0:  # the components explain everything: no error to compare
        p, ratio, critical = 1.0, 1.0, math.inf
    else:
        p = float(stats.norm.sf((m_day - m_null) / sd))
        ratio = m_day / m_null
        critical = 1 + float(stats.norm.isf(cfg.alpha / 2)) * sd / m_null
    threshold = max(cfg.error_ratio[0], critical)
    return PcaReconstruction(
        error_ratio=ratio,
        p_value=p,
        threshold=threshold,
        critical_value=critical,
        mean_error_day=m_day,
        mean_error_reference=m_null,
        n_components=int(pca.n_components_),
        n_inputs=int(x_fit.shape[1]),
        explained_variance=float(pca.explained_variance_ratio_.sum()),
        design_effect_day=deff_day,
        design_effect_reference=deff_ref,
        drifted=ratio >= threshold and p < cfg.alpha / 2,
    )


def multivariate_drift(
    model: ModelConfig,
    partition: str,
    reference_sample: pd.DataFrame | None,
    day_sample: pd.DataFrame | None,
    *,
    seed: int = 0,
) -> MultivariateResult:
    """Multivariate drift of the day's sample against the reference's (module docstring):
    "insufficient" when a sample is missing, lacks a feature, or has fewer than
    `multivariate.min_rows` rows; otherwise both detectors, and a `multivariate_drift` finding
    when either fires."""
    t0 = time.perf_counter()
    cfg = model.multivariate
    numeric, categorical = list(model.features.numeric), list(model.features.categorical)
    features = [*numeric, *categorical]
    n_ref = 0 if reference_sample is None else len(reference_sample)
    n_day = 0 if day_sample is None else len(day_sample)

    def insufficient(reason: str, status: str = "insufficient") -> MultivariateResult:
        return MultivariateResult(
            status, reason, n_ref, n_day, features, cfg.alpha, seconds=_since(t0)
        )

    if not cfg.enabled:
        return insufficient("multivariate.enabled is false", "off")

    if reference_sample is None or day_sample is None:
        which = "reference" if reference_sample is None else "day"
        return insufficient(f"no {which} sample stored")
    for name, frame in (("reference", reference_sample), ("day", day_sample)):
        missing = [c for c in features if c not in frame.columns]
        if missing:
            return insufficient(f"the {name} sample lacks {', '.join(missing)}")
    if min(n_ref, n_day) < cfg.min_rows:
        return insufficient(
            f"{min(n_ref, n_day):,} rows in the {'day' if n_day <= n_ref else 'reference'} "
            f"sample, fewer than multivariate.min_rows = {cfg.min_rows}"
        )
    ref = reference_sample[features].reset_index(drop=True)
    day = day_sample[features].reset_index(drop=True)
    copies = excess_duplication(ref, day, seed)
    domain = domain_classifier(
        ref, day, numeric, categorical, cfg, seed=seed, day_duplication=copies
    )
    pca = pca_reconstruction(ref, day, numeric, categorical, cfg, seed=seed, day_duplication=copies)
    status = "ok"
    if domain.drifted or pca.drifted:
        critical = (domain.drifted and domain.auc >= cfg.auc[1]) or (
            pca.drifted and pca.error_ratio >= cfg.error_ratio[1]
        )
        status = "critical" if critical else "warning"
    res = MultivariateResult(status, "", n_ref, n_day, features, cfg.alpha, domain=domain, pca=pca)
    if status != "ok":
        res.findings.append(_finding(model, partition, res))
    res.seconds = _since(t0)
    return res


def _since(t0: float) -> float:
    return time.perf_counter() - t0


def _finding(model: ModelConfig, partition: str, res: MultivariateResult) -> Finding:
    d, p = res.domain, res.pca
    assert d is not None and p is not None
    parts = []
    if d.drifted:
        top = ", ".join(c for c, _ in d.top_features)
        parts.append(
            f"a classifier tells the day from the reference with AUC {d.auc:.3f} >= "
            f"{d.threshold:.3f} (p={fmt_number(d.p_value)}; most useful: {top})"
        )
    if p.drifted:
        parts.append(
            f"PCA reconstruction error {p.error_ratio:.2f}x the reference's >= "
            f"{p.threshold:.2f}x (p={fmt_number(p.p_value)}, {p.n_components} components)"
        )
    value, threshold = (d.auc, d.threshold) if d.drifted else (p.error_ratio, p.threshold)
    return Finding(
        tenant=model.tenant,
        model=model.name,
        partition=partition,
        asset=Asset.DRIFT_REPORT,
        signal=Signal.MULTIVARIATE_DRIFT.value,
        severity=Severity(res.status),
        value=float(value),
        threshold=float(threshold),
        message="the features' joint distribution changed: "
        + "; ".join(parts)
        + f" ({res.n_day:,} sampled rows of the day vs {res.n_reference:,} of the reference)",
        evidence=res.evidence(),
    )


def _read_sample(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def multivariate_for_stored_day(
    model: ModelConfig, partition: str, artifacts_dir: Path, *, seed: int = 0
) -> MultivariateResult:
    """`multivariate_drift` on the samples the profiles kept (`sample_path`): the reference's
    and the day's."""
    return multivariate_drift(
        model,
        partition,
        _read_sample(sample_path(artifacts_dir, model.key, REFERENCE_PARTITION)),
        _read_sample(sample_path(artifacts_dir, model.key, partition)),
        seed=seed,
    )
