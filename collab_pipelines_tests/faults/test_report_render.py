"""A run worker SIGKILLed while it renders a report.

The reports' automation sensor (in the daemon) renders the day's report once the day is
exported; the run worker is killed when half of the report is on disk: the executed notebook
written, its HTML not yet, no materialization yet. Nothing of that run may be published as the
report (no materialization points at its files), run monitoring must fail the run, and its
retry must render and publish the day once.
"""

from pathlib import Path

import dagster as dg
import nbformat
import pytest

from collab_pipelines_tests.e2e.test_separated_state import REPORT, write_template
from collab_pipelines_tests.faults.conftest import deployed
from collab_pipelines_tests.faults.test_exports import LOST_WORKER, retried, said

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
DAY = "2024-03-01"
POINT = "reports.notebook_written"
AUTOMATION_TICKED = "Finished auto-materialization tick for reports_automation_sensor"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, cluster):
    """The faults' deployment with the daily orders report: its automation sensor renders a day."""
    with deployed(
        tmp_path_factory.mktemp("faults-reports"), cluster, lambda d: write_template(d.config)
    ) as deployment:
        yield deployment


def report_runs(deployment) -> list[dg.DagsterRun]:
    return [r for r in deployment.runs() if dg.AssetKey(REPORT) in (r.asset_selection or ())]


def published(deployment) -> list[Path]:
    """The notebooks the day's materializations of the report point at, newest first."""
    records = deployment.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(REPORT), asset_partitions=[DAY]), limit=100
    ).records
    return [Path(r.asset_materialization.metadata["notebook"].value) for r in records]


def whole(notebook: Path, line: str) -> bool:
    """The notebook reads and validates, shows the day's line, and its HTML beside it does too."""
    try:
        nb = nbformat.read(notebook, as_version=4)
        nbformat.validate(nb)
        html = notebook.with_suffix(".html").read_text(encoding="utf-8")
    except (OSError, ValueError, nbformat.ValidationError):
        return False
    return line in nbformat.writes(nb) and line in html


@pytest.mark.timeout(400)
def test_worker_killed_while_rendering_a_report(deployment, figures):
    line = f"orders on {DAY}: {len(deployment.source_rows([DAY])[DAY])} rows"
    deployment.faults.arm(POINT)
    # The sensor's first tick only sets its cursor: a day exported before it would not count
    # as updated. After it, the day exported and recorded is rendered at the next tick.
    deployment.wait(
        "the reports' automation sensor's first tick",
        lambda: AUTOMATION_TICKED in deployment.daemon.log_path.read_text(errors="replace"),
        120,
    )
    deployment.export_in_process(DAY, DAY)
    deployment.faults.kill_at(POINT, keep={deployment.daemon.process.pid})

    # Half a report on disk, and none of it published.
    [killed] = report_runs(deployment)
    half = next(Path(p) for p in deployment.landing.parent.joinpath("reports").rglob("*.ipynb"))
    assert killed.run_id[:8] == half.stem and not half.with_suffix(".html").exists(), half
    assert published(deployment) == [], "a materialization points at the killed run's report"

    deployment.wait(
        "the retry of the killed report run to succeed", lambda: retried(deployment, killed.run_id), 180
    )
    assert deployment.instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert said(deployment, killed.run_id, LOST_WORKER), (
        "the killed run's log does not say its worker was lost"
    )

    notebooks = published(deployment)
    stuck = deployment.stuck_runs()
    figures(
        "report: worker SIGKILLed while rendering",
        rows_lost=int(not any(whole(n, line) for n in notebooks)),
        rows_doubled=max(len(notebooks) - 1, 0),
        runs_stuck=len(stuck),
        partial_published=sum(not whole(n, line) for n in notebooks),
    )
    assert len(notebooks) == 1 and whole(notebooks[0], line), notebooks
    assert half not in notebooks
    assert stuck == []
    # One run asked for the day (the sensor's), and one retry of it: nothing rendered twice.
    assert sorted((r.status.value, "dagster/parent_run_id" in r.tags) for r in report_runs(deployment)) == [
        ("FAILURE", False),
        ("SUCCESS", True),
    ]
