"""Keep the `models` partition dimension in step with the YAML config."""

import dagster as dg

from aiops_pipelines.orchestration.jobs import reference_job
from aiops_pipelines.orchestration.partitions import MODELS, model_partitions, tenant_tags
from aiops_pipelines.orchestration.resources import MonitoringConfig


@dg.sensor(
    job=reference_job,
    minimum_interval_seconds=300,
    description="Adds every model declared in the config as a partition and profiles its "
    "reference once. Models removed from the config keep their partitions (and history).",
)
def model_partitions_sensor(
    context: dg.SensorEvaluationContext, monitoring_config: MonitoringConfig
) -> dg.SensorResult | dg.SkipReason:
    config = monitoring_config.load()
    existing = set(context.instance.get_dynamic_partitions(MODELS))
    new = [m.key for m in config.models if m.key not in existing]
    if not new:
        return dg.SkipReason(f"all {len(config.models)} configured models are partitions")
    return dg.SensorResult(
        dynamic_partitions_requests=[model_partitions.build_add_request(new)],
        run_requests=[
            dg.RunRequest(partition_key=k, run_key=f"reference-{k}", tags=tenant_tags(k))
            for k in new
        ],
    )
