"""Reconstructable jobs for the tests: dagstermill re-imports them inside the kernel.

Each function builds its job from a templates folder, so the tests run the shipped
templates and their own small ones (a failing notebook, a parameters probe) the same way.
"""

from pathlib import Path

import dagster as dg

from collab_pipelines.demo.paths import DEMO_TEMPLATES
from collab_pipelines.reports.definitions import build_defs
from collab_pipelines.reports.jobs import diagnose_report_job
from collab_pipelines.reports.templates import TEMPLATES_DIR
from collab_pipelines.warehouse.resources import Warehouse

TEST_TEMPLATES = Path(__file__).with_name("templates")


def _job(folder: Path, asset: str) -> dg.JobDefinition:
    defs = dg.Definitions.merge(
        build_defs(folder),
        dg.Definitions(
            jobs=[dg.define_asset_job(f"render_{asset}", selection=[asset])],
            resources={"warehouse": Warehouse()},
        ),
    )
    return defs.resolve_job_def(f"render_{asset}")


def flights_quality_report_job() -> dg.JobDefinition:
    return _job(DEMO_TEMPLATES, "flights_quality_report")


def weather_uploads_report_job() -> dg.JobDefinition:
    return _job(DEMO_TEMPLATES, "weather_uploads_report")


def evaluation_report_job() -> dg.JobDefinition:
    return _job(TEMPLATES_DIR, "evaluation_report")


def evaluation_trend_job() -> dg.JobDefinition:
    return _job(TEMPLATES_DIR, "evaluation_trend")


def probe_report_job() -> dg.JobDefinition:
    return _job(TEST_TEMPLATES, "probe_report")


def failing_report_job() -> dg.JobDefinition:
    return _job(TEST_TEMPLATES, "failing_report")


def test_diagnose_job() -> dg.JobDefinition:
    defs = dg.Definitions.merge(
        build_defs(TEST_TEMPLATES),
        dg.Definitions(jobs=[diagnose_report_job], resources={"warehouse": Warehouse()}),
    )
    return defs.resolve_job_def(diagnose_report_job.name)
