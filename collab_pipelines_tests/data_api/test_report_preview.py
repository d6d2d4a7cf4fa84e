"""`collab-report preview`: a template run through a real data API server in a real kernel, as
Dagster runs it from the warehouse behind that server (the session's SQLite deployment)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from collab_pipelines import settings
from collab_pipelines.data_api.cache import CACHE_ENV
from collab_pipelines.data_api.client import TOKEN_ENV, Client
from collab_pipelines.data_api.scope import Scope
from collab_pipelines.demo.paths import DEMO_TEMPLATES
from collab_pipelines.reports import preview
from collab_pipelines.reports.notebook import ReportInputs
from collab_pipelines.reports.sources import ApiSource
from collab_pipelines_tests.data_api.conftest import TOKEN
from collab_pipelines_tests.data_api.scoped import audit_records, issue
from collab_pipelines_tests.reports import jobs
from collab_pipelines_tests.reports.helpers import assert_published_clean, execute, materializations

DAY = "2013-01-05"
FLIGHTS_REPORT = DEMO_TEMPLATES / "flights_quality_report.ipynb"


@pytest.fixture
def server(sqlite_api, tmp_path, monkeypatch):
    """The data API over a warehouse the export assets filled with the first week of 2013; the
    partitions a preview reads are cached in the test's own folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return sqlite_api


def outputs(path: Path, mime: str) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [
        "".join(output["data"][mime])
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if mime in output.get("data", {})
    ]


def test_a_preview_through_the_api_shows_what_dagster_renders_from_the_warehouse(
    server, tmp_path, instance, monkeypatch
):
    anywhere = tmp_path / "laptop"
    anywhere.mkdir()
    out = anywhere / "flights.day.html"
    # As on a laptop without Dagster: neither the command nor its kernel (which inherits the
    # environment) can import it.
    no_dagster = tmp_path / "no-dagster"
    no_dagster.mkdir()
    (no_dagster / "sitecustomize.py").write_text(
        "import sys\nsys.modules['dagster'] = None\nsys.modules['dagstermill'] = None\n"
    )
    # Only the API's address and a token: no state folder, no warehouse, no configuration, no Dagster home.
    env = {
        "PYTHONPATH": str(no_dagster),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        CACHE_ENV: str(tmp_path / "cache"),
        "COLLAB_API_URL": server.url,
        "COLLAB_API_TOKEN": TOKEN,
    }
    command = [Path(sys.executable).parent / "collab-report", "preview", FLIGHTS_REPORT]
    options = ["--partition", DAY, "--param", "max_null_rate=0.02", "--out", out.name]
    done = subprocess.run([*command, *options], cwd=anywhere, env=env, capture_output=True, text=True)
    assert done.returncode == preview.RENDERED, done.stderr
    assert str(out) in done.stdout

    # Dagster renders the same template and partition from the warehouse the server reads.
    monkeypatch.setenv(settings.STATE_DIR_ENV, str(tmp_path / "state"))
    monkeypatch.setenv(settings.WAREHOUSE_URL_ENV, server.deployment.warehouse_url)
    parameters = {"ops": {"flights_quality_report": {"config": {"parameters": {"max_null_rate": 0.02}}}}}
    result = execute(jobs.flights_quality_report_job, instance, partition=DAY, run_config=parameters)
    assert result.success
    rendered = Path(materializations(instance, "flights_quality_report")[DAY]["notebook"])

    notebook = anywhere / "flights.day.ipynb"
    tables = outputs(notebook, "text/html")
    # By carrier, the worst airport-carrier pairs, and the drift (its baseline read through the API).
    assert len(tables) >= 3 and all("<table" in table for table in tables)
    assert tables == outputs(rendered, "text/html")
    prose = outputs(notebook, "text/markdown")
    assert f"**{DAY}**" in prose[0] and prose == outputs(rendered, "text/markdown")
    # The parameters cell kept as defaults, then the supplied values, as Dagster injects them.
    cells = nbformat.read(notebook, as_version=4).cells
    defaults = next(i for i, c in enumerate(cells) if "parameters-defaults" in c.metadata.get("tags", []))
    injected = cells[defaults + 1]
    assert "injected-parameters" in injected.metadata["tags"]
    assert f'partition_key = "{DAY}"' in injected.source and "max_null_rate = 0.02" in injected.source
    html = out.read_text()
    assert "report_inputs(" not in html and f"<strong>{DAY}</strong>" in html, "the HTML hides code"
    assert TOKEN not in html and TOKEN not in notebook.read_text()
    assert_published_clean(notebook, out)


def template(folder: Path, metadata: dict, *, sidecar: bool, body: str) -> Path:
    """A template whose first cell after the parameters leaves a mark: a kernel ran it."""
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(
        'datasets = {"flights": "flights"}\npartition_key = None\npartition_keys = None\nwarehouse_url = None\n'
    )
    parameters.metadata["tags"] = ["parameters"]
    mark = folder / "kernel-ran"
    nb.cells = [
        parameters,
        nbformat.v4.new_code_cell(f"open({str(mark)!r}, 'w').close()"),
        nbformat.v4.new_code_cell(body),
    ]
    path = folder / "probe.ipynb"
    if sidecar:
        (folder / "probe.report.json").write_text(json.dumps(metadata))
    else:
        nb.metadata["collab_report"] = metadata
    nbformat.write(nb, path)
    return path


def run(server, path: Path, *options: str) -> int:
    return preview.main(["preview", str(path), "--url", server.url, "--token", TOKEN, *options])


@pytest.mark.parametrize(
    ("metadata", "sidecar", "says"),
    [
        (
            {"datasets": {"flights": "flightz"}, "partitions": "daily"},
            True,
            "field 'datasets.flights': unknown dataset 'flightz'",
        ),
        (
            {"datasets": {"flights": "flightz"}, "partitions": "daily"},
            False,
            "field 'datasets.flights': unknown dataset 'flightz'",
        ),
        (
            {"datasets": {"flights": "flights"}, "partitions": "weekly"},
            True,
            "field 'partitions': Input should be 'daily'",
        ),
        (
            {"datasets": {"carriers": "airlines"}, "partitions": "daily"},
            True,
            "field 'partitions': 'daily' but none of its datasets ['airlines']",
        ),
    ],
    ids=[
        "unknown dataset in the sidecar",
        "unknown dataset in the notebook",
        "unknown partitions kind",
        "daily without a daily dataset",
    ],
)
def test_the_metadata_is_checked_against_the_servers_catalog_before_any_kernel_starts(
    server, tmp_path, capsys, metadata, sidecar, says
):
    path = template(tmp_path, metadata, sidecar=sidecar, body="print('never')")
    out = tmp_path / "out.html"
    assert run(server, path, "--partition", DAY, "--out", str(out)) == preview.INVALID
    error = capsys.readouterr().err
    where = str(tmp_path / "probe.report.json") if sidecar else f"{path} (notebook metadata 'collab_report')"
    assert f"{where}: {says}" in error
    assert not (tmp_path / "kernel-ran").exists() and not out.exists()


def test_a_failing_template_exits_non_zero_with_its_cell_and_error(server, tmp_path, capsys):
    body = "from collab_pipelines.reports.notebook import report_inputs\n" + (
        "inputs = report_inputs(datasets, partition_key, partition_keys=partition_keys, warehouse_url=warehouse_url)\n"
        "raise ValueError(f'{len(inputs[\"flights\"])} flights on {partition_key} is too few')"
    )
    metadata = {"datasets": {"flights": "flights"}, "partitions": "daily"}
    path = template(tmp_path, metadata, sidecar=True, body=body)
    out = tmp_path / "failed.html"
    assert run(server, path, "--partition", "2013-01-02", "--out", str(out)) == preview.FAILED
    error = capsys.readouterr().err
    rows = server.deployment.warehouse().count("flights", where={"_partition": "2013-01-02"})
    # The kernel ran (the mark) and read the partition's rows through the API before failing.
    assert (tmp_path / "kernel-ran").exists() and rows > 0
    assert (
        "probe.ipynb failed in cell [4] ('from collab_pipelines.reports.notebook import report_inputs'):"
        in error
    )
    assert f"ValueError: {rows} flights on 2013-01-02 is too few" in error
    assert str(out.with_suffix(".ipynb")) in error and out.exists()


def test_a_partition_without_data_runs_nothing(server, tmp_path, capsys):
    path = template(
        tmp_path, {"datasets": {"flights": "flights"}, "partitions": "daily"}, sidecar=True, body=""
    )
    assert (
        run(server, path, "--partition", "2013-01-20", "--out", str(tmp_path / "out.html")) == preview.MISSING
    )
    assert "dataset flights has no rows for partition '2013-01-20'" in capsys.readouterr().err
    assert not (tmp_path / "kernel-ran").exists()


def declared(partitions: str) -> preview.Template:
    return preview.Template(Path("t.ipynb"), "t.report.json", {"f": "flights"}, partitions, {"top": "5"})


@pytest.mark.parametrize(
    ("partitions", "given", "injected"),
    [
        ("daily", "2013-01-05", ("2013-01-05", ["2013-01-05"])),
        ("daily", "2013-01-30..2013-02-01", ("2013-02-01", ["2013-01-30", "2013-01-31", "2013-02-01"])),
        ("evaluation_commits", "rain:model@1a2b3c4d", ("rain:model@1a2b3c4d", ["rain:model@1a2b3c4d"])),
        ("none", None, (None, None)),
    ],
)
def test_a_partition_is_injected_as_dagster_injects_it(partitions, given, injected):
    assert preview.partition_keys(declared(partitions), given) == injected


@pytest.mark.parametrize(
    ("partitions", "given", "says"),
    [
        ("daily", "2013-02-30", "not a day (YYYY-MM-DD) of a 'daily' template"),
        ("daily", "rain:model@1a2b3c4d", "not a day"),
        ("daily", "2013-01-07..2013-01-01", "ends before it starts"),
        ("evaluation_commits", "2013-01-01..2013-01-07", "a range is two days of a 'daily' template"),
        ("none", "2013-01-05", "'partitions': 'none'"),
    ],
)
def test_a_partition_the_template_cannot_have_is_refused(partitions, given, says):
    with pytest.raises(preview.PreviewError, match=re.escape(says)) as refused:
        preview.partition_keys(declared(partitions), given)
    assert refused.value.code == preview.INVALID and given in str(refused.value)


def test_parameters_are_read_as_yaml_and_unknown_names_refused():
    assert preview.parameters(declared("daily"), ["top=8"]) == {"top": 8}
    assert preview.parameters(declared("daily"), ["top=a, b"]) == {"top": "a, b"}
    with pytest.raises(
        preview.PreviewError, match=r"unknown parameters \['lookback'\]; .* declares \['top'\]"
    ):
        preview.parameters(declared("daily"), ["lookback=2"])
    with pytest.raises(preview.PreviewError, match="write name=value"):
        preview.parameters(declared("daily"), ["top"])


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    # The API sends columns in the catalog's declared order, the warehouse in its table's (an
    # export table may hold _partition before _loaded_at): the same columns, named not placed.
    frame = frame[sorted(frame.columns)]
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_report_inputs_read_the_same_rows_through_the_api_as_from_the_warehouse(server):
    datasets = {
        "flights": "flights",
        "weather": "weather",
        "airlines": "airlines",
        "metrics": "evaluation_metrics",
    }
    with Client(server.url, TOKEN) as client:
        through = ApiSource(client)
        api = ReportInputs(datasets, "2013-01-03", partitioned_by="flights", source=through)
        warehouse = ReportInputs(
            datasets, "2013-01-03", partitioned_by="flights", warehouse_url=server.deployment.warehouse_url
        )
        # Bound daily partitions (flights, weather), and datasets partitioned otherwise or not at all.
        for role in datasets:
            assert len(api[role]) > 0
            pd.testing.assert_frame_equal(sorted_rows(api[role]), sorted_rows(warehouse[role]))
        # A drift baseline reaching back before the first day, which the API would refuse to serve.
        pd.testing.assert_frame_equal(
            sorted_rows(api.before("flights", days=7)), sorted_rows(warehouse.before("flights", days=7))
        )
        where = {"origin": ["JFK"], "carrier": "AA"}
        pd.testing.assert_frame_equal(
            sorted_rows(api.load("flights", ["2013-01-04"], where, ["id", "origin", "carrier"])),
            sorted_rows(warehouse.load("flights", ["2013-01-04"], where, ["id", "origin", "carrier"])),
        )
        newest = ReportInputs(datasets, partitioned_by="flights", source=through)
        assert (
            newest.partition_keys
            == ["2013-01-07"]
            == ReportInputs(
                datasets, partitioned_by="flights", warehouse_url=server.deployment.warehouse_url
            ).partition_keys
        )
        gone = ReportInputs({"flights": "flights"}, partition_keys=["2013-01-20"], source=through)
        assert gone.missing() == ["dataset flights has no rows for partition '2013-01-20' (asset 'flights')"]


def test_a_token_scoped_to_the_templates_datasets_is_enough(server, tmp_path, capsys, monkeypatch):
    # The only token is the one given: the kernel gets it from the command, not from here.
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    issued = issue(server, "preview", Scope(datasets=("weather",), suites=(), reports=()))
    body = "from collab_pipelines.reports.notebook import report_inputs\n" + (
        "inputs = report_inputs(datasets, partition_key, partition_keys=partition_keys, warehouse_url=warehouse_url)\n"
        "print(len(inputs['weather']), 'observations')"
    )
    weather = template(
        tmp_path, {"datasets": {"weather": "weather"}, "partitions": "daily"}, sidecar=True, body=body
    )
    out = tmp_path / "weather.html"
    options = ["--partition", "2013-01-03", "--url", server.url, "--token", issued.token, "--out", str(out)]
    assert preview.main(["preview", str(weather), *options]) == preview.RENDERED, capsys.readouterr().err
    observations = server.deployment.warehouse().count("weather", where={"_partition": "2013-01-03"})
    assert f"{observations} observations" in out.read_text() and observations > 0
    read = {
        (r["dataset"], r.get("partition")) for r in audit_records(server, issued.name) if r["read"] == "rows"
    }
    assert read == {("weather", "2013-01-03")}

    flights = tmp_path / "other"
    flights.mkdir()
    refused = template(
        flights, {"datasets": {"flights": "flights"}, "partitions": "daily"}, sidecar=True, body=""
    )
    assert preview.main(["preview", str(refused), *options]) == preview.INVALID
    assert "unknown dataset 'flights'; the data API at" in capsys.readouterr().err
    assert not (flights / "kernel-ran").exists()


def test_an_out_that_would_overwrite_the_template_is_refused(server, tmp_path, capsys):
    path = template(
        tmp_path, {"datasets": {"flights": "flights"}, "partitions": "daily"}, sidecar=True, body=""
    )
    before = path.read_bytes()
    assert run(server, path, "--partition", DAY, "--out", str(tmp_path / "probe.html")) == preview.INVALID
    assert "the executed notebook would overwrite the template" in capsys.readouterr().err
    assert path.read_bytes() == before and not (tmp_path / "kernel-ran").exists()
