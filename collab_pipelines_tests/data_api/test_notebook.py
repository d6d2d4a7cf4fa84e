"""The example notebook runs top to bottom against a real server, as a data scientist would."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

import collab_pipelines.data_api
from collab_pipelines_tests.data_api.conftest import TOKEN

NOTEBOOK = Path(collab_pipelines.data_api.__file__).parent / "examples" / "explore.ipynb"


def test_the_example_notebook_runs_with_the_client(sqlite_api, monkeypatch, tmp_path):
    monkeypatch.setenv("COLLAB_API_URL", sqlite_api.url)
    monkeypatch.setenv("COLLAB_API_TOKEN", TOKEN)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = {
        cell.source.split("\n")[0]: cell.outputs for cell in notebook.cells if cell.cell_type == "code"
    }
    assert outputs["again = api.rows("][0]["data"]["text/plain"] == "True"
    assert outputs["total = 0"][0]["data"]["text/plain"] == "5000"
    listing = outputs["datasets = api.datasets()"][0]["data"]["text/plain"]
    assert "flights" in listing and "evaluation_results" in listing
