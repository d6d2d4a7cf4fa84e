"""One click from a report's materialization: the real webserver runs the diagnose job
launched as the UI launches it, and the materialization's `report` link renders the notebook."""

import json
import os
import re
import shutil
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines.reports.publishing import JUPYTER_PATH
from collab_pipelines_tests.e2e.processes import PROJECT, Service, free_port, wait_for

pytestmark = pytest.mark.e2e
BIN = os.path.dirname(sys.executable)
MATERIALIZATION_QUERY = """
query {
  workspaceOrError { ... on Workspace { locationEntries { name } } }
  assetOrError(assetKey: {path: ["diagnostic_report"]}) {
    ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries {
      label
      ... on NotebookMetadataEntry { path }
      ... on PathMetadataEntry { path }
      ... on UrlMetadataEntry { url }
    } } }
  }
}
"""


def get(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


@pytest.fixture
def project_state(warehouse_template):
    # Inside the project directory: the code server renders only notebooks under its working
    # directory, as with `make run` (.state/ is git-ignored).
    state = PROJECT / ".state" / f"pytest-reports-{uuid.uuid4().hex[:8]}"
    (state / "dagster").mkdir(parents=True)
    # Runs start as soon as they are launched, with no daemon to dequeue them; nothing else
    # of the instance matters to the link.
    (state / "dagster" / "dagster.yaml").write_text(
        "telemetry: {enabled: false}\nnux: {enabled: false}\n"
        "run_coordinator: {module: dagster._core.run_coordinator, class: DefaultRunCoordinator}\n"
    )
    shutil.copy(warehouse_template, state / "warehouse.db")
    yield state
    shutil.rmtree(state, ignore_errors=True)


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    status, body = get(f"{base}/graphql", json.dumps({"query": query, "variables": variables or {}}).encode())
    assert status == 200, body[:2000]
    return json.loads(body)["data"]


def test_a_report_launched_in_the_ui_links_to_its_rendered_notebook(project_state):
    """The `report` link of a materialization opens the webserver's notebook view, which
    renders it with no script from outside the machine (JUPYTER_PATH, docs/reports.md)."""
    state = project_state
    env = {k: v for k, v in os.environ.items() if k not in ("COLLAB_WAREHOUSE_URL", "COLLAB_SOURCE_URL")}
    env.update(
        COLLAB_STATE_DIR=str(state),
        DAGSTER_HOME=str(state / "dagster"),
        PATH=f"{BIN}:{env.get('PATH', '')}",
        JUPYTER_PATH=str(JUPYTER_PATH),
    )
    port = free_port()
    webserver = Service(
        "webserver",
        [f"{BIN}/dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        env,
        state,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the Dagster UI", lambda: get(f"{base}/server_info")[0] == 200, 240, service=webserver)
        location = graphql(base, MATERIALIZATION_QUERY)["workspaceOrError"]["locationEntries"][0]["name"]
        engine = sa.create_engine(f"sqlite:///{state / 'warehouse.db'}")
        upload = state / "upload.csv"
        pd.read_sql("SELECT * FROM flights WHERE _partition = '2013-01-03'", engine).drop(
            columns=["_partition", "_loaded_at"]
        ).to_csv(upload, index=False)
        engine.dispose()
        config = {
            "ops": {
                "diagnostic_report": {"config": {"template": "flights_quality_report", "file": str(upload)}}
            }
        }
        params = {
            "selector": {
                "repositoryLocationName": location,
                "repositoryName": "__repository__",
                "jobName": "diagnose_report",
            },
            "runConfigData": config,
        }
        launched = graphql(base, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
            run = wait_for(
                "the diagnose run",
                lambda: (r := instance.get_run_by_id(run_id)) and r.is_finished and r,
                300,
                service=webserver,
            )
            assert run.is_success, instance.all_logs(run_id)[-5:]
        entries = {
            e["label"]: e.get("path") or e.get("url")
            for e in graphql(base, MATERIALIZATION_QUERY)["assetOrError"]["assetMaterializations"][0][
                "metadataEntries"
            ]
        }
        link, notebook, html = entries["report"], entries["notebook"], entries["html_path"]
        assert link.startswith("/notebook?"), "a relative address, which works behind any host name"
        assert notebook.startswith(str(state)) and urllib.parse.parse_qs(link[len("/notebook?") :]) == {
            "path": [notebook],
            "repoLocName": [location],
        }
        status, page = get(base + link)
        assert status == 200, page[:2000]
        assert "Access denied" not in page and "Flights data quality" in page
        assert "upload.csv" in page and "<img" in page, (
            "the rendered notebook should show the report's charts"
        )
        for leak in ("InstanceRef", "__dm_", " - DEBUG - ", "BetaWarning"):
            assert leak not in page
        for page_text in (page, Path(html).read_text(encoding="utf-8")):
            assert not re.findall(r"<script[^>]+src=", page_text), "a script from elsewhere"
            assert "cdnjs" not in page_text and "unpkg" not in page_text
    finally:
        webserver.stop()
