"""The warehouse tables intake writes, derived from an uploads file. No Dagster here."""

from pathlib import Path

from collab_pipelines import settings
from collab_pipelines.intake.upload_types import UploadsFile, UploadType, load_uploads
from collab_pipelines.warehouse.datasets import Dataset

UPLOAD_COLUMNS = {"upload_id": "string", "uploader": "string", "file_name": "string"}


def intake_datasets(path: Path | str | None = None) -> list[Dataset]:
    """Every intake table of the uploads file at `path` (default: the configuration folder's)."""
    return datasets_of(load_uploads(path or settings.uploads_file()))


def datasets_of(uploads: UploadsFile) -> list[Dataset]:
    datasets = []
    for upload_type in uploads.upload_types.values():
        datasets.append(uploads_dataset(upload_type))
        if upload_type.combined is not None:
            datasets.append(combined_dataset(upload_type))
    return datasets


def uploads_dataset(upload_type: UploadType) -> Dataset:
    return Dataset(
        name=upload_type.table,
        description=upload_type.description,
        columns={
            **UPLOAD_COLUMNS,
            **{c.name: c.type for c in upload_type.column_list},
            "_loaded_at": "datetime",
        },
        primary_key=("upload_id", *upload_type.key),
        asset_key=upload_type.table,
        owners=upload_type.owners,
        partition_column="upload_id",
        partitioning=f"dynamic:{upload_type.table}",
        pattern="intake",
    )


def combined_dataset(upload_type: UploadType) -> Dataset:
    combined = upload_type.combined
    return Dataset(
        name=combined.asset,
        description=combined.description
        or f"The {combined.export} export with {upload_type.name} uploads taking precedence.",
        columns={**{c.name: c.type for c in upload_type.column_list}, "source": "string"},
        primary_key=upload_type.key,
        asset_key=combined.asset,
        owners=combined.owners or upload_type.owners,
        pattern="intake",
    )
