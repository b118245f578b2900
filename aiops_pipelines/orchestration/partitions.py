"""Partitions (Dagster wiring): every daily asset is partitioned by date x model.

Models are a dynamic dimension keyed `tenant.model`, kept in step with the config by the
`model_partitions_sensor` (and by `aiops run`), so adding a model to the YAML needs no code
change and no redeploy.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import UTC, date, datetime

import dagster as dg

from aiops_pipelines.core.config import default_config_path, load_config

MODELS = "models"
TENANT_TAG = "aiops/tenant"
"""The run tag naming the tenant a run is for. A production instance limits how many runs of
one tenant are in progress at once by it (`tag_concurrency_limits` in aiops_pipelines/deploy), so
every run request for one model carries it; runs over every tenant (delivery, overview, MLflow
replay) do not."""
FALLBACK_YEARS = 5
"""Without a config to read, daily partitions go back this many years (from January 1st)."""


def first_day() -> str:
    """The first daily partition: the config's `start_date` ($AIOPS_CONFIG, else the demo's).

    Dagster needs the partitions when the code location loads, so this is the one setting read
    at import time (`aiops run --config` sets $AIOPS_CONFIG before loading it). Without a
    readable config, or without `start_date` in it, January 1st `FALLBACK_YEARS` years ago.
    """
    fallback = date(datetime.now(UTC).year - FALLBACK_YEARS, 1, 1).isoformat()
    path = default_config_path()
    if not path.exists():
        return fallback
    try:
        return load_config(path).start_date or fallback
    except Exception:  # a broken config fails later with its own error, where it is used
        return fallback


model_partitions = dg.DynamicPartitionsDefinition(name=MODELS)
daily_partitions = dg.DailyPartitionsDefinition(start_date=first_day(), end_offset=0)
date_x_model = dg.MultiPartitionsDefinition({"date": daily_partitions, "model": model_partitions})


warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
RANGE_RUNS = dg.BackfillPolicy.single_run()
"""How a backfill of the daily assets runs: one run per range of partitions (Dagster groups
a backfill's partitions by the dimension with fewer keys: a year of one model is one run), each
partition still materialized on its own with its own metadata (`publish.for_each_day`)."""


RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
"""The tags that make a run cover the partitions from one key to another (Dagster's own)."""


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the partitions `first`..`last` (keys of one definition)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def partition_range_tags(model_key: str, first_day: str, last_day: str) -> dict[str, str]:
    """The tags of one run over the days `first_day`..`last_day` of one model (a range run),
    with its tenant's tag."""
    return {
        **range_tags(
            str(partition_key(first_day, model_key)), str(partition_key(last_day, model_key))
        ),
        **tenant_tags(model_key),
    }


def range_of(tags: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(model key, first day, last day) of a range run's tags over one model's days, else
    None."""
    start = tags.get(RANGE_START_TAG, "")
    end = tags.get(RANGE_END_TAG, "")
    if "|" not in start or "|" not in end:
        return None
    first, model = split_key(start)
    last, _ = split_key(end)
    return model, first, last


def partition_key(day: str, model_key: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day, "model": model_key})


def tenant_tags(model_key: str) -> dict[str, str]:
    """The run tags of a run for one model: its tenant, the part of `tenant.model` before the
    dot (names never contain one)."""
    return {TENANT_TAG: model_key.split(".", 1)[0]}


def split_key(key: str) -> tuple[str, str]:
    """(date, model key) of a date x model partition key (`2024-03-01|tenant.model`)."""
    day, _, model = key.partition("|")
    return day, model
