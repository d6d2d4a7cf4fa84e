"""What a warehouse dataset is: a table, its columns, its key and the asset that writes it.

Each pattern declares the tables it writes as `Dataset`s in its own `datasets.py`; the
project's registry (`collab_pipelines.datasets.all_datasets`) collects them. The data API
and the report templates read that registry, so a table is described once, next to the
code that writes it, and this shared module never needs to know the patterns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from collab_pipelines.warehouse.columns import ColumnType


@dataclass(frozen=True)
class Dataset:
    name: str
    """The warehouse table, and the dataset's name in the data API."""
    description: str
    columns: Mapping[str, ColumnType]
    """Column name to its type (`warehouse.columns`)."""
    primary_key: tuple[str, ...]
    asset_key: str
    """The Dagster asset that writes it (its user string, e.g. "flights")."""
    owners: tuple[str, ...] = ()
    partition_column: str | None = None
    """The warehouse column holding the Dagster partition key, if partitioned."""
    partitioning: str | None = None
    """"daily", "dynamic:<name>" or None."""
    pattern: str = "exports"
