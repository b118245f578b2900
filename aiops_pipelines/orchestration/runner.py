"""Run the daily assets over a date range, in-process, on a persistent Dagster instance (wiring).

This is what `aiops run` and `aiops demo` use: every (day, model) partition is a real Dagster
run recorded in the instance under the home folder, so `make ui` shows the same runs,
materializations, metadata plots and check results afterwards.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import sqlalchemy as sa

from aiops_pipelines.core.config import AppConfig, aiops_home, load_config
from aiops_pipelines.core.errors import AiopsError, ConfigError
from aiops_pipelines.core.files import replace_file
from aiops_pipelines.deploy import EMBEDDED_INSTANCE, embedded_instance, is_embedded_instance
from aiops_pipelines.io.locks import file_lock
from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
from aiops_pipelines.io.tracking import is_remote, prepare_tracking_store, probe
from aiops_pipelines.lifecycle.registry import live_canary
from aiops_pipelines.orchestration.definitions import ASSETS, defs
from aiops_pipelines.orchestration.partitions import (
    MODELS,
    daily_partitions,
    partition_key,
    partition_range_tags,
    range_of,
    range_tags,
)
from aiops_pipelines.orchestration.recovery import Debris, clear_debris, process_tags
from aiops_pipelines.orchestration.resources import (
    Clock,
    MonitoringConfig,
    SourceSettings,
    default_resources,
)
from aiops_pipelines.signals.profile.day import require_reference_columns
from aiops_pipelines.signals.profile.profiles import DatasetProfile
from assets.alerts import model_alerts, ops_overview
from assets.canary import canary_report
from assets.lifecycle import retrained_model
from assets.monitoring import drift_report, feature_profile, reference_profile
from assets.operations import ops_report
from assets.performance import performance_report
from assets.slo import slo_report
from sensors.canary import canary_verdict_sensor
from sensors.delivery import alert_delivery_sensor
from sensors.failures import pipeline_failure_sensor, root_error
from sensors.labels import late_labels_sensor
from sensors.mlflow_outbox import mlflow_outbox_sensor
from sensors.retrain import retrain_sensor

ALL_ASSETS = ASSETS  # every asset, so any selection resolves its upstream keys


def dagster_home() -> Path:
    """`$DAGSTER_HOME`, else `<aiops home>/dagster`; a new one gets the embedded instance
    (`deploy.embedded_instance`: SQLite storages under it, telemetry off), and one copied or
    moved from elsewhere has it pointed at its own place again. Any other dagster.yaml (an
    earlier home's, `aiops instance`'s, the user's) is left as it is."""
    env = os.environ.get("DAGSTER_HOME")
    home = (Path(env) if env else aiops_home() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    want = embedded_instance(home)
    try:
        have = cfg.read_text()
    except FileNotFoundError:
        have = None
    if have is None or (have != want and have != EMBEDDED_INSTANCE and is_embedded_instance(have)):
        replace_file(cfg, lambda tmp: tmp.write_text(want))  # atomic: another run may read it
    return home


def persistent_instance() -> dg.DagsterInstance:
    """The local Dagster instance the UI reads (SQLite under the home folder).

    Opening it creates its databases on first use; two `aiops run`s starting on a new home
    would both create them ("table alembic_version already exists"), so one process at a time
    opens it."""
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    with file_lock(home / ".aiops-open.lock", timeout=600):
        return dg.DagsterInstance.get()


@dataclass
class PartitionOutcome:
    model: str
    partition: str
    success: bool
    error: str = ""
    kind: str = "daily"  # "reference", "daily", or the name of the sensor that asked for it


@dataclass
class RangeOutcome:
    outcomes: list[PartitionOutcome] = field(default_factory=list)
    debris: Debris = field(default_factory=Debris)
    """What runs that died had left, failed and released at the start (`recovery`)."""
    mlflow_down: str | None = None
    """Why MLflow could not be reached at the start, if it could not (loggings queued)."""
    mlflow_queued: int = 0
    """MLflow loggings still queued at the end (replayed once MLflow answers)."""

    @property
    def failed(self) -> list[PartitionOutcome]:
        return [o for o in self.outcomes if not o.success]


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The failed blocking checks' own explanations, else the first failed step's error."""
    blocked = [
        f"{e.asset_key.to_user_string()} check '{e.check_name}' failed: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR and e.description
    ]
    if blocked:
        return "; ".join(blocked)
    return root_error(result.all_events) or "run failed (see the Dagster UI for the run's logs)"


MAX_RANGE_DAYS = 31
"""The most days of one model one run of `aiops run` covers (a failed range is run again day by
day, so this bounds what a failure costs)."""


def _chunks(days: Sequence[str], tick_days: int, most: int) -> list[list[str]]:
    """`days` cut after every `tick_days`-th day (where the late-labels sensor ticks; 0: never)
    and into pieces of at most `most` days."""
    out: list[list[str]] = [[]]
    for i, day in enumerate(days):
        if len(out[-1]) == most:
            out.append([])
        out[-1].append(day)
        if tick_days and i % tick_days == tick_days - 1 and i < len(days) - 1:
            out.append([])
    return [c for c in out if c]


def days_between(start: date, end: date) -> list[str]:
    if end < start:
        raise AiopsError(f"--end {end} is before --start {start}")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


class _Launcher:
    """Runs what a sensor requested, in-process, honouring run keys like the daemon does."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        resources: dict,
        quiet: dict,
        models: set[str] | None = None,
    ) -> None:
        self.instance = instance
        self.resources = resources
        self.quiet = quiet
        self.cursors: dict[str, str | None] = {}
        self.launched: set[str] = set()
        self.models = models
        """Only these models' partitions are run when a sensor asks (None: every model)."""

    def tick(
        self,
        sensor: dg.SensorDefinition,
        selection: list | None,
        record,
        days: Sequence[str] | None = None,
        *,
        rerun: bool = False,
    ) -> int:
        """Evaluate the sensor once and run what it requests (for a partitioned request, only
        when its day is in `days`, if given: a backfill re-judges the days it covers).

        A run key is launched once, like the daemon does; with `rerun` once per invocation
        (re-judging a range again must replay its late labels again, or a second run of the
        same range would leave each day as first judged, not as the labels left it)."""
        ctx = dg.build_sensor_context(
            definitions=defs,
            instance=self.instance,
            cursor=self.cursors.get(sensor.name),
            resources=self.resources,
            sensor_name=sensor.name,
        )
        with dg.partition_loading_context(dynamic_partitions_store=self.instance):
            result = sensor.evaluate_tick(ctx)
        self.cursors[sensor.name] = result.cursor
        launched = 0
        for req in result.run_requests or []:
            ranged = range_of(req.tags)
            if ranged is not None:  # one model's days in one run (late labels)
                model, first, last = ranged
                if self.models is not None and model not in self.models:
                    continue
                inside = [d for d in days if first <= d <= last] if days is not None else []
                if days is not None and not inside:
                    continue
                if inside:  # a backfill re-judges the days it covers
                    tags = {**req.tags, **partition_range_tags(model, inside[0], inside[-1])}
                    req = req._replace(tags=tags)
                launched += self._launch(req, selection, sensor.name, record, rerun=rerun)
                continue
            day, _, model = str(req.partition_key or "").partition("|")
            if days is not None and req.partition_key is not None and day not in days:
                continue
            if self.models is not None and model and model not in self.models:
                continue  # another model's: an `aiops run --model` (or worker) leaves it alone
            launched += self._launch(req, selection, sensor.name, record, rerun=rerun)
        return launched

    def _launch(
        self,
        req: dg.RunRequest,
        selection: list | None,
        sensor_name: str,
        record,
        *,
        rerun: bool = False,
    ) -> int:
        tags = {"dagster/sensor_name": sensor_name}
        if req.run_key:
            tags["dagster/run_key"] = req.run_key
        launch_tags = {**req.tags, **tags, **process_tags()}
        if req.run_key and (
            req.run_key in self.launched
            or (not rerun and self.instance.get_runs(filters=dg.RunsFilter(tags=tags), limit=1))
        ):
            return 0  # the daemon never launches the same run key twice
        if req.run_key:
            self.launched.add(req.run_key)
        run_config = {**(req.run_config or {}), **self.quiet}
        if req.job_name and selection is None:  # an op job (rollback, promotion)
            res = defs.resolve_job_def(req.job_name).execute_in_process(
                run_config=run_config,
                instance=self.instance,
                resources=self.resources,
                raise_on_error=False,
                tags=launch_tags,
            )
        else:
            with dg.partition_loading_context(dynamic_partitions_store=self.instance):
                res = dg.materialize(
                    ALL_ASSETS,
                    selection=selection,
                    partition_key=req.partition_key,
                    instance=self.instance,
                    resources=self.resources,
                    raise_on_error=False,
                    run_config=run_config,
                    tags=launch_tags,
                )
        ranged = range_of(req.tags)
        record(
            PartitionOutcome(
                str(req.partition_key)
                if ranged is None
                else f"{ranged[1]}..{ranged[2]}|{ranged[0]}",
                req.run_key or "",
                res.success,
                "" if res.success else _failure_message(res),
                kind=sensor_name,
            )
        )
        return 1

    def materialize(
        self,
        selection: list,
        key: str | dg.MultiPartitionKey | None,
        range_tags: Mapping[str, str] | None = None,
    ):
        """One run of `selection` for a partition, or for a range of them (`range_tags`), as
        `aiops run` launches it."""
        with dg.partition_loading_context(dynamic_partitions_store=self.instance):
            return dg.materialize(
                ALL_ASSETS,
                selection=selection,
                partition_key=key,
                instance=self.instance,
                resources=self.resources,
                raise_on_error=False,
                run_config=self.quiet,
                tags={"aiops/launched_by": "aiops-run", **process_tags(), **(range_tags or {})},
            )

    def failed_run(self, res: dg.ExecuteInProcessResult, record) -> int:
        """What the daemon's pipeline_failure_sensor does with a failed run: a finding, then
        the model's alert run (so the failure reaches the alert routes)."""
        ctx = dg.build_run_status_sensor_context(
            sensor_name=pipeline_failure_sensor.name,
            dagster_instance=self.instance,
            dagster_run=res.dagster_run,
            dagster_event=res.get_run_failure_event(),
            resources={k: self.resources[k] for k in ("monitoring_config", "store")},
        ).for_run_failure()
        req = pipeline_failure_sensor(ctx)
        if isinstance(req, dg.RunRequest):
            return self._launch(req, [model_alerts], pipeline_failure_sensor.name, record)
        return 0


def _add_models(instance: dg.DagsterInstance, keys: Sequence[str]) -> None:
    """Register the models as partitions; another run registering them at the same moment
    makes the insert fail on its unique key, and is fine."""
    new = [k for k in keys if k not in set(instance.get_dynamic_partitions(MODELS))]
    if not new:
        return
    try:
        instance.add_dynamic_partitions(MODELS, new)
    except sa.exc.IntegrityError:
        if set(new) - set(instance.get_dynamic_partitions(MODELS)):
            raise


def _entering_its_instance(run: Callable[..., RangeOutcome]) -> Callable[..., RangeOutcome]:
    """Run with the persistent instance entered when none is given: Dagster reads its
    definitions' state through the instance the process entered last, and a closed one left
    there (by a caller, or a test) would break every run after it."""

    @functools.wraps(run)
    def wrapper(*args: Any, instance: dg.DagsterInstance | None = None, **kwargs: Any):
        if instance is not None:
            return run(*args, instance=instance, **kwargs)
        with persistent_instance() as owned:
            return run(*args, instance=owned, **kwargs)

    return wrapper


@_entering_its_instance
def run_range(
    config_path: str | os.PathLike[str],
    start: date,
    end: date,
    *,
    models: Sequence[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    render_html: bool = True,
    refresh_reference: bool = False,
    labels: Literal["replay", "now"] = "replay",
    live: bool = False,
    label_tick_days: int = 7,
    overview: bool = True,
    daily: bool = True,
    runs: Literal["range", "day"] = "range",
    on_progress: Callable[[PartitionOutcome], None] | None = None,
) -> RangeOutcome:
    """Materialize reference_profile (once per model, again for every model with
    `refresh_reference`), then feature_profile, drift_report and performance_report for every
    (day, model) in the range. A failed partition is recorded and the rest go on. A stored
    reference built on other features than the config's is refused up front (`ConfigError`)
    unless `refresh_reference` rebuilds it.

    `labels="replay"` (the default) judges each day as on-call saw it: at the end of that day,
    with only the outcomes observed by then, and every `label_tick_days` the late-labels
    sensor ticks as the daemon would (its re-judging runs executed in-process), so the stored
    history is what the daemon would have left. `labels="now"` judges every day with the
    outcomes known now.

    After each day's models the alert-delivery sensor ticks, as the daemon's would, and its
    delivery run sends what is pending (every route within its budget, a route whose breaker
    is open left alone). A backfill records alerts but does not page about the past:
    notifications are aged from the real time, those older than `alerting.max_event_age_days`
    are held, and each route gets one summary line about them (with the first recent day,
    else at the end). With `live` (the demo's simulated life) the replayed clock is "now" for
    notifications too, and the canary-verdict and retrain sensors tick and act as well.

    `runs="range"` (the default): each model's days run as one Dagster run per chunk (at most
    `MAX_RANGE_DAYS`, cut where the late-labels sensor ticks), still one materialization and
    one stored row set per (day, model), each day judged at its end; a chunk that fails is run
    again day by day, so a failure is reported for its day as a daily run reports it. A
    backfill's chunk writes the overview page of its last day (any other day's with `aiops
    overview --day D`). In the `live` life a model with a canary judged within the chunk runs
    day by day, and after each day of the chunk its notifications are delivered (only those
    of that day and before: `Clock.replayed_day`) and the canary sensor ticks, so what on-call
    is sent, and when the canary is acted on, are as with daily runs; the overview page is the
    chunk's last day's, as a backfill's. `runs="day"`: one run per (day, model), as the
    daemon's daily schedule launches them.

    A sensor's request for a model outside `models` is left alone. `daily=False` runs no
    model's partition: only each day's delivery and overview page (what `aiops run --workers`
    does once its workers have run the models).
    """
    config: AppConfig = load_config(config_path)
    keys = [m.key for m in config.models]
    if models:
        unknown = [m for m in models if m not in keys]
        if unknown:
            raise ConfigError(f"unknown model(s) {unknown}; configured: {keys}", path=config.path)
        keys = [k for k in keys if k in models]
    if not daily:
        keys = []
    store = MonitoringStore(config.storage.store_url)
    stored = {}
    for key in keys:
        model = config.model(key)
        stored[key] = store.load_profile(model.tenant, model.name, "reference", REFERENCE_PARTITION)
    if not refresh_reference:
        # a config whose features changed since a reference was built: one clear error up
        # front, rather than every day of every model failing (and alerting) on it
        for key, have in stored.items():
            if have is not None:
                require_reference_columns(
                    config.model(key),
                    DatasetProfile.from_dict(have["profile"]),
                    config_path=config.path,
                )
    _add_models(instance, keys)
    # before any asset: MLflow's database created or migrated by one process only (another
    # `aiops run` starting beside this one waits for it), and what runs that died left behind
    # failed and released
    prepare_tracking_store(config.storage.mlflow_tracking_uri, config.storage.artifacts_dir)
    # MLflow asked once, within seconds: when it does not answer, every logging of this run is
    # queued in the store at once instead of each waiting on it (`io.mlflow_outbox`)
    uri = config.storage.mlflow_tracking_uri
    mlflow_down = probe(uri) if is_remote(uri) else None  # a local store: prepared just above
    debris = clear_debris(instance, config, store)
    resources = {
        **default_resources(),
        "monitoring_config": MonitoringConfig(config_path=str(Path(config_path).resolve())),
        "sources": SourceSettings(render_html=render_html),
    }
    # the progress bar is the console output; Dagster's event log stays in the instance
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    outcome = RangeOutcome(debris=debris, mlflow_down=mlflow_down)

    def record(o: PartitionOutcome) -> None:
        outcome.outcomes.append(o)
        if on_progress:
            on_progress(o)

    for key in keys:
        if stored[key] is None or refresh_reference:
            res = dg.materialize(
                ALL_ASSETS,
                selection=[reference_profile],
                partition_key=key,
                instance=instance,
                resources=resources,
                raise_on_error=False,
                run_config=quiet,
                tags=process_tags(),
            )
            if not res.success:
                record(
                    PartitionOutcome(
                        key, "reference", False, _failure_message(res), kind="reference"
                    )
                )
    failed_refs = {o.model for o in outcome.failed}
    last = daily_partitions.get_last_partition_key()
    days = days_between(start, end)
    first = daily_partitions.get_first_partition_key()
    if first is not None and days[0] < first:
        raise ConfigError(
            f"--start {days[0]} is before the first daily partition {first}: set "
            f"`start_date: {days[0]}` (or earlier) at the top of the config to monitor it",
            path=config.path,
            field="start_date",
        )
    launcher = _Launcher(instance, resources, quiet, set(keys) if models or not daily else None)
    replay = labels == "replay"
    ranged = runs == "range"

    def selection_for(key: str) -> list:
        selection = [feature_profile, drift_report, canary_report, ops_report]
        if config.model(key).outcomes is not None:
            selection.append(performance_report)
        if config.model(key).slos:
            selection.append(slo_report)
        return [*selection, model_alerts]

    def closed(day: str, key: str) -> bool:
        if last is None or day > last:
            record(
                PartitionOutcome(
                    key, day, False, f"partition {day} is not closed yet (last: {last})"
                )
            )
            return False
        if key in failed_refs:
            record(PartitionOutcome(key, day, False, "reference profile failed"))
            return False
        return True

    def one_day(day: str, key: str) -> None:
        res = launcher.materialize(selection_for(key), partition_key(day, key))
        record(
            PartitionOutcome(key, day, res.success, "" if res.success else _failure_message(res))
        )
        if not res.success:
            launcher.failed_run(res, record)

    def day_clock(day: str) -> Clock:  # the end of `day`, as the replay's sensors see it
        return Clock(day_ends=True, alerts_from_wall_clock=not live).for_day(day)

    def overview_pages(pages: list[str]) -> None:
        if not overview or not pages:
            return
        if len(pages) == 1:
            res = launcher.materialize([ops_overview], pages[0])
        else:
            res = launcher.materialize([ops_overview], None, range_tags(pages[0], pages[-1]))
        for day in pages:
            error = "" if res.success else _failure_message(res)
            record(PartitionOutcome("overview", day, res.success, error, kind="overview"))

    def canary_judged(key: str, day: str) -> bool:
        """Whether `key` has a canary judged by `day` (or its registry cannot be read): in the
        demo's life such a model runs day by day, the canary sensor acting after each day."""
        model = config.model(key)
        try:
            live_now = live_canary(config.storage.mlflow_tracking_uri, model.registry_name)
        except Exception:  # MLflow unreadable: as the daemon would, day by day
            return True
        return live_now.window_start(day) is not None

    for chunk in _chunks(days, label_tick_days if replay else 0, MAX_RANGE_DAYS if ranged else 1):
        # in the demo's life a model with a canary under analysis goes day by day, so its
        # canary is rolled back or promoted on the day of the verdict, as the daemon does (the
        # others' days of the chunk run first, each judged at its end)
        daily_keys = [k for k in keys if canary_judged(k, chunk[-1])] if live and ranged else []
        if ranged:
            # each model's days of the chunk in one run, each day judged at its end
            if replay:
                launcher.resources = {
                    **resources,
                    "clock": Clock(day_ends=True, alerts_from_wall_clock=not live),
                }
            for key in keys:
                if key in daily_keys:
                    continue
                todo = [day for day in chunk if closed(day, key)]
                if len(todo) == 1:
                    one_day(todo[0], key)
                elif todo:
                    res = launcher.materialize(
                        selection_for(key), None, partition_range_tags(key, todo[0], todo[-1])
                    )
                    if res.success:
                        for day in todo:
                            record(PartitionOutcome(key, day, True))
                    else:  # each day on its own: which failed, and why, as a daily run says
                        for day in todo:
                            one_day(day, key)
            # the demo's life goes on day by day: the canary models' day, then the day's
            # notifications as the daemon sent them that day, then the canary sensor
            for day in chunk if live else []:
                launcher.resources = {**resources, "clock": day_clock(day)}
                for key in daily_keys:
                    if closed(day, key):
                        one_day(day, key)
                launcher.tick(alert_delivery_sensor, None, record)
                launcher.tick(canary_verdict_sensor, None, record)
        else:
            (day,) = chunk
            if replay:
                launcher.resources = {**resources, "clock": day_clock(day)}
            for key in keys:
                if closed(day, key):
                    one_day(day, key)
        if replay:  # the sensors tick at the end of the chunk's last day
            launcher.resources = {**resources, "clock": day_clock(chunk[-1])}
        # the day's notifications go out before its overview page is written
        launcher.tick(alert_delivery_sensor, None, record)
        launcher.tick(mlflow_outbox_sensor, None, record)  # MLflow back: what waited on it
        # the fleet's page is a view of "now": a range writes its last day's (each chunk's, a
        # weekly one through a backfill or the demo's life: 0.7 s a page, a tenth of the
        # demo's days' time when it wrote each day's); any other day's on demand, `aiops
        # overview --day D`
        pages = [day for day in chunk if last is None or day <= last]
        overview_pages(pages[-1:] if ranged else pages)
        i = days.index(chunk[-1])
        if replay and live:
            launcher.tick(canary_verdict_sensor, None, record)  # cheap: it reads verdicts
        if replay and (i % label_tick_days == label_tick_days - 1 or i == len(days) - 1):
            launcher.tick(
                late_labels_sensor,
                [performance_report],
                record,
                None if live else days,
                rerun=not live,
            )
            if live:
                launcher.tick(retrain_sensor, [retrained_model], record)
    # a range that never reached a recent day: its held-back notifications are summarised now
    # (a route that fails keeps them for the next run, as pending notifications wait)
    if config.alerting.routes:
        store.request_held_summaries([r.name for r in config.alerting.routes])
    launcher.tick(alert_delivery_sensor, None, record)
    launcher.tick(mlflow_outbox_sensor, None, record)
    outcome.mlflow_queued = store.tracking_backlog()[0]
    return outcome
