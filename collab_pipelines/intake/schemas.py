"""Upload types: what a domain team may upload, declared once per type.

Plain data, no Dagster: the validator, the ingestion assets and the docs all read these.
"""

from dataclasses import dataclass, field

FORMATS = (".csv", ".xlsx", ".parquet")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "string", "float", "integer" or "datetime"
    required: bool = True
    """A required column must be present and may not be empty in any row."""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class UploadType:
    name: str
    description: str
    columns: tuple[Column, ...]
    owners: tuple[str, ...]
    max_bytes: int = 20 * 1024 * 1024
    max_rows: int = 500_000
    key: tuple[str, ...] = ()
    """Columns that must be unique within one upload."""
    formats: tuple[str, ...] = FORMATS
    tags: dict = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


WEATHER_OBSERVATIONS = UploadType(
    name="weather_observations",
    description=(
        "Hourly weather observations uploaded by the meteorology team, one row per airport and "
        "hour, in the same units as the `weather` export (°F, mph, inches, miles)."
    ),
    owners=("team:meteorology",),
    key=("origin", "observed_at"),
    columns=(
        Column("origin", "string", choices=("EWR", "JFK", "LGA")),
        Column("observed_at", "datetime"),
        Column("temp", "float", minimum=-60, maximum=130),
        Column("dewp", "float", required=False, minimum=-80, maximum=100),
        Column("humid", "float", required=False, minimum=0, maximum=100),
        Column("wind_dir", "float", required=False, minimum=0, maximum=360),
        Column("wind_speed", "float", required=False, minimum=0, maximum=300),
        Column("wind_gust", "float", required=False, minimum=0, maximum=400),
        Column("precip", "float", required=False, minimum=0, maximum=20),
        Column("pressure", "float", required=False, minimum=850, maximum=1100),
        Column("visib", "float", required=False, minimum=0, maximum=100),
    ),
)

UPLOAD_TYPES = {upload_type.name: upload_type for upload_type in (WEATHER_OBSERVATIONS,)}
