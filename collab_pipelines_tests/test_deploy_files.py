"""The deployment files agree with each other and with the Dockerfile (Docker cannot run here)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collab_pipelines import settings
from collab_pipelines.evaluation import environments
from collab_pipelines_tests.e2e.processes import PROJECT
from collab_pipelines_tests.project import project_defs

DEPLOY = PROJECT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
HELM_VALUES = DEPLOY / "k8s" / "values.yaml"
K8S_WORKERS = DEPLOY / "k8s" / "celery-workers.yaml"
DOCS = PROJECT / "docs" / "deploy.md"
IMAGE = "collab-pipelines:latest"
# Services that run someone else's image, not the project's code.
THIRD_PARTY = {"postgres", "redis"}
SHARED_STATE = DEPLOY / "k8s" / "shared-state.yaml"
SHARED_CLAIM = "collab-shared"
ENVIRONMENTS_CLAIM = "collab-environments"
STATE_PATH = "/app/.state"
# Services that run Dagster itself, so read or write step outputs and compute logs.
DAGSTER_SERVICES = {"code-location", "webserver", "daemon", "celery-worker"}


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def python_services() -> dict:
    return {name: s for name, s in services().items() if name not in THIRD_PARTY}


def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def k8s_documents() -> list[dict]:
    return list(yaml.safe_load_all(K8S_WORKERS.read_text()))


def test_every_python_service_uses_the_one_image():
    assert set(python_services()) == {
        "code-location",
        "webserver",
        "daemon",
        "sftp",
        "data-api",
        "celery-worker",
    }
    images = {s["image"] for s in python_services().values()}
    builds = {(s["build"]["context"], s["build"]["dockerfile"]) for s in python_services().values()}
    assert images == {IMAGE}
    assert builds == {("..", "Dockerfile")}
    assert "make install" in (PROJECT / "Dockerfile").read_text()


def test_every_service_command_is_a_program_the_install_provides():
    # `make install` puts these in the venv, as the Dockerfile's `make install` puts them on PATH.
    bin_dir = Path(sys.executable).parent
    for name, service in python_services().items():
        program = service["command"][0]
        assert (bin_dir / program).exists() or shutil.which(program), f"{name}: {program} is not installed"


def test_the_code_location_command_matches_the_dockerfile():
    dockerfile_cmd = next(
        line for line in (PROJECT / "Dockerfile").read_text().splitlines() if line.startswith("CMD")
    )
    assert yaml.safe_load(dockerfile_cmd.removeprefix("CMD")) == services()["code-location"]["command"]


def test_services_reach_each_other_as_configured():
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    code_location = services()["code-location"]["command"]
    assert (
        grpc["host"] == "code-location" and str(grpc["port"]) == code_location[code_location.index("-p") + 1]
    )
    instance_env = {
        line.split("env:")[1].strip()
        for line in (DEPLOY / "dagster.yaml").read_text().splitlines()
        if "env:" in line
    }
    for name in ("webserver", "daemon", "code-location", "celery-worker"):
        assert instance_env <= set(services()[name]["environment"]), name


def test_no_secret_is_written_into_the_files():
    text = COMPOSE.read_text()
    assert "DAGSTER_PG_PASSWORD: ${DAGSTER_PG_PASSWORD:?" in text
    assert "deploy/sftp/users.yaml" in (PROJECT / ".gitignore").read_text()
    # Broker URLs carry credentials, so the workers' file only names environment variables.
    celery = yaml.safe_load((DEPLOY / "celery.yaml").read_text())["execution"]["config"]
    assert all(isinstance(value, dict) and set(value) == {"env"} for value in celery.values()), celery
    assert "postgresqlPassword" not in HELM_VALUES.read_text()


def test_the_data_api_is_served_on_its_published_port():
    data_api = services()["data-api"]
    command = data_api["command"]
    assert command[:2] == ["collab-data-api", "serve"]
    assert (
        f"{command[command.index('--port') + 1]}:{command[command.index('--port') + 1]}" in data_api["ports"]
    )
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # It reads the same warehouse and instance as the code location.
    for key in ("COLLAB_WAREHOUSE_URL", "DAGSTER_HOME", "COLLAB_API_TOKENS"):
        assert key in data_api["environment"], key


def test_celery_workers_and_runs_agree_on_the_broker(monkeypatch: pytest.MonkeyPatch):
    from dagster._config import process_config
    from dagster_celery.cli import get_validated_config

    from collab_pipelines.executors import collab_executor

    worker = services()["celery-worker"]
    config_path = worker["command"][worker["command"].index("-y") + 1]
    assert config_path == "/app/deploy/celery.yaml"
    assert "./celery.yaml:/app/deploy/celery.yaml:ro" in worker["volumes"]
    env = worker["environment"]
    assert env["DAGSTER_CELERY_BROKER_URL"].startswith("redis://redis:")
    assert (
        "redis" in worker["depends_on"]
        and worker["profiles"] == ["celery"] == services()["redis"]["profiles"]
    )
    # A run in the code-location container resolves the same URLs as the workers.
    assert {
        k: services()["code-location"]["environment"][k] for k in env if k.startswith("DAGSTER_CELERY")
    } == {k: v for k, v in env.items() if k.startswith("DAGSTER_CELERY")}

    for key in ("DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL"):
        monkeypatch.setenv(key, env[key])
    worker_config = get_validated_config(str(DEPLOY / "celery.yaml"))
    assert worker_config["broker"] == env["DAGSTER_CELERY_BROKER_URL"]
    # The same block one level deeper is what a run's config gives the project's executor.
    block = yaml.safe_load((DEPLOY / "celery.yaml").read_text())["execution"]["config"]
    result = process_config(collab_executor.config_schema.config_type, {"celery": block})
    assert result.success, result.errors
    assert result.value["celery"]["broker"] == env["DAGSTER_CELERY_BROKER_URL"]


def test_compose_volumes_share_step_outputs_between_containers():
    for name in DAGSTER_SERVICES:
        assert "dagster-storage:/opt/dagster/home/storage" in services()[name]["volumes"], name


def test_helm_values_point_the_chart_at_the_project_image():
    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    assert deployment["image"]["repository"].endswith("/collab-pipelines")
    assert deployment["image"]["tag"] and deployment["image"]["tag"] != "latest"
    code_location = services()["code-location"]["command"]
    assert (
        deployment["codeServerArgs"] == code_location[code_location.index("-m") : code_location.index("-h")]
    )
    assert str(deployment["port"]) == code_location[code_location.index("-p") + 1]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["telemetry"]["enabled"] is False


def test_helm_values_run_launcher_and_storage():
    import dagster_k8s

    values = helm_values()
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert hasattr(dagster_k8s, launcher["type"])
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert values["generatePostgresqlPasswordSecret"] is False
    secret = values["global"]["postgresqlSecretName"]
    # The same claim backs $DAGSTER_HOME/storage in run pods and in the Celery workers.
    k8s = launcher["config"]["k8sRunLauncher"]
    (claim,) = {
        v["persistentVolumeClaim"]["claimName"] for v in k8s["volumes"] if v["name"] == "dagster-storage"
    }
    pvc, workers = k8s_documents()
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["metadata"]["name"] == claim
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = workers["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == services()["celery-worker"]["command"]
    assert (
        container["image"].rsplit(":", 1)[0]
        == values["dagster-user-deployments"]["deployments"][0]["image"]["repository"]
    )
    assert {
        v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    } == {claim, SHARED_CLAIM, ENVIRONMENTS_CLAIM}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {m["mountPath"] for m in k8s["volumeMounts"]} <= mounts
    assert any(e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == secret for e in container["env"])


def test_helm_values_queue_runs_like_the_compose_instance():
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]["runs"]
    queued = helm_values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance["tag_concurrency_limits"]


def test_no_configuration_names_dagsters_internal_modules():
    # `dagster.core` and `dagster._core` are internal: a minor release may move them.
    files = [PROJECT / "dagster.yaml", *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    named = [str(f) for f in files if re.search(r"dagster\.?_?core", f.read_text())]
    assert named == []


def test_docs_and_readme_describe_these_files():
    docs = DOCS.read_text()
    for name in services():
        assert f"`{name}`" in docs, f"docs/deploy.md does not name the {name} service"
    deploy_files = [
        p.relative_to(PROJECT).as_posix()
        for p in sorted(DEPLOY.rglob("*"))
        if p.is_file() and p.name != "users.yaml"
    ]
    for path in deploy_files:
        assert path in docs, f"docs/deploy.md does not mention {path}"
    readme = (PROJECT / "README.md").read_text()
    production = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    assert "docs/deploy.md" in production
    for name in python_services():
        assert name in production, f"README's Production section does not name {name}"


def dockerfile_install_commands() -> list[str]:
    """The `make install ...` arguments of every RUN line of the Dockerfile."""
    text = (PROJECT / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        part.strip().split("make install", 1)[1].split("&&")[0].split()
        for part in text.splitlines()
        if part.startswith("RUN") and "make install" in part
    ]


def production_closure(extras: set[str]) -> set[str]:
    """Every installed distribution that installing the project with `extras` pulls in."""
    import re
    from importlib import metadata

    from packaging.requirements import Requirement

    def name(text: str) -> str:
        return re.sub(r"[-_.]+", "-", text).lower()

    seen: set[str] = set()
    pending = [("collab_pipelines", frozenset(extras))]
    while pending:
        dist_name, wanted = pending.pop()
        if name(dist_name) in seen:
            continue
        seen.add(name(dist_name))
        try:
            requires = metadata.distribution(dist_name).requires or []
        except metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here cannot be in the image either
        for line in requires:
            requirement = Requirement(line)
            env_extras = wanted or {""}
            if requirement.marker is None or any(
                requirement.marker.evaluate({"extra": e}) for e in env_extras
            ):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return seen


def test_the_production_image_installs_no_test_or_bench_extras():
    commands = dockerfile_install_commands()
    assert commands, "the Dockerfile installs with `make install`"
    for args in commands:
        assert "EXTRAS=" in args, f"the image must install without extras: make install {' '.join(args)}"
    # What `make install EXTRAS=` runs: the project alone, no extras.
    dry = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed", "EXTRAS=", "PYTHON=python3.11"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [pip_line] = [line for line in dry.splitlines() if "pip install" in line and "-e" in line]
    assert pip_line.split()[-1] == "'.'", pip_line

    production = production_closure(set())
    development = production_closure({"dev"})
    test_only = setup_list("TEST_REQUIRES") | setup_list("BENCH_REQUIRES")
    assert test_only <= development, "the closure walk must see the dev extras"
    assert production.isdisjoint(test_only), sorted(production & test_only)


def setup_list(variable: str) -> set[str]:
    """The distribution names in one of setup.py's requirement lists, read without running it."""
    import ast
    import re

    from packaging.requirements import Requirement

    tree = ast.parse((PROJECT / "setup.py").read_text())
    [node] = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == variable]
    return {re.sub(r"[-_.]+", "-", Requirement(s).name).lower() for s in ast.literal_eval(node.value)}


def claim_mounts(volumes: list[dict], mounts: list[dict]) -> dict[str, str]:
    """Claim name -> mount path, for a pod spec's volumes and one container's mounts."""
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
    }
    return {claims[m["name"]]: m["mountPath"] for m in mounts if m["name"] in claims}


def compose_mounts(service: dict) -> dict[str, str]:
    """Named volume -> mount path, for a Compose service."""
    return {
        volume.split(":")[0]: volume.split(":")[1]
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "$"))
    }


def image_env() -> dict[str, str]:
    """The Dockerfile's ENV assignments."""
    text = (PROJECT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("ENV ")]
    return dict(part.split("=", 1) for part in line.removeprefix("ENV ").split())


def helm_env(entries) -> dict[str, str]:
    """A chart `env`, given as a mapping or as a list of {name, value}."""
    return dict(entries) if isinstance(entries, dict) else {e["name"]: e.get("value") for e in entries}


# Each shared volume or claim, and the variable the project's code reads its path from.
SHARED_STORAGE = {SHARED_CLAIM: settings.SHARED_DIR_ENV, ENVIRONMENTS_CLAIM: environments.DIR_ENV}


def test_shared_state_is_mounted_where_the_settings_read_it():
    """Reports, the landing zone and tuning work live in $COLLAB_SHARED_DIR, which every
    container that writes or reads them mounts from one volume, at the path its environment
    gives; $COLLAB_STATE_DIR stays each container's own."""
    image = image_env()
    workdir = next(
        line.split()[1]
        for line in (PROJECT / "Dockerfile").read_text().splitlines()
        if line.startswith("WORKDIR")
    )
    # The code server answers "View Notebook" only inside its working directory.
    assert Path(image[settings.SHARED_DIR_ENV]).is_relative_to(workdir)
    assert image[settings.STATE_DIR_ENV] == STATE_PATH
    declared = yaml.safe_load(COMPOSE.read_text())["volumes"]
    mounting = {}
    for name, service in python_services().items():
        env, mounts = service["environment"], compose_mounts(service)
        assert env[settings.STATE_DIR_ENV] == STATE_PATH and STATE_PATH not in {
            mounts.get(volume) for volume in SHARED_STORAGE
        }, name
        for volume, variable in SHARED_STORAGE.items():
            if volume in mounts:
                assert volume in declared
                assert mounts[volume] == env[variable] == image[variable], (name, volume)
                mounting.setdefault(volume, set()).add(name)
    # Runs execute in the code location (Dagster's default run launcher); the webserver asks it
    # for notebooks over gRPC, so it mounts nothing of the project's.
    assert mounting == {
        SHARED_CLAIM: {"code-location", "sftp", "data-api", "celery-worker"},
        ENVIRONMENTS_CLAIM: {"code-location", "celery-worker"},
    }
    assert "collab-shared:/app/.shared:ro" in services()["data-api"]["volumes"], "the data API only reads"

    claims = {c["metadata"]["name"]: c for c in yaml.safe_load_all(SHARED_STATE.read_text())}
    assert set(claims) == set(SHARED_STORAGE)
    assert all(c["kind"] == "PersistentVolumeClaim" for c in claims.values())
    assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims.values())

    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    _, workers = k8s_documents()
    worker_pod = workers["spec"]["template"]["spec"]
    (worker,) = worker_pod["containers"]
    pods = {
        "code location": (
            claim_mounts(deployment["volumes"], deployment["volumeMounts"]),
            helm_env(deployment["env"]),
            {SHARED_CLAIM},
        ),
        # Run pods also get the code location's environment (includeConfigInLaunchedRuns).
        "run pods": (
            claim_mounts(launcher["volumes"], launcher["volumeMounts"]),
            helm_env(deployment["env"]),
            set(SHARED_STORAGE),
        ),
        "Celery workers": (
            claim_mounts(worker_pod["volumes"], worker["volumeMounts"]),
            helm_env(worker["env"]),
            set(SHARED_STORAGE),
        ),
        "webserver": (
            claim_mounts(
                values["dagsterWebserver"].get("volumes", []),
                values["dagsterWebserver"].get("volumeMounts", []),
            ),
            {},
            set(),
        ),
    }
    for pod, (mounts, env, expected) in pods.items():
        assert set(mounts) & set(SHARED_STORAGE) == expected, pod
        for claim in expected:
            assert mounts[claim] == env[SHARED_STORAGE[claim]] == image[SHARED_STORAGE[claim]], (pod, claim)
        assert env.get(settings.STATE_DIR_ENV, STATE_PATH) == STATE_PATH, pod
        assert STATE_PATH not in mounts.values(), f"{pod}: its state folder is its own"


def test_every_process_batches_event_writes_as_compose_does():
    compose = {name: s["environment"]["DAGSTER_EVENT_BATCH_SIZE"] for name, s in python_services().items()}
    assert set(compose.values()) == {"50"}
    values = helm_values()
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert "DAGSTER_EVENT_BATCH_SIZE=50" in launcher["envVars"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for name, env in {
        "code location": deployment["env"],
        "daemon": values["dagsterDaemon"]["env"],
        "webserver": values["dagsterWebserver"]["env"],
        "Celery workers": k8s_documents()[1]["spec"]["template"]["spec"]["containers"][0]["env"],
    }.items():
        assert helm_env(env)["DAGSTER_EVENT_BATCH_SIZE"] == "50", name


def test_the_deployment_loads_the_product_location_from_the_team_configuration():
    for name in ("code-location", "webserver", "daemon"):
        assert services()[name]["environment"]["COLLAB_CONFIG_DIR"] == "/app/config", name
    assert any(v.endswith(":/app/config:ro") for v in services()["code-location"]["volumes"])
    (deployment,) = helm_values()["dagster-user-deployments"]["deployments"]
    assert deployment["env"]["COLLAB_CONFIG_DIR"] == "/app/config"
    assert "COLLAB_CONFIG_DIR=/app/config" in (PROJECT / "Dockerfile").read_text()
    # No demo default: the product names no demo source.
    assert "product.db" not in COMPOSE.read_text()
    for command in (services()["code-location"]["command"], deployment["codeServerArgs"]):
        assert "collab_pipelines.definitions" in command and "demo" not in " ".join(command)


def test_every_webserver_renders_notebooks_with_the_project_page_without_cdn_scripts():
    # The image sets JUPYTER_PATH for every container, Compose's webserver included; the chart's
    # webserver must run the project's image to have the folder at all.
    dockerfile = (PROJECT / "Dockerfile").read_text().replace("\\\n", "\n")
    (image_path,) = [
        line.strip().split("=", 1)[1]
        for line in dockerfile.splitlines()
        if line.strip().startswith("JUPYTER_PATH=")
    ]
    template = (
        PROJECT / image_path.removeprefix("/app/") / "nbconvert" / "templates" / "lab" / "index.html.j2"
    )
    assert template.exists(), template
    assert "://" not in template.read_text(), "the page must load nothing from another host"
    webserver = helm_values()["dagsterWebserver"]
    (deployment,) = helm_values()["dagster-user-deployments"]["deployments"]
    assert webserver["image"]["repository"] == deployment["image"]["repository"]
    assert {"name": "JUPYTER_PATH", "value": image_path} in webserver["env"]


# The image's user: non-root, and the uid the Helm values and Compose run as.
IMAGE_UID = 10001
NETWORK_POLICY = DEPLOY / "k8s" / "evaluation-network-policy.yaml"
# Services whose containers run data scientists' commits in bubblewrap: runs execute in the code
# location (Dagster's default run launcher) and the Celery workers score tuning candidates.
EVALUATING_SERVICES = {"code-location", "celery-worker"}
# Dagster jobs whose runs execute commits (K8sRunLauncher labels each run pod dagster/job=<job>).
EVALUATING_JOBS = {"evaluate_commits", "tune_model"}
SANDBOX_SECURITY_OPT = {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}
# Where a read-only container still writes: scratch, the user's home, its own state.
WRITABLE = {"/tmp", "/home/collab", STATE_PATH}


def dockerfile_lines() -> list[str]:
    return (PROJECT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()


def test_the_image_runs_as_a_non_root_user_with_bubblewrap():
    lines = dockerfile_lines()
    (user,) = [line.split()[1] for line in lines if line.startswith("USER ")]
    # Numeric, so runAsNonRoot can check it; after every RUN, which must still run as root.
    assert user == f"{IMAGE_UID}:{IMAGE_UID}"
    assert [line for line in lines if line.startswith(("RUN", "USER"))][-1].startswith("USER")
    (install,) = [line for line in lines if line.startswith("RUN") and "apt-get install" in line]
    assert "bubblewrap" in install.split()
    (useradd,) = [line for line in lines if "useradd" in line]
    assert f"--uid {IMAGE_UID}" in useradd
    # The user owns the folders it writes, not the code or the venv.
    env = image_env()
    (chown,) = [line for line in lines if "chown" in line]
    owned = set(chown.split("chown", 1)[1].split()[1:])
    for variable in ("DAGSTER_HOME", "COLLAB_STATE_DIR", "COLLAB_SHARED_DIR", "COLLAB_ENVIRONMENTS_DIR"):
        assert f"${variable}" in owned, variable
    assert not {"/app", "/app/.venv", "."} & owned
    assert env["HOME"] == "/home/collab"


def test_compose_runs_every_project_service_unprivileged_and_the_evaluating_ones_sandbox_ready():
    for name, service in python_services().items():
        assert service["user"] == f"{IMAGE_UID}:{IMAGE_UID}", name
        assert service["cap_drop"] == ["ALL"] and "cap_add" not in service, name
        assert "privileged" not in service and "no-new-privileges:true" in service["security_opt"], name
        sandboxed = SANDBOX_SECURITY_OPT <= set(service["security_opt"])
        assert sandboxed == (name in EVALUATING_SERVICES), f"{name}: user namespaces for bubblewrap"
    for name in EVALUATING_SERVICES:
        service = services()[name]
        assert service["read_only"] is True, name
        assert set(service["tmpfs"]) == WRITABLE, name
        # No tmpfs hides a volume: the shared folder and the environments stay shared.
        assert not set(service["tmpfs"]) & set(compose_mounts(service).values()), name


def run_pod_security() -> tuple[dict, dict]:
    """The pod and container security contexts every run pod gets from the run launcher."""
    run_config = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    return run_config["podSpecConfig"], run_config["containerConfig"]["securityContext"]


def assert_locked_down(pod_security: dict, container: dict, volumes: list[dict], mounts: list[dict]) -> None:
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] == IMAGE_UID
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]} and not container.get("privileged")
    empty_dirs = {v["name"] for v in volumes if "emptyDir" in v}
    assert {m["mountPath"] for m in mounts if m["name"] in empty_dirs} >= WRITABLE


def assert_sandbox_ready(pod_spec: dict, container: dict) -> None:
    """What bubblewrap needs: its own user namespaces and a fresh /proc, inside a pod userns."""
    assert pod_spec["hostUsers"] is False
    assert pod_spec["securityContext"]["seccompProfile"]["type"] in {"Unconfined", "Localhost"}
    assert pod_spec["securityContext"]["appArmorProfile"]["type"] in {"Unconfined", "Localhost"}
    assert container["procMount"] == "Unmasked"


def test_kubernetes_pods_run_non_root_read_only_and_run_pods_sandbox_ready():
    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert_locked_down(
        deployment["podSecurityContext"],
        deployment["securityContext"],
        deployment["volumes"],
        deployment["volumeMounts"],
    )
    # The code server runs no commit: it keeps the runtime's seccomp profile.
    assert deployment["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    pod_spec, container = run_pod_security()
    assert_locked_down(pod_spec["securityContext"], container, launcher["volumes"], launcher["volumeMounts"])
    assert_sandbox_ready(pod_spec, container)
    # includeConfigInLaunchedRuns adds the code location's volumes to run pods; dagster-k8s
    # merges only identical entries, so a volume in both lists must be the same in each.
    by_name = {v["name"]: v for v in launcher["volumes"]}
    for volume in deployment["volumes"]:
        assert by_name.get(volume["name"], volume) == volume, volume["name"]

    _, workers = k8s_documents()
    worker_pod = workers["spec"]["template"]["spec"]
    (worker,) = worker_pod["containers"]
    assert_locked_down(
        worker_pod["securityContext"],
        worker["securityContext"],
        worker_pod["volumes"],
        worker["volumeMounts"],
    )
    assert_sandbox_ready(worker_pod, worker["securityContext"])


def test_the_network_policy_confines_the_evaluation_pods_egress():
    import dagster_k8s.launcher

    (policy,) = yaml.safe_load_all(NETWORK_POLICY.read_text())
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Egress"]
    (selector,) = policy["spec"]["podSelector"]["matchExpressions"]
    # The label is the one K8sRunLauncher puts on every run pod, valued with the run's job.
    assert '"dagster/job": job_origin.job_name' in Path(dagster_k8s.launcher.__file__).read_text()
    assert selector["key"] == "dagster/job" and selector["operator"] == "In"
    assert set(selector["values"]) == EVALUATING_JOBS
    assert EVALUATING_JOBS <= {job.name for job in project_defs().get_repository_def().get_all_jobs()}
    # Only DNS, PostgreSQL, and HTTPS and SSH to addresses outside the private ranges.
    allowed = {
        (port["protocol"], port["port"]) for rule in policy["spec"]["egress"] for port in rule["ports"]
    }
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443), ("TCP", 22)}
    for rule in policy["spec"]["egress"]:
        for peer in rule.get("to", []):
            if "ipBlock" in peer:
                assert {"10.0.0.0/8", "169.254.0.0/16"} <= set(peer["ipBlock"]["except"])
        if any(port["port"] == 53 for port in rule["ports"]):
            assert rule["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
