"""Retraining: read new drift and decay results, launch retrain_job when the policy holds."""

import json
from datetime import timedelta

import dagster as dg

from aiops_pipelines.lifecycle.retrain_policy import decide, record_decision
from aiops_pipelines.orchestration.jobs import retrain_job
from aiops_pipelines.orchestration.partitions import tenant_tags
from aiops_pipelines.orchestration.resources import Clock, MonitoringConfig, StoreResource
from assets.lifecycle import RetrainConfig
from assets.monitoring import drift_report
from assets.performance import performance_report

WATCHED = {"performance": performance_report.key, "drift": drift_report.key}


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=300,
    description="Reads new performance_report and drift_report materializations (cursor over "
    "storage ids, every partition seen) and requests one retrain per model per cooldown "
    "window when the retrain policy holds; dry-run records what it would launch.",
)
def retrain_sensor(
    context: dg.SensorEvaluationContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    clock: Clock,
) -> dg.SensorResult | dg.SkipReason:
    config = monitoring_config.load()
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    touched: set[str] = set()
    for name, key in WATCHED.items():
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=cursor.get(name)),
            limit=10_000,
            ascending=True,
        ).records
        for record in records:
            touched.add(record.partition_key.split("|")[-1] if record.partition_key else "")
        if records:
            cursor[name] = records[-1].storage_id
    new_cursor = json.dumps(cursor, sort_keys=True)
    if not touched:
        return dg.SkipReason("no new performance or drift results")
    db = store.open(config)
    now = clock.now()
    known = {m.key: m for m in config.models}
    requests = []
    for key in sorted(touched & known.keys()):
        model = known[key]
        decision = decide(db, model)
        if not decision.retrain:
            context.log.info(f"{key}: no retrain ({decision.reason})")
            continue
        record_decision(db, model, decision)
        if model.retrain.dry_run:
            context.log.info(f"{key}: dry run, would launch {decision.run_key}")
            continue
        requests.append(
            dg.RunRequest(
                partition_key=key,
                run_key=decision.run_key,
                run_config=dg.RunConfig(
                    ops={
                        "retrained_model": RetrainConfig(
                            model=key,
                            reason=decision.reason,
                            evidence=json.dumps(decision.evidence, default=str),
                            # all labelled up to yesterday; from the decay's onset when known
                            end_day=(now - timedelta(days=1)).date().isoformat(),
                            start_day=str(decision.evidence.get("decay_since") or ""),
                            as_of=now.isoformat(),
                        )
                    }
                ),
                tags={"aiops/trigger": decision.reason, "aiops/model": key, **tenant_tags(key)},
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=new_cursor)
