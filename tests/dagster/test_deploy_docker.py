"""The Docker Compose deployment (aiops_pipelines/deploy/docker): its instance is the one `aiops
instance` writes plus Dagster's DockerRunLauncher, accepted by dagster-docker's own config schema
and opened on PostgreSQL; the compose file, the workspace and the instance agree on the names
they share. No Docker daemon is needed, and none is used: the image is not built and no
container starts here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster_docker import DockerRunLauncher

from aiops_pipelines.deploy import DOCKER_DIR, InstanceSettings, render_instance_yaml, url_problem

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = yaml.safe_load((DOCKER_DIR / "dagster.yaml").read_text())
COMPOSE = yaml.safe_load((DOCKER_DIR / "docker-compose.yaml").read_text())
WORKSPACE = yaml.safe_load((DOCKER_DIR / "workspace.yaml").read_text())
DAGSTER_SERVICES = ("aiops-code", "webserver", "daemon")


def _docker_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(DOCKER_DIR / "dagster.yaml", home / "dagster.yaml")
    return home


def test_it_is_the_instance_aiops_instance_writes_plus_the_docker_run_launcher() -> None:
    template = yaml.safe_load(render_instance_yaml(InstanceSettings()))
    assert {k: v for k, v in INSTANCE.items() if k != "run_launcher"} == template
    assert (INSTANCE["run_launcher"]["module"], INSTANCE["run_launcher"]["class"]) == (
        "dagster_docker",
        "DockerRunLauncher",
    )


def test_dagster_dockers_own_schema_accepts_the_run_launcher(tmp_path: Path) -> None:
    ref = InstanceRef.from_dir(str(_docker_home(tmp_path)))  # the instance schema
    launcher = ref.run_launcher_data.rehydrate(DockerRunLauncher)  # dagster-docker's schema
    env = COMPOSE["services"]["daemon"]["environment"]
    # every variable a run's container gets is set where the launcher reads it (the daemon)
    assert set(launcher.env_vars) <= set(env)
    assert launcher.networks == [COMPOSE["networks"]["aiops"]["name"]]
    # each run's container mounts what the code server and the webserver mount, by name
    code_volumes = set(COMPOSE["services"]["aiops-code"]["volumes"])
    web_volumes = set(COMPOSE["services"]["webserver"]["volumes"])
    run_volumes = set(launcher.container_kwargs["volumes"])
    assert code_volumes <= run_volumes
    assert run_volumes <= web_volumes  # compute logs and data the UI shows
    for volume in run_volumes:
        source = volume.split(":")[0]
        if not source.startswith("/"):  # a named volume: compose must not prefix its name
            assert COMPOSE["volumes"][source]["name"] == source


def test_the_compose_file_runs_one_image_on_one_network_with_the_instances_database() -> None:
    services = COMPOSE["services"]
    images = {services[s]["image"] for s in DAGSTER_SERVICES}
    assert len(images) == 1
    # the run launcher starts each run from the code server's image
    assert services["aiops-code"]["environment"]["DAGSTER_CURRENT_IMAGE"] in images
    build = services["aiops-code"]["build"]
    context = (DOCKER_DIR / build["context"]).resolve()
    assert (
        context == ROOT and (context / build["dockerfile"]).resolve() == DOCKER_DIR / "Dockerfile"
    )
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        url = env["AIOPS_DAGSTER_PG_URL"]
        assert url_problem(url) is None, url
        assert re.search(r"@postgresql:5432/", url)  # the compose service's host name
        assert services[name]["networks"] == ["aiops"]
        assert services[name]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    for name in ("webserver", "daemon"):  # they start and stop the runs' containers
        assert "/var/run/docker.sock:/var/run/docker.sock" in services[name]["volumes"]
    assert services["postgresql"]["environment"]["POSTGRES_DB"] in url.rsplit("/", 1)[1]


def test_the_workspace_loads_the_code_server_the_compose_file_starts() -> None:
    ensure_workspace_config(WORKSPACE, str(DOCKER_DIR / "workspace.yaml"))  # Dagster's schema
    [entry] = WORKSPACE["load_from"]
    server = entry["grpc_server"]
    command = COMPOSE["services"]["aiops-code"]["command"]

    def option(name: str) -> str:
        return command[command.index(name) + 1]

    assert server["host"] == "aiops-code"
    assert str(server["port"]) == option("--port")
    assert server["location_name"] == option("--location-name") == "aiops_pipelines"
    assert option("--module-name") == "aiops_pipelines.orchestration.definitions"


def test_the_dockerfile_installs_the_package_with_the_deployments_extras() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    extras = re.search(r'pip install "\.\[([a-z,]+)\]"', dockerfile).group(1).split(",")
    for extra in extras:
        assert re.search(rf"^{extra} = \[", pyproject, re.M), extra
    assert {"postgres", "docker"} <= set(extras)
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path  # relative to the build context, the root
    for package in ("aiops_pipelines", "assets", "sensors"):  # what the wheel ships
        assert f"COPY {package} ./{package}" in dockerfile


@pytest.mark.postgres
def test_the_docker_instance_opens_on_postgresql_with_its_run_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_pg_url: str
) -> None:
    monkeypatch.setenv("AIOPS_DAGSTER_PG_URL", dagster_pg_url)
    with dg.DagsterInstance.from_config(str(_docker_home(tmp_path))) as instance:
        assert isinstance(instance.run_launcher, DockerRunLauncher)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.run_monitoring_enabled
        assert instance.run_launcher.supports_check_run_worker_health  # monitoring sees crashes
