"""Jobs of pattern 3: the ad-hoc diagnosis, launchable from the launchpad or the command line."""

import dagster as dg

from collab_pipelines.reports.diagnose import DIAGNOSTIC_ASSET
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES

DIAGNOSE_JOB = "diagnose_report"

diagnose_report_job = dg.define_asset_job(
    name=DIAGNOSE_JOB,
    selection=dg.AssetSelection.assets(DIAGNOSTIC_ASSET),
    description=(
        "Apply any report template to any dataset, partition, date range or uploaded file. "
        "Run config: ops.diagnostic_report.config.{template, datasets, file, partition_key, "
        "start, end, parameters}; see docs/reports.md."
    ),
    # A wrong config or a failing template fails the same way again: launched from the
    # launchpad or the CLI, the run carries the tag too.
    tags={"collab/pattern": "reports", **NO_RETRY_OF_STEP_FAILURES},
)
