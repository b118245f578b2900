"""The one Definitions object: assets, checks, jobs, schedule, sensors and resources."""

from __future__ import annotations

import dagster as dg

from aiops_pipelines.resources import default_resources
from assets.jobs import daily_monitoring_job, daily_monitoring_schedule, reference_job
from assets.monitoring import drift_report, feature_profile, reference_profile
from sensors.models import model_partitions_sensor

defs = dg.Definitions(
    assets=[reference_profile, feature_profile, drift_report],
    jobs=[reference_job, daily_monitoring_job],
    schedules=[daily_monitoring_schedule],
    sensors=[model_partitions_sensor],
    resources=default_resources(),
)
