"""Where a report's data comes from: the warehouse, or the data API.

`ReportInputs` (notebook.py) asks a source four things: the dataset registry, a table's rows
filtered by column values, how many rows match, and a dataset's newest partition. Under Dagster
the source is the warehouse. `collab-report preview` (preview.py), or a notebook on a laptop
with `COLLAB_REPORT_SOURCE=api`, reads through the data API instead, so the same template code
gets the same rows with only `$COLLAB_API_URL` and a token. Neither source imports Dagster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from collab_pipelines.warehouse.datasets import Dataset

SOURCE_ENV = "COLLAB_REPORT_SOURCE"
"""`api` reads a template's data through the data API when it names no warehouse URL."""
API, WAREHOUSE = "api", "warehouse"
# Column that tells which partition is newest, when the partition key itself does not sort
# by time (evaluation keys): the first one a dataset has.
RECENCY_COLUMNS = ("_loaded_at", "evaluated_at", "loaded_at")


class ReportInputError(LookupError):
    """A template asked for data that is not there; the message names the dataset and keys."""


def _as_list(values: Any) -> list:
    return list(values) if isinstance(values, (list, tuple, set, frozenset)) else [values]


class WarehouseSource:
    """The warehouse itself: what Dagster's report runs read."""

    kind = WAREHOUSE

    def __init__(self, url: str):
        self.url = url

    @property
    def engine(self):
        from collab_pipelines.warehouse.engine import engine_for_url

        # Reports only read: the database itself refuses a write (warehouse/engine.py).
        return engine_for_url(self.url, readonly=True)

    def describe(self) -> str:
        from collab_pipelines.warehouse.engine import describe

        return describe(self.engine)

    def registry(self) -> Mapping[str, Dataset]:
        from collab_pipelines.datasets import all_datasets

        return all_datasets()

    def read(self, table: str, where: Mapping[str, Any], columns: Sequence[str] | None) -> pd.DataFrame:
        from collab_pipelines.warehouse.engine import WarehouseError, read_rows

        try:
            return read_rows(self.engine, table, where=where, columns=columns)
        except WarehouseError as error:
            raise ReportInputError(f"dataset {table!r}: {error}; materialize it first") from error

    def count(self, table: str, where: Mapping[str, Any] | None) -> int:
        from collab_pipelines.warehouse.engine import count_rows

        return count_rows(self.engine, table, where=where)

    def latest(self, dataset: Dataset) -> str | None:
        import sqlalchemy as sa

        from collab_pipelines.warehouse.engine import WarehouseError, check_identifier

        column = dataset.partition_column
        with self.engine.connect() as connection:
            try:
                check_identifier(dataset.name, "dataset name")
            except WarehouseError as error:
                raise ReportInputError(str(error)) from error
            if not sa.inspect(connection).has_table(dataset.name):
                raise ReportInputError(
                    f"dataset {dataset.name!r} is not in the warehouse {self.describe()}; materialize it first"
                )
            table = sa.Table(dataset.name, sa.MetaData(), autoload_with=connection)
            recency = next((c for c in RECENCY_COLUMNS if c in table.c), None)
            if recency is None or dataset.partitioning == "daily":
                query = sa.select(sa.func.max(table.c[column]))
            else:
                query = sa.select(table.c[column]).order_by(table.c[recency].desc()).limit(1)
            value = connection.execute(query).scalar()
        return None if value is None else str(value)


def dataset_from_catalog(item: Mapping[str, Any]) -> Dataset:
    """A registry entry from the data API's description of a dataset (GET /v1/datasets)."""
    partitioning = item.get("partitioning") or {}
    kind = partitioning.get("kind")
    if kind == "dynamic":
        kind = f"dynamic:{partitioning.get('dynamic_name') or ''}"
    return Dataset(
        name=item["name"],
        description=item.get("description") or "",
        columns={c["name"]: c["type"] for c in item.get("columns", [])},
        primary_key=tuple(item.get("primary_key") or ()),
        asset_key=item["asset_key"],
        owners=tuple(item.get("owners") or ()),
        partition_column=partitioning.get("column"),
        partitioning=kind,
        pattern=item.get("pattern") or "exports",
    )


class ApiSource:
    """The data API: the server's registry, and rows one partition at a time through the local
    partition cache (data_api/cache.py), so a second preview downloads only what changed."""

    kind = API

    def __init__(self, client=None, cache=None):
        from collab_pipelines.data_api.cache import PartitionCache
        from collab_pipelines.data_api.client import Client

        self.client = client if client is not None else Client()
        self.cache = cache if cache is not None else PartitionCache(self.client)
        self._catalog: dict[str, dict] | None = None

    def describe(self) -> str:
        return f"the data API at {self.client.url}"

    def catalog(self) -> dict[str, dict]:
        if self._catalog is None:
            self._catalog = {item["name"]: item for item in self.client.catalog()}
        return self._catalog

    def registry(self) -> Mapping[str, Dataset]:
        return {name: dataset_from_catalog(item) for name, item in self.catalog().items()}

    def _dataset(self, table: str) -> Dataset:
        item = self.catalog().get(table)
        if item is None:
            raise ReportInputError(
                f"dataset {table!r} is not in the catalog of {self.describe()} (or not in this token's scope)"
            )
        return dataset_from_catalog(item)

    def read(self, table: str, where: Mapping[str, Any], columns: Sequence[str] | None) -> pd.DataFrame:
        dataset = self._dataset(table)
        conditions = dict(where or {})
        keys = None
        if dataset.partition_column in conditions:
            keys = self._readable(table, [str(k) for k in _as_list(conditions.pop(dataset.partition_column))])
        frame = self.cache.table(table, keys).to_pandas() if keys != [] else None
        if frame is None or (frame.empty and not len(frame.columns)):
            # No partition has rows: the warehouse answers an empty table with its columns.
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in dataset.columns})
        for column, values in conditions.items():
            if column not in frame.columns:
                raise ReportInputError(f"dataset {table!r} has no column {column!r}")
            frame = frame[frame[column].isin(_as_list(values))]
        if columns:
            unknown = [c for c in columns if c not in frame.columns]
            if unknown:
                raise ReportInputError(f"dataset {table!r} has no columns {unknown}")
            frame = frame[list(columns)]
        return frame.reset_index(drop=True)

    def _readable(self, table: str, keys: list[str]) -> list[str]:
        """The keys the API may be asked for: it refuses a day outside a daily dataset's
        partitions (400) where the warehouse simply has no rows, as for a drift baseline
        reaching back before the first day."""
        partitioning = self.catalog()[table].get("partitioning") or {}
        if partitioning.get("kind") != "daily":
            return keys
        first, latest = partitioning.get("first"), partitioning.get("latest")
        if latest is None:
            return []
        return [k for k in keys if (first is None or k >= first) and k <= latest]

    def count(self, table: str, where: Mapping[str, Any] | None) -> int:
        return len(self.read(table, where or {}, None))

    def latest(self, dataset: Dataset) -> str | None:
        item = self.catalog().get(dataset.name) or {}
        return (item.get("partitioning") or {}).get("latest")


def source_for(warehouse_url: str | None, source: str | object | None = None):
    """The source a template reads: `source` if given ("api", "warehouse" or a source object),
    else the warehouse named by `warehouse_url`, else `$COLLAB_REPORT_SOURCE`, else the
    project's warehouse (`$COLLAB_WAREHOUSE_URL`, else the state folder's SQLite file)."""
    if source is not None and not isinstance(source, str):
        return source
    chosen = source or (WAREHOUSE if warehouse_url else os.environ.get(SOURCE_ENV) or WAREHOUSE)
    if chosen == API:
        return ApiSource()
    if chosen != WAREHOUSE:
        raise ReportInputError(f"source {chosen!r}: use {API!r} or {WAREHOUSE!r} (${SOURCE_ENV})")
    from collab_pipelines import settings

    return WarehouseSource(warehouse_url or settings.warehouse_url())
