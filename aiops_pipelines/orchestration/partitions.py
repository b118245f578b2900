"""Partitions (Dagster wiring): every daily asset is partitioned by date x model.

Models are a dynamic dimension keyed `tenant.model`, kept in step with the config by the
`model_partitions_sensor` (and by `aiops run`), so adding a model to the YAML needs no code
change and no redeploy.
"""

from __future__ import annotations

import dagster as dg

MODELS = "models"

model_partitions = dg.DynamicPartitionsDefinition(name=MODELS)
daily_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=0)
date_x_model = dg.MultiPartitionsDefinition({"date": daily_partitions, "model": model_partitions})


def partition_key(day: str, model_key: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day, "model": model_key})


def split_key(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(date, model key) of the running date x model partition."""
    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    return keys["date"], keys["model"]
