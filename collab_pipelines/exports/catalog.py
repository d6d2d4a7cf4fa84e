"""The export catalog: a YAML file that declares every export, as pydantic models.

This module knows nothing of Dagster. The models give the checks, the defaults, the error
messages (file, entry, field, through `config.parse`) and the JSON Schema in docs/schemas/.
Checks that need a sibling field (a primary key names a declared column) read it from the
validation context, so every error is reported at the field the engineer has to edit.

Over 300 lines on purpose: it is the one model of one file, each check beside its field, and
splitting the entry from its parts would scatter what an engineer reads to learn the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from collab_pipelines.config import ConfigError, StrictModel, parse
from collab_pipelines.warehouse.columns import COLUMN_TYPES, ColumnType, is_numeric, is_temporal

PARTITION_START_PARAM = "partition_start"
PARTITION_END_PARAM = "partition_end"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CheckLevel = Literal["error", "warn", "off"]
CHECK_LEVELS: tuple[str, ...] = ("error", "warn", "off")
# The validation context keys through which an entry's fields see its siblings.
_COLUMNS, _CONNECTIONS, _SEEN = "columns", "connections", "seen_names"


class CatalogError(ConfigError):
    """A catalog entry is wrong. The message names the file, the entry and the field."""


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def _known_column(info: ValidationInfo, column: Any) -> str:
    columns = _context(info).get(_COLUMNS)
    if columns is not None and column not in columns:
        raise ValueError(f"unknown column {column!r}; declared columns: {sorted(columns)}")
    return column


def _column_type(info: ValidationInfo, column: str) -> str | None:
    return (_context(info).get(_COLUMNS) or {}).get(column)


def _day(value: Any) -> Any:
    """A calendar day. YAML timestamps are read as text (see `_Loader`), so a bad one is named."""
    if isinstance(value, datetime):
        value = value.isoformat(sep=" ")
    if isinstance(value, date) or value is None:
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        pass
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    raise ValueError(f"{value!r} has a time of day; partitions start at midnight, give YYYY-MM-DD")


class Connection(StrictModel):
    """A source database. Its URL comes from an environment variable, else `default_url`."""

    url_env: str = Field(min_length=1, description="The environment variable holding the URL.")
    default_url: str | None = Field(
        None, description="Used when the variable is unset; `{state_dir}` is the state folder."
    )
    description: str = ""
    name: SkipJsonSchema[str] = Field("", description="Filled from the connection's key.")


class Partitioning(StrictModel):
    """Daily partitions over a date or datetime column, from `start` to `end` (exclusive)."""

    column: str = Field(description="The date or datetime column that decides a row's day.")
    start: date = Field(description="The first day, YYYY-MM-DD.")
    end: date | None = Field(None, description="The day after the last, YYYY-MM-DD; none: open.")

    @field_validator("column")
    @classmethod
    def _temporal(cls, column: str, info: ValidationInfo) -> str:
        _known_column(info, column)
        column_type = _column_type(info, column)
        if column_type is not None and not is_temporal(column_type):
            raise ValueError(f"column {column!r} is {column_type}, not a date or datetime")
        return column

    @field_validator("start", "end", mode="before")
    @classmethod
    def _calendar_day(cls, value: Any) -> Any:
        return _day(value)

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if end is not None and start is not None and end <= start:
            raise ValueError(f"{end} is not after the start {start}")
        return end


def _level(value: Any) -> Any:
    # YAML's true/false read as on/off, so `non_empty: false` does what it says.
    value = {True: "error", False: "off"}.get(value, value) if isinstance(value, bool) else value
    if value not in CHECK_LEVELS:
        raise ValueError(f"{value!r} is not one of {CHECK_LEVELS} (or true/false)")
    return value


class Checks(StrictModel):
    """Each structural check is "error" (blocks downstream work), "warn", or "off"."""

    non_empty: CheckLevel | bool = "error"
    primary_key_unique: CheckLevel | bool = "error"
    schema_check: CheckLevel | bool = Field("error", alias="schema")
    max_null_rates: dict[str, float] = Field(
        default_factory=dict, description="Column name to the largest share of missing values."
    )

    @field_validator("non_empty", "primary_key_unique", "schema_check", mode="before")
    @classmethod
    def _levels(cls, value: Any) -> Any:
        return _level(value)

    @field_validator("max_null_rates", mode="before")
    @classmethod
    def _rates(cls, rates: Any, info: ValidationInfo) -> Any:
        if not isinstance(rates, Mapping):
            return rates
        for column, rate in rates.items():
            _known_column(info, column)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
                raise ValueError(f"rate for {column!r} is {rate!r}, not a number in [0, 1]")
        return rates

    @property
    def schema(self) -> str:  # type: ignore[override]
        # The catalog's word for the check; BaseModel.schema is pydantic v1's deprecated API.
        return self.schema_check


_Identifier = Annotated[str, Field(pattern=_NAME.pattern)]


class ExportSpec(StrictModel):
    """One export: a SQL query on a connection, copied into the warehouse table `name`."""

    name: _Identifier = Field(description="The warehouse table and the Dagster asset.")
    connection: str = Field(description="A key of `connections`.")
    description: str = Field(min_length=1, description="Shown in the UI and the data API.")
    owners: tuple[str, ...] = Field(min_length=1, description="E-mail addresses or 'team:<name>'.")
    columns: dict[str, ColumnType] = Field(
        min_length=1, description="Column name to type, in the query's order."
    )
    primary_key: tuple[str, ...] = Field(min_length=1)
    partition: Partitioning | None = None
    sql: str = Field(min_length=1, description="Binds :partition_start and :partition_end if partitioned.")
    checks: Checks = Field(default_factory=Checks)
    figures: tuple[str, ...] = Field((), description="Numeric columns plotted per partition.")
    max_lengths: dict[str, int] = Field(
        default_factory=dict,
        description="String column to its longest allowed value; a longer one fails the export.",
    )
    watermark_sql: str | None = Field(
        None, description="Returns the moment up to which the source is complete."
    )
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _entry(cls, raw: Any, info: ValidationInfo) -> Any:
        # Sibling checks must not see the previous entry's columns.
        _context(info)[_COLUMNS] = None
        if isinstance(raw, Mapping):
            unknown = sorted(set(raw) - {f.alias or n for n, f in cls.model_fields.items()})
            if unknown:
                known = sorted(f.alias or n for n, f in cls.model_fields.items())
                raise ValueError(f"unknown field(s) {unknown}; known: {known}")
        return raw

    @field_validator("name")
    @classmethod
    def _unique(cls, name: str, info: ValidationInfo) -> str:
        seen = _context(info).setdefault(_SEEN, set())
        if name in seen:
            raise ValueError("duplicate name, already declared by an earlier entry")
        seen.add(name)
        return name

    @field_validator("connection")
    @classmethod
    def _declared(cls, connection: str, info: ValidationInfo) -> str:
        declared = _context(info).get(_CONNECTIONS)
        if declared is not None and connection not in declared:
            raise ValueError(f"unknown connection {connection!r}; declared: {sorted(declared)}")
        return connection

    @field_validator("description")
    @classmethod
    def _strip(cls, description: str) -> str:
        return description.strip()

    @field_validator("owners")
    @classmethod
    def _owners(cls, owners: tuple[str, ...]) -> tuple[str, ...]:
        for owner in owners:
            if not (owner.startswith("team:") or "@" in owner):
                raise ValueError(f"{owner!r} is neither an e-mail address nor 'team:<name>'")
        return owners

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, columns: Any, info: ValidationInfo) -> Any:
        if not isinstance(columns, Mapping):
            return columns
        for column, column_type in columns.items():
            if not isinstance(column, str) or not _NAME.match(column):
                raise ValueError(f"{column!r} is not a lower-case identifier")
            if column.startswith("_"):
                raise ValueError(f"{column!r}: names starting with '_' are reserved for the warehouse")
            if column_type not in COLUMN_TYPES:
                raise ValueError(
                    f"column {column!r} has unknown type {column_type!r}; use one of {COLUMN_TYPES}"
                )
        _context(info)[_COLUMNS] = dict(columns)
        return columns

    @field_validator("primary_key", mode="before")
    @classmethod
    def _key(cls, key: Any, info: ValidationInfo) -> Any:
        key = [key] if isinstance(key, str) else key
        for column in key if isinstance(key, list) else ():
            _known_column(info, column)
        return key

    @field_validator("sql")
    @classmethod
    def _binds(cls, sql: str, info: ValidationInfo) -> str:
        params = (PARTITION_START_PARAM, PARTITION_END_PARAM)
        if info.data.get("partition") is not None:
            for param in params:
                if f":{param}" not in sql:
                    raise ValueError(f"a partitioned export must bind the parameter :{param}")
        elif "partition" in info.data and any(f":{param}" in sql for param in params):
            raise ValueError("binds partition bounds but the entry has no 'partition'")
        return sql

    @field_validator("figures", mode="before")
    @classmethod
    def _figures(cls, figures: Any, info: ValidationInfo) -> Any:
        for column in figures if isinstance(figures, list) else ():
            _known_column(info, column)
            column_type = _column_type(info, column)
            if column_type is not None and not is_numeric(column_type):
                raise ValueError(f"column {column!r} is {column_type}, not numeric")
        return figures

    @field_validator("max_lengths")
    @classmethod
    def _lengths(cls, lengths: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        for column, length in lengths.items():
            _known_column(info, column)
            if _column_type(info, column) not in (None, "string") or length < 1:
                raise ValueError(f"{column!r}: a maximum length needs a string column and a length >= 1")
        return lengths

    @field_validator("watermark_sql")
    @classmethod
    def _watermark(cls, sql: str | None, info: ValidationInfo) -> str | None:
        if sql is not None and info.data.get("partition") is None:
            raise ValueError("only a partitioned export has a watermark")
        return sql

    @property
    def is_partitioned(self) -> bool:
        return self.partition is not None


class CatalogFile(StrictModel):
    """The export catalog: source connections, and one entry per exported table."""

    connections: dict[str, Connection] = Field(default_factory=dict)
    exports: list[ExportSpec] = Field(default_factory=list)

    @field_validator("connections")
    @classmethod
    def _named(cls, connections: dict[str, Connection], info: ValidationInfo) -> dict[str, Connection]:
        _context(info)[_CONNECTIONS] = set(connections)
        return {name: c.model_copy(update={"name": name}) for name, c in connections.items()}


@dataclass(frozen=True)
class Catalog:
    path: Path
    connections: Mapping[str, Connection]
    exports: Mapping[str, ExportSpec]

    def partitioned(self) -> list[ExportSpec]:
        return [spec for spec in self.exports.values() if spec.is_partitioned]

    def unpartitioned(self) -> list[ExportSpec]:
        return [spec for spec in self.exports.values() if not spec.is_partitioned]


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: `2010-13-01` reaches the model as text, and its error
    names the file, the entry and the field instead of escaping the loader as a bare ValueError."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_catalog(path: Path | str | None = None) -> Catalog:
    """The catalog at `path`, or the configuration folder's `catalog.yaml`.

    A missing file is an empty catalog: a team without exports defines none.
    """
    from collab_pipelines import settings

    path = settings.catalog_file() if path is None else Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        return Catalog(path=path, connections={}, exports={})
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from error
    return parse_catalog(raw, path)


def parse_catalog(raw: Any, path: Path | str = "<catalog>") -> Catalog:
    path = Path(path)
    model = parse(CatalogFile, raw if raw is not None else {}, path, entry_depth=2, error=CatalogError)
    return Catalog(
        path=path,
        connections=model.connections,
        exports={spec.name: spec for spec in model.exports},
    )
