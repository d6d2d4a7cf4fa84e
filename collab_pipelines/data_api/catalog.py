"""What the API knows about each dataset: the registry, its lineage, and its freshness.

The dataset registry (`warehouse.datasets`) is the only source of names: a dataset or column
the registry does not declare is refused before any SQL is built. Lineage, check names and
partition bounds come from the project's asset graph (`graph.py`), freshness and check results
from the Dagster instance.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg
import sqlalchemy as sa

from collab_pipelines.data_api.graph import AssetGraph, AssetNode
from collab_pipelines.datasets import all_datasets
from collab_pipelines.warehouse.columns import SQLALCHEMY_TYPES
from collab_pipelines.warehouse.datasets import Dataset

# Table columns are re-read at most this often: a new column appears without a restart,
# yet a busy server does not reflect the table on every request.
_COLUMNS_TTL_SECONDS = 10.0


@dataclass(frozen=True)
class Materialization:
    timestamp: float
    run_id: str
    partition: str | None
    data_version: str | None
    storage_id: int

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


@dataclass(frozen=True)
class TableShape:
    """The declared columns a warehouse table has (declared order), and which hold a time zone."""

    columns: tuple[str, ...]
    aware: frozenset[str] = frozenset()


class DatasetCatalog:
    """Datasets by name, with the warehouse tables and the instance behind them.

    (Not the exports' catalog file: this is the data API's view of the dataset registry.)
    """

    def __init__(
        self,
        engine: sa.Engine,
        instance: dg.DagsterInstance,
        asset_graph: AssetGraph | None = None,
        datasets: dict[str, Dataset] | None = None,
    ):
        self.engine = engine
        self.instance = instance
        self.asset_graph = asset_graph
        self.datasets = datasets if datasets is not None else all_datasets()
        self._shapes: dict[str, tuple[float, TableShape | None]] = {}
        self._tables: dict[tuple, sa.Table] = {}
        self._lock = threading.Lock()

    # -- the warehouse -------------------------------------------------------------------
    def table_columns(self, dataset: Dataset) -> tuple[str, ...] | None:
        """The declared columns the warehouse table has, in declared order; None if no table."""
        shape = self.table_shape(dataset)
        return shape.columns if shape else None

    def table_shape(self, dataset: Dataset) -> TableShape | None:
        now = time.monotonic()
        with self._lock:
            cached = self._shapes.get(dataset.name)
        if cached and now - cached[0] < _COLUMNS_TTL_SECONDS:
            return cached[1]
        inspector = sa.inspect(self.engine)
        shape = None
        if inspector.has_table(dataset.name):
            actual = {column["name"]: column["type"] for column in inspector.get_columns(dataset.name)}
            shape = TableShape(
                columns=tuple(c for c in dataset.columns if c in actual),
                aware=frozenset(
                    c
                    for c, kind in actual.items()
                    if c in dataset.columns and getattr(kind, "timezone", False) is True
                ),
            )
        with self._lock:
            self._shapes[dataset.name] = (now, shape)
        return shape

    def table(self, dataset: Dataset, columns: Iterable[str], aware: Iterable[str] = ()) -> sa.Table:
        """A typed table for query building; only declared names reach this point."""
        aware = frozenset(aware)
        key = (dataset.name, tuple(columns), aware)
        cached = self._tables.get(key)
        if cached is not None:
            return cached
        # One Table per shape: SQLAlchemy's compiled-statement cache then serves every request.
        self._tables[key] = table = sa.Table(
            dataset.name,
            sa.MetaData(),
            *(
                sa.Column(
                    c, sa.DateTime(timezone=True) if c in aware else SQLALCHEMY_TYPES[dataset.columns[c]]()
                )
                for c in columns
            ),
        )
        return table

    def row_count(self, dataset: Dataset) -> int | None:
        columns = self.table_columns(dataset)
        if columns is None:
            return None
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count()).select_from(self.table(dataset, columns[:1]))
                ).scalar_one()
            )

    # -- the instance --------------------------------------------------------------------
    def latest_materialization(
        self, dataset: Dataset, partition: str | None = None
    ) -> Materialization | None:
        records_filter = dg.AssetRecordsFilter(
            asset_key=dg.AssetKey.from_user_string(dataset.asset_key),
            asset_partitions=[partition] if partition is not None else None,
        )
        records = self.instance.fetch_materializations(records_filter, limit=1).records
        if not records:
            return None
        record = records[0]
        entry = record.event_log_entry
        materialization = entry.asset_materialization
        tags = (materialization.tags or {}) if materialization else {}
        return Materialization(
            timestamp=entry.timestamp,
            run_id=entry.run_id,
            partition=materialization.partition if materialization else None,
            data_version=tags.get("dagster/data_version"),
            storage_id=record.storage_id,
        )

    def materialized_partitions(self, dataset: Dataset) -> set[str]:
        return self.instance.get_materialized_partitions(dg.AssetKey.from_user_string(dataset.asset_key))

    def latest_partition(self, dataset: Dataset, materialized: set[str] | None = None) -> str | None:
        """The newest complete partition: the last day materialized, or the last dynamic key."""
        if dataset.partitioning == "daily":
            materialized = self.materialized_partitions(dataset) if materialized is None else materialized
            return max(materialized) if materialized else None
        latest = self.latest_materialization(dataset)
        return latest.partition if latest else None

    def partition_bounds(self, dataset: Dataset) -> tuple[date | None, date | None]:
        """A daily dataset's first day and its end (exclusive), from its partitions definition."""
        node = self._node(dataset)
        return (node.start, node.end) if node else (None, None)

    def check_results(self, dataset: Dataset) -> list[dict]:
        if self.asset_graph is None:
            return []
        key = dg.AssetKey.from_user_string(dataset.asset_key)
        if not self.asset_graph.has(key):
            return []
        check_keys = sorted(self.asset_graph.get(key).check_keys, key=lambda k: k.name)
        if not check_keys:
            return []
        latest = self.instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
        results = []
        for check_key in check_keys:
            record = latest.get(check_key)
            result = {
                "name": check_key.name,
                "status": "never_run",
                "passed": None,
                "severity": None,
                "description": None,
                "partition": None,
                "timestamp": None,
            }
            if record is not None:
                result["status"] = record.status.value.lower()
                result["partition"] = record.partition
                result["timestamp"] = datetime.fromtimestamp(record.create_timestamp, UTC)
                evaluation = _check_evaluation(record)
                if evaluation is not None:
                    result["passed"] = evaluation.passed
                    result["severity"] = evaluation.severity.value.lower() if evaluation.severity else None
                    result["description"] = evaluation.description
            results.append(result)
        return results

    # -- the asset graph -----------------------------------------------------------------
    def lineage(self, dataset: Dataset) -> dict | None:
        if self.asset_graph is None:
            return None
        key = dg.AssetKey.from_user_string(dataset.asset_key)
        if not self.asset_graph.has(key):
            return {"upstream": [], "downstream": [], "all_upstream": [], "all_downstream": []}
        node = self.asset_graph.get(key)
        return {
            "upstream": self._describe_assets(node.parent_keys),
            "downstream": self._describe_assets(node.child_keys),
            "all_upstream": self._describe_assets(self._walk(key, "parent_keys")),
            "all_downstream": self._describe_assets(self._walk(key, "child_keys")),
        }

    def _node(self, dataset: Dataset) -> AssetNode | None:
        if self.asset_graph is None:
            return None
        key = dg.AssetKey.from_user_string(dataset.asset_key)
        return self.asset_graph.get(key) if self.asset_graph.has(key) else None

    def _walk(self, key: dg.AssetKey, direction: str) -> set[dg.AssetKey]:
        seen: set[dg.AssetKey] = set()
        frontier = [key]
        while frontier:
            for neighbour in getattr(self.asset_graph.get(frontier.pop()), direction):
                if neighbour not in seen:
                    seen.add(neighbour)
                    frontier.append(neighbour)
        return seen

    def _describe_assets(self, keys: Iterable[dg.AssetKey]) -> list[dict]:
        by_asset: dict[str, list[str]] = {}
        for dataset in self.datasets.values():
            by_asset.setdefault(dataset.asset_key, []).append(dataset.name)
        return [
            {"asset_key": key.to_user_string(), "datasets": sorted(by_asset.get(key.to_user_string(), []))}
            for key in sorted(keys, key=lambda k: k.to_user_string())
        ]


def _check_evaluation(record):
    event = record.event
    if event is None or event.dagster_event is None:
        return None
    data = event.dagster_event.event_specific_data
    return data if isinstance(data, dg.AssetCheckEvaluation) else None
