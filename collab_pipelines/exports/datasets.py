"""The warehouse tables exports write: one dataset per catalog entry."""

from __future__ import annotations

from pathlib import Path

from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.frames import LOADED_AT_COLUMN, PARTITION_COLUMN
from collab_pipelines.warehouse.datasets import Dataset


def export_datasets(catalog_path: Path | str | None = None) -> list[Dataset]:
    datasets = []
    for spec in load_catalog(catalog_path).exports.values():
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
