"""MLflow loggings that wait for MLflow: queued in the store when it cannot be reached, and
replayed, in the order they were queued, when it answers again.

The monitoring store is the record of results; MLflow is a view of them. So an asset whose
results are stored does not fail, nor wait minutes, because MLflow is down: `log_or_queue`
tries once (each request bounded, see `StorageConfig.mlflow_retries`), and when MLflow does
not answer it keeps the metrics, params, tags and artifact files of the attempt (files under
`<artifacts_dir>/mlflow-outbox/<token>/`, paths stored relative to it) as one row per (run
key, asset, partition). A newer attempt of the same key replaces the row, since only the
latest is what the store holds; one that reaches MLflow removes it.

`replay` logs the queued rows, each under its partition's lock so a run re-computing the same
partition at that moment is never overwritten by an older queued attempt.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiops_pipelines.io.locks import LockTimeout
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import (
    Tracker,
    TrackingUnavailable,
    down_reason,
    finite_metrics,
    probe,
)

log = logging.getLogger(__name__)

OUTBOX_FOLDER = "mlflow-outbox"
#: How long a replay waits for a run working on the same partition before leaving that row
#: for the next replay.
REPLAY_LOCK_TIMEOUT_SECONDS = 30.0


def outbox_dir(artifacts_dir: str | Path) -> Path:
    return Path(artifacts_dir) / OUTBOX_FOLDER


@dataclass(frozen=True)
class Logged:
    """What `log_or_queue` did: the MLflow run and its artifact URIs, or (`queued`, the
    reason) the row waiting in the store, with the kept copies of the files."""

    run_id: str
    artifacts: dict[str, str]
    queued: str | None = None


def log_or_queue(
    tracker: Tracker,
    store: MonitoringStore,
    model_key: str,
    asset: str,
    partition: str,
    *,
    lock_key: str,
    metrics: Mapping[str, float | None] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    artifacts: Mapping[str, Path] | None = None,
) -> Logged:
    """Log one attempt of (model_key, asset, partition) to MLflow, or queue it when MLflow
    cannot be reached. The caller holds `lock_key`, the partition's lock."""
    folder = outbox_dir(tracker.artifacts_dir)
    try:
        run = tracker.record(
            model_key, asset, partition, metrics=metrics, params=params, tags=tags,
            artifacts=artifacts,
        )  # fmt: skip
    except TrackingUnavailable as exc:
        token = uuid.uuid4().hex
        kept: dict[str, str] = {}
        for name, path in (artifacts or {}).items():
            (folder / token).mkdir(parents=True, exist_ok=True)
            target = folder / token / Path(path).name
            shutil.copy2(path, target)
            kept[name] = f"{token}/{target.name}"
        payload = {
            "metrics": finite_metrics(metrics or {}),
            "params": {k: str(v) for k, v in (params or {}).items()},
            "tags": {k: str(v) for k, v in (tags or {}).items()},
            "artifacts": kept,
        }
        replaced = store.queue_tracking(
            model_key, asset, partition, lock_key=lock_key, token=token, payload=payload,
            error=exc.reason,
        )  # fmt: skip
        if replaced:
            shutil.rmtree(folder / replaced, ignore_errors=True)
        return Logged("", {n: str(folder / rel) for n, rel in kept.items()}, queued=exc.reason)
    for token in store.drop_queued_tracking(model_key, asset, partition):
        shutil.rmtree(folder / token, ignore_errors=True)
    return Logged(run.run_id, run.artifacts)


@dataclass
class ReplayReport:
    """What a `replay` did: rows logged, rows MLflow refused (kept, with their error), rows
    left waiting, and why MLflow could not be reached if it could not."""

    logged: int = 0
    refused: int = 0
    left: int = 0
    unreachable: str | None = None
    errors: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {
            "logged": self.logged,
            "refused": self.refused,
            "left": self.left,
            "unreachable": self.unreachable or "",
        }


def replay(
    tracker: Tracker,
    store: MonitoringStore,
    *,
    lock_timeout: float = REPLAY_LOCK_TIMEOUT_SECONDS,
) -> ReplayReport:
    """Log every queued row to MLflow, oldest first, once MLflow answers a probe. Stops at
    the first row MLflow does not answer for (the rest wait); a row MLflow refuses (a bad
    value) keeps its error and attempts, and the replay goes on."""
    report = ReplayReport()
    rows = store.queued_tracking()
    if not rows:
        return report
    uri = tracker.tracking_uri
    reason = down_reason(uri) or probe(uri)
    if reason is not None:
        report.unreachable, report.left = reason, len(rows)
        return report
    folder = outbox_dir(tracker.artifacts_dir)
    for i, row in enumerate(rows):
        try:
            with store.partition_lock(row["lock_key"], timeout=lock_timeout):
                if _replay_row(tracker, store, folder, row):
                    report.logged += 1
        except TrackingUnavailable as exc:
            report.unreachable, report.left = exc.reason, report.left + len(rows) - i
            break
        except LockTimeout:
            report.left += 1  # a run is working on that partition: it logs it, or we do later
        except Exception as exc:  # noqa: BLE001 - MLflow refused this row; the others go on
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            store.tracking_failed(row["id"], error)
            report.refused += 1
            report.errors.append(f"{row['model_key']} {row['asset']} {row['partition']}: {error}")
    if report.logged:
        log.info("replayed %d queued MLflow logging(s) to %s", report.logged, uri)
    return report


def _replay_row(tracker: Tracker, store: MonitoringStore, folder: Path, row: dict) -> bool:
    """Log one queued row if it is still the latest attempt of its key."""
    current = store.queued_tracking(row["model_key"], row["asset"], row["partition"])
    if not current or current[0]["token"] != row["token"]:
        return False  # logged or replaced meanwhile
    payload = row["payload"]
    files = {name: folder / rel for name, rel in payload["artifacts"].items()}
    missing = sorted(name for name, path in files.items() if not path.is_file())
    tags = dict(payload["tags"])
    if missing:  # removed by hand: log the rest, and say so on the run
        tags["aiops.missing_artifacts"] = ", ".join(missing)
    tracker.record(
        row["model_key"], row["asset"], row["partition"], metrics=payload["metrics"],
        params=payload["params"], tags=tags,
        artifacts={n: p for n, p in files.items() if n not in missing},
    )  # fmt: skip
    if store.tracking_logged(row["id"], row["token"]):
        shutil.rmtree(folder / row["token"], ignore_errors=True)
    return True
