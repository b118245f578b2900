"""Model lifecycle: the retrained candidate, registered in MLflow as a challenger at most."""

import json
from collections.abc import Callable
from datetime import date

import dagster as dg
from pydantic import Field

from aiops_pipelines.lifecycle import actions
from aiops_pipelines.lifecycle.registry import LifecycleChange
from aiops_pipelines.lifecycle.training import retrain
from aiops_pipelines.orchestration.partitions import model_partitions
from aiops_pipelines.orchestration.resources import (
    Clock,
    MonitoringConfig,
    StoreResource,
)
from assets.monitoring import OWNERS, drift_report
from assets.performance import performance_report


class RetrainConfig(dg.Config):
    model: str = Field(description="tenant.model; must match the run's partition")
    reason: str = Field(description="what triggered it, e.g. performance_decay")
    evidence: str = Field(default="{}", description="JSON evidence from the trigger")
    end_day: str = Field(description="last day of the training window (YYYY-MM-DD)")
    start_day: str = Field(
        default="",
        description="first day of the window (e.g. when a decay began); empty: "
        "window_days before end_day",
    )
    as_of: str = Field(default="", description="use outcomes observed up to this time; empty: now")


@dg.asset(
    partitions_def=model_partitions,
    group_name="model_lifecycle",
    owners=OWNERS,
    kinds={"scikit-learn", "mlflow"},
    deps=[performance_report, drift_report],
)
def retrained_model(
    context: dg.AssetExecutionContext,
    config: RetrainConfig,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    clock: Clock,
) -> dg.MaterializeResult:
    """A candidate trained with the model's trainer on recent labelled data, evaluated with
    the champion on the same held-out recent rows, and registered as a new MLflow version. It
    gets the `challenger` alias only if it beats the champion; `champion` is never touched."""
    if config.model != context.partition_key:
        raise dg.Failure(
            f"run config is for model '{config.model}' but the partition is "
            f"'{context.partition_key}'"
        )
    cfg = monitoring_config.load()
    model = cfg.model(config.model)
    result = retrain(
        model,
        tracking_uri=cfg.storage.mlflow_tracking_uri,
        artifacts_dir=cfg.storage.artifacts_dir,
        reason=config.reason,
        evidence=json.loads(config.evidence or "{}"),
        end_day=date.fromisoformat(config.end_day),
        start_day=date.fromisoformat(config.start_day) if config.start_day else None,
        as_of=clock.at(config.as_of),
        store=store.open(cfg),
    )
    primary = str(result.primary_metric)
    return dg.MaterializeResult(
        metadata={
            "version": str(result.version),
            "beats_champion": bool(result.beats_champion),
            f"candidate_{primary}": float(result.candidate_metrics[result.primary_metric]),
            f"champion_{primary}": float(
                result.champion_metrics.get(result.primary_metric, float("nan"))
            ),
            "n_train": int(result.n_train),
            "n_holdout": int(result.n_holdout),
            "window": f"{result.window_start} .. {result.window_end}",
            "reason": config.reason,
            "mlflow_run_id": result.run_id,
        }
    )


class CanaryActionConfig(dg.Config):
    model: str = Field(description="tenant.model")
    version: str = Field(description="the canary version the verdict was about")
    verdict_partition: str = Field(description="the canary_report partition with the verdict")
    evidence: str = Field(default="{}", description="JSON evidence of the verdict")


def _act(
    context: dg.OpExecutionContext,
    config: CanaryActionConfig,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    action: Callable[..., LifecycleChange],
) -> dict:
    cfg = monitoring_config.load()
    model = cfg.model(config.model)
    evidence = {**json.loads(config.evidence or "{}"), "partition": config.verdict_partition}
    result = action(
        cfg.storage.mlflow_tracking_uri,
        model.registry_name,
        config.version,
        evidence,
        store=store.open(cfg),
        tenant=model.tenant,
        model=model.name,
        dry_run=model.canary.dry_run,
        partition_day=config.verdict_partition,
    )
    context.log.info(f"{model.key} v{config.version}: {result.message}")
    return {"model": model.key, "version": config.version, "result": result.message}


@dg.op(description="Remove the canary alias, tag the version rolled back, audit it.")
def rollback_canary_op(
    context: dg.OpExecutionContext,
    config: CanaryActionConfig,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
) -> dict:
    return _act(context, config, monitoring_config, store, actions.rollback_canary)


@dg.op(description="champion <- canary; the previous champion keeps alias previous_champion.")
def promote_canary_op(
    context: dg.OpExecutionContext,
    config: CanaryActionConfig,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
) -> dict:
    return _act(context, config, monitoring_config, store, actions.promote_canary)


@dg.job(description="Roll a failing canary back (launched by canary_verdict_sensor).")
def rollback_canary() -> None:
    rollback_canary_op()


@dg.job(description="Promote a canary that passed (launched by canary_verdict_sensor).")
def promote_canary() -> None:
    promote_canary_op()
