"""No run depends on a file that only another process's disk holds (docs/deploy.md, "Shared and local state").

The code server, the webserver, the daemon and every run worker get a working directory and a
state folder ($COLLAB_STATE_DIR) of their own, as containers and pods do. They share what the
deployment declares and nothing else: the PostgreSQL instance and warehouse, the team's
configuration folder (in the image, or mounted read-only), and the shared folder
($COLLAB_SHARED_DIR: Compose's `collab-shared` volume, the Helm values' `collab-shared` claim).
The shared folder lies inside the code server's working directory, as /app/.shared lies inside
the image's /app: the code server answers "View Notebook" only from there.

Runs start the way Kubernetes' run launcher starts a pod: `dagster api execute_run` in a folder
of its own, with its own environment (run_worker_launcher.py). The daemon launches every run with
no manual step: the new-data sensor exports the source's complete days, the automation sensor
renders a report on them, and the upload sensor ingests a file put in the landing zone. The
report is then fetched from the webserver as the UI's "View Notebook" fetches it.
"""

import contextlib
import copy
import os
import urllib.parse
from pathlib import Path

import dagster as dg
import nbformat
import pytest
import sqlalchemy as sa
import yaml

from collab_pipelines import settings
from collab_pipelines.reports.publishing import JUPYTER_PATH
from collab_pipelines_tests.conftest import new_postgres_database
from collab_pipelines_tests.e2e.processes import (
    BIN,
    PROJECT,
    Service,
    free_port,
    grpc_workspace,
    start_code_server,
    wait_for,
)
from collab_pipelines_tests.e2e.run_worker_launcher import CWD_TAG, SeparateRunWorkerLauncher
from collab_pipelines_tests.e2e.test_daemon import failures
from collab_pipelines_tests.product import team
from collab_pipelines_tests.reports.test_webserver import LAUNCH, get, graphql

pytestmark = pytest.mark.e2e
LOCATION = "collab_pipelines"
DAYS = ["2024-03-01", "2024-03-02", "2024-03-03"]
REPORT = "orders_report"
UPLOADER = "stores"
UPLOAD = "visits-monday.csv"
UPLOADS = {
    "upload_types": {
        "store_visits": {
            "description": "Visitors counted in each store per hour, uploaded by the stores team.",
            "owners": ["team:stores"],
            "uploaders": [UPLOADER],
            "key": ["store", "visited_at"],
            "columns": {
                "store": {"type": "string", "choices": ["north", "south", "east"]},
                "visited_at": {"type": "datetime"},
                "visitors": {"type": "integer", "minimum": 0},
            },
        }
    }
}
VISITS = "store,visited_at,visitors\nnorth,2024-03-01 10:00,12\nsouth,2024-03-01 10:00,7\n"
REPORT_BODY = """
from collab_pipelines.reports.notebook import report_inputs

inputs = report_inputs(datasets, partition_key, partition_keys=partition_keys, warehouse_url=warehouse_url)
orders = inputs["orders"]
print(f"orders on {partition_key}: {len(orders)} rows")
"""
LOCATIONS = """
query {
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    __typename ... on PythonError { message }
  } } } }
}
"""
REPORT_LINKS = """
query {
  assetOrError(assetKey: {path: ["orders_report"]}) {
    ... on Asset { assetMaterializations(limit: 10) { partition metadataEntries {
      label
      ... on NotebookMetadataEntry { path }
      ... on UrlMetadataEntry { url }
    } } }
  }
}
"""


STOP_SENSOR = """
query Sensor($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { ... on Sensor { id } } }
mutation Stop($id: String!) { stopSensor(id: $id) { __typename } }
"""


def write_config(folder: Path) -> Path:
    """The team's configuration: one daily export of three days, a report on it, an upload type."""
    write_template(folder)
    catalog = copy.deepcopy(team.CATALOG)
    catalog["exports"][0]["partition"]["end"] = "2024-03-04"
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    (folder / "uploads.yaml").write_text(yaml.safe_dump(UPLOADS, sort_keys=False))
    return folder


def write_template(folder: Path) -> None:
    """The daily orders report's template, in the configuration folder's `templates/`."""
    (folder / "templates").mkdir(parents=True)
    parameters = nbformat.v4.new_code_cell(
        'datasets = {"orders": "orders"}\npartition_key = None\npartition_keys = None\nwarehouse_url = None'
    )
    parameters.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Shop orders, day by day"),
            parameters,
            nbformat.v4.new_code_cell(REPORT_BODY),
        ],
        metadata={
            "collab_report": {
                "datasets": {"orders": "orders"},
                "description": "Orders of one day.",
                "owners": ["team:shop-data"],
                "partitions": "daily",
            },
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        },
    )
    nbformat.write(notebook, folder / "templates" / f"{REPORT}.ipynb")


class Process:
    """One process's own place: a working directory, a state folder, a $DAGSTER_HOME."""

    def __init__(self, root: Path, name: str):
        self.cwd = root / name
        self.state = self.cwd / ".state"
        self.home = self.state / "dagster"
        self.home.mkdir(parents=True)

    def env(self, **extra: str) -> dict:
        # Nothing of the test's own environment that names project state or an instance.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLAB_", "DAGSTER_"))}
        env.update(
            PATH=f"{BIN}:{env.get('PATH', '')}",
            DAGSTER_HOME=str(self.home),
            DAGSTER_EVENT_BATCH_SIZE="50",
            **{settings.STATE_DIR_ENV: str(self.state)},
            **extra,
        )
        return env


def instance_yaml(postgres_url: str, run_worker: Process, run_env: dict) -> str:
    """deploy/dagster.yaml (queue, monitoring, retries) on the test's database and run launcher."""
    config = yaml.safe_load((PROJECT / "deploy" / "dagster.yaml").read_text())
    config["storage"] = {"postgres": {"postgres_url": postgres_url}}
    config["run_launcher"] = {
        "module": SeparateRunWorkerLauncher.__module__,
        "class": SeparateRunWorkerLauncher.__name__,
        "config": {"working_directory": str(run_worker.cwd), "env": run_env},
    }
    return yaml.safe_dump(config)


@pytest.fixture
def databases(postgres_server_url):
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(new_postgres_database(postgres_server_url, f"collab_separated_{name}"))
            for name in ("instance", "warehouse", "source")
        }


def location_loaded(base: str) -> bool:
    status, _ = get(f"{base}/server_info")
    if status != 200:
        return False
    [entry] = graphql(base, LOCATIONS)["workspaceOrError"]["locationEntries"]
    loaded = entry["locationOrLoadError"]
    if loaded and loaded["__typename"] == "PythonError":
        raise AssertionError(f"the code location failed to load: {loaded['message']}")
    return bool(loaded) and loaded["__typename"] == "RepositoryLocation"


def runs_done(instance: dg.DagsterInstance, daily: list[str], uploads: list[str] = ()) -> bool:
    """Every run finished, none failed, the daily assets have every day and the uploads one file."""
    runs = instance.get_runs()
    failed = [r for r in runs if r.is_finished and not r.is_success]
    assert not failed, failures(instance, failed)
    return (
        all(r.is_finished for r in runs)
        and all(set(DAYS) <= set(instance.get_materialized_partitions(dg.AssetKey(a))) for a in daily)
        and all(instance.get_latest_materialization_event(dg.AssetKey(a)) for a in uploads)
    )


def stop_sensor(base: str, name: str) -> None:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "sensorName": name}
    sensor = graphql(base, STOP_SENSOR.split("mutation")[0], {"selector": selector})["sensorOrError"]
    stopped = graphql(base, "mutation" + STOP_SENSOR.split("mutation")[1], {"id": sensor["id"]})
    assert stopped["stopSensor"]["__typename"] == "StopSensorMutationResult", stopped


def launch_report(base: str) -> str:
    """What the UI's "Materialize" of the report's three days sends the webserver."""
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": [REPORT]}],
        },
        "executionMetadata": {
            "tags": [
                {"key": "dagster/asset_partition_range_start", "value": DAYS[0]},
                {"key": "dagster/asset_partition_range_end", "value": DAYS[-1]},
            ]
        },
    }
    launched = graphql(base, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


@pytest.mark.timeout(420)
def test_runs_share_only_what_the_deployment_declares(tmp_path, databases):
    config = write_config(tmp_path / "config")
    code, web, daemon, run = (Process(tmp_path, name) for name in ("code", "web", "daemon", "run"))
    shared = code.cwd / ".shared"
    team.create_source(databases["source"])
    # What every process that runs the project's code gets. The webserver and daemon get none of
    # it; their instance's run launcher names it for the runs, as the chart's names a Secret.
    project = {
        settings.SHARED_DIR_ENV: str(shared),
        settings.CONFIG_DIR_ENV: str(config),
        settings.WAREHOUSE_URL_ENV: databases["warehouse"],
        team.SOURCE_ENV: databases["source"],
    }
    run_env = run.env(**project)
    for process in (code, web, daemon, run):
        (process.home / "dagster.yaml").write_text(instance_yaml(databases["instance"], run, run_env))
    grpc_port, web_port = free_port(), free_port()
    workspace = grpc_workspace(grpc_port, LOCATION)
    for process in (web, daemon):
        (process.cwd / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    # The launcher's module is the tests' own, which only the project folder holds.
    viewer_env = {"PYTHONPATH": str(PROJECT)}

    # An uploader's file arrives, complete (its .done sidecar), before anything runs.
    inbox = shared / "landing" / UPLOADER / "inbox"
    inbox.mkdir(parents=True)
    (inbox / UPLOAD).write_text(VISITS)
    (inbox / f"{UPLOAD}.done").write_text("")

    services = []
    try:
        services.append(start_code_server(grpc_port, code.env(**project), tmp_path, code.cwd))
        services.append(
            webserver := Service(
                "webserver",
                [f"{BIN}/dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(web_port)],
                web.env(JUPYTER_PATH=str(JUPYTER_PATH), **viewer_env),
                tmp_path,
                cwd=web.cwd,
            )
        )
        base = f"http://127.0.0.1:{web_port}"
        wait_for("the webserver to load the location", lambda: location_loaded(base), 180, service=webserver)
        # The report is launched from the webserver below, as a person would from the UI: sooner
        # than the automation sensor's next tick and the backfill daemon would start it.
        stop_sensor(base, "reports_automation_sensor")
        services.append(
            dagster_daemon := Service(
                "daemon",
                [f"{BIN}/dagster-daemon", "run", "-w", "workspace.yaml"],
                daemon.env(**viewer_env),
                tmp_path,
                cwd=daemon.cwd,
            )
        )
        with dg.DagsterInstance.from_config(str(web.home)) as instance:
            wait_for(
                "the export and ingestion runs the sensors request",
                lambda: runs_done(instance, ["orders"], ["store_visits_uploads"]),
                240,
                service=dagster_daemon,
            )
            report_run = launch_report(base)
            wait_for("the report run", lambda: runs_done(instance, [REPORT]), 240, service=dagster_daemon)
            # The run knows where the code server serves notebooks from, though it ran elsewhere.
            warnings = [e.message for e in instance.all_logs(report_run) if "will refuse" in e.message]
            assert not warnings, warnings
            runs = instance.get_runs()
            assert {r.tags.get(CWD_TAG) for r in runs} == {str(run.cwd)}, "every run in its own folder"

        # The export's rows are in the warehouse.
        engine = sa.create_engine(databases["warehouse"])
        with engine.connect() as connection:
            exported = connection.execute(
                sa.text("SELECT _partition, count(*) FROM orders GROUP BY _partition ORDER BY 1")
            ).all()
            visits = connection.execute(sa.text("SELECT file_name, store FROM store_visits_uploads")).all()
        engine.dispose()
        assert [(str(day), count) for day, count in exported] == [(day, team.ORDERS_PER_DAY) for day in DAYS]

        # The upload a run ingested came from the shared landing zone, not the code server's disk.
        assert sorted(visits) == [(UPLOAD, "north"), (UPLOAD, "south")]
        processed = shared / "landing" / UPLOADER / "processed"
        assert any(p.name.endswith(UPLOAD) for p in processed.iterdir()), sorted(processed.iterdir())

        # The report a run wrote opens in the webserver, as "View Notebook" opens it.
        materializations = graphql(base, REPORT_LINKS)["assetOrError"]["assetMaterializations"]
        links = {
            m["partition"]: {e["label"]: e.get("url") or e.get("path") for e in m["metadataEntries"]}
            for m in materializations
        }
        assert set(DAYS) <= set(links), links
        entries = links[DAYS[1]]
        notebook = Path(entries["notebook"])
        assert notebook.is_relative_to(shared / "reports"), notebook
        query = urllib.parse.parse_qs(entries["report"].removeprefix("/notebook?"))
        assert query == {"path": [str(notebook)], "repoLocName": [LOCATION]}
        status, page = get(base + entries["report"])
        assert status == 200, page[:2000]
        assert (
            "Shop orders, day by day" in page and f"orders on {DAYS[1]}: {team.ORDERS_PER_DAY} rows" in page
        )

        # Nothing the others needed landed in a process's own state folder.
        for process in (code, web, daemon, run):
            kept = {p.name for p in process.state.iterdir()}
            assert kept.isdisjoint({"reports", "landing", "tuning"}), (process.cwd, kept)
    finally:
        for service in reversed(services):
            service.stop()
