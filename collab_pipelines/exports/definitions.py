from __future__ import annotations

from pathlib import Path

import dagster as dg

from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.jobs import build_daily_jobs, build_dimension_job
from collab_pipelines.exports.schedules import (
    build_daily_schedule,
    build_dimension_schedule,
)
from collab_pipelines.exports.sensors import (
    build_export_records_sensor,
    build_missing_tables_sensor,
    build_new_days_sensor,
)


def build_defs(catalog_path: Path | str | None = None) -> dg.Definitions:
    """Everything pattern 1 defines, from one catalog file. Resources come from the root."""
    catalog = load_catalog(catalog_path)
    jobs, schedules, sensors = [], [], []
    for job, specs in build_daily_jobs(catalog):
        jobs.append(job)
        schedules.append(build_daily_schedule(job, specs, catalog))
        sensors.append(build_new_days_sensor(job, specs, catalog))
    dimension_job = build_dimension_job(catalog)
    if dimension_job is not None:
        jobs.append(dimension_job)
        schedules.append(build_dimension_schedule(dimension_job))
        sensors.append(build_missing_tables_sensor(dimension_job, catalog.unpartitioned()))
    if catalog.exports:
        sensors.append(build_export_records_sensor())
    return dg.Definitions(
        assets=build_export_assets(catalog), jobs=jobs, schedules=schedules, sensors=sensors
    )
