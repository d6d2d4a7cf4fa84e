"""Reports run from the command line get the same `report` link as the UI's runs, printed in
the terminal and recorded on the materialization: `dagster asset materialize` and `dagster job
execute`, each a real process on the project's demo location."""

import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import dagster as dg
import pytest
import yaml

from collab_pipelines_tests.e2e.processes import PROJECT

BIN = Path(sys.executable).parent
UI = "http://ui.example.org:3000"


@pytest.fixture
def cli_state(tmp_path, warehouse_template) -> Path:
    state = tmp_path / "state"
    (state / "dagster").mkdir(parents=True)
    (state / "dagster" / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    shutil.copy(warehouse_template, state / "warehouse.db")
    return state


def run_cli(state: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLLAB_WAREHOUSE_URL", "COLLAB_SOURCE_URL", "COLLAB_CODE_LOCATION", "COLLAB_SHARED_DIR")
    }
    env.update(
        DAGSTER_HOME=str(state / "dagster"),
        COLLAB_STATE_DIR=str(state),
        COLLAB_DAGSTER_URL=UI,
        PATH=f"{BIN}:{env.get('PATH', '')}",
        **extra_env,
    )
    # From the project folder, as README's commands are typed: its workspace.yaml names the location.
    return subprocess.run(
        [str(BIN / "dagster"), *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=400
    )


def recorded_link(state: Path, asset: str, partition: str | None = None) -> tuple[str, str]:
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event is not None, f"no materialization of {asset}"
        materialization = event.asset_materialization
        assert materialization.partition == partition
        metadata = materialization.metadata
        return metadata["report"].value, metadata["notebook"].value


def assert_link(output: str, link: str, notebook: str, location: str) -> None:
    assert link.startswith("/notebook?")
    assert urllib.parse.parse_qs(link.removeprefix("/notebook?")) == {
        "path": [notebook],
        "repoLocName": [location],
    }
    assert UI + link in output, output[-3000:]


def workspace_location() -> str:
    entry = yaml.safe_load((PROJECT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    return entry["location_name"]


@pytest.mark.timeout(600)
def test_dagster_asset_materialize_prints_and_records_the_link_with_the_workspace_location(cli_state):
    result = run_cli(
        cli_state,
        "asset", "materialize", "-m", "collab_pipelines.demo.definitions", "-a", "defs",
        "--select", "flights_quality_report", "--partition", "2013-01-03",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    link, notebook = recorded_link(cli_state, "flights_quality_report", "2013-01-03")
    assert_link(output, link, notebook, workspace_location())


@pytest.mark.timeout(600)
def test_dagster_job_execute_takes_the_location_name_from_the_setting(cli_state, tmp_path):
    config = tmp_path / "run.yaml"
    template = {"template": "flights_quality_report", "partition_key": "2013-01-04"}
    config.write_text(yaml.safe_dump({"ops": {"diagnostic_report": {"config": template}}}))
    result = run_cli(
        cli_state,
        "job", "execute", "-m", "collab_pipelines.demo.definitions", "-a", "defs",
        "-j", "diagnose_report", "-c", str(config),
        COLLAB_CODE_LOCATION="team_reports",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    link, notebook = recorded_link(cli_state, "diagnostic_report")
    assert_link(output, link, notebook, "team_reports")
