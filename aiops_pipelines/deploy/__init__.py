"""Production deployment files, shipped with the package, and `aiops instance`, which writes the
production Dagster instance (PostgreSQL storage, the queued run coordinator with a run limit per
tenant, run monitoring) into a Dagster home folder.

This is file work only: nothing here imports Dagster, so the CLI writes the file without loading
it. The files beside this module:

- `dagster.yaml.template`: the instance `aiops instance` renders;
- `docker/`: a Docker Compose deployment on the same instance whose runs each start in a
  container of their own (Dagster's DockerRunLauncher).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from string import Template

import yaml

from aiops_pipelines.core.config import aiops_home
from aiops_pipelines.core.errors import AiopsError
from aiops_pipelines.core.files import replace_file

DEPLOY_DIR = Path(__file__).resolve().parent
INSTANCE_TEMPLATE = DEPLOY_DIR / "dagster.yaml.template"
DOCKER_DIR = DEPLOY_DIR / "docker"

DEFAULT_PG_ENV = "AIOPS_DAGSTER_PG_URL"
TENANT_TAG = "aiops/tenant"
"""The run tag the template limits per value; the same as
`aiops_pipelines.orchestration.partitions.TENANT_TAG` (a test holds them equal)."""

EMBEDDED_INSTANCE = "telemetry:\n  enabled: false\n"
"""The dagster.yaml `aiops run` wrote into a new home before `embedded_instance` (Dagster's
default SQLite storages): still read as it is, and replaced by `aiops instance` without --force."""

LOCAL_STORAGE_MODULE = "aiops_pipelines.orchestration.local_instance"


def embedded_instance(home: Path) -> str:
    """The dagster.yaml `aiops run` writes into a new Dagster home `home`: Dagster's SQLite run
    and event-log storages under it, each reusing its connections
    (`aiops_pipelines.orchestration.local_instance`), the schedules Dagster's default, no
    telemetry. `aiops instance` replaces it without --force."""
    base = str(Path(home).expanduser().resolve())

    def storage(key: str, cls: str, folder: str) -> str:
        return (
            f"{key}:\n  module: {LOCAL_STORAGE_MODULE}\n  class: {cls}\n  config:\n"
            f"    base_dir: {json.dumps(f'{base}/{folder}')}\n"
        )

    return (
        EMBEDDED_INSTANCE
        + storage("run_storage", "PooledSqliteRunStorage", "history")
        + storage("event_log_storage", "PooledSqliteEventLogStorage", "history/events")
    )


def is_embedded_instance(text: str) -> bool:
    """Whether `text` is a dagster.yaml `aiops run` wrote (for this home or another: a home
    copied or moved keeps the file that names its old place)."""
    if text == EMBEDDED_INSTANCE:
        return True
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(doc, dict) or set(doc) != {"telemetry", "run_storage", "event_log_storage"}:
        return False
    base = doc["run_storage"].get("config", {}).get("base_dir", "")
    home = Path(str(base)).parent
    return isinstance(base, str) and text == embedded_instance(home)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class InstanceSettings:
    """What `aiops instance` puts into the template."""

    postgres_url_env: str = DEFAULT_PG_ENV
    max_concurrent_runs: int = 10
    per_tenant: int = 2

    def check(self) -> None:
        """Refuse settings the instance could not use, naming the option."""
        if not _ENV_NAME.match(self.postgres_url_env):
            raise AiopsError(
                f"--postgres-url-env {self.postgres_url_env!r} is not an environment variable "
                "name (letters, digits and _, not starting with a digit)"
            )
        if self.max_concurrent_runs < 1:
            raise AiopsError(
                f"--max-concurrent-runs must be 1 or more, not {self.max_concurrent_runs}"
            )
        if not 1 <= self.per_tenant <= self.max_concurrent_runs:
            raise AiopsError(
                f"--per-tenant must be between 1 and --max-concurrent-runs "
                f"({self.max_concurrent_runs}), not {self.per_tenant}"
            )


def url_problem(url: str) -> str | None:
    """Why dagster-postgres could not use `url`, if it could not: it needs the psycopg2 driver
    named (`postgresql+psycopg2://`). With SQLAlchemy 2.1 a bare `postgresql://` means psycopg 3,
    which sends parameters to the server, and PostgreSQL refuses them in the NOTIFY that
    dagster-postgres sends with every event."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "postgresql+psycopg2":
        return None
    return (
        f"a {scheme or 'malformed'}:// URL: dagster-postgres needs postgresql+psycopg2://... "
        "(with SQLAlchemy 2.1, postgresql:// means psycopg 3, on which it fails to write events)"
    )


class Written(StrEnum):
    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class InstanceFile:
    path: Path
    outcome: Written
    backup: Path | None = None
    """The previous file, kept when --force replaced one that was not the embedded default."""


def default_dagster_home() -> Path:
    """`$DAGSTER_HOME`, else `<aiops home>/dagster`: the folder `aiops run` and `make ui` use."""
    env = os.environ.get("DAGSTER_HOME")
    return Path(env).expanduser().resolve() if env else aiops_home() / "dagster"


def render_instance_yaml(settings: InstanceSettings) -> str:
    """The instance template with the settings put in (they are checked first)."""
    settings.check()
    return Template(INSTANCE_TEMPLATE.read_text()).substitute(
        postgres_url_env=settings.postgres_url_env,
        max_concurrent_runs=settings.max_concurrent_runs,
        per_tenant=settings.per_tenant,
    )


def write_instance_yaml(
    home: Path, settings: InstanceSettings, *, force: bool = False
) -> InstanceFile:
    """Write the rendered instance as `home/dagster.yaml`, atomically (a reader sees the old file
    or the new one, never part of one).

    A missing file is created only if it is still missing at the last moment; the same content
    is left alone; the embedded SQLite instance `aiops run` writes is replaced. Any other file is
    refused unless `force`, and then kept beside it as dagster.yaml.bak."""
    text = render_instance_yaml(settings)
    path = home / "dagster.yaml"
    try:
        existing = path.read_text()
    except FileNotFoundError:
        existing = None
    if existing == text:
        return InstanceFile(path, Written.UNCHANGED)
    if existing is None:
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".dagster.yaml.{os.getpid()}.tmp"
        tmp.write_text(text)
        try:
            os.link(tmp, path)  # fails if another writer created the file since
        except FileExistsError:
            raise AiopsError(f"{path} was created while this one was written; run again") from None
        finally:
            tmp.unlink(missing_ok=True)
        return InstanceFile(path, Written.CREATED)
    backup = None
    if not is_embedded_instance(existing):
        if not force:
            raise AiopsError(
                f"{path} exists and is not what this command writes (`aiops instance --stdout` "
                "with the same options prints that); --force replaces it and keeps the old one "
                "as dagster.yaml.bak"
            )
        backup = path.with_name("dagster.yaml.bak")
        shutil.copyfile(path, backup)
    replace_file(path, lambda tmp: tmp.write_text(text))
    return InstanceFile(path, Written.REPLACED, backup)
