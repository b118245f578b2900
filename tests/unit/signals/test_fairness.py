"""Group fairness: the numbers against fairlearn on the same data, the intervals against their
published values and their coverage, quiet small days, findings with their evidence, and the
config's errors. Generated data with fixed seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy.stats import binomtest, norm

from aiops_pipelines.core.config import ModelConfig, parse_config
from aiops_pipelines.core.errors import ConfigError, DataError
from aiops_pipelines.core.findings import Severity, Signal
from aiops_pipelines.signals.fairness import (
    CELLS,
    N_BLOCKS,
    DayCells,
    fairness_for_day,
    judge_groups,
    katz,
    newcombe,
    wilson,
)

DAY = "2026-03-02"
EXACT = dict(rel=1e-12, abs=1e-12)
Z95 = float(norm.isf(0.025))
METRICS = (
    "demographic_parity_difference",
    "disparate_impact_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)


def make_model(
    *, task: str = "binary_classification", classes=("0", "1"), **fairness
) -> ModelConfig:
    src = {"parquet": "/nonexistent/x.parquet"}
    return ModelConfig.model_validate(
        {
            "name": "loans",
            "tenant": "bank",
            "task": task,
            "features": {"numeric": ["income"], "categorical": ["region"]},
            "predictions": src,
            "outcomes": src,
            "reference": src,
            "classes": list(classes) if classes else None,
            "fairness": {"attribute": "sex", "privileged": "1", **fairness},
        }
    )


def stamps(rng: np.random.Generator, n: int) -> pd.Series:
    """`n` UTC instants spread over the day."""
    return pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(rng.random(n) * 86_400, unit="s")


def biased_day(
    rng: np.random.Generator,
    n: int,
    *,
    groups: Sequence[str] = ("0", "1"),
    selection: Sequence[float] = (0.5, 0.5),
    tpr: Sequence[float] | None = None,
    fpr: Sequence[float] | None = None,
    base_rate: float = 0.4,
    coverage: float = 0.6,
    cluster: int = 1,
) -> pd.DataFrame:
    """A day of `n` predictions: the attribute uniform over `groups`, labels with `base_rate`
    positives observed for `coverage` of the rows. With `tpr`/`fpr` per group the predictions
    follow the labels at those rates, else they are drawn at the `selection` rate per group.
    With `cluster` > 1, rows arrive in runs of that many identical rows (one customer's
    repeated requests): correlated rows, fewer independent ones than n."""
    k = -(-n // cluster)
    g = rng.integers(0, len(groups), k)
    y = (rng.random(k) < base_rate).astype(np.int64)
    if tpr is not None and fpr is not None:
        p_pos = np.where(y == 1, np.asarray(tpr)[g], np.asarray(fpr)[g])
    else:
        p_pos = np.asarray(selection)[g]
    pred = (rng.random(k) < p_pos).astype(np.int64)
    seen = rng.random(k) < coverage
    take = np.repeat(np.arange(k), cluster)[:n]
    labels = np.where(seen, y.astype(str), None)[take]
    return pd.DataFrame(
        {
            "timestamp": stamps(rng, k)[take],
            "sex": np.asarray(groups)[g][take],
            "prediction": pred[take],
            "label": pd.Series(labels, dtype="str"),
        }
    )


#: (true positive rate, false positive rate) per group, privileged "1" first; at a 50% base rate
#: the selection rate is their mean. FAIR: every group alike. AT_THRESHOLDS: the worst fair
#: case, every metric exactly at its warning threshold (selection 0.5 vs 0.4: difference 0.1,
#: ratio 0.8; both rates 0.1 apart). BIASED: selection 0.5 vs 0.3 (ratio 0.6, difference
#: 0.2), true positive rate 0.3 lower: past every critical threshold.
FAIR = {"1": (0.7, 0.3), "0": (0.7, 0.3)}
AT_THRESHOLDS = {"1": (0.7, 0.3), "0": (0.6, 0.2)}
BIASED = {"1": (0.8, 0.2), "0": (0.5, 0.1)}


def simulated_cells(
    rng: np.random.Generator,
    n: int,
    truth: dict[str, tuple[float, float]],
    *,
    base_rate: float = 0.5,
    coverage: float = 0.6,
    cluster: int = 1,
) -> DayCells:
    """One day of `n` predictions as the counts `fairness_for_day` makes of its rows: the
    attribute uniform over the groups of `truth`, rows uniform over the day's 10-minute
    blocks, labels at `base_rate`, predictions at the group's true and false positive rates,
    labels observed for `coverage` of the rows. With `cluster` > 1 the rows come in runs of
    that many identical rows within a block (one customer's repeated requests: correlated
    rows, n / cluster independent ones)."""
    units = rng.multinomial(n // cluster, [1 / len(truth)] * len(truth))
    counts = np.zeros((len(truth), N_BLOCKS, len(CELLS)), dtype=np.int64)
    for i, ((tpr, fpr), m) in enumerate(zip(truth.values(), units, strict=True)):
        selected = base_rate * tpr + (1 - base_rate) * fpr
        p = [
            coverage * base_rate * tpr,
            coverage * base_rate * (1 - tpr),
            coverage * (1 - base_rate) * fpr,
            coverage * (1 - base_rate) * (1 - fpr),
            (1 - coverage) * selected,
            (1 - coverage) * (1 - selected),
        ]
        cell = rng.choice(len(CELLS), m, p=p)
        block = rng.integers(0, N_BLOCKS, m)
        flat = np.bincount(block * len(CELLS) + cell, minlength=N_BLOCKS * len(CELLS))
        counts[i] = flat.reshape(N_BLOCKS, len(CELLS)) * cluster
    return DayCells(list(truth), counts, 0)


def share_of_days_with_findings(
    truth: dict[str, tuple[float, float]], n: int, days: int, *, seed: int = 0, **day
) -> float:
    """The share of `days` simulated days (`simulated_cells`) judged warning or critical on
    any metric, as `fairness_for_day` judges them: the counts' rates, the day's design
    effect."""
    policy = make_model().fairness
    assert policy is not None
    rng = np.random.default_rng(seed)
    raised = 0
    for _ in range(days):
        cells = simulated_cells(rng, n, truth, **day)
        verdicts = judge_groups(policy, cells.groups(), cells.design_effect().value)
        raised += any(v.level in ("warning", "critical") for v in verdicts.values())
    return raised / days


def _labelled(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = frame["label"].notna().to_numpy()
    y = (frame["label"][rows] == "1").astype(int).to_numpy()
    return y, frame["prediction"].to_numpy()[rows], frame["sex"].to_numpy()[rows]


def test_two_groups_agree_with_fairlearn() -> None:
    frame = biased_day(
        np.random.default_rng(1), 4000, tpr=(0.55, 0.75), fpr=(0.2, 0.3), coverage=0.5
    )
    day = fairness_for_day(make_model(), DAY, frame)
    v = {name: verdict.value for name, verdict in day.verdicts.items()}
    pred, sex = frame["prediction"].to_numpy(), frame["sex"].to_numpy()
    assert v["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(pred, pred, sensitive_features=sex), **EXACT
    )
    assert v["disparate_impact_ratio"] == pytest.approx(
        demographic_parity_ratio(pred, pred, sensitive_features=sex), **EXACT
    )
    y, yhat, s = _labelled(frame)
    assert v["equal_opportunity_difference"] == pytest.approx(
        equal_opportunity_difference(y, yhat, sensitive_features=s), **EXACT
    )
    assert v["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, yhat, sensitive_features=s), **EXACT
    )


def test_many_groups_are_each_compared_with_the_privileged_one() -> None:
    """fairlearn's own differences are max - min over all groups; ours are the worst group
    against the privileged one, from the same MetricFrame group values."""
    groups = ("0", "1", "2", "3")
    frame = biased_day(
        np.random.default_rng(2),
        8000,
        groups=groups,
        tpr=(0.6, 0.7, 0.8, 0.72),
        fpr=(0.25, 0.2, 0.1, 0.3),
    )
    day = fairness_for_day(make_model(), DAY, frame)
    pred, sex = frame["prediction"].to_numpy(), frame["sex"].to_numpy()
    sel = MetricFrame(
        metrics=selection_rate, y_true=pred, y_pred=pred, sensitive_features=sex
    ).by_group
    y, yhat, s = _labelled(frame)
    lab = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y,
        y_pred=yhat,
        sensitive_features=s,
    ).by_group
    others = [g for g in groups if g != "1"]
    for g in groups:
        assert day.groups[g].selection_rate == pytest.approx(sel[g], **EXACT)
        assert day.groups[g].true_positive_rate == pytest.approx(lab.loc[g, "tpr"], **EXACT)
        assert day.groups[g].false_positive_rate == pytest.approx(lab.loc[g, "fpr"], **EXACT)
    v = {name: verdict.value for name, verdict in day.verdicts.items()}
    assert v["demographic_parity_difference"] == pytest.approx(
        max(abs(sel[g] - sel["1"]) for g in others), **EXACT
    )
    assert v["disparate_impact_ratio"] == pytest.approx(
        min(min(sel[g], sel["1"]) / max(sel[g], sel["1"]) for g in others), **EXACT
    )
    tpr, fpr = lab["tpr"], lab["fpr"]
    assert v["equal_opportunity_difference"] == pytest.approx(
        max(abs(tpr[g] - tpr["1"]) for g in others), **EXACT
    )
    assert v["equalized_odds_difference"] == pytest.approx(
        max(max(abs(tpr[g] - tpr["1"]), abs(fpr[g] - fpr["1"])) for g in others), **EXACT
    )
    # not fairlearn's max - min between groups: group 2's rates differ most from group 0's
    assert v["equal_opportunity_difference"] < equal_opportunity_difference(
        y, yhat, sensitive_features=s
    )


def test_intervals_match_their_published_values() -> None:
    lo, hi = binomtest(30, 100).proportion_ci(0.95, method="wilson")
    assert wilson(30, 100, Z95) == pytest.approx((lo, hi), rel=1e-9)
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80
    assert newcombe(56, 70, 48, 80, Z95) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    # Katz's log interval of 0.15 / 0.10: exp(log 1.5 +- 1.96 sqrt(1/15 - 1/100 + 1/10 - 1/100))
    se = math.sqrt(1 / 15 - 1 / 100 + 1 / 10 - 1 / 100)
    expected = (1.5 * math.exp(-Z95 * se), 1.5 * math.exp(Z95 * se))
    assert katz(15, 100, 10, 100, Z95) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "p1", "p2"), [(60, 0.3, 0.1), (400, 0.5, 0.4), (2000, 0.05, 0.03)])
def test_intervals_cover_the_truth_at_their_level(n: int, p1: float, p2: float) -> None:
    """95% intervals over 4,000 draws: coverage within 93-97.5% at small and large n and
    rates near 0, where the Wald intervals fall short."""
    rng = np.random.default_rng(3)
    x1, x2 = rng.binomial(n, p1, 4000), rng.binomial(n, p2, 4000)
    diff = [newcombe(a, n, b, n, Z95) for a, b in zip(x1, x2, strict=True)]
    ratio = [katz(a, n, b, n, Z95) for a, b in zip(x1, x2, strict=True)]
    cover_d = np.mean([lo <= p1 - p2 <= hi for lo, hi in diff])
    cover_r = np.mean([lo <= p1 / p2 <= hi for lo, hi in ratio])
    assert 0.93 <= cover_d <= 0.975
    assert 0.93 <= cover_r <= 0.975


def test_a_biased_group_is_a_finding_with_its_evidence() -> None:
    """Group 0 is selected at 0.25 against 0.5 (ratio 0.5, difference 0.25): critical on
    both prediction metrics; its true positive rate lags by 0.3: critical on the label ones."""
    frame = biased_day(np.random.default_rng(4), 6000, tpr=(0.4, 0.7), fpr=(0.1, 0.3), coverage=0.7)
    day = fairness_for_day(make_model(), DAY, frame)
    by_metric = {f.column: f for f in day.findings}
    assert set(by_metric) == set(METRICS)
    for f in day.findings:
        assert f.signal == Signal.FAIRNESS_VIOLATION
        assert f.severity is Severity.CRITICAL
        ev = f.evidence
        assert ev["attribute"] == "sex" and ev["privileged"] == "1" and ev["group"] == "0"
        assert ev["groups"]["0"]["n"] + ev["groups"]["1"]["n"] == 6000
        assert 0.65 < ev["groups"]["0"]["coverage"] < 0.75
        assert ev["low"] <= f.value <= ev["high"] and 0.99 < ev["confidence"] < 1
    di = by_metric["disparate_impact_ratio"]
    assert di.threshold == 0.6 and di.evidence["high"] < 0.6 and di.value < 0.6
    assert "below 0.6 with the whole interval" in di.message
    dp = by_metric["demographic_parity_difference"]
    assert dp.threshold == 0.2 and dp.evidence["low"] > 0.2
    check = day.check()
    assert not check.passed and check.severity == "error"
    assert day.metrics[("disparate_impact_ratio", "sex")] == di.value
    assert day.metrics[("selection_rate", "sex=0")] == pytest.approx(day.groups["0"].selection_rate)
    assert ("coverage", "sex=1") in day.metrics


def test_a_small_day_with_a_large_gap_stays_quiet() -> None:
    """60 predictions per group selected at 0.45 against 0.25: the point values are past
    every threshold, the intervals are not, so no finding: a verdict needs the evidence."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "timestamp": stamps(rng, 120),
            "sex": ["0"] * 60 + ["1"] * 60,
            "prediction": np.r_[np.arange(60) < 15, np.arange(60) < 27].astype(int),
            "label": pd.Series(rng.choice(["0", "1"], 120), dtype="str"),
        }
    )
    day = fairness_for_day(make_model(), DAY, frame)
    dp, di = day.verdicts["demographic_parity_difference"], day.verdicts["disparate_impact_ratio"]
    assert dp.value == pytest.approx(0.2) and di.value == pytest.approx(15 / 27)
    assert dp.level == di.level == "ok" and not day.findings and day.check().passed
    assert dp.comparisons[0].low < 0.1 < 0.2 < dp.comparisons[0].high


def test_too_few_rows_or_labels_are_insufficient_never_pass_or_fail() -> None:
    frame = biased_day(np.random.default_rng(6), 200, selection=(0.1, 0.6), coverage=0.0)
    frame.loc[frame["sex"] == "0", "sex"] = ["0"] * 20 + ["2"] * (
        int((frame["sex"] == "0").sum()) - 20
    )
    day = fairness_for_day(make_model(), DAY, frame)
    eo = day.verdicts["equal_opportunity_difference"]
    assert eo.level == "insufficient" and math.isnan(eo.value)
    assert ("equal_opportunity_difference", "sex") not in day.metrics
    dp = day.verdicts["demographic_parity_difference"]
    assert dp.insufficient_groups == ["0"]  # 20 rows < min_group_size 30
    assert [c.group for c in dp.comparisons] == ["2"] and dp.level != "insufficient"
    nobody = fairness_for_day(make_model(privileged="9"), DAY, frame)
    assert {v.level for v in nobody.verdicts.values()} == {"insufficient"}
    assert "privileged group sex=9" in nobody.verdicts["disparate_impact_ratio"].reason
    assert not nobody.findings and nobody.check().passed


def test_rows_without_the_attribute_are_counted_in_no_group() -> None:
    frame = biased_day(np.random.default_rng(7), 1000)
    frame.loc[:99, "sex"] = None
    day = fairness_for_day(make_model(), DAY, frame)
    assert day.n_missing == 100 and set(day.groups) == {"0", "1"}
    assert sum(g.n for g in day.groups.values()) == 900


def test_numeric_attribute_values_are_category_labels() -> None:
    """1, 1.0 and "1" are one group, as everywhere else (a SQL column read as floats)."""
    frame = biased_day(np.random.default_rng(8), 1000)
    frame["sex"] = frame["sex"].astype(float)
    day = fairness_for_day(make_model(privileged=1), DAY, frame)
    assert set(day.groups) == {"0", "1"} and day.privileged == "1"
    assert day.verdicts["demographic_parity_difference"].level == "ok"


def test_multiclass_compares_the_configured_positive_class() -> None:
    rng = np.random.default_rng(9)
    n = 3000
    sex = rng.choice(["0", "1"], n)
    pred = np.where(
        sex == "1",
        rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        rng.choice(["a", "b", "c"], n, p=[0.2, 0.5, 0.3]),
    )
    frame = pd.DataFrame(
        {
            "timestamp": stamps(rng, n),
            "sex": sex,
            "prediction": pred,
            "label": pd.Series(pred, dtype="str"),
        }
    )
    model = make_model(
        task="multiclass_classification", classes=("a", "b", "c"), positive_class="a"
    )
    day = fairness_for_day(model, DAY, frame)
    picked = (pred == "a").astype(int)
    assert day.verdicts["demographic_parity_difference"].value == pytest.approx(
        demographic_parity_difference(picked, picked, sensitive_features=sex), **EXACT
    )
    assert day.positive_class == "a"


def test_a_missing_attribute_column_names_model_partition_and_column() -> None:
    frame = biased_day(np.random.default_rng(10), 100).drop(columns="sex")
    with pytest.raises(DataError) as err:
        fairness_for_day(make_model(), DAY, frame)
    msg = str(err.value)
    assert "bank.loans" in msg and DAY in msg and "sex" in msg


def _raw_model(**model) -> dict:
    src = {"parquet": "x.parquet"}
    return {
        "storage": {
            "store_url": "sqlite:///s.db",
            "mlflow_tracking_uri": "sqlite:///m.db",
            "artifacts_dir": "a",
        },
        "tenants": [
            {
                "name": "bank",
                "models": [
                    {
                        "name": "loans",
                        "task": "binary_classification",
                        "features": {"numeric": ["income"], "categorical": ["region"]},
                        "predictions": src,
                        "outcomes": src,
                        "reference": src,
                        "fairness": {"attribute": "sex", "privileged": 1},
                        **model,
                    }
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"task": "regression"}, "a regression model has none"),
        (
            {"task": "multiclass_classification", "classes": ["a", "b", "c"]},
            "fairness.positive_class is required for multiclass",
        ),
        ({"fairness": {"attribute": "income", "privileged": "1"}}, "is a numeric feature"),
        ({"fairness": {"attribute": "prediction", "privileged": "1"}}, "is a contract column"),
        ({"outcomes": None}, "needs an `outcomes` source"),
        (
            {"fairness": {"attribute": "sex", "privileged": "1", "positive_class": "yes"}},
            "'yes' is not among the model's classes",
        ),
    ],
)
def test_fairness_config_errors_name_the_model_and_the_setting(change: dict, text: str) -> None:
    raw = _raw_model(**change)
    if change.get("task") != "multiclass_classification" and "positive_class" in str(change):
        raw["tenants"][0]["models"][0]["classes"] = ["0", "1"]
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    msg = str(err.value)
    assert "model 'loans'" in msg and text in msg


@pytest.mark.parametrize(
    ("fairness", "field", "text"),
    [
        (
            {"thresholds": {"disparate_impact_ratio": [0.6, 0.8]}},
            "fairness.thresholds",
            "1 > warning >= critical",
        ),
        (
            {"thresholds": {"equalized_odds_difference": [0.3, 0.1]}},
            "fairness.thresholds",
            "0 < warning <= critical",
        ),
        ({"metrics": ["statistical_parity"]}, "fairness.metrics", "demographic_parity_difference"),
        ({"metrics": []}, "fairness.metrics", "at least one"),
    ],
)
def test_fairness_field_errors_are_named(fairness: dict, field: str, text: str) -> None:
    raw = _raw_model(fairness={"attribute": "sex", "privileged": "1", **fairness})
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    msg = str(err.value)
    assert f"field '{field}" in msg and text in msg


def test_the_config_reads_privileged_as_the_category_label() -> None:
    model = parse_config(_raw_model()).models[0]
    assert model.fairness is not None and model.fairness.privileged == "1"
    assert model.fairness.threshold(model.fairness.metrics[1]) == (0.8, 0.6)  # four-fifths


@pytest.mark.parametrize("n", [200, 5000])
def test_fair_days_raise_nothing_small_or_large(n: int) -> None:
    assert share_of_days_with_findings(FAIR, n, 1000) == 0


def test_the_worst_fair_case_raises_at_most_alpha() -> None:
    """Every metric exactly at its warning threshold: a finding on at most alpha (1%) of the
    days, by the union bound over the day's tests (`bench_fairness`: 0.48% of 5,000
    days at 5,000 rows, 0.52% at 50,000)."""
    assert share_of_days_with_findings(AT_THRESHOLDS, 5000, 2000) <= 0.01


def test_a_biased_group_is_found_on_every_normal_day() -> None:
    assert share_of_days_with_findings(BIASED, 5000, 500) == 1
    assert share_of_days_with_findings(BIASED, 300, 500) < 0.5  # small days need more evidence


@pytest.mark.parametrize(("n", "runs"), [(300, 20), (5000, 20)])
def test_rows_arriving_in_runs_stay_quiet(n: int, runs: int) -> None:
    """One customer's repeated requests: runs of 20 identical rows. Judged as independent
    rows, 17% of fair 5,000-row days and 48% of 300-row days raised a finding; with the
    day's design effect (measured, or bounded by its blocks on a small day), at most 1%."""
    assert share_of_days_with_findings(FAIR, n, 1000, cluster=runs) <= 0.01


def test_the_design_effect_is_measured_on_the_day_s_rows() -> None:
    model = make_model()
    runs = fairness_for_day(model, DAY, biased_day(np.random.default_rng(11), 20_000, cluster=20))
    assert runs.design_effect.method == "within_hour" and 12 < runs.design_effect.value < 30
    alone = fairness_for_day(model, DAY, biased_day(np.random.default_rng(12), 20_000))
    assert alone.design_effect.value < 1.3
    small = fairness_for_day(model, DAY, biased_day(np.random.default_rng(13), 150))
    assert small.design_effect.value < 1.6
    # 10 runs of 5 rows: too few blocks to measure it, bounded by the rows per block
    tiny = fairness_for_day(model, DAY, biased_day(np.random.default_rng(14), 50, cluster=5))
    assert tiny.design_effect.method == "block_bound" and tiny.design_effect.value >= 5


#: The demo's biased-segment case on acme.churn: the config block, and the data change.
DEMO_FAIRNESS = {"attribute": "region", "privileged": "north"}
DEMO_BIASED_REGION, DEMO_SCORE_SHIFT = "south", 0.2


def biased_segment(
    predictions: pd.DataFrame,
    active: np.ndarray,
    *,
    column: str = "region",
    value: str = DEMO_BIASED_REGION,
    shift: float = DEMO_SCORE_SHIFT,
) -> pd.DataFrame:
    """The demo's "biased segment" incident: on the `active` rows of group `column=value`, a
    broken feature transform for that region lowers the churn score by `shift` (the
    prediction follows, score >= 0.5): the region gets far fewer retention offers. For
    acme.churn, `shift` 0.2 takes south's selection rate from ~0.09 to ~0.026 against
    north's ~0.106 (disparate impact ~0.25) and its true positive rate from ~0.31 to ~0.10
    (north ~0.34). The labels do not change."""
    hit = active & (predictions[column].to_numpy() == value)
    score = predictions["score"].to_numpy(dtype=float)
    score = np.where(hit, np.clip(score - shift, 0, 1), score).round(6)
    return predictions.assign(score=score, prediction=(score >= 0.5).astype(np.int64))


def test_demo_biased_segment_is_found_and_normal_demo_days_are_quiet() -> None:
    """acme.churn's own model and traffic (3,000 rows a day, 65% labelled): regions differ a
    little by nature (south's selection rate ~0.86 of north's), which stays quiet; the
    injected bias is a disparate impact finding on every day."""
    from aiops_pipelines.demo.models import SPECS, predict, train

    spec = next(s for s in SPECS if s.key == "acme.churn")
    rng = np.random.default_rng(15)
    ref = spec.features(rng, np.zeros(20_000, dtype=np.int64))
    ref["label"] = spec.labels(rng, ref, np.zeros(len(ref), dtype=bool))
    champion, _, _ = train(spec, ref, 0)
    model = make_model(**DEMO_FAIRNESS)
    levels: dict[bool, list[str]] = {False: [], True: []}
    for day in range(16):
        x = spec.features(rng, np.zeros(3000, dtype=np.int64))
        y = spec.labels(rng, x, np.zeros(len(x), dtype=bool))
        pred, score = predict(spec, champion, x[spec.numeric + spec.categorical])
        frame = x.assign(prediction=pred, score=score, timestamp=stamps(rng, len(x)))
        biased = day >= 8
        frame = biased_segment(frame, np.full(len(frame), biased))
        seen = rng.random(len(frame)) < spec.label_rate
        frame["label"] = pd.Series(np.where(seen, y.astype(str), None), dtype="str")
        found = fairness_for_day(model, DAY, frame)
        levels[biased].append(found.verdicts["disparate_impact_ratio"].level)
        if not biased:
            assert not found.findings, found.findings[0].message
    assert set(levels[True]) <= {"warning", "critical"} and "critical" in levels[True]


def test_the_day_s_numbers_and_findings_round_trip_through_the_store(store) -> None:
    frame = biased_day(np.random.default_rng(16), 6000, tpr=(0.4, 0.7), fpr=(0.1, 0.3))
    day = fairness_for_day(make_model(), DAY, frame)
    store.replace_partition(
        "bank", "loans", DAY, "performance_report", metrics=day.metrics, findings=day.findings
    )
    found = store.findings("bank", "loans", signal="fairness_violation")
    assert sorted(found["column"]) == sorted(METRICS)
    ev = found[found["column"] == "disparate_impact_ratio"].iloc[0]["evidence"]
    assert ev["groups"]["0"]["n"] == day.groups["0"].n and ev["design_effect"] >= 1
    rows = store.metric_history("bank", "loans", column="sex")
    assert dict(zip(rows["metric"], rows["value"], strict=True)) == pytest.approx(
        {m: day.verdicts[m].value for m in METRICS}
    )
