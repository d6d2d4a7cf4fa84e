"""Export assets, built from the catalog: one asset per entry, no Python per table."""

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from collab_pipelines import fault_points

# A day's own data version, and the days' events in one batch, have no public spelling in
# Dagster 1.13: that module says why, and is the one place that reaches into Dagster for them.
from collab_pipelines.dagster_internals import batched_materializations, versioned
from collab_pipelines.exports import ledger
from collab_pipelines.exports.catalog import (
    PARTITION_END_PARAM,
    PARTITION_START_PARAM,
    Catalog,
    ExportSpec,
)
from collab_pipelines.exports.checks import check_specs, run_checks
from collab_pipelines.exports.daily import RunTally
from collab_pipelines.exports.frames import (
    LOADED_AT_COLUMN,
    PARTITION_COLUMN,
    ExportDataError,
    coerce_to_catalog,
    export_layout,
)
from collab_pipelines.exports.partitions import DATE_FORMAT, daily_partitions
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.exports.source import read_chunks
from collab_pipelines.warehouse.resources import Warehouse

EXPORTS_GROUP = "exports"


def column_schema(spec: ExportSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            # The catalog's own type words (warehouse.columns), as the data API shows them.
            dg.TableColumn(
                name,
                column_type,
                constraints=dg.TableColumnConstraints(
                    nullable=name not in spec.primary_key, unique=spec.primary_key == (name,)
                ),
            )
            for name, column_type in spec.columns.items()
        ]
    )


def build_export_asset(spec: ExportSpec, catalog: Catalog) -> dg.AssetsDefinition:
    connection = catalog.connections[spec.connection]
    asset_key = dg.AssetKey(spec.name)
    partitions_def = daily_partitions(spec.partition) if spec.partition else None

    with warnings.catch_warnings():
        # single_run backfills are the point of these assets; the Beta notice is known.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _define_export_asset(spec, connection, asset_key, partitions_def)


def _define_export_asset(spec, connection, asset_key, partitions_def) -> dg.AssetsDefinition:
    @dg.asset(
        key=asset_key,
        description=spec.description,
        group_name=EXPORTS_GROUP,
        owners=list(spec.owners),
        kinds={"sql", "pandas"},
        tags={"collab/pattern": "exports", **spec.tags},
        partitions_def=partitions_def,
        # A backfill of many days is one run that reads and writes its window in chunks.
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        check_specs=check_specs(spec, asset_key),
        # A partitioned export reports its days as materialization events (see below).
        output_required=partitions_def is None,
        metadata={
            "dagster/column_schema": column_schema(spec),
            "dagster/table_name": spec.name,
            "source_connection": spec.connection,
            "source_sql": dg.MetadataValue.md(f"```sql\n{spec.sql.strip()}\n```"),
            "primary_key": ", ".join(spec.primary_key),
        },
    )
    def _export(
        context: dg.AssetExecutionContext, sources: SqlSources, warehouse: Warehouse
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckResult]:
        params, days = {}, None
        if partitions_def is not None:
            # partition_key raises on a single-run range backfill; the window works for both.
            window = context.partition_time_window
            params = {
                PARTITION_START_PARAM: window.start.replace(tzinfo=None),
                PARTITION_END_PARAM: window.end.replace(tzinfo=None),
            }
            days = list(context.partition_keys)
        tally = RunTally(spec, days)
        loaded_at = datetime.now(UTC).replace(tzinfo=None)
        chunks = read_chunks(spec, sources.engine(connection), params, sources.chunk_rows)
        groups: list[dict] = []

        def write_ledger(transaction) -> None:
            # The days' figures, once every chunk is counted, into the ledger in the rows' own
            # transaction: a day is in the warehouse exactly when its ledger row is (ledger.py).
            groups.extend(tally.group_metadata())
            ledger.write(transaction, written_days(spec, days, groups, context.run.run_id))

        written = warehouse.replace(
            spec.name,
            (prepared_chunk(spec, chunk, days, tally, loaded_at) for chunk in chunks),
            where={PARTITION_COLUMN: days} if days is not None else None,
            layout=export_layout(spec),
            chunksize=sources.chunk_rows,
            before_commit=write_ledger,
        )
        context.log.info(
            f"wrote {written} rows of {spec.name!r} for "
            f"{f'{days[0]}..{days[-1]}' if days else 'the whole table'} to {warehouse.dialect}"
        )
        check_results = run_checks(spec, tally, days, warehouse)
        if days is None:
            (figures,) = groups
            version = figures.pop("data_version")
            yield dg.MaterializeResult(
                metadata={**run_metadata(spec, tally, None, last=True), **figures},
                check_results=check_results,
                data_version=dg.DataVersion(version),
            )
            ledger.mark_recorded(warehouse.engine(), spec.name, context.run.run_id)
            return
        # One materialization per day, each with that day's own row count and data version:
        # Dagster gives every partition of a range run the same tags, so the data version
        # of a day would otherwise depend on the run that exported it.
        materializations = []
        for index, (day, figures) in enumerate(zip(days, groups, strict=True)):
            version = figures.pop("data_version")
            materializations.append(
                dg.AssetMaterialization(
                    asset_key,
                    partition=day,
                    metadata={**run_metadata(spec, tally, days, last=index == len(days) - 1), **figures},
                    tags=versioned(version),
                )
            )
        yield from recorded_days(context, materializations)
        # Dagster holds every day's record now; until this, the records sensor would report them.
        ledger.mark_recorded(warehouse.engine(), spec.name, context.run.run_id)
        yield from check_results

    return _export


def recorded_days(
    context: dg.AssetExecutionContext, materializations: list[dg.AssetMaterialization]
) -> Iterator[object]:
    """The days' materializations as one event batch (dagster_internals.batched_materializations):
    with DAGSTER_EVENT_BATCH_SIZE, PostgreSQL storage writes them that many at a time
    (docs/exports.md has the figures). The fault point follows each day's event, which Dagster
    records as it is built.
    """
    for event in batched_materializations(context, materializations):
        yield event
        fault_points.reached("exports.day_recorded")


def written_days(
    spec: ExportSpec, days: list[str] | None, groups: list[dict], run_id: str
) -> list[ledger.WrittenDay]:
    return [
        ledger.WrittenDay(spec.name, day, run_id, figures["dagster/row_count"], figures["data_version"])
        for day, figures in zip(days if days is not None else [ledger.WHOLE_TABLE], groups, strict=True)
    ]


def prepared_chunk(
    spec: ExportSpec, chunk: pd.DataFrame, days: list[str] | None, tally: RunTally, loaded_at: datetime
) -> pd.DataFrame:
    """One chunk of the query, cast to the catalog, refused if it breaks it, and counted."""
    frame = coerce_to_catalog(chunk, spec)
    if spec.partition is not None and days is not None:
        frame[PARTITION_COLUMN] = frame[spec.partition.column].dt.strftime(DATE_FORMAT)
        stray = sorted(set(frame[PARTITION_COLUMN]) - set(days))
        if stray:
            raise ExportDataError(
                f"export {spec.name!r}: the SQL returned rows outside the partition window "
                f"{days[0]}..{days[-1]} (days {stray[:5]}); check its WHERE clause uses "
                f":{PARTITION_START_PARAM} and :{PARTITION_END_PARAM}"
            )
    tally.add(frame)
    frame[LOADED_AT_COLUMN] = loaded_at
    return frame


def run_metadata(spec: ExportSpec, tally: RunTally, days: list[str] | None, *, last: bool) -> dict:
    """What every materialization of the run carries; the newest one also the schema and preview."""
    metadata: dict = {}
    if last:
        # 365 copies of the same schema and preview would be a large share of a year's run
        # (each is stored twice by Dagster); the UI shows the newest materialization's, and the
        # asset's own definition carries the schema too.
        metadata["dagster/column_schema"] = column_schema(spec)
        metadata["preview"] = dg.MetadataValue.md(_markdown_preview(tally.preview))
    if days:
        # What the run wrote, beside each day's own figures.
        metadata["run_days"] = len(days)
        metadata["run_first_day"] = days[0]
        metadata["run_last_day"] = days[-1]
        metadata["run_rows"] = tally.rows
    return metadata


def _markdown_preview(frame: pd.DataFrame | None, rows: int = 10) -> str:
    if frame is None or frame.empty:
        return "_no rows_"
    return frame.head(rows).astype(object).where(frame.head(rows).notna(), "").to_markdown(index=False)


def build_export_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    return [build_export_asset(spec, catalog) for spec in catalog.exports.values()]
