"""Jobs over the exports: one per partition window, plus one for the dimension tables."""

from __future__ import annotations

from typing import Any

import dagster as dg

from collab_pipelines.exports.catalog import Catalog, ExportSpec
from collab_pipelines.exports.partitions import partition_groups

# What define_asset_job returns (an unresolved asset job): Dagster exports it under no public
# name, and importing it from dagster._core would tie this module to Dagster's internals.
AssetJob = Any
DAILY_EXPORTS_JOB = "daily_exports"
DIMENSION_EXPORTS_JOB = "dimension_exports"
# Unlike the other patterns' jobs, the exports' do not carry NO_RETRY_OF_STEP_FAILURES
# (collab_pipelines/retries.py): their usual failure is a source or warehouse connection lost
# mid-run, which deploy/dagster.yaml's one run retry fixes (collab_pipelines_tests/product/
# test_retries.py), and a day is replaced in one transaction, so a retry never doubles rows. A
# value that does not fit its column fails once more, one run wasted, before someone looks.


def daily_job_name(start, index: int) -> str:
    # The usual catalog has one window; extra windows get the start date in their name.
    return DAILY_EXPORTS_JOB if index == 0 else f"{DAILY_EXPORTS_JOB}_from_{start:%Y%m%d}"


def build_daily_jobs(catalog: Catalog) -> list[tuple[AssetJob, list[ExportSpec]]]:
    jobs = []
    for index, ((start, _end), specs) in enumerate(partition_groups(catalog).items()):
        job = dg.define_asset_job(
            name=daily_job_name(start, index),
            selection=dg.AssetSelection.assets(*[spec.name for spec in specs]),
            description="Export one day (or a range of days) of: "
            + ", ".join(spec.name for spec in specs)
            + ". A range runs as a single run.",
            tags={"collab/pattern": "exports"},
        )
        jobs.append((job, specs))
    return jobs


def build_dimension_job(catalog: Catalog) -> AssetJob | None:
    specs = catalog.unpartitioned()
    if not specs:
        return None
    return dg.define_asset_job(
        name=DIMENSION_EXPORTS_JOB,
        selection=dg.AssetSelection.assets(*[spec.name for spec in specs]),
        description="Export the tables without a date: " + ", ".join(s.name for s in specs) + ".",
        tags={"collab/pattern": "exports"},
    )
