"""The canary's daily verdict (fail / pass / inconclusive) and its findings.

The verdict (`canary_verdict`)
------------------------------
* **fail** (roll back): the canary is credibly worse than the margin (CS upper < -margin, with at
  least ``min_labels`` labels in each arm), or a guardrail is breached: the error-rate increase
  is credibly above ``max_error_rate_increase`` (its CS lower bound), or canary p95 latency /
  champion p95 latency exceeds ``max_latency_p95_ratio``. Guardrails need at least 200
  predictions per arm but no labels: they exist to catch a broken canary on day one, before any
  label has arrived.
* **pass** (promote): no failure, at least ``min_days`` days of traffic (weekly seasonality),
  label coverage at least ``min_coverage``, at least ``min_labels`` labels in each arm, and the
  canary credibly not worse than the margin (CS lower > -margin).
* **inconclusive** otherwise, and always when an arm has no predictions, or too few labels with
  no guardrail breached.

Why the margin: with margin 0 a perfect tie can never pass and a tiny true loss eventually
fails; the margin is the loss the owner accepts (accuracy points, or MAE units for regression).
A drop smaller than the margin is, by design, not a rollback.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aiops_pipelines.core.config import CanaryPolicy
from aiops_pipelines.core.findings import Asset, Finding, Severity, Signal, jsonable
from aiops_pipelines.core.values import fmt_number
from aiops_pipelines.signals.canary.statistics import (
    ArmStats,
    confidence_sequence,
    error_rate_sequence,
)

GUARDRAIL_MIN_PREDICTIONS = 200


def _g4(x: float) -> str:
    """Four significant digits, as every number in a verdict's reasons."""
    return fmt_number(x, ".4g")


Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass
class CanaryVerdict:
    """The day's decision on a canary with everything it rests on (stored as evidence)."""

    verdict: Verdict
    reasons: list[str]
    estimate: float
    lower: float
    upper: float
    margin: float
    alpha: float
    n_star: int
    canary_mean: float
    champion_mean: float
    n_canary: int
    n_champion: int
    n_labelled_canary: int
    n_labelled_champion: int
    coverage: float
    days: int
    guardrails: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_causes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def canary_verdict(
    canary: ArmStats,
    champion: ArmStats,
    *,
    policy: CanaryPolicy,
    days: int,
    coverage: float,
) -> CanaryVerdict:
    """pass / fail / inconclusive for the canary on all its data so far (module docstring).

    `days`: days of canary traffic so far; `coverage`: the canary's label coverage (labelled
    share of its predictions in the cohorts judged), both computed by the caller.
    """
    est, lo, hi = confidence_sequence(canary, champion, alpha=policy.alpha, n_star=policy.n_star)
    reasons: list[str] = []
    fails: list[str] = []
    enough_preds = min(canary.n, champion.n) >= GUARDRAIL_MIN_PREDICTIONS

    e_est, e_lo, e_hi = error_rate_sequence(
        canary, champion, alpha=policy.alpha, n_star=policy.n_star
    )
    err_breached = bool(enough_preds and e_lo > policy.max_error_rate_increase)
    guardrails: dict[str, dict[str, Any]] = {
        "error_rate": {
            "canary": canary.error_rate,
            "champion": champion.error_rate,
            "increase": e_est,
            "lower": e_lo,
            "upper": e_hi,
            "limit": policy.max_error_rate_increase,
            "min_predictions": GUARDRAIL_MIN_PREDICTIONS,
            "evaluated": enough_preds,
            "breached": err_breached,
        }
    }
    p95_c, p95_s = canary.latency_p95, champion.latency_p95
    ratio = p95_c / p95_s if math.isfinite(p95_c) and math.isfinite(p95_s) and p95_s > 0 else None
    lat_ok = min(canary.n_latency, champion.n_latency) >= GUARDRAIL_MIN_PREDICTIONS
    lat_evaluated = bool(enough_preds and lat_ok and ratio is not None)
    lat_breached = bool(lat_evaluated and ratio > policy.max_latency_p95_ratio)
    guardrails["latency_p95"] = {
        "canary_ms": p95_c,
        "champion_ms": p95_s,
        "ratio": ratio,
        "limit": policy.max_latency_p95_ratio,
        "min_predictions": GUARDRAIL_MIN_PREDICTIONS,
        "evaluated": lat_evaluated,
        "breached": lat_breached,
    }

    causes: list[str] = []

    def verdict(v: Verdict, why: list[str]) -> CanaryVerdict:
        return CanaryVerdict(
            verdict=v,
            reasons=why,
            estimate=est,
            lower=lo,
            upper=hi,
            margin=policy.margin,
            alpha=policy.alpha,
            n_star=policy.n_star,
            canary_mean=canary.mean,
            champion_mean=champion.mean,
            n_canary=canary.n,
            n_champion=champion.n,
            n_labelled_canary=canary.n_labelled,
            n_labelled_champion=champion.n_labelled,
            coverage=coverage,
            days=days,
            guardrails=guardrails,
            fail_causes=list(causes),
        )

    if canary.n == 0 or champion.n == 0:
        which = "canary" if canary.n == 0 else "champion"
        return verdict("inconclusive", [f"no {which} predictions"])

    if err_breached:
        causes.append("error_rate")
        fails.append(
            f"error-rate guardrail: increase {_g4(e_est)} (CS lower {_g4(e_lo)}) > "
            f"{_g4(policy.max_error_rate_increase)}"
        )
    if lat_breached:
        causes.append("latency_p95")
        fails.append(
            f"latency guardrail: p95 {_g4(p95_c)} ms vs {_g4(p95_s)} ms, ratio "
            f"{_g4(ratio)} > {_g4(policy.max_latency_p95_ratio)}"
        )
    judged = min(canary.n_labelled, champion.n_labelled) >= policy.min_labels
    if judged and hi < -policy.margin:
        causes.insert(0, "primary")
        fails.append(
            f"credibly worse: difference {_g4(est)}, CS [{_g4(lo)}, {_g4(hi)}] entirely "
            f"below -margin {_g4(-policy.margin)}"
        )
    if fails:
        return verdict("fail", fails)

    if not judged:
        reasons.append(
            f"too few labels: canary {canary.n_labelled}, champion {champion.n_labelled} "
            f"(need {policy.min_labels} each)"
        )
    elif not lo > -policy.margin:
        reasons.append(
            f"not yet credibly within the margin: CS [{_g4(lo)}, {_g4(hi)}] reaches below "
            f"-margin {_g4(-policy.margin)}"
        )
    if days < policy.min_days:
        reasons.append(f"{days} days of traffic (need {policy.min_days})")
    if not coverage >= policy.min_coverage:
        reasons.append(f"label coverage {fmt_number(coverage)} (need {_g4(policy.min_coverage)})")
    if reasons:
        return verdict("inconclusive", reasons)
    return verdict(
        "pass",
        [
            f"credibly not worse than the margin: difference {_g4(est)}, CS [{_g4(lo)}, "
            f"{_g4(hi)}] above -margin {_g4(-policy.margin)} after {days} days at label "
            f"coverage {fmt_number(coverage)}"
        ],
    )


def canary_findings(
    verdict: CanaryVerdict,
    *,
    tenant: str,
    model: str,
    partition: str,
    canary_version: str,
    champion_version: str,
) -> list[Finding]:
    """`canary_fail` (critical: it rolls back) or `canary_pass` (info); none when inconclusive.

    The finding's column is the canary version, so each canary version is its own problem for
    deduplication: a new canary failing is a new alert, not a repeat of the last one.
    """
    if verdict.verdict == "inconclusive":
        return []
    v = verdict
    evidence = {
        **v.to_dict(),
        "canary_version": canary_version,
        "champion_version": champion_version,
    }
    base = dict(tenant=tenant, model=model, partition=partition, asset=Asset.CANARY_REPORT)
    head = f"canary {canary_version} vs champion {champion_version}: "
    detail = "; ".join(v.reasons)
    if v.verdict == "pass":
        return [
            Finding(
                **base,
                signal=Signal.CANARY_PASS.value,
                severity=Severity.INFO,
                value=v.lower,
                threshold=-v.margin,
                column=canary_version,
                message=head + "pass, " + detail,
                evidence=evidence,
            )
        ]
    g = v.guardrails
    if "primary" in v.fail_causes:
        value, threshold = v.upper, -v.margin
    elif "error_rate" in v.fail_causes:
        value, threshold = g["error_rate"]["lower"], g["error_rate"]["limit"]
    else:
        value, threshold = g["latency_p95"]["ratio"], g["latency_p95"]["limit"]
    return [
        Finding(
            **base,
            signal=Signal.CANARY_FAIL.value,
            severity=Severity.CRITICAL,
            value=float(value),
            threshold=float(threshold),
            column=canary_version,
            message=head + "fail (roll back), " + detail,
            evidence=evidence,
        )
    ]
