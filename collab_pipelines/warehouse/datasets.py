"""The registry of warehouse datasets: what each table holds, whoever writes it.

Exports come from the catalog; every other pattern declares the tables it writes as
`Dataset`s in its `datasets.py`. The data API and the report templates read this registry,
so a table is described once, next to the code that writes it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

COLUMN_TYPES = ("integer", "float", "string", "boolean", "date", "datetime")
# Modules with a `DATASETS` list, besides the export catalog.
PATTERN_DATASET_MODULES = (
    "collab_pipelines.evaluation.datasets",
    "collab_pipelines.intake.datasets",
    "collab_pipelines.reports.datasets",
)


@dataclass(frozen=True)
class Dataset:
    name: str
    """The warehouse table, and the dataset's name in the data API."""
    description: str
    columns: Mapping[str, str]
    """Column name to one of COLUMN_TYPES."""
    primary_key: tuple[str, ...]
    asset_key: str
    """The Dagster asset that writes it (its user string, e.g. "flights")."""
    owners: tuple[str, ...] = ()
    partition_column: str | None = None
    """The warehouse column holding the Dagster partition key, if partitioned."""
    partitioning: str | None = None
    """"daily", "dynamic:<name>" or None."""
    pattern: str = "exports"
    extra: Mapping[str, str] = field(default_factory=dict)


def export_datasets() -> list[Dataset]:
    from collab_pipelines.exports.catalog import load_catalog
    from collab_pipelines.exports.frames import LOADED_AT_COLUMN, PARTITION_COLUMN

    datasets = []
    for spec in load_catalog().exports.values():
        columns = dict(spec.columns)
        columns[LOADED_AT_COLUMN] = "datetime"
        if spec.is_partitioned:
            columns[PARTITION_COLUMN] = "string"
        datasets.append(
            Dataset(
                name=spec.name,
                description=spec.description,
                columns=columns,
                primary_key=spec.primary_key,
                asset_key=spec.name,
                owners=spec.owners,
                partition_column=PARTITION_COLUMN if spec.is_partitioned else None,
                partitioning="daily" if spec.is_partitioned else None,
                pattern="exports",
            )
        )
    return datasets


def all_datasets() -> dict[str, Dataset]:
    datasets = {dataset.name: dataset for dataset in export_datasets()}
    for module_name in PATTERN_DATASET_MODULES:
        module = importlib.import_module(module_name)
        for dataset in module.DATASETS:
            if dataset.name in datasets:
                raise ValueError(f"{module_name}: dataset {dataset.name!r} is declared twice")
            datasets[dataset.name] = dataset
    return datasets
