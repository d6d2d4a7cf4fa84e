"""The project's executor on two real Celery workers: one run's steps spread across both.

It runs on both brokers this machine has: RabbitMQ (dagster-celery's default broker) and
Redis (what deploy/docker-compose.yml uses). Each test run uses its own queue, so concurrent test
runs on one broker never take each other's tasks.
"""

import os
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

from collab_pipelines.executors import collab_executor
from collab_pipelines_tests.conftest import require_service
from collab_pipelines_tests.e2e.celery_jobs import parameter_sweep
from collab_pipelines_tests.e2e.processes import PROJECT, Service, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    # dagster-celery registers its step task anew on every submission; Celery keeps the first.
    pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered"),
]

# Broker name: (env var with its URL, default URL).
BROKERS = {
    "rabbitmq": ("COLLAB_TEST_RABBITMQ_URL", "pyamqp://guest:guest@127.0.0.1:5672//"),
    "redis": ("COLLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
WORKER_NAMES = ("collab-a", "collab-b")
POINTS = 6


@pytest.fixture(params=sorted(BROKERS))
def broker_url(request: pytest.FixtureRequest) -> str:
    from kombu import Connection
    from kombu.exceptions import OperationalError

    env, default = BROKERS[request.param]
    url = os.environ.get(env, default)
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except (OperationalError, OSError) as error:
        require_service(request.param, f"{url}: {error!r}")
    return url


@pytest.fixture
def dagster_home(tmp_path: Path):
    """A persistent instance on SQLite that the test process and the workers both open."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # Opening it creates the SQLite schema now; two workers starting at once would both try.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield home, instance


def celery_config(broker_url: str, queue: str) -> dict:
    # rpc:// answers through the AMQP broker itself; a Redis broker keeps results in Redis.
    backend = broker_url if broker_url.startswith("redis") else "rpc://"
    return {
        "broker": broker_url,
        "backend": backend,
        "config_source": {"task_default_queue": queue},
    }


@pytest.fixture
def workers(tmp_path: Path, broker_url: str, dagster_home):
    """Two `dagster-celery worker start` processes, one task at a time each, on a private queue."""
    queue = f"collab-test-{uuid.uuid4().hex[:8]}"
    config = celery_config(broker_url, queue)
    config_path = tmp_path / "celery.yaml"
    # The worker CLI reads the same block the executor takes, under execution.config.
    config_path.write_text(yaml.safe_dump({"execution": {"config": config}}))
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home[0]),
        # The workers import the job's module from its code pointer.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
        # dagster-celery starts the `celery` program by name.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    suffix = uuid.uuid4().hex[:6]
    names = [f"{name}-{suffix}" for name in WORKER_NAMES]
    services = [
        Service(
            name,
            [
                str(bin_dir / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(config_path),
                "-q",
                queue,
                "-n",
                name,
                "--",
                "--concurrency=1",
                "--pool=prefork",
                "--without-gossip",
                "--without-mingle",
            ],
            env,
            tmp_path,
        )
        for name in names
    ]
    try:
        app = celery_app(config)
        for service in services:
            wait_for(
                f"Celery worker {service.name} to answer a ping",
                lambda service=service: app.control.ping(destination=[node(service.name)], timeout=1.0),
                timeout=60,
                interval=0.5,
                service=service,
            )
        yield {"config": config, "names": {node(name) for name in names}, "services": services}
    finally:
        for service in services:
            service.stop(grace=10)


def celery_app(config: dict):
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    return make_app(CeleryExecutor.for_cli(**config).app_args())


def node(name: str) -> str:
    import socket

    return f"{name}@{socket.gethostname()}"


def sweep_places(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    """Where each sweep point ran, from the metadata its step recorded on its output."""
    places = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = record.get_dagster_event()
        if event.step_key.startswith("evaluate_point"):
            metadata = event.step_output_data.metadata
            places[event.step_key] = {key: metadata[key].value for key in ("pid", "host", "worker")}
    return places


def delegated_steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key to worker, as dagster-celery's task reports it from inside the worker."""
    events = [
        r.get_dagster_event() for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    ]
    return {
        event.step_key: event.engine_event_data.metadata["Celery worker"].value
        for event in events
        if "in celery worker" in (event.message or "")
    }


def run_sweep(instance: dg.DagsterInstance, execution: dict):
    run_config = {"ops": {"sweep_points": {"config": {"points": POINTS}}}, "execution": {"config": execution}}
    return dg.execute_job(dg.reconstructable(parameter_sweep), instance=instance, run_config=run_config)


def test_a_sweep_fans_out_across_two_celery_workers(workers, dagster_home):
    _, instance = dagster_home
    result = run_sweep(instance, {"celery": workers["config"]})
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    run_id = result.run_id
    places = sweep_places(instance, run_id)
    delegated = delegated_steps(instance, run_id)

    assert len(places) == POINTS
    # Every step, not only the mapped ones, went through a worker and none ran in this process.
    assert set(delegated) == {*places, "sweep_points", "collect_scores"}
    assert set(delegated.values()) <= workers["names"]
    assert all(place["pid"] != os.getpid() for place in places.values())
    workers_used = {place["worker"] for place in places.values()}
    assert workers_used == workers["names"], f"the sweep did not use both workers: {places}"
    assert len({place["pid"] for place in places.values()}) >= 2, places
    # The step's own view of its worker agrees with the executor's record of where it sent it.
    assert all(delegated[step] == place["worker"] for step, place in places.items())


@pytest.mark.parametrize(
    ("execution", "expected"),
    [
        # Runs from `dagster dev`, the daemon or a schedule carry no executor config and have no workers.
        (None, "MultiprocessExecutor"),
        ({"multiprocess": {"max_concurrent": 2}}, "MultiprocessExecutor"),
        ({"in_process": {}}, "InProcessExecutor"),
        ({"celery": {"broker": "redis://broker.invalid:6379/0"}}, "CeleryExecutor"),
    ],
)
def test_run_config_selects_the_executor(execution, expected):
    from dagster._config import process_config

    schema = collab_executor.config_schema.as_field()
    config = process_config(schema.config_type, schema.default_value if execution is None else execution)
    assert config.success, config.errors
    with dg.instance_for_test() as instance:
        executor = collab_executor.executor_creation_fn(
            dg.InitExecutorContext(
                dg.reconstructable(parameter_sweep), collab_executor, config.value, instance
            )
        )
    assert type(executor).__name__ == expected
    # Creating the Celery executor must not reach for its broker: that happens when steps are sent.
    if expected == "CeleryExecutor":
        assert executor.broker == "redis://broker.invalid:6379/0"
    requirements = collab_executor.get_requirements(config.value)
    assert bool(requirements) == (expected != "InProcessExecutor")


def test_the_tuning_job_fans_its_candidates_out_across_the_workers(
    state_dir, exported_warehouse_file, tmp_path, workers, dagster_home
):
    """The project's own parameter sweep, `tune_model`, on the real workers and real data."""
    import shutil

    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from collab_pipelines.warehouse.resources import Warehouse
    from collab_pipelines_tests.evaluation.conftest import Repo, Suites
    from collab_pipelines_tests.evaluation.test_evaluation import GOOD

    # The workers were started after state_dir set COLLAB_STATE_DIR, so they see this state.
    shutil.copy(exported_warehouse_file, state_dir / "warehouse.db")
    repo = Repo(tmp_path / "model")
    sha = repo.commit("Baseline", GOOD)
    Suites(state_dir / "suites.yaml").add("delays", {"model": repo})
    job = ReconstructableRepository.for_module(
        "collab_pipelines.definitions", "defs", working_directory=str(PROJECT)
    ).get_reconstructable_job("tune_model")
    grid = {"classifier__C": [0.01, 0.1, 1.0, 10.0]}
    _, instance = dagster_home
    result = dg.execute_job(
        job,
        instance=instance,
        run_config={
            "ops": {"plan_tuning": {"config": {"evaluation_key": f"delays:model@{sha[:10]}", "grid": grid}}},
            "execution": {"config": {"celery": workers["config"]}},
        },
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    delegated = delegated_steps(instance, result.run_id)
    candidates = {step: worker for step, worker in delegated.items() if step.startswith("score_candidate")}
    assert len(candidates) == len(grid["classifier__C"]), delegated
    assert set(candidates.values()) == workers["names"], (
        f"the candidates did not use both workers: {candidates}"
    )
    rows = Warehouse().read("tuning_candidates", where={"tuning_run_id": result.run_id})
    assert (
        sorted(rows["candidate"].unique()) == [0, 1, 2, 3] and rows["best"].astype(bool).sum() == 2
    )  # 2 metrics
