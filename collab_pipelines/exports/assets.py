"""Export assets, built from the catalog: one asset per entry, no Python per table."""

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from dagster._core.definitions.data_version import (
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
)

from collab_pipelines.exports.catalog import (
    PARTITION_END_PARAM,
    PARTITION_START_PARAM,
    Catalog,
    ExportSpec,
)
from collab_pipelines.exports.checks import check_specs, run_checks
from collab_pipelines.exports.daily import content_hash, day_figures, figures
from collab_pipelines.exports.frames import (
    LOADED_AT_COLUMN,
    PARTITION_COLUMN,
    ExportDataError,
    coerce_to_catalog,
    export_layout,
)
from collab_pipelines.exports.partitions import DATE_FORMAT, daily_partitions
from collab_pipelines.exports.resources import SourceConnectionError, SqlSources
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
        # A backfill of many days is one run that reads and writes the whole window at once.
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
        frame = read_source(spec, sources.engine(connection), params)
        frame = coerce_to_catalog(frame, spec)
        where = None
        if spec.partition is not None:
            frame[PARTITION_COLUMN] = frame[spec.partition.column].dt.strftime(DATE_FORMAT)
            stray = sorted(set(frame[PARTITION_COLUMN]) - set(days))
            if stray:
                raise ExportDataError(
                    f"export {spec.name!r}: the SQL returned rows outside the partition window "
                    f"{days[0]}..{days[-1]} (days {stray[:5]}); check its WHERE clause uses "
                    f":{PARTITION_START_PARAM} and :{PARTITION_END_PARAM}"
                )
            where = {PARTITION_COLUMN: days}
        frame[LOADED_AT_COLUMN] = datetime.now(UTC).replace(tzinfo=None)
        written = warehouse.replace(spec.name, frame, where=where, layout=export_layout(spec))
        context.log.info(
            f"wrote {written} rows of {spec.name!r} for "
            f"{f'{days[0]}..{days[-1]}' if days else 'the whole table'} to {warehouse.dialect}"
        )
        metadata = materialization_metadata(spec, frame, days)
        check_results = run_checks(spec, frame, days, warehouse)
        if not days:
            yield dg.MaterializeResult(
                metadata={**metadata, **figures(spec, frame)},
                check_results=check_results,
                data_version=dg.DataVersion(content_hash(frame)),
            )
            return
        # One materialization per day, each with that day's own row count and data version:
        # Dagster gives every partition of a range run the same tags, so the data version
        # of a day would otherwise depend on the run that exported it.
        for day, figures_of_day in day_figures(spec, frame, days).items():
            version = figures_of_day.pop("data_version")
            yield dg.AssetMaterialization(
                asset_key,
                partition=day,
                metadata={**metadata, **figures_of_day},
                tags={DATA_VERSION_TAG: version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"},
            )
        yield from check_results

    return _export


def read_source(spec: ExportSpec, engine: sa.Engine, params: dict) -> pd.DataFrame:
    statement = sa.text(spec.sql)
    if params:
        # Typed parameters make SQLite compare its text timestamps in its own format.
        statement = statement.bindparams(
            sa.bindparam(PARTITION_START_PARAM, type_=sa.DateTime()),
            sa.bindparam(PARTITION_END_PARAM, type_=sa.DateTime()),
        )
    try:
        with engine.connect() as connection:
            return pd.read_sql(statement, connection, params=params)
    except sa.exc.SQLAlchemyError as error:
        raise SourceConnectionError(
            f"export {spec.name!r}: reading from connection {spec.connection!r} failed: "
            f"{getattr(error, 'orig', error)}"
        ) from error


def materialization_metadata(spec: ExportSpec, frame: pd.DataFrame, days: list[str] | None) -> dict:
    data = frame.drop(columns=[c for c in (LOADED_AT_COLUMN,) if c in frame.columns])
    metadata: dict = {
        "dagster/row_count": len(frame),
        "dagster/column_schema": column_schema(spec),
        "preview": dg.MetadataValue.md(
            _markdown_preview(data.drop(columns=[PARTITION_COLUMN], errors="ignore"))
        ),
    }
    if days:
        # What the run wrote, beside each day's own figures.
        metadata["run_days"] = len(days)
        metadata["run_first_day"] = days[0]
        metadata["run_last_day"] = days[-1]
        metadata["run_rows"] = len(frame)
    return metadata


def _markdown_preview(frame: pd.DataFrame, rows: int = 10) -> str:
    if frame.empty:
        return "_no rows_"
    return frame.head(rows).astype(object).where(frame.head(rows).notna(), "").to_markdown(index=False)


def build_export_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    return [build_export_asset(spec, catalog) for spec in catalog.exports.values()]
