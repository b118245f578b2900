"""The production instance `aiops instance` writes: Dagster's own schema accepts it, it opens on
PostgreSQL with the queued run coordinator, the per-tenant limit and run monitoring, and the
command never overwrites a file it did not write unless told to."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.config import PostgresStorageConfig
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.utils import pg_url_from_config

from aiops_pipelines import deploy
from aiops_pipelines.cli import main
from aiops_pipelines.deploy import (
    EMBEDDED_INSTANCE,
    InstanceSettings,
    embedded_instance,
    is_embedded_instance,
    write_instance_yaml,
)
from aiops_pipelines.orchestration import runner
from aiops_pipelines.orchestration.partitions import TENANT_TAG

ENV = "AIOPS_TEST_INSTANCE_PG_URL"
SETTINGS = InstanceSettings(postgres_url_env=ENV, max_concurrent_runs=3, per_tenant=1)
TENANT_LIMIT = [{"key": TENANT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster-home"
    write_instance_yaml(home, SETTINGS)
    return home


def test_the_template_names_the_tag_every_per_model_run_carries() -> None:
    assert deploy.TENANT_TAG == TENANT_TAG
    # what `aiops run` writes into a new home is replaced without --force (and so is what it
    # wrote before)
    home = runner.dagster_home()
    assert (home / "dagster.yaml").read_text() == embedded_instance(home)
    assert is_embedded_instance(embedded_instance(home))
    assert is_embedded_instance(embedded_instance(Path("/elsewhere/dagster")))
    assert is_embedded_instance(EMBEDDED_INSTANCE)
    assert not is_embedded_instance(embedded_instance(home).replace("Pooled", ""))


def test_dagsters_own_schema_accepts_the_instance_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "postgresql://aiops:secret@db.example:5432/dagster")
    # the whole file against the instance schema, each class named in it imported
    ref = InstanceRef.from_dir(str(_home(tmp_path)))
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres",
        "DagsterPostgresStorage",
    )
    # the storage section against dagster-postgres's own schema: the URL comes from the variable
    storage = dg._config.process_config(
        DagsterPostgresStorage.config_type(), yaml.safe_load(ref.storage_data.config_yaml)
    )
    assert storage.success, storage.errors
    url = pg_url_from_config(PostgresStorageConfig(**storage.value))
    assert url == "postgresql://aiops:secret@db.example:5432/dagster"
    coordinator = ref.run_coordinator_data.rehydrate(dg.QueuedRunCoordinator)
    queue = coordinator.get_run_queue_config()
    assert queue.max_concurrent_runs == 3
    assert queue.tag_concurrency_limits == TENANT_LIMIT
    assert ref.run_launcher_data.class_name == "DefaultRunLauncher"
    monitoring = ref.settings["run_monitoring"]
    assert monitoring["enabled"] and monitoring["start_timeout_seconds"] > 0
    assert ref.settings["telemetry"] == {"enabled": False}


@pytest.mark.postgres
def test_the_instance_opens_on_postgresql_with_the_queue_and_monitoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_pg_url: str
) -> None:
    monkeypatch.setenv(ENV, dagster_pg_url)
    # entered, as Dagster's processes open it: the instance is the current one while in use
    with dg.DagsterInstance.from_config(str(_home(tmp_path))) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 3 and queue.tag_concurrency_limits == TENANT_LIMIT
        assert instance.run_monitoring_enabled
        # an in-process run, as `aiops run` executes them, is recorded in PostgreSQL: another
        # instance opened from the same file reads it
        result = dg.materialize([_noop], instance=instance, tags={TENANT_TAG: "acme"})
        assert result.success
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster-home")) as again:
        [record] = again.get_run_records()
        assert record.dagster_run.run_id == result.run_id
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags[TENANT_TAG] == "acme"
        assert again.get_latest_materialization_event(dg.AssetKey("noop")) is not None


@dg.asset(name="noop")
def _noop() -> int:
    return 1


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["instance", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_command_writes_the_file_once_and_refuses_to_overwrite_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"  # the conftest's DAGSTER_HOME holds the embedded default
    args = ["--dagster-home", str(home), "--max-concurrent-runs", "4", "--per-tenant", "2"]
    code, out = _cli(capsys, *args)
    assert code == 0 and "created" in out and "at most 4 in progress and 2 per tenant" in out
    written = (home / "dagster.yaml").read_text()
    assert yaml.safe_load(written)["run_coordinator"]["config"]["max_concurrent_runs"] == 4
    code, out = _cli(capsys, *args)
    assert code == 0 and "unchanged" in out
    # other settings would replace a file this command did not write that way: refused
    code, out = _cli(capsys, "--dagster-home", str(home), "--per-tenant", "1")
    assert code == 2 and "--force" in out
    assert (home / "dagster.yaml").read_text() == written
    code, out = _cli(capsys, "--dagster-home", str(home), "--per-tenant", "1", "--force")
    assert code == 0 and "replaced" in out and "dagster.yaml.bak" in out
    assert (home / "dagster.yaml.bak").read_text() == written
    limits = yaml.safe_load((home / "dagster.yaml").read_text())["run_coordinator"]["config"]
    assert limits["tag_concurrency_limits"][0]["limit"] == 1
    assert not list(home.glob(".*tmp"))  # nothing left of the atomic writes


def test_the_command_warns_of_a_url_dagster_postgres_could_not_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "postgresql://aiops@db.example/dagster")
    code, out = _cli(capsys, "--dagster-home", str(tmp_path), "--postgres-url-env", ENV)
    assert code == 0 and f"${ENV} holds a postgresql:// URL" in out and "psycopg2" in out
    monkeypatch.setenv(ENV, "postgresql+psycopg2://aiops@db.example/dagster")
    code, out = _cli(capsys, "--dagster-home", str(tmp_path), "--postgres-url-env", ENV)
    assert code == 0 and "holds" not in out


def test_the_command_replaces_the_embedded_instance_of_dagster_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster"
    (home / "storage").mkdir(parents=True)
    (home / "dagster.yaml").write_text(EMBEDDED_INSTANCE)  # what `aiops run` left there
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code, out = _cli(capsys, "--postgres-url-env", "MY_PG")
    assert code == 0 and "replaced" in out and "SQLite" in out and ".bak" not in out
    assert yaml.safe_load((home / "dagster.yaml").read_text())["storage"] == {
        "postgres": {"postgres_url": {"env": "MY_PG"}}
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--postgres-url-env", "postgresql://x"], "not an environment variable name"),
        (["--max-concurrent-runs", "0"], "--max-concurrent-runs must be 1 or more"),
        (["--max-concurrent-runs", "2", "--per-tenant", "3"], "--per-tenant must be between"),
    ],
)
def test_settings_the_instance_could_not_use_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out = _cli(capsys, "--dagster-home", str(tmp_path), *args)
    assert code == 2 and message in out
    assert not (tmp_path / "dagster.yaml").exists()


def test_stdout_prints_the_file_without_writing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(capsys, "--dagster-home", str(tmp_path), "--stdout", "--per-tenant", "1")
    assert code == 0 and yaml.safe_load(out)["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert not (tmp_path / "dagster.yaml").exists()


def test_a_copied_home_is_pointed_at_its_own_storage_and_other_files_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "copy" / "dagster"
    home.mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    cfg = home / "dagster.yaml"
    cfg.write_text(embedded_instance(tmp_path / "original" / "dagster"))  # copied along
    assert runner.dagster_home() == home.resolve()
    assert cfg.read_text() == embedded_instance(home)
    assert str(tmp_path / "original") not in cfg.read_text()
    for kept in (EMBEDDED_INSTANCE, "telemetry:\n  enabled: true\n"):  # an older home's; a user's
        cfg.write_text(kept)
        runner.dagster_home()
        assert cfg.read_text() == kept


def test_the_embedded_event_log_finds_its_tables_once_and_a_new_table_later(
    tmp_path: Path,
) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(embedded_instance(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert type(storage).__name__ == "PooledSqliteEventLogStorage"
        assert storage.has_table("dynamic_partitions")
        assert storage.has_table("asset_event_tags")
        assert not storage.has_table("aiops_later")
        with storage.index_connection() as conn:
            conn.exec_driver_sql("CREATE TABLE aiops_later (x INTEGER)")
        assert storage.has_table("aiops_later")  # a table not found is asked again
        # the dynamic partitions Dagster looks up through it
        instance.add_dynamic_partitions("models", ["acme.churn"])
        assert instance.has_dynamic_partition("models", "acme.churn")
        assert not instance.has_dynamic_partition("models", "acme.other")
