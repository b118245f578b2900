"""What the whole suite shares.

Every test runs with its own home folder: nothing is written under ~/.aiops. A store on each
backend (SQLite always, PostgreSQL when AIOPS_TEST_POSTGRES_URL is set), and `make_world`, the
one way a test module builds its demo world.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import SourceConfig
from aiops_pipelines.deploy import embedded_instance
from aiops_pipelines.io.store import MonitoringStore

if TYPE_CHECKING:
    from aiops_pipelines.demo.world import DemoWorld

#: PostgreSQL for the store tests (set by .ci/run); without it those cases skip.
PG_ENV = "AIOPS_TEST_POSTGRES_URL"

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "aiops-home"
    home.mkdir()
    monkeypatch.setenv("AIOPS_HOME", str(home))
    monkeypatch.delenv("AIOPS_CONFIG", raising=False)
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(embedded_instance(dagster_home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return home


@contextmanager
def pg_schema(skip_reason: str) -> Iterator[str]:
    """A URL on $AIOPS_TEST_POSTGRES_URL whose tables land in a throwaway schema (dropped
    afterwards). Skips with `skip_reason` without the variable; fails if it is set and the
    server does not answer (CI sets it: never a silently skipped backend)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(skip_reason)
    schema = f"aiops_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable: {exc.orig}")
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A URL to an empty store: a SQLite file, or a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'store.db'}"
        return
    with pg_schema(f"PostgreSQL backend not tested: set {PG_ENV}=postgresql+psycopg://...") as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose tables land in a throwaway PostgreSQL schema (a source under test)."""
    with pg_schema(f"{PG_ENV} is not set (PostgreSQL source test)") as url:
        yield url


@pytest.fixture
def pg_table(request: pytest.FixtureRequest) -> Callable[..., SourceConfig]:
    """Writes a frame to a table, indexed on its timestamp, in a throwaway PostgreSQL schema
    (`pg_url`, asked for at the first write: a test that writes none needs no server); returns
    the source reading it."""

    def write(frame: pd.DataFrame, timestamp: str = "timestamp") -> SourceConfig:
        pg_url = request.getfixturevalue("pg_url")
        name = f"log_{uuid.uuid4().hex[:8]}"
        eng = sa.create_engine(pg_url)
        frame.to_sql(name, eng, index=False)
        with eng.begin() as conn:
            conn.execute(sa.text(f'CREATE INDEX "ix_{name}" ON "{name}" ("{timestamp}")'))
        eng.dispose()
        return SourceConfig(url=pg_url, table=name, chunk_rows=1000)

    return write


@pytest.fixture
def dagster_pg_url() -> Iterator[str]:
    """A URL to a new, empty PostgreSQL database of its own for a Dagster instance's storage
    (`aiops_inst_<random>`, dropped afterwards), on the psycopg2 driver dagster-postgres needs
    (`postgresql+psycopg2://`, see aiops_pipelines/deploy/dagster.yaml.template). Skips
    without AIOPS_TEST_POSTGRES_URL; fails if it is set and the server does not answer."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL Dagster instance not tested: set {PG_ENV}=postgresql+psycopg://..."
        )
    name = f"aiops_inst_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")  # CREATE DATABASE needs it
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable: {exc.orig}")
    url = sa.make_url(base).set(drivername="postgresql+psycopg2", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:  # FORCE: a daemon killed mid-query may leave a session
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[MonitoringStore]:
    """An open `MonitoringStore` on each backend (see `store_url`)."""
    with MonitoringStore(store_url) as s:
        yield s


@pytest.fixture(scope="session")
def make_world(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., DemoWorld]:
    """`make_world(name, **build_world_kwargs)`: a fresh demo world in a new temporary folder.

    Each module passes its own days, rows, reference rows, end date and `register_models` (its
    expectations depend on them) and keeps the world it gets to itself: tests write into their
    world, so no two modules share one.
    """

    def make(name: str, **build_world_kwargs: Any) -> DemoWorld:
        from aiops_pipelines.demo.world import build_world

        return build_world(tmp_path_factory.mktemp(name) / "demo", **build_world_kwargs)

    return make


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, make_world: Callable[..., DemoWorld]) -> DemoWorld:
    """The module's own demo world, built once for the module by `make_world` from the module's
    `WORLD = dict(days=..., end_date=..., rows_per_day=..., ...)`.

    A module whose tests each need a fresh world defines its own function-scoped `world`; the
    view tests' `world` (a filled store) is another fixture of the same name.
    """
    module = request.module
    params = getattr(module, "WORLD", None)
    if params is None:
        pytest.fail(f"{module.__name__} uses the demo world but sets no WORLD = dict(...)")
    return make_world(module.__name__.rpartition(".")[2], **params)
