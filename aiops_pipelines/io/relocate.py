"""A world folder that was moved or copied: its MLflow database pointed at its own artifacts.

A world keeps its MLflow database and its artifacts in one folder, and the config names both
through `${CONFIG_DIR}`, so everything moves with the folder except what MLflow itself records:
the absolute location of each experiment's artifacts, and from it of every run's, logged
model's and registered model version's (MLflow resolves a relative location against the cwd,
so a relative one is no way out). After `cp -r home copy/` the copy's runs would keep writing
their artifacts into the original folder, and would read nothing once it is deleted.

Every `aiops/<model_key>` experiment is created at `<artifacts_dir>/mlflow/<model_key>`
(`tracking.artifact_root`). When it is found at that layout under another folder, and this
world's artifacts folder holds the experiment's folder (it came along with the database), the
world was moved or copied from that folder: every artifact location MLflow recorded under it is
rewritten to this world's folder, in one transaction of the copy's database (the original's is
never opened). Only `file:` locations and plain paths are looked at; an artifact store
elsewhere (s3://, mlflow-artifacts:, a tracking server) is left alone.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlparse

from aiops_pipelines.io.locks import sqlite_file
from aiops_pipelines.io.tracking import experiment_name

log = logging.getLogger(__name__)

#: Where MLflow (3.x) records an artifact location, as an absolute file URI or path: the
#: column, and the rows of it that hold one (None: every row). A table or column the installed
#: MLflow does not have is skipped.
ARTIFACT_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("experiments", "artifact_location", None),
    ("runs", "artifact_uri", None),
    ("logged_models", "artifact_location", None),
    ("model_versions", "source", None),
    ("model_versions", "storage_location", None),
    ("workspaces", "default_artifact_root", None),
    ("trace_tags", "value", "\"key\" = 'mlflow.artifactLocation'"),
)
#: How long a rewrite waits for another process writing to the MLflow database.
BUSY_TIMEOUT_SECONDS = 60.0


def _local_path(location: str | None) -> str | None:
    """The absolute path of a `file:` URI or plain absolute path (None for anything else)."""
    if not location:
        return None
    if location.startswith("file:"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            return None
        return unquote(parsed.path)
    return location if location.startswith("/") else None


def _experiment_folder(artifacts_dir: Path, model_key: str) -> Path:
    """Where `tracking.artifact_root` puts the experiment of `model_key` (without creating it)."""
    return artifacts_dir / "mlflow" / model_key


def _same_folder(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def moved_from(db: Path, artifacts_dir: str | os.PathLike[str]) -> list[str]:
    """The artifacts folders (absolute paths) this world's MLflow database `db` still points at
    although the world now keeps its artifacts in `artifacts_dir`: none unless it was moved or
    copied. One query."""
    here = Path(artifacts_dir).resolve()
    prefix = experiment_name("")
    with closing(sqlite3.connect(db, timeout=BUSY_TIMEOUT_SECONDS)) as con:
        rows = con.execute(
            "SELECT name, artifact_location FROM experiments WHERE substr(name, 1, ?) = ?",
            (len(prefix), prefix),
        ).fetchall()
    old: list[str] = []
    for name, location in rows:
        model_key = name[len(prefix) :]
        path = _local_path(location)
        layout = f"/mlflow/{model_key}"
        if path is None or not path.endswith(layout):
            continue  # not ours to move: another artifact store, or a layout we did not make
        root = path[: -len(layout)]
        if root == str(here) or root in old or _same_folder(root, here):
            continue
        if not _experiment_folder(here, model_key).is_dir():
            # the artifacts did not come along with the database (e.g. the config points at a
            # new artifacts folder): the old ones are still where MLflow says, leave them
            log.warning(
                "MLflow experiment %s keeps its artifacts in %s, not under %s; left as it is",
                name,
                location,
                here,
            )
            continue
        old.append(root)
    return old


def _columns(con: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    """The `ARTIFACT_COLUMNS` this database has."""
    have = []
    for table, column, where in ARTIFACT_COLUMNS:
        names = {row[1] for row in con.execute(f'PRAGMA table_info("{table}")')}
        if column in names:
            have.append((table, column, where))
    return have


def _rewrite(
    con: sqlite3.Connection, columns: list[tuple[str, str, str | None]], old: str, new: str
) -> dict[str, int]:
    """Replace the leading `old` of every value that is `old` or starts with `old/`."""
    counts: dict[str, int] = {}
    n = len(old)
    for table, column, where in columns:
        cur = con.execute(
            f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
            f'WHERE substr("{column}", 1, ?) = ? '
            f'AND (length("{column}") = ? OR substr("{column}", ?, 1) = \'/\')'
            + (f" AND {where}" if where else ""),
            (new, n + 1, n, old, n, n + 1),
        )
        if cur.rowcount:
            key = f"{table}.{column}"
            counts[key] = counts.get(key, 0) + cur.rowcount
    return counts


def _forget_cached_repositories(prefixes: list[str]) -> None:
    """Drop MLflow's cached artifact repositories (one per run or logged model id, for the
    whole process) that point under a rewritten folder: a process that logged to the original
    world before opening its copy would otherwise keep writing a run's files to the original."""
    try:
        from mlflow.tracking._tracking_service import utils
    except ImportError:  # pragma: no cover - another MLflow layout: it has no such cache
        return
    cache = getattr(utils, "_artifact_repos_cache", None)
    if not isinstance(cache, dict):
        return
    for key, repo in list(cache.items()):
        uri = str(getattr(repo, "artifact_uri", ""))
        if any(uri == p or uri.startswith(f"{p}/") for p in prefixes):
            cache.pop(key, None)


def relocate_artifacts(tracking_uri: str, artifacts_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Point a moved or copied world's MLflow database (a SQLite `tracking_uri`) at the world's
    own `artifacts_dir`; returns how many values of which column were rewritten (empty when the
    world was not moved, or the tracking store is not a SQLite file).

    The caller holds the lock that `tracking.prepare_tracking_store` takes beside the database,
    so two processes starting at once on the copy do not both rewrite it; the rewrite is one
    transaction, so a process killed during it leaves the database as it was.
    """
    db = sqlite_file(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if db is None or not db.exists():
        return {}
    old_roots = moved_from(db, artifacts_dir)
    if not old_roots:
        return {}
    here = Path(artifacts_dir).resolve()
    counts: dict[str, int] = {}
    rewrites = [
        # as MLflow wrote them: a file URI (from `Path.as_uri`), or a plain path
        pair
        for old in old_roots
        for pair in ((Path(old).as_uri(), here.as_uri()), (old, str(here)))
    ]
    with closing(sqlite3.connect(db, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            columns = _columns(con)
            for before, after in rewrites:
                for key, n in _rewrite(con, columns, before, after).items():
                    counts[key] = counts.get(key, 0) + n
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    _forget_cached_repositories([before for before, _ in rewrites])
    log.info(
        "MLflow store %s belongs to a world moved or copied from %s: its artifact locations "
        "now point at %s (%s)",
        db,
        ", ".join(old_roots),
        here,
        ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "nothing to rewrite",
    )
    return counts
