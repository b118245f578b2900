"""Canary verdicts: roll back a failing canary, promote a passing one, leave the rest."""

import json

import dagster as dg

from aiops_pipelines.lifecycle.registry import ROLLBACK_CANARY, acted_on
from aiops_pipelines.orchestration.partitions import tenant_tags
from aiops_pipelines.orchestration.resources import MonitoringConfig, StoreResource
from assets.canary import canary_report
from assets.lifecycle import CanaryActionConfig, promote_canary, rollback_canary

JOBS = {
    "fail": (rollback_canary, "rollback_canary_op", "rollback"),
    "pass": (promote_canary, "promote_canary_op", "promote"),
}


@dg.sensor(
    jobs=[rollback_canary, promote_canary],
    minimum_interval_seconds=300,
    description="Reads new canary_report verdicts (cursor over storage ids): fail launches "
    "rollback_canary, pass launches promote_canary, inconclusive does nothing. One run per "
    "(action, model, version) through the run key; a rolled-back version is never promoted.",
)
def canary_verdict_sensor(
    context: dg.SensorEvaluationContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=canary_report.key, after_storage_id=after),
        limit=10_000,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new canary verdicts")
    config = monitoring_config.load()
    db = store.open(config)
    latest: dict[str, dg.EventLogRecord] = {}
    for record in records:  # the newest verdict per model decides
        latest[record.partition_key.split("|")[-1]] = record
    known = {m.key: m for m in config.models}
    requests = []
    for key, record in sorted(latest.items()):
        meta = record.asset_materialization.metadata
        verdict = meta["verdict"].value
        if verdict not in JOBS:
            continue
        model = known.get(key)
        if model is None:  # removed from the config: its partitions stay, it is not acted on
            context.log.info(f"{key} is no longer configured: its canary verdict is ignored")
            continue
        version = str(meta["canary_version"].value)
        job, op_name, action = JOBS[verdict]

        done = acted_on(db, model.tenant, model.name, version)
        if done == ROLLBACK_CANARY:
            context.log.info(
                f"{key} v{version} was rolled back: nothing more to do, and it is "
                "never promoted automatically"
            )
        if done is not None:
            continue
        day = record.partition_key.split("|")[0]
        requests.append(
            dg.RunRequest(
                job_name=job.name,
                run_key=f"{action}:{key}:{version}",
                run_config=dg.RunConfig(
                    ops={
                        op_name: CanaryActionConfig(
                            model=key,
                            version=version,
                            verdict_partition=day,
                            evidence=json.dumps(meta["evidence"].value, default=str),
                        )
                    }
                ),
                tags={"aiops/trigger": f"canary_{verdict}", "aiops/model": key, **tenant_tags(key)},
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=str(records[-1].storage_id))
