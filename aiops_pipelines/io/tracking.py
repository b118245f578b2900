"""MLflow: an experiment per model, one run per (asset, partition), registry aliases.

Runs are idempotent per partition: the run for ("drift_report", "2026-01-05") is found by its
tags and updated in place on a re-run, so MLflow never piles up duplicates. Each re-run logs its
metrics at the next step, so the history of a value that changes (e.g. coverage as late labels
arrive) stays visible in the run's metric charts.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

from aiops_pipelines.core.errors import AiopsError
from aiops_pipelines.core.process import Process
from aiops_pipelines.io.locks import file_lock, lock_folder, sqlite_file

log = logging.getLogger(__name__)

TAG_TENANT = "aiops.tenant"
TAG_MODEL = "aiops.model"
TAG_ASSET = "aiops.asset"
TAG_PARTITION = "aiops.partition"
TAG_ATTEMPT = "aiops.attempt"
#: The process logging the run's current attempt (`core.process`): a run left RUNNING by a
#: process that died is ended as FAILED by the next `aiops run`.
TAG_PROCESS = "aiops.process"


#: How long a process waits for another to create or migrate the MLflow database.
PREPARE_TIMEOUT_SECONDS = 600.0
_prepared: set[str] = set()
_relocated: set[str] = set()

#: Once MLflow failed to answer, how long this process queues its loggings without trying
#: again (then one probe decides).
RETRY_AFTER_SECONDS = 60.0
#: The probe's connect and read timeout (one request, no retry).
PROBE_TIMEOUT_SECONDS = 5.0
_down: dict[str, tuple[float, str]] = {}


class TrackingUnavailable(AiopsError):
    """MLflow did not answer (refused, timed out, 5xx): what was to be logged is queued."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"MLflow at {uri} unreachable: {reason}")
        self.uri = uri
        self.reason = reason


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says MLflow could not be reached or answered with a
    server error, as opposed to refusing what was asked (a bad value: our bug, not queued)."""
    import requests
    import sqlalchemy as sa
    from mlflow.exceptions import MlflowException

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TrackingUnavailable | requests.RequestException | ConnectionError):
            return True
        if isinstance(exc, TimeoutError | sa.exc.OperationalError):
            return True
        if isinstance(exc, MlflowException):
            # rest_utils wraps every transport failure (after its retries) this way
            if str(exc.message).startswith("API request to "):
                return True
            if exc.get_http_status_code() in (429, 502, 503, 504):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def mark_down(uri: str, reason: str) -> None:
    """Remember, for this process, that MLflow at `uri` did not answer: its loggings are
    queued without waiting on it for `RETRY_AFTER_SECONDS`."""
    if uri not in _down:
        log.warning("MLflow at %s unreachable (%s): loggings are queued", uri, reason)
    _down[uri] = (time.monotonic() + RETRY_AFTER_SECONDS, reason)


def down_reason(uri: str) -> str | None:
    """Why MLflow at `uri` is taken as down now, or None (up, or time to try it again)."""
    until, reason = _down.get(uri, (0.0, ""))
    return reason if time.monotonic() < until else None


def is_remote(uri: str) -> bool:
    return uri.split(":", 1)[0].lower() in ("http", "https")


def probe(uri: str, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
    """Ask MLflow at `uri` once, within `timeout` seconds: None when it answers, else why not.
    The verdict is remembered (`down_reason`). A server that answers at all (even 401 or 404)
    is reachable; only no answer, or a 5xx, is down."""
    reason = None
    if is_remote(uri):
        import requests

        url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
        try:
            status = requests.get(url, params={"max_results": 1}, timeout=timeout).status_code
            if status >= 500:
                reason = f"HTTP {status} from {url}"
        except requests.RequestException as exc:
            reason = f"{type(exc).__name__}: {exc}"
    else:
        try:
            _prepared.discard(uri)
            prepare_tracking_store(uri)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the store cannot be used
            reason = f"{type(exc).__name__}: {exc}"
    if reason is None:
        _down.pop(uri, None)
    else:
        mark_down(uri, reason)
    return reason


def prepare_tracking_store(
    tracking_uri: str, artifacts_dir: str | os.PathLike[str] | None = None
) -> None:
    """Create (or migrate) the MLflow database of `tracking_uri` once, before anything else
    uses it, holding a lock beside a SQLite file while doing so.

    MLflow creates its tables on first use by running its migrations, unguarded: two runs that
    start at once on a new SQLite store both migrate it and one fails ("table
    _alembic_tmp_metrics already exists", "duplicate column name: step"), or leaves it half
    migrated for every run after. The second process waits here, then finds it ready.

    Given the config's `artifacts_dir`, a world folder that was moved or copied also gets its
    MLflow artifact locations pointed at its own artifacts (`relocate.relocate_artifacts`).
    """
    if is_remote(tracking_uri):
        return  # a tracking server migrates its own database and keeps its artifacts
    if tracking_uri in _prepared and (artifacts_dir is None or tracking_uri in _relocated):
        return
    db = sqlite_file(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    guard = (
        file_lock(lock_folder(db) / "prepare.lock", timeout=PREPARE_TIMEOUT_SECONDS)
        if db is not None
        else nullcontext()
    )
    with guard:
        if db is not None:
            _commit_without_fsync(db)
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
        if db is not None:
            _write_ahead_log(db)
        if artifacts_dir is not None:
            from aiops_pipelines.io.relocate import relocate_artifacts

            relocate_artifacts(tracking_uri, artifacts_dir)
            _relocated.add(tracking_uri)
    _prepared.add(tracking_uri)


_NORMAL_SYNC: set[str] = set()
"""The MLflow SQLite files whose connections commit without an fsync (`_commit_without_fsync`)."""


def _commit_without_fsync(db: Path) -> None:
    """Open this process's connections to the MLflow SQLite file `db` with `synchronous =
    NORMAL`, as the monitoring store's are (`io.schema`).

    MLflow opens its SQLite database in SQLite's default rollback journal, fsyncing the
    journal and the file on every commit, and commits several times per call (a `log_batch`
    commits its tags, then its metrics): measured here, 200 partition runs logged in 15.6 s
    (8.3 s of CPU), 7.3-8.3 s with the write-ahead log and NORMAL (WAL alone: 11.4 s). In WAL
    mode NORMAL never corrupts the database; a power cut may undo its last commits, which the
    next run logs again (every value is also in the monitoring store). MLflow has no setting
    for it, so the pragma is set by a listener on every SQLAlchemy engine's new connections,
    for this file only (its path asked of the connection once, as it opens).
    """
    if not _NORMAL_SYNC:
        sa.event.listen(sa.engine.Engine, "connect", _normal_sync)
    _NORMAL_SYNC.add(os.path.realpath(db))


def _normal_sync(dbapi_conn: Any, _record: Any) -> None:
    if not isinstance(dbapi_conn, sqlite3.Connection):
        return
    files = [row[2] for row in dbapi_conn.execute("PRAGMA database_list") if row[1] == "main"]
    if files and files[0] and os.path.realpath(files[0]) in _NORMAL_SYNC:
        dbapi_conn.execute("PRAGMA synchronous = NORMAL")


def _write_ahead_log(db: Path) -> None:
    """Put the MLflow SQLite file in WAL mode (kept in the file: every later connection, the
    MLflow UI's too, uses it). Another process holding the database now only delays it to the
    next run."""
    try:
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.Error as exc:
        log.debug("MLflow database %s left in its journal mode: %s", db, exc)
        return
    if str(mode).lower() != "wal":
        log.debug("MLflow database %s stays in journal mode %s", db, mode)


def experiment_name(model_key: str) -> str:
    return f"aiops/{model_key}"


def artifact_root(artifacts_dir: str | os.PathLike[str], model_key: str) -> str:
    """Every MLflow artifact lives under the home folder, never in the cwd's ./mlruns."""
    path = Path(artifacts_dir) / "mlflow" / model_key
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve().as_uri()


def ensure_experiment(
    client: MlflowClient, model_key: str, artifacts_dir: str | os.PathLike[str]
) -> str:
    """The id of the model's experiment, created with its artifacts under `artifacts_dir`."""
    name = experiment_name(model_key)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    tenant, _, model = model_key.partition(".")
    return client.create_experiment(
        name,
        artifact_location=artifact_root(artifacts_dir, model_key),
        tags={TAG_TENANT: tenant, TAG_MODEL: model},
    )


def finite_metrics(metrics: Mapping[str, float | None]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out[k] = f
    return out


class Tracker:
    """Thin, idempotent wrapper over MlflowClient for monitoring results."""

    def __init__(self, tracking_uri: str, artifacts_dir: str | os.PathLike[str]) -> None:
        self.tracking_uri = tracking_uri
        self.artifacts_dir = str(artifacts_dir)
        prepare_tracking_store(tracking_uri, artifacts_dir)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiments: dict[str, str] = {}

    def experiment(self, model_key: str) -> str:
        """The model's experiment id (looked up, or created, once per tracker)."""
        if model_key not in self._experiments:
            self._experiments[model_key] = ensure_experiment(
                self.client, model_key, self.artifacts_dir
            )
        return self._experiments[model_key]

    def find_run(self, model_key: str, asset: str, partition: str) -> Any | None:
        exp_id = self.experiment(model_key)
        runs = self.client.search_runs(
            [exp_id],
            filter_string=(
                f"tags.`{TAG_ASSET}` = '{asset}' and tags.`{TAG_PARTITION}` = '{partition}'"
            ),
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=10,
            order_by=["attributes.start_time ASC"],
        )
        if not runs:
            return None
        for extra in runs[1:]:  # heal duplicates left by an interrupted older run
            self.client.delete_run(extra.info.run_id)
        return runs[0]

    @contextmanager
    def partition_run(
        self, model_key: str, asset: str, partition: str, *, params: Mapping[str, Any] | None = None
    ) -> Iterator[PartitionRun]:
        """Open the (asset, partition) run, creating it once and reusing it on re-runs.

        A new run is created RUNNING with the attempt and the process logging it as tags (a run
        left RUNNING by a process that dies is recognised by them); what the block logs is sent
        in one batch as it ends, with the run's end: four MLflow calls. A later attempt changes
        nothing in the run until its one batch, which carries its attempt and process tags too,
        so an attempt that dies leaves the run as the last finished one left it (its Dagster
        run is failed by the next `aiops run`): two calls, the search and the batch (three
        when the run had failed), where flagging the run RUNNING first took five. The late
        labels re-judge every day two or three times, so most of a replay's attempts are
        later ones."""
        tenant, _, model = model_key.partition(".")
        existing = self.find_run(model_key, asset, partition)
        process = str(Process.current())
        if existing is None:
            attempt = 0
            run = self.client.create_run(
                self.experiment(model_key),
                run_name=f"{asset}:{partition}",
                tags={
                    TAG_TENANT: tenant,
                    TAG_MODEL: model,
                    TAG_ASSET: asset,
                    TAG_PARTITION: partition,
                    "date": partition,
                    TAG_ATTEMPT: str(attempt),
                    TAG_PROCESS: process,
                },
            )
        else:
            run = existing
            attempt = int(run.data.tags.get(TAG_ATTEMPT, "0")) + 1
        handle = PartitionRun(self.client, run, attempt)
        if existing is not None:
            handle.set_tags({TAG_ATTEMPT: str(attempt), TAG_PROCESS: process})
        if params:
            handle.log_params(params)
        try:
            yield handle
            handle.flush()
        except BaseException:
            try:
                self.client.set_terminated(run.info.run_id, status="FAILED")
            except Exception:  # noqa: BLE001 - MLflow gone: the error that matters is raised
                log.debug("could not end MLflow run %s", run.info.run_id, exc_info=True)
            raise
        if existing is None or existing.info.status != "FINISHED":
            self.client.set_terminated(run.info.run_id, status="FINISHED")

    def end_dead_runs(self) -> list[str]:
        """End as FAILED the monitoring runs left RUNNING by a process on this host that died
        (killed mid-attempt: `partition_run` never got to end them). Returns their ids."""
        experiments = self.client.search_experiments(filter_string="name LIKE 'aiops/%'")
        if not experiments:
            return []
        ended = []
        for run in self.client.search_runs(
            [e.experiment_id for e in experiments],
            filter_string="attributes.status = 'RUNNING'",
            max_results=10_000,
        ):
            stamp = Process.parse(run.data.tags.get(TAG_PROCESS))
            if stamp is not None and stamp.is_dead():
                self.client.set_tag(
                    run.info.run_id, "aiops.failed_because", f"process {stamp} died mid-attempt"
                )
                self.client.set_terminated(run.info.run_id, status="FAILED")
                ended.append(run.info.run_id)
        return ended

    def record(
        self,
        model_key: str,
        asset: str,
        partition: str,
        *,
        metrics: Mapping[str, float | None] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        artifacts: Mapping[str, Path] | None = None,
    ) -> LoggedRun:
        """Log one attempt of an (asset, partition) in its run: metrics, params, tags and files.

        Returns the run id and, per artifact name, the URI of the uploaded file. Raises
        `TrackingUnavailable` at once while MLflow is known to be down (`down_reason`), or
        when this attempt finds it so (each request bounded by `storage.mlflow_timeout_seconds`
        and `storage.mlflow_retries`).
        """
        if (reason := down_reason(self.tracking_uri)) is not None:
            raise TrackingUnavailable(self.tracking_uri, reason)
        try:
            with self.partition_run(model_key, asset, partition, params=params) as run:
                if metrics:
                    run.log_metrics(metrics)
                if tags:
                    run.set_tags(tags)
                uris = {name: run.log_artifact(path) for name, path in (artifacts or {}).items()}
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            mark_down(self.tracking_uri, reason)
            raise TrackingUnavailable(self.tracking_uri, reason) from exc
        return LoggedRun(run.run_id, uris)


@dataclass(frozen=True)
class LoggedRun:
    """What `Tracker.record` logged: the run, and where each artifact went."""

    run_id: str
    artifacts: dict[str, str]


class PartitionRun:
    """What an asset logs into its partition's run: metrics, params and tags are kept and sent
    in one `log_batch` by `flush` (`Tracker.partition_run` calls it as the block ends); files
    are uploaded at once."""

    #: MLflow's limits per `log_batch` call
    MAX_METRICS, MAX_PARAMS, MAX_TAGS = 800, 100, 100  # and 1,000 values in all

    def __init__(self, client: MlflowClient, run: Any, attempt: int) -> None:
        self.client = client
        self.run_id: str = run.info.run_id
        self.artifact_uri: str = run.info.artifact_uri
        self.attempt = attempt
        self._known_params: dict[str, str] = dict(run.data.params or {})
        self._metrics: list[Metric] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}

    def log_metrics(self, metrics: Mapping[str, float | None]) -> None:
        ts = int(time.time() * 1000)
        self._metrics += [
            Metric(k, v, ts, self.attempt) for k, v in finite_metrics(metrics).items()
        ]

    def log_params(self, params: Mapping[str, Any]) -> None:
        """New params are logged; a param whose value changed since an earlier attempt is
        kept as the tag `param.<name>` (MLflow params are immutable)."""
        for k, v in params.items():
            value = str(v)[:6000]
            known = self._known_params.get(k)
            if known is None:
                self._params[k] = value
            elif known != str(v):
                self._tags[f"param.{k}"] = str(v)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})

    def flush(self) -> None:
        """Send what was logged since the last flush, in as few `log_batch` calls as MLflow's
        limits allow (one for an asset's usual few hundred values)."""
        metrics, params = self._metrics, [Param(k, v) for k, v in self._params.items()]
        tags = [RunTag(k, v) for k, v in self._tags.items()]
        while metrics or params or tags:
            self.client.log_batch(
                self.run_id,
                metrics=metrics[: self.MAX_METRICS],
                params=params[: self.MAX_PARAMS],
                tags=tags[: self.MAX_TAGS],
            )
            metrics = metrics[self.MAX_METRICS :]
            params, tags = params[self.MAX_PARAMS :], tags[self.MAX_TAGS :]
        self._known_params.update(self._params)
        self._metrics, self._params, self._tags = [], {}, {}

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> str:
        """Upload a file (replacing the previous attempt's copy) and return its artifact URI."""
        self.client.log_artifact(self.run_id, str(path), artifact_path)
        name = Path(path).name
        sub = f"{artifact_path}/{name}" if artifact_path else name
        return f"{self.artifact_uri}/{sub}"


@contextmanager
def fluent_uri(uri: str) -> Iterator[None]:
    """Point MLflow's global tracking and registry URI at `uri`, then restore what was there.

    `mlflow.sklearn.log_model` and `models:/` URIs only work through the global (fluent) state;
    restoring it keeps a caller's own MLflow setup (and environment variables) untouched.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as reg_utils
    from mlflow.tracking._tracking_service import utils as trk_utils

    prepare_tracking_store(uri)
    env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    prev_trk = getattr(trk_utils, "_tracking_uri", None)
    prev_reg = getattr(reg_utils, "_registry_uri", None)
    outer = mlflow.active_run()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # a run left open by an exception inside is ours; a caller's own run is not
        while (run := mlflow.active_run()) is not None and (
            outer is None or run.info.run_id != outer.info.run_id
        ):
            mlflow.end_run("FAILED")
        mlflow.set_tracking_uri(prev_trk)  # type: ignore[arg-type]  # None means "unset"
        reg_utils._registry_uri = prev_reg
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load `model` back: we built it, so all of them."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
