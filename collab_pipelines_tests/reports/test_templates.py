"""Template loading and validation, and the notebook surgery, without a kernel."""

import json
import logging
import shutil

import dagster as dg
import nbformat
import pytest

from collab_pipelines.reports.definitions import build_defs
from collab_pipelines.reports.injection import DEFAULTS_TAG, prepare
from collab_pipelines.reports.publishing import INJECTED_TAG, scrub
from collab_pipelines.reports.templates import TemplateError
from collab_pipelines_tests.reports.jobs import TEST_TEMPLATES


def assets_of(defs: dg.Definitions) -> dict[str, dg.AssetsDefinition]:
    return {asset.key.to_user_string(): asset for asset in defs.assets}


def write(path, document) -> None:
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)


def probe_document() -> dict:
    return json.loads((TEST_TEMPLATES / "probe_report.ipynb").read_text())


def test_bad_templates_are_reported_by_file_and_the_good_ones_load(tmp_path, caplog):
    shutil.copy(TEST_TEMPLATES / "probe_report.ipynb", tmp_path / "good_report.ipynb")
    no_parameters = probe_document()
    for cell in no_parameters["cells"]:
        cell["metadata"]["tags"] = []
    write(tmp_path / "no_parameters.ipynb", no_parameters)
    write(tmp_path / "broken_json.ipynb", '{"cells": [')
    unknown_asset = probe_document()
    unknown_asset["metadata"]["collab_report"]["deps"] = ["no_such_asset"]
    write(tmp_path / "unknown_asset.ipynb", unknown_asset)
    unknown_dataset = probe_document()
    unknown_dataset["metadata"]["collab_report"]["datasets"] = {"flights": "flightz"}
    write(tmp_path / "unknown_dataset.ipynb", unknown_dataset)
    shutil.copy(TEST_TEMPLATES / "probe_report.ipynb", tmp_path / "bad_sidecar.ipynb")
    write(tmp_path / "bad_sidecar.report.json", '{"datasets": {"flights": "flights"},')

    with caplog.at_level(logging.WARNING, logger="collab_pipelines.reports"):
        defs = build_defs(tmp_path)
    keys = set(assets_of(defs))
    assert {"good_report", "diagnostic_report"} <= keys
    assert not keys & {"no_parameters", "broken_json", "unknown_asset", "unknown_dataset", "bad_sidecar"}
    logged = caplog.text
    for name, problem in [
        ("no_parameters.ipynb", "no cell tagged 'parameters'"),
        ("broken_json.ipynb", "invalid JSON at line 1"),
        ("unknown_asset.ipynb", "unknown assets ['no_such_asset']"),
        ("unknown_dataset.ipynb", "unknown datasets ['flightz']"),
        ("bad_sidecar.report.json", "invalid JSON"),
    ]:
        line = next((line for line in logged.splitlines() if name in line), "")
        assert problem in line, f"{name}: {problem!r} not reported; log:\n{logged}"
    # The launchpad's description names them too, where a data scientist will look.
    diagnostic = assets_of(defs)["diagnostic_report"]
    assert "broken_json.ipynb" in diagnostic.descriptions_by_key[dg.AssetKey("diagnostic_report")]


def test_a_sidecar_declares_what_a_notebook_reads(tmp_path):
    document = probe_document()
    del document["metadata"]["collab_report"]
    write(tmp_path / "side_report.ipynb", document)
    write(
        tmp_path / "side_report.report.json",
        json.dumps({"datasets": {"flights": "weather"}, "partitions": "daily"}),
    )
    asset = assets_of(build_defs(tmp_path))["side_report"]
    assert asset.partitions_def is not None
    assert dg.AssetKey("weather") in asset.dependency_keys


def test_prepare_keeps_the_defaults_before_the_supplied_values():
    template = nbformat.read(TEST_TEMPLATES / "probe_report.ipynb", as_version=4)
    nb = prepare(template, "threshold = 7\n", boilerplate="context = object()")
    tags = [cell.metadata.get("tags", []) for cell in nb.cells]
    defaults, injected = tags.index([DEFAULTS_TAG]), tags.index([INJECTED_TAG])
    assert injected == defaults + 1
    assert "greeting = " in nb.cells[defaults].source and "threshold = 7" in nb.cells[injected].source
    assert not any("parameters" in t for t in tags), (
        "no cell may be tagged parameters for dagstermill to replace"
    )


@pytest.mark.parametrize(
    "noise",
    [
        "2026-11-24 11:02:50 +0000 - dagster - DEBUG - job - 1234 - RESOURCE_INIT_STARTED - Starting\n",
        (
            "/venv/lib/python3.11/site-packages/dagstermill/manager.py:395: BetaWarning: Class `Manager` is in beta\n"
            "  MANAGER_FOR_NOTEBOOK_INSTANCE = Manager()\n"
        ),
        "/tmp/ipykernel_1/123.py:9: BetaWarning: probe\n  warnings.warn('probe', dg.BetaWarning)\n",
    ],
)
def test_scrub_removes_dagster_noise_and_keeps_the_notebooks_own_output(noise):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('kept')")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stderr", text=noise + "kept\n")]
    injected = nbformat.v4.new_code_cell(
        "context = __dm_dagstermill._reconstitute_job_context(instance_ref_dict={})"
    )
    injected.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(0, injected)
    clean = scrub(nb, "partition_key = '2013-01-01'\n", "supplied")
    text = nbformat.writes(clean)
    assert "kept" in text and "partition_key = '2013-01-01'" in text
    for marker in ("DEBUG", "BetaWarning", "MANAGER_FOR", "__dm_", "instance_ref", "warnings.warn"):
        assert marker not in text


def test_a_templates_folder_that_does_not_exist_defines_no_report(tmp_path):
    defs = build_defs(tmp_path / "no-such-folder")
    assert set(assets_of(defs)) == {"diagnostic_report"}
    assert not defs.sensors, "no report to follow its upstream, so no automation sensor"


def test_template_metadata_errors_name_the_file_and_the_field(tmp_path):
    document = probe_document()
    document["metadata"]["collab_report"].update(partitions="weekly", colour="red")
    write(tmp_path / "odd_report.ipynb", document)
    with pytest.raises(TemplateError) as raised:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("COLLAB_STRICT", "1")
            build_defs(tmp_path)
    message = str(raised.value)
    assert "odd_report.ipynb (notebook metadata 'collab_report'): field 'partitions'" in message
    assert "field 'colour': unknown field" in message
