"""Export assets, built from the catalog: one asset per entry, no Python per table."""

import hashlib
import warnings
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from collab_pipelines.exports.catalog import (
    PARTITION_END_PARAM,
    PARTITION_START_PARAM,
    Catalog,
    ExportSpec,
)
from collab_pipelines.exports.checks import check_specs, run_checks
from collab_pipelines.exports.frames import (
    LOADED_AT_COLUMN,
    PARTITION_COLUMN,
    ExportDataError,
    coerce_to_catalog,
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
    ) -> dg.MaterializeResult:
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
        written = warehouse.replace(spec.name, frame, where=where)
        context.log.info(
            f"wrote {written} rows of {spec.name!r} for "
            f"{f'{days[0]}..{days[-1]}' if days else 'the whole table'} to {warehouse.dialect}"
        )
        return dg.MaterializeResult(
            metadata=materialization_metadata(spec, frame, days),
            check_results=run_checks(spec, frame, days, warehouse),
            data_version=dg.DataVersion(content_hash(frame.drop(columns=[LOADED_AT_COLUMN]))),
        )

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


def content_hash(frame: pd.DataFrame) -> str:
    """A data version that changes exactly when the exported rows change."""
    if frame.empty:
        return hashlib.sha256(b"empty").hexdigest()[:16]
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes()).hexdigest()[:16]


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
        metadata["days"] = len(days)
        metadata["first_day"] = days[0]
        metadata["last_day"] = days[-1]
        metadata["rows_per_day"] = round(len(frame) / len(days), 1)
    for column in spec.figures:
        values = frame[column].dropna()
        if len(values):
            # Numeric metadata is what the UI plots across partitions.
            metadata[f"mean/{column}"] = float(values.mean())
            metadata[f"p95/{column}"] = float(values.quantile(0.95))
    if len(frame):
        for column in spec.checks.max_null_rates:
            metadata[f"null_rate/{column}"] = float(frame[column].isna().mean())
    return metadata


def _markdown_preview(frame: pd.DataFrame, rows: int = 10) -> str:
    if frame.empty:
        return "_no rows_"
    return frame.head(rows).astype(object).where(frame.head(rows).notna(), "").to_markdown(index=False)


def build_export_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    return [build_export_asset(spec, catalog) for spec in catalog.exports.values()]
