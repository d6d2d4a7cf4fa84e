"""The deployment files agree with each other and with the Dockerfile (Docker cannot run here)."""

import yaml

from collab_pipelines_tests.e2e.processes import PROJECT

COMPOSE = PROJECT / "deploy" / "docker-compose.yml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_python_service_uses_the_one_image():
    python_services = {name: s for name, s in services().items() if name != "postgres"}
    assert set(python_services) == {"code-location", "webserver", "daemon", "sftp"}
    images = {s["image"] for s in python_services.values()}
    builds = {(s["build"]["context"], s["build"]["dockerfile"]) for s in python_services.values()}
    assert images == {"collab-pipelines:latest"}
    assert builds == {("..", "Dockerfile")}
    assert "make install" in (PROJECT / "Dockerfile").read_text()


def test_services_reach_each_other_as_configured():
    workspace = yaml.safe_load((PROJECT / "deploy" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    code_location = services()["code-location"]["command"]
    assert grpc["host"] == "code-location" and str(grpc["port"]) == code_location[code_location.index("-p") + 1]
    instance_env = {line.split("env:")[1].strip() for line in (PROJECT / "deploy" / "dagster.yaml").read_text().splitlines()
                    if "env:" in line}
    for name in ("webserver", "daemon", "code-location"):
        assert instance_env <= set(services()[name]["environment"]), name


def test_no_secret_is_written_into_the_files():
    text = COMPOSE.read_text()
    assert "DAGSTER_PG_PASSWORD: ${DAGSTER_PG_PASSWORD:?" in text
    assert "deploy/sftp/users.yaml" in (PROJECT / ".gitignore").read_text()
