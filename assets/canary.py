"""Canary vs champion: a daily verdict from a test that stays valid under daily looks."""

import json

import dagster as dg
from mlflow import MlflowClient

from aiops_pipelines.lifecycle.registry import TAG_CANARY_START, aliases
from aiops_pipelines.orchestration.partitions import date_x_model, split_key
from aiops_pipelines.orchestration.resources import (
    Clock,
    MlflowResource,
    MonitoringConfig,
    StoreResource,
    parse_utc,
)
from aiops_pipelines.signals.canary.day import canary_window
from aiops_pipelines.signals.canary.statistics import ArmStats
from aiops_pipelines.signals.canary.verdict import canary_findings, canary_verdict
from assets.monitoring import OWNERS, reference_profile
from assets.performance import PerformanceConfig


@dg.asset(
    partitions_def=date_x_model,
    group_name="model_lifecycle",
    owners=OWNERS,
    kinds={"python", "mlflow"},
    deps=[reference_profile],
    output_required=False,
    check_specs=[
        dg.AssetCheckSpec(
            "canary_verdict",
            asset="canary_report",
            description="the canary is not credibly worse than the champion (nor breaches a "
            "guardrail); passes with 'no canary' when none is live",
        )
    ],
)
def canary_report(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    mlflow: MlflowResource,
    clock: Clock,
):
    """Champion vs canary (MLflow aliases), on the predictions each version served since the
    canary started: traffic share, error rate, latency p95 and per-prediction performance on
    the labels observed so far, cumulated and tested with an anytime-valid confidence sequence
    plus guardrails. Verdict fail / pass / inconclusive with its evidence. Materialized only
    while a canary exists; the check then says 'no canary'."""
    day, key = split_key(context)
    cfg = monitoring_config.load()
    model = cfg.model(key)
    uri = cfg.storage.mlflow_tracking_uri
    live = aliases(uri, model.registry_name)
    canary, champion = live.get("canary"), live.get("champion")
    start = None
    if canary and champion and model.canary.enabled:
        tags = (
            MlflowClient(tracking_uri=uri, registry_uri=uri)
            .get_model_version(model.registry_name, canary)
            .tags
        )
        start = tags.get(TAG_CANARY_START) or day
    if start is None or day < start:
        yield dg.AssetCheckResult(
            check_name="canary_verdict",
            passed=True,
            metadata={"status": "no canary", "aliases": json.dumps(live)},
        )
        return
    as_of = parse_utc(config.as_of) if config.as_of else clock.now()
    window = canary_window(model, start, day, as_of, {canary, champion})
    arm_c = window.arms.get(canary) or ArmStats.empty()
    arm_s = window.arms.get(champion) or ArmStats.empty()
    coverage = arm_c.n_labelled / arm_c.n if arm_c.n else 0.0
    verdict = canary_verdict(arm_c, arm_s, policy=model.canary, days=window.days, coverage=coverage)
    findings = canary_findings(
        verdict,
        tenant=model.tenant,
        model=model.name,
        partition=day,
        canary_version=canary,
        champion_version=champion,
    )
    for f in findings:
        f.evidence["detected_at"] = as_of.isoformat()
    today = window.daily_rows.get(day, {})
    total_today = sum(today.values()) or 1
    total_all = (arm_c.n + arm_s.n) or 1
    metrics: dict[tuple[str, str], float] = {
        ("canary_share_day", ""): today.get(canary, 0) / total_today,
        ("canary_share_cumulative", ""): arm_c.n / total_all,
        ("canary_estimate", ""): verdict.estimate,
        ("canary_lower", ""): verdict.lower,
        ("canary_upper", ""): verdict.upper,
        ("canary_coverage", ""): coverage,
    }
    for role, version, arm in (("canary", canary, arm_c), ("champion", champion, arm_s)):
        metrics.update(
            {
                (f"{role}_n", version): float(arm.n),
                (f"{role}_n_labelled", version): float(arm.n_labelled),
                (f"{role}_mean", version): arm.mean,
                (f"{role}_error_rate", version): arm.error_rate,
                (f"{role}_latency_p95", version): arm.latency_p95,
            }
        )
    db = store.open(cfg)
    db.replace_partition(
        model.tenant, model.name, day, "canary_report", metrics=metrics, findings=findings
    )
    tracker = mlflow.tracker(cfg)
    if tracker:
        with tracker.partition_run(model.key, "canary_report", day) as run:
            run.log_metrics({k if not c else f"{k}.v{c}": v for (k, c), v in metrics.items()})
            run.set_tags(
                {"verdict": verdict.verdict, "canary_version": canary, "champion_version": champion}
            )
    evidence = verdict.to_dict()
    sev = dg.AssetCheckSeverity
    yield dg.MaterializeResult(
        metadata={
            "verdict": verdict.verdict,
            "canary_version": canary,
            "champion_version": champion,
            "canary_start": start,
            "days": window.days,
            "estimate": float(verdict.estimate),
            "lower": float(verdict.lower),
            "upper": float(verdict.upper),
            "margin": float(model.canary.margin),
            "canary_share_cumulative": float(arm_c.n / total_all),
            "coverage": float(coverage),
            "n_canary": int(arm_c.n),
            "n_champion": int(arm_s.n),
            "as_of": as_of.isoformat(),
            "evidence": dg.MetadataValue.json(json.loads(json.dumps(evidence, default=str))),
        }
    )
    yield dg.AssetCheckResult(
        check_name="canary_verdict",
        passed=verdict.verdict != "fail",
        severity=sev.ERROR,
        metadata={"verdict": verdict.verdict, "reasons": "; ".join(verdict.reasons)},
    )
