"""The export catalog: a YAML file that declares every export, parsed and checked strictly.

This module knows nothing of Dagster. Every error names the file, the entry and the field,
because the person reading it is an engineer who just edited the YAML, at definitions load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")

COLUMN_TYPES = ("integer", "float", "string", "boolean", "date", "datetime")
PARTITION_START_PARAM = "partition_start"
PARTITION_END_PARAM = "partition_end"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ENTRY_FIELDS = {
    "name",
    "connection",
    "description",
    "owners",
    "sql",
    "columns",
    "primary_key",
    "partition",
    "checks",
    "figures",
    "watermark_sql",
    "tags",
}
_PARTITION_FIELDS = {"column", "start", "end"}
_CHECK_FIELDS = {"non_empty", "primary_key_unique", "schema", "max_null_rates"}
_CONNECTION_FIELDS = {"url_env", "default_url", "description"}


class CatalogError(ValueError):
    """A catalog entry is wrong. The message names the file, the entry and the field."""


@dataclass(frozen=True)
class Connection:
    name: str
    url_env: str
    default_url: str | None
    description: str = ""


@dataclass(frozen=True)
class Partitioning:
    column: str
    start: date
    end: date | None = None


CHECK_LEVELS = ("error", "warn", "off")


@dataclass(frozen=True)
class Checks:
    """Each structural check is "error" (blocks downstream work), "warn", or "off"."""

    non_empty: str = "error"
    primary_key_unique: str = "error"
    schema: str = "error"
    max_null_rates: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportSpec:
    name: str
    connection: str
    description: str
    owners: tuple[str, ...]
    sql: str
    columns: Mapping[str, str]
    primary_key: tuple[str, ...]
    partition: Partitioning | None
    checks: Checks
    figures: tuple[str, ...] = ()
    watermark_sql: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_partitioned(self) -> bool:
        return self.partition is not None


@dataclass(frozen=True)
class Catalog:
    path: Path
    connections: Mapping[str, Connection]
    exports: Mapping[str, ExportSpec]

    def partitioned(self) -> list[ExportSpec]:
        return [spec for spec in self.exports.values() if spec.is_partitioned]

    def unpartitioned(self) -> list[ExportSpec]:
        return [spec for spec in self.exports.values() if not spec.is_partitioned]


def load_catalog(path: Path | str = DEFAULT_CATALOG) -> Catalog:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CatalogError(f"{path}: catalog file not found") from error
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from error
    return parse_catalog(raw, path)


def parse_catalog(raw: Any, path: Path | str = "<catalog>") -> Catalog:
    path = Path(path)
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: the catalog must be a mapping with 'connections' and 'exports'")
    unknown = set(raw) - {"connections", "exports"}
    if unknown:
        raise CatalogError(f"{path}: unknown top-level field(s) {sorted(unknown)}")

    connections = _parse_connections(raw.get("connections"), path)
    entries = raw.get("exports")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{path}: field 'exports' must be a non-empty list of entries")

    exports: dict[str, ExportSpec] = {}
    for index, entry in enumerate(entries):
        spec = _parse_entry(entry, index, path, connections)
        if spec.name in exports:
            raise CatalogError(
                f"{path}: exports[{index}] '{spec.name}': field 'name': duplicate name, "
                f"already declared by an earlier entry"
            )
        exports[spec.name] = spec
    return Catalog(path=path, connections=connections, exports=exports)


def _parse_connections(raw: Any, path: Path) -> dict[str, Connection]:
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"{path}: field 'connections' must map connection names to settings")
    connections = {}
    for name, settings in raw.items():
        where = f"{path}: connections '{name}'"
        if not isinstance(settings, dict):
            raise CatalogError(f"{where}: must be a mapping with 'url_env'")
        unknown = set(settings) - _CONNECTION_FIELDS
        if unknown:
            raise CatalogError(f"{where}: unknown field(s) {sorted(unknown)}")
        url_env = settings.get("url_env")
        if not isinstance(url_env, str) or not url_env:
            raise CatalogError(f"{where}: field 'url_env': missing; name the environment variable")
        connections[str(name)] = Connection(
            name=str(name),
            url_env=url_env,
            default_url=settings.get("default_url"),
            description=str(settings.get("description", "")),
        )
    return connections


def _parse_entry(entry: Any, index: int, path: Path, connections: Mapping[str, Connection]):
    if not isinstance(entry, dict):
        raise CatalogError(f"{path}: exports[{index}]: must be a mapping")
    name = entry.get("name")
    label = f"{path}: exports[{index}] '{name}'" if name else f"{path}: exports[{index}]"

    def fail(field_name: str, problem: str) -> CatalogError:
        return CatalogError(f"{label}: field '{field_name}': {problem}")

    def required(field_name: str) -> Any:
        value = entry.get(field_name)
        if value in (None, "", [], {}):
            raise fail(field_name, "missing; it is required")
        return value

    unknown = set(entry) - _ENTRY_FIELDS
    if unknown:
        raise CatalogError(f"{label}: unknown field(s) {sorted(unknown)}; known: {sorted(_ENTRY_FIELDS)}")

    name = required("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", f"{name!r} is not a lower-case identifier (letters, digits, _)")

    connection = required("connection")
    if connection not in connections:
        raise fail("connection", f"unknown connection {connection!r}; declared: {sorted(connections)}")

    description = required("description")
    owners = required("owners")
    if not isinstance(owners, list) or not all(isinstance(o, str) and o for o in owners):
        raise fail("owners", "must be a list of e-mail addresses or 'team:<name>'")
    for owner in owners:
        if not (owner.startswith("team:") or "@" in owner):
            raise fail("owners", f"{owner!r} is neither an e-mail address nor 'team:<name>'")

    columns_raw = required("columns")
    if not isinstance(columns_raw, dict):
        raise fail("columns", "must map column names to types")
    columns: dict[str, str] = {}
    for column, column_type in columns_raw.items():
        if not isinstance(column, str) or not _NAME.match(column):
            raise fail("columns", f"{column!r} is not a lower-case identifier")
        if column.startswith("_"):
            raise fail("columns", f"{column!r}: names starting with '_' are reserved for the warehouse")
        if column_type not in COLUMN_TYPES:
            raise fail(
                "columns", f"column {column!r} has unknown type {column_type!r}; use one of {COLUMN_TYPES}"
            )
        columns[column] = column_type

    def known_column(field_name: str, column: Any) -> str:
        if column not in columns:
            raise fail(field_name, f"unknown column {column!r}; declared columns: {sorted(columns)}")
        return column

    primary_key = required("primary_key")
    if isinstance(primary_key, str):
        primary_key = [primary_key]
    if not isinstance(primary_key, list):
        raise fail("primary_key", "must be a column name or a list of column names")
    primary_key = tuple(known_column("primary_key", c) for c in primary_key)

    sql = required("sql")
    if not isinstance(sql, str):
        raise fail("sql", "must be a SQL string")

    partition = None
    if entry.get("partition") is not None:
        raw_partition = entry["partition"]
        if not isinstance(raw_partition, dict):
            raise fail("partition", "must be a mapping with 'column' and 'start'")
        unknown = set(raw_partition) - _PARTITION_FIELDS
        if unknown:
            raise fail("partition", f"unknown field(s) {sorted(unknown)}")
        if "column" not in raw_partition:
            raise fail("partition.column", "missing; name the date or datetime column")
        column = known_column("partition.column", raw_partition["column"])
        if columns[column] not in ("date", "datetime"):
            raise fail("partition.column", f"column {column!r} is {columns[column]}, not a date or datetime")
        start = _parse_date(raw_partition.get("start"), lambda problem: fail("partition.start", problem))
        end = None
        if raw_partition.get("end") is not None:
            end = _parse_date(raw_partition["end"], lambda problem: fail("partition.end", problem))
            if end <= start:
                raise fail("partition.end", f"{end} is not after the start {start}")
        for param in (PARTITION_START_PARAM, PARTITION_END_PARAM):
            if f":{param}" not in sql:
                raise fail("sql", f"a partitioned export must bind the parameter :{param}")
        partition = Partitioning(column=column, start=start, end=end)
    elif f":{PARTITION_START_PARAM}" in sql or f":{PARTITION_END_PARAM}" in sql:
        raise fail("sql", "binds partition bounds but the entry has no 'partition'")

    checks = _parse_checks(entry.get("checks") or {}, fail, known_column)

    figures = entry.get("figures") or []
    if not isinstance(figures, list):
        raise fail("figures", "must be a list of numeric column names")
    for column in figures:
        known_column("figures", column)
        if columns[column] not in ("integer", "float"):
            raise fail("figures", f"column {column!r} is {columns[column]}, not numeric")

    watermark_sql = entry.get("watermark_sql")
    if watermark_sql is not None and (not isinstance(watermark_sql, str) or partition is None):
        raise fail("watermark_sql", "must be a SQL string, and only on a partitioned export")

    tags = entry.get("tags") or {}
    if not isinstance(tags, dict):
        raise fail("tags", "must map tag names to values")

    return ExportSpec(
        name=name,
        connection=connection,
        description=str(description).strip(),
        owners=tuple(owners),
        sql=sql,
        columns=columns,
        primary_key=primary_key,
        partition=partition,
        checks=checks,
        figures=tuple(figures),
        watermark_sql=watermark_sql,
        tags={str(k): str(v) for k, v in tags.items()},
    )


def _parse_checks(raw: Any, fail, known_column) -> Checks:
    if not isinstance(raw, dict):
        raise fail("checks", "must be a mapping")
    unknown = set(raw) - _CHECK_FIELDS
    if unknown:
        raise fail("checks", f"unknown check(s) {sorted(unknown)}; known: {sorted(_CHECK_FIELDS)}")
    levels = {}
    for flag in ("non_empty", "primary_key_unique", "schema"):
        value = raw.get(flag, "error")
        # YAML's true/false read as on/off, so `non_empty: false` does what it says.
        value = {True: "error", False: "off"}.get(value, value) if isinstance(value, bool) else value
        if value not in CHECK_LEVELS:
            raise fail(f"checks.{flag}", f"{value!r} is not one of {CHECK_LEVELS} (or true/false)")
        levels[flag] = value
    rates_raw = raw.get("max_null_rates") or {}
    if not isinstance(rates_raw, dict):
        raise fail("checks.max_null_rates", "must map column names to a rate between 0 and 1")
    rates = {}
    for column, rate in rates_raw.items():
        known_column("checks.max_null_rates", column)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise fail("checks.max_null_rates", f"rate for {column!r} is {rate!r}, not a number in [0, 1]")
        rates[column] = float(rate)
    return Checks(**levels, max_null_rates=rates)


def _parse_date(value: Any, fail) -> date:
    if isinstance(value, datetime):
        raise fail(f"{value!r} has a time of day; partitions start at midnight, give YYYY-MM-DD")
    if isinstance(value, date):
        return value
    if value is None:
        raise fail("missing; give a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise fail(f"{value!r} is not a date (YYYY-MM-DD)") from None
