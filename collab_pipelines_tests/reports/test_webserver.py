"""The UI's "View Notebook": the real webserver on the project renders a report materialized
from the command line, as README tells a data scientist to run the diagnose job."""

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

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
    shutil.copy(PROJECT / "dagster.yaml", state / "dagster" / "dagster.yaml")
    shutil.copy(warehouse_template, state / "warehouse.db")
    yield state
    shutil.rmtree(state, ignore_errors=True)


def test_view_notebook_renders_a_report_materialized_from_the_command_line(project_state):
    state = project_state
    env = {k: v for k, v in os.environ.items() if k not in ("COLLAB_WAREHOUSE_URL", "COLLAB_SOURCE_URL")}
    env.update(
        COLLAB_STATE_DIR=str(state), DAGSTER_HOME=str(state / "dagster"), PATH=f"{BIN}:{env.get('PATH', '')}"
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
        # The webserver creates the instance's SQLite storage; a run started meanwhile would race it.
        wait_for("the Dagster UI", lambda: get(f"{base}/server_info")[0] == 200, 240, service=webserver)
        # An uploaded file, diagnosed with the shipped daily template.
        engine = sa.create_engine(f"sqlite:///{state / 'warehouse.db'}")
        upload = state / "upload.csv"
        pd.read_sql("SELECT * FROM flights WHERE _partition = '2013-01-03'", engine).drop(
            columns=["_partition", "_loaded_at"]
        ).to_csv(upload, index=False)
        engine.dispose()
        config = state / "diagnose.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "ops": {
                        "diagnostic_report": {
                            "config": {"template": "flights_quality_report", "file": str(upload)}
                        }
                    }
                }
            )
        )
        execution = subprocess.run(
            [
                f"{BIN}/dagster",
                "job",
                "execute",
                "-m",
                "collab_pipelines.definitions",
                "-j",
                "diagnose_report",
                "-c",
                str(config),
            ],
            check=False,
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert execution.returncode == 0, execution.stdout[-3000:] + execution.stderr[-3000:]
        status, body = get(f"{base}/graphql", json.dumps({"query": MATERIALIZATION_QUERY}).encode())
        assert status == 200, body
        data = json.loads(body)["data"]
        location = data["workspaceOrError"]["locationEntries"][0]["name"]
        entries = {
            e["label"]: e.get("path")
            for e in data["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
        }
        notebook, html = entries["notebook"], entries["html_path"]
        assert notebook.startswith(str(state)) and os.path.exists(html)

        query = urllib.parse.urlencode({"path": notebook, "repoLocName": location})
        status, page = get(f"{base}/notebook?{query}")
        assert status == 200, page[:2000]
        assert "Access denied" not in page and "Flights data quality" in page
        assert "upload.csv" in page and "<img" in page, (
            "the rendered notebook should show the report's charts"
        )
        for leak in ("InstanceRef", "__dm_", " - DEBUG - ", "BetaWarning"):
            assert leak not in page
    finally:
        webserver.stop()
