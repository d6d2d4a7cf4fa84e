from collab_pipelines.intake.schemas import UPLOAD_TYPES
from collab_pipelines.warehouse.datasets import Dataset

_TYPES = {"string": "string", "float": "float", "integer": "integer", "datetime": "datetime"}

DATASETS: list[Dataset] = [
    *(
        Dataset(
            name=f"{upload_type.name}_uploads",
            description=upload_type.description,
            columns={
                "upload_id": "string",
                "uploader": "string",
                "file_name": "string",
                **{c.name: _TYPES[c.type] for c in upload_type.columns},
                "_loaded_at": "datetime",
            },
            primary_key=("upload_id", *upload_type.key),
            asset_key=f"{upload_type.name}_uploads",
            owners=upload_type.owners,
            partition_column="upload_id",
            partitioning=f"dynamic:{upload_type.name}_uploads",
            pattern="intake",
        )
        for upload_type in UPLOAD_TYPES.values()
    ),
    Dataset(
        name="weather_observations",
        description="Exported and uploaded hourly weather observations, uploads taking precedence.",
        columns={
            **{c.name: _TYPES[c.type] for c in UPLOAD_TYPES["weather_observations"].columns},
            "source": "string",
        },
        primary_key=("origin", "observed_at"),
        asset_key="weather_observations",
        owners=("team:meteorology", "team:data-engineering"),
        pattern="intake",
    ),
]
