"""The new-data sensor: request exactly the complete days that are not exported yet; the records
sensor: report the days a lost run wrote but never recorded."""

import json
from datetime import date, timedelta

import dagster as dg

from collab_pipelines import fault_points

# Dagster's data-version tag has no public name (dagster_internals.py says why).
from collab_pipelines.dagster_internals import data_version_of, versioned
from collab_pipelines.exports import ledger
from collab_pipelines.exports.catalog import Catalog, ExportSpec
from collab_pipelines.exports.freshness import complete_days, contiguous_ranges
from collab_pipelines.exports.jobs import AssetJob
from collab_pipelines.exports.partitions import days_between
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


PARTITION_TAG = "dagster/partition"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def day_run_key(job_name: str, day: str) -> str:
    """The run key of one day's export, the same from the schedule and the sensor."""
    return f"{job_name}:{day}"


def range_run_request(job_name: str, first: str, last: str) -> dg.RunRequest:
    """One run for consecutive days: a single-run backfill of the window."""
    if first == last:
        return dg.RunRequest(run_key=day_run_key(job_name, first), partition_key=first)
    run_key = f"{job_name}:{first}..{last}"
    return dg.RunRequest(run_key=run_key, tags={RANGE_START_TAG: first, RANGE_END_TAG: last})


def runs_in_flight(instance: dg.DagsterInstance, job_name: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT)))


def days_taken(instance: dg.DagsterInstance, job_name: str, asset_keys: list[dg.AssetKey]) -> set[str]:
    """Days every export of the job already has, or that a queued or running run is exporting.

    The schedule and the new-data sensor both consult this, so whichever asks second finds
    the day taken and the day is exported once.
    """
    taken = set.intersection(*(set(instance.get_materialized_partitions(key)) for key in asset_keys))
    for run in runs_in_flight(instance, job_name):
        if PARTITION_TAG in run.tags:
            taken.add(run.tags[PARTITION_TAG])
        elif RANGE_START_TAG in run.tags and RANGE_END_TAG in run.tags:
            first, last = date.fromisoformat(run.tags[RANGE_START_TAG]), run.tags[RANGE_END_TAG]
            taken.update(days_between(first, date.fromisoformat(last) + timedelta(days=1)))
    return taken


def build_new_days_sensor(job: AssetJob, specs: list[ExportSpec], catalog: Catalog) -> dg.SensorDefinition:
    asset_keys = [dg.AssetKey(spec.name) for spec in specs]

    @dg.sensor(
        name=f"{job.name}_new_data_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the source's watermark and requests each newly complete day "
        "that is not exported yet, consecutive days as one run. Its cursor holds the newest "
        "day already considered, so no day is requested twice.",
    )
    def _sensor(context: dg.SensorEvaluationContext, sources: SqlSources):
        considered_through = json.loads(context.cursor)["through"] if context.cursor else None
        days = complete_days(specs, catalog, sources)
        new_days = [day for day in days if considered_through is None or day > considered_through]
        if not new_days:
            return dg.SkipReason(
                f"No new complete day: the source is complete through {days[-1] if days else 'no day'}, "
                f"and days through {considered_through} were already considered."
            )
        # A day counts as exported only once every export of the job has it.
        taken = days_taken(context.instance, job.name, asset_keys)
        missing = [day for day in new_days if day not in taken]
        requests = [range_run_request(job.name, first, last) for first, last in contiguous_ranges(missing)]
        context.log.info(
            f"{len(new_days)} new complete day(s), {len(missing)} not exported: {len(requests)} run(s)"
        )
        fault_points.reached("exports.sensor_requesting")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps({"through": new_days[-1]}))

    return _sensor


def build_missing_tables_sensor(job: AssetJob, specs: list[ExportSpec]) -> dg.SensorDefinition:
    """Export the tables without a date as soon as one was never exported.

    Their schedule runs nightly; without this a fresh deployment would wait until midnight
    for airlines, airports and planes.
    """
    asset_keys = [dg.AssetKey(spec.name) for spec in specs]

    @dg.sensor(
        name=f"{job.name}_missing_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests the tables without a date once, when any of them was never exported.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        missing = [
            key.to_user_string()
            for key in asset_keys
            if context.instance.get_latest_materialization_event(key) is None
        ]
        if not missing:
            return dg.SkipReason("Every table without a date has been exported.")
        # On a fresh start the first run is still writing while later ticks see the gap.
        running = runs_in_flight(context.instance, job.name)
        if running:
            return dg.SkipReason(
                f"{len(missing)} table(s) never exported ({', '.join(missing)}), and run "
                f"{running[0].run_id} of {job.name} is already queued or running."
            )
        # The run key makes Dagster launch this once, however many ticks see the same gap.
        return dg.RunRequest(run_key=f"missing:{','.join(missing)}")

    return _sensor


RECORDS_SENSOR = "export_records_sensor"


def recorded_version(instance: dg.DagsterInstance, day: ledger.WrittenDay) -> str | None:
    """The data version of Dagster's newest materialization of the day, if any."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(day.export),
            asset_partitions=[day.day] if day.day != ledger.WHOLE_TABLE else None,
        ),
        limit=1,
    ).records
    return data_version_of(records[0].asset_materialization) if records else None


def lost_day_materialization(day: ledger.WrittenDay, run: dg.DagsterRun | None) -> dg.AssetMaterialization:
    ended = f"ended {run.status.value}" if run is not None else "is no longer in the instance"
    return dg.AssetMaterialization(
        dg.AssetKey(day.export),
        partition=day.day if day.day != ledger.WHOLE_TABLE else None,
        description=f"Written by run {day.run_id}, which {ended} before recording it; "
        "recorded from the warehouse's ledger.",
        metadata={"dagster/row_count": day.row_count, "written_by_run": day.run_id},
        tags=versioned(day.data_version),
    )


def build_export_records_sensor() -> dg.SensorDefinition:
    """Keep Dagster's record of the exports equal to the warehouse after a lost run (ledger.py)."""

    @dg.sensor(
        name=RECORDS_SENSOR,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reports the days an export run wrote to the warehouse but did not record "
        "(it was killed, or lost its instance database, between the two), from the warehouse's "
        "ledger, once that run has ended: no day the product serves shows as missing.",
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
        pending = ledger.unrecorded(warehouse.engine())
        if not pending:
            return dg.SkipReason("Every day in the warehouse is recorded.")
        runs: dict[str, dg.DagsterRun | None] = {}
        events, confirmed, waiting = [], [], 0
        for day in pending:
            if day.run_id not in runs:
                runs[day.run_id] = context.instance.get_run_by_id(day.run_id)
            run = runs[day.run_id]
            if run is not None and not run.is_finished:
                # Still recording its days, or still to be failed by run monitoring.
                waiting += 1
            elif recorded_version(context.instance, day) == day.data_version:
                confirmed.append(day)
            else:
                events.append(lost_day_materialization(day, run))
        # Marked on a later tick, once Dagster holds the events this tick reports.
        for day in confirmed:
            ledger.mark_recorded(warehouse.engine(), day.export, day.run_id, [day.day])
        context.log.info(
            f"{len(events)} day(s) reported from the ledger, {len(confirmed)} confirmed, "
            f"{waiting} waiting for their run to end"
        )
        return dg.SensorResult(asset_events=events)

    return _sensor
