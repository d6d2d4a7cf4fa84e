"""The daily schedule: export the newest complete day, and refresh the dimension tables."""

import dagster as dg

from collab_pipelines.exports.catalog import Catalog, ExportSpec
from collab_pipelines.exports.freshness import complete_days
from collab_pipelines.exports.jobs import AssetJob
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.exports.sensors import day_run_key, days_taken


def build_daily_schedule(job: AssetJob, specs: list[ExportSpec], catalog: Catalog) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule="15 0 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day at 00:15 UTC, export the newest day the source holds completely, "
        "unless the new-data sensor has already exported it or is exporting it.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, sources: SqlSources):
        days = complete_days(specs, catalog, sources)
        if not days:
            return dg.SkipReason("The source holds no complete day yet.")
        newest = days[-1]
        if newest in days_taken(context.instance, job.name, [dg.AssetKey(s.name) for s in specs]):
            return dg.SkipReason(f"{newest} is already exported, or being exported by another run.")
        return dg.RunRequest(run_key=day_run_key(job.name, newest), partition_key=newest)

    return _schedule


def build_dimension_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule="0 0 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Refresh the tables without a date once a day.",
    )
