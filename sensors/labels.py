"""Late labels: re-judge the performance of the days whose coverage changed, one run per model
covering them (a range run: each day still its own partition)."""

import json
from datetime import timedelta

import dagster as dg

from aiops_pipelines.io.labels import label_arrivals, record_unknown_outcomes
from aiops_pipelines.orchestration.jobs import performance_job
from aiops_pipelines.orchestration.partitions import (
    MODELS,
    daily_partitions,
    partition_range_tags,
)
from aiops_pipelines.orchestration.resources import (
    Clock,
    MonitoringConfig,
    StoreResource,
    parse_utc,
)


@dg.sensor(
    job=performance_job,
    minimum_interval_seconds=600,
    description="Watches each model's outcomes source (cursor: the latest observed_at seen) "
    "and requests one performance_report run per model over the days that received labels "
    "(first to last, each day its own partition; tag aiops/labelled_days names them).",
)
def late_labels_sensor(
    context: dg.SensorEvaluationContext,
    monitoring_config: MonitoringConfig,
    store: StoreResource,
    clock: Clock,
) -> dg.SensorResult:
    config = monitoring_config.load()
    cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    now = clock.now()
    # the last closed day, as of the clock (a replay's clock runs behind the real one)
    last_partition = min(
        daily_partitions.get_last_partition_key() or "",
        (now - timedelta(days=1)).date().isoformat(),
    )
    requests: list[dg.RunRequest] = []
    partitioned = set(context.instance.get_dynamic_partitions(MODELS))
    for model in config.models:
        if model.outcomes is None or model.key not in partitioned:
            continue  # model_partitions_sensor adds new models first
        window = timedelta(days=model.performance.label_window_days + 1)
        since = parse_utc(cursor[model.key]) if model.key in cursor else now - window
        arrivals = label_arrivals(model, since, now)
        if arrivals.n_unknown:
            record_unknown_outcomes(store.open(config), model, arrivals)
            context.log.warning(
                f"{model.key}: {arrivals.n_unknown} outcomes match no prediction "
                f"(e.g. {arrivals.unknown_examples}); they are dropped"
            )
        oldest = (now - window).date().isoformat()
        days = {
            day: n_new
            for day, n_new in arrivals.by_day.items()
            if day >= (config.start_date or "")
            and day >= oldest
            and last_partition is not None
            and day <= last_partition
        }
        if days:
            first, last = min(days), max(days)
            # one run re-judges them all, day after day (the days between without new labels
            # too: at most the label window, and judged again they are unchanged)
            requests.append(
                dg.RunRequest(
                    run_key=f"labels:{model.key}:{first}..{last}:"
                    f"{arrivals.last_observed.isoformat()}",
                    run_config=dg.RunConfig(
                        ops={"performance_report": {"config": {"as_of": now.isoformat()}}}
                    ),
                    tags={
                        "aiops/trigger": "late_labels",
                        "aiops/new_labels": str(sum(days.values())),
                        "aiops/labelled_days": ",".join(sorted(days)),
                        **partition_range_tags(model.key, first, last),
                    },
                )
            )
        if arrivals.last_observed is not None:
            cursor[model.key] = arrivals.last_observed.isoformat()
        else:
            cursor.setdefault(model.key, since.isoformat())
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
