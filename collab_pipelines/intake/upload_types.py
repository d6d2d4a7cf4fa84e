"""Upload types: what a domain team may upload, declared in the deployment's `uploads.yaml`.

Plain parsing, no Dagster: the validator, the ingestion assets, the sensor and the dataset
registry all read the parsed file. Its JSON Schema is docs/schemas/uploads.schema.json.

    upload_types:
      weather_observations:
        description: Hourly observations uploaded by the meteorology team.
        owners: [team:meteorology]
        uploaders: [meteo]                     # SFTP accounts whose inbox holds this type
        key: [origin, observed_at]             # unique within one upload
        columns:                               # types from collab_pipelines/warehouse/columns.py
          origin: {type: string, choices: [EWR, JFK, LGA]}
          observed_at: {type: datetime}
          temp: {type: float, minimum: -60, maximum: 130}
          dewp: {type: float, required: false}
        combined:                              # optional: an export's rows, uploads taking precedence
          asset: weather_observations
          export: weather
    landing_zone:                              # optional: default, the local <shared>/landing folder
      sftp: {host: sftp.internal, username: collector, private_key_path: /secrets/key,
             known_hosts_path: /etc/collab/known_hosts}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from collab_pipelines.config import ConfigError, StrictModel, parse, read_yaml
from collab_pipelines.warehouse.columns import ColumnType, is_numeric

FileFormat = Literal[".csv", ".xlsx", ".parquet"]
FORMATS: tuple[FileFormat, ...] = (".csv", ".xlsx", ".parquet")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_UPLOADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UploadConfigError(ConfigError):
    """The uploads file is wrong; the message names the file, the upload type and the field."""


def _pattern(regex: re.Pattern, what: str):
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"{value!r} is not a valid {what} ({regex.pattern})")
        return value

    return AfterValidator(check)


Name = Annotated[str, _pattern(_NAME, "table or column name")]
Uploader = Annotated[str, _pattern(_UPLOADER, "account name")]


def _with_names(raw: object, field: str) -> object:
    """Copy each mapping key into its entry's `name`, so an entry knows what it is called."""
    if isinstance(raw, dict) and isinstance(raw.get(field), dict):
        named = {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in raw[field].items()}
        return {**raw, field: named}
    return raw


class UploadColumn(StrictModel):
    name: SkipJsonSchema[str] = ""
    type: ColumnType
    required: bool = True
    """A required column must be present and may not be empty in any row."""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    """For a string column: the only values allowed."""

    @model_validator(mode="after")
    def _fits_type(self) -> UploadColumn:
        if (self.minimum is not None or self.maximum is not None) and not is_numeric(self.type):
            raise ValueError(f"minimum and maximum apply to integer and float columns, not {self.type}")
        if self.choices and self.type != "string":
            raise ValueError(f"choices apply to string columns, not {self.type}")
        return self


class Combined(StrictModel):
    """A table of an export's rows with this type's uploads taking precedence for the same key."""

    asset: Name
    """The combined table and the asset that writes it."""
    export: Name
    """The exported table the uploads correct (it must have the upload type's columns)."""
    description: str = ""
    owners: tuple[str, ...] = ()


class UploadType(StrictModel):
    name: SkipJsonSchema[str] = ""
    description: str
    owners: tuple[str, ...] = ()
    uploaders: tuple[Uploader, ...] = ()
    """The SFTP accounts whose uploads are of this type."""
    columns: dict[Name, UploadColumn] = Field(min_length=1)
    key: tuple[str, ...] = ()
    """Columns that must be unique within one upload."""
    max_bytes: Annotated[StrictInt, Field(ge=1)] = 20 * 1024 * 1024
    max_rows: Annotated[StrictInt, Field(ge=1)] = 500_000
    formats: tuple[FileFormat, ...] = FORMATS
    combined: Combined | None = None

    @model_validator(mode="before")
    @classmethod
    def _column_names(cls, raw: object) -> object:
        return _with_names(raw, "columns")

    @model_validator(mode="after")
    def _key_columns(self) -> UploadType:
        unknown = [k for k in self.key if k not in self.columns]
        if unknown:
            raise ValueError(f"key names unknown column(s) {', '.join(unknown)}")
        if self.combined is not None and not self.key:
            raise ValueError("combined needs a key: it says which exported row an upload replaces")
        return self

    @property
    def column_list(self) -> tuple[UploadColumn, ...]:
        return tuple(self.columns.values())

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    @property
    def table(self) -> str:
        return f"{self.name}_uploads"


class LocalLandingConfig(StrictModel):
    root: str
    """A folder every process of the deployment mounts (the SFTP server's data root)."""


class SftpLandingConfig(StrictModel):
    host: str
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 22
    username: str
    private_key_path: str | None = None
    password_env: str | None = None
    """The environment variable holding the password; never the password itself."""
    known_hosts_path: str
    """An OpenSSH known_hosts file holding the server's host key; unknown keys are refused."""
    root: str = "/"


class LandingZoneConfig(StrictModel):
    """Where uploads land: exactly one of `local` or `sftp`."""

    local: LocalLandingConfig | None = None
    sftp: SftpLandingConfig | None = None

    @model_validator(mode="after")
    def _one(self) -> LandingZoneConfig:
        if (self.local is None) == (self.sftp is None):
            raise ValueError("give exactly one of local or sftp")
        return self


class UploadsFile(StrictModel):
    """The uploads file: upload types by name, and where uploads land."""

    upload_types: dict[Name, UploadType] = Field(default_factory=dict)
    default_upload_type: Name | None = None
    """The type of an uploader no upload type lists; without it, such an uploader is an error."""
    abandoned_after_hours: Annotated[float, Field(gt=0)] = 24
    """A file with a temporary name (`.part`, `.filepart`, ...) untouched this long is quarantined."""
    landing_zone: LandingZoneConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _type_names(cls, raw: object) -> object:
        return _with_names(raw, "upload_types")

    @model_validator(mode="after")
    def _consistent(self) -> UploadsFile:
        if self.default_upload_type and self.default_upload_type not in self.upload_types:
            raise ValueError(f"default_upload_type {self.default_upload_type!r} is not an upload type")
        seen: dict[str, str] = {}
        tables: dict[str, str] = {}
        for upload_type in self.upload_types.values():
            for uploader in upload_type.uploaders:
                if uploader in seen:
                    raise ValueError(
                        f"uploader {uploader!r} is listed by both {seen[uploader]!r} and {upload_type.name!r}"
                    )
                seen[uploader] = upload_type.name
            for table in (upload_type.table, *([upload_type.combined.asset] if upload_type.combined else [])):
                if table in tables:
                    raise ValueError(
                        f"table {table!r} is written by both {tables[table]!r} and {upload_type.name!r}"
                    )
                tables[table] = upload_type.name
        return self

    def type_for(self, uploader: str) -> UploadType | None:
        """The upload type of an uploader's files, or None if nothing says."""
        for upload_type in self.upload_types.values():
            if uploader in upload_type.uploaders:
                return upload_type
        return self.upload_types.get(self.default_upload_type) if self.default_upload_type else None


def load_uploads(path: Path | str) -> UploadsFile:
    """Read an uploads file; a missing file means no upload types, not an error."""
    path = Path(path)
    if not path.exists():
        return UploadsFile()
    return parse_uploads(read_yaml(path, UploadConfigError) or {}, str(path))


def parse_uploads(raw: object, where: str) -> UploadsFile:
    return parse(UploadsFile, raw, where, entry_depth=2, error=UploadConfigError)
