"""A dataset's rows request, checked and turned into SQL with bound parameters only.

Every name in a request (column, filter, sort) is looked up in the dataset's declared
columns before any SQL is built; every value is parsed into its column's type and bound.
Pages follow a keyset cursor over the sort columns plus the primary key, so a page costs
the same wherever it is in the table and rows are neither skipped nor repeated when new
partitions arrive between pages.
"""

import base64
import binascii
import json
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa

from collab_pipelines.data_api.problems import bad_request
from collab_pipelines.warehouse.datasets import Dataset

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in")
MAX_LIMIT = 1_000_000
MAX_IN_VALUES = 1_000
_INT64 = 2**63 - 1
_INTEGER = re.compile(r"^[+-]?\d{1,19}$")
# The shapes the OpenAPI document states (openapi.py), so a value is refused exactly when the
# document says it is malformed: Python's own parsers would also take "1_0" or "20130105".
_FLOAT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?$")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_MAX_VALUE_LENGTH = 4_096


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool


@dataclass(frozen=True)
class Filter:
    column: str
    operator: str
    value: object


def parse_value(dataset: Dataset, column: str, text: str, parameter: str, aware: bool = False):
    """`text` as a value of `column`'s declared type, or a 400 naming what is wrong.

    A date-time column without a time zone (`aware=False`, the usual warehouse column) holds
    the wall-clock times its source wrote, and nothing says which zone they are in; an offset
    cannot be converted to that, so a value with one is refused. A column with a time zone
    (PostgreSQL `timestamptz`) compares instants: an offset is honoured, none means UTC.
    """
    column_type = dataset.columns[column]
    where = f"{parameter}: value {text[:80]!r} for {column} ({column_type})"
    if len(text) > _MAX_VALUE_LENGTH or "\x00" in text:
        raise bad_request(f"{where} is longer than {_MAX_VALUE_LENGTH} characters or holds a NUL", parameter)
    if column_type == "integer":
        if not _INTEGER.match(text) or abs(int(text)) > _INT64:
            raise bad_request(f"{where} is not a 64-bit whole number", parameter)
        return int(text)
    if column_type == "float":
        try:
            value = float(text)
        except ValueError:
            raise bad_request(f"{where} is not a number", parameter) from None
        if not math.isfinite(value):
            raise bad_request(f"{where} is not a finite number", parameter)
        if not _FLOAT.match(text):
            raise bad_request(f"{where} is not a number (digits, a point, an exponent)", parameter)
        return value
    if column_type == "boolean":
        if text not in _BOOLEANS:
            raise bad_request(f"{where} is not true or false", parameter)
        return _BOOLEANS[text]
    if column_type == "date":
        try:
            if not _DATE.match(text):
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise bad_request(f"{where} is not a date (YYYY-MM-DD)", parameter) from None
    if column_type == "datetime":
        try:
            if not _DATETIME.match(text):
                raise ValueError(text)
            value = datetime.fromisoformat(text)
        except ValueError:
            raise bad_request(f"{where} is not an ISO 8601 date-time", parameter) from None
        if aware:
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if value.tzinfo is not None:
            raise bad_request(
                f"{where} has a UTC offset, but {column} holds date-times without a time zone "
                "(compared as stored); give the value without an offset",
                parameter,
            )
        return value
    return text


def check_column(dataset: Dataset, available: Sequence[str], column: str, parameter: str) -> str:
    if column not in available:
        raise bad_request(
            f"{parameter}: dataset {dataset.name!r} has no column {column[:80]!r}; "
            f"its columns are {', '.join(available)}",
            parameter,
        )
    return column


def parse_columns(dataset: Dataset, available: Sequence[str], text: str | None) -> list[str]:
    if text is None:
        return list(available)
    names = text.split(",")
    if any(not name for name in names):
        raise bad_request("columns: an empty column name; separate names with single commas", "columns")
    # A column named again adds nothing: the first place counts.
    return [check_column(dataset, available, name, "columns") for name in dict.fromkeys(names)]


def parse_filters(
    dataset: Dataset, available: Sequence[str], texts: Sequence[str], aware: Collection[str] = ()
) -> list[Filter]:
    filters = []
    for text in texts:
        parts = text.split(":", 2)
        if len(parts) != 3:
            raise bad_request(f"filter: {text[:80]!r} is not column:operator:value", "filter")
        column, operator, raw = parts
        check_column(dataset, available, column, "filter")
        if operator not in OPERATORS:
            raise bad_request(
                f"filter: {operator[:20]!r} in {text[:80]!r} is not one of {', '.join(OPERATORS)}", "filter"
            )
        if operator == "in":
            items = _in_list(raw)
            if not items or len(items) > MAX_IN_VALUES:
                raise bad_request(
                    f"filter: the in-list for {column} needs 1 to {MAX_IN_VALUES} values", "filter"
                )
            value = [parse_value(dataset, column, item, "filter", column in aware) for item in items]
        else:
            if operator in ("lt", "lte", "gt", "gte") and dataset.columns[column] == "boolean":
                raise bad_request(f"filter: {column} is boolean and has no order; use eq or ne", "filter")
            value = parse_value(dataset, column, raw, "filter", column in aware)
        filters.append(Filter(column, operator, value))
    return filters


def _in_list(raw: str) -> list[str]:
    if raw.startswith("["):
        # A JSON array lets string values contain commas.
        try:
            items = json.loads(raw)
        except ValueError:
            raise bad_request(f"filter: in-list {raw[:80]!r} is not a JSON array", "filter") from None
        if not isinstance(items, list) or not all(isinstance(i, (str, int, float, bool)) for i in items):
            raise bad_request("filter: a JSON in-list holds only strings, numbers and booleans", "filter")
        return [json.dumps(i) if isinstance(i, bool) else str(i) for i in items]
    return raw.split(",")


def parse_sort(dataset: Dataset, available: Sequence[str], text: str | None) -> list[SortKey]:
    """The requested order, completed by the primary key so the order is total."""
    keys = []
    for item in text.split(",") if text is not None else []:
        descending = item.startswith("-")
        name = item[1:] if item.startswith(("-", "+")) else item
        column = check_column(dataset, available, name, "sort")
        # A column sorted again cannot change the order: the first place counts.
        if all(k.column != column for k in keys):
            keys.append(SortKey(column, descending))
    tie_breakers = [c for c in dataset.primary_key if c in available] or list(available)
    keys.extend(SortKey(c, False) for c in tie_breakers if all(k.column != c for k in keys))
    return keys


def filter_clause(table: sa.Table, flt: Filter):
    column = table.c[flt.column]
    return {
        "eq": lambda: column == flt.value,
        "ne": lambda: column != flt.value,
        "lt": lambda: column < flt.value,
        "lte": lambda: column <= flt.value,
        "gt": lambda: column > flt.value,
        "gte": lambda: column >= flt.value,
        "in": lambda: column.in_(flt.value),
    }[flt.operator]()


def order_clauses(table: sa.Table, keys: Sequence[SortKey]) -> list:
    # One NULL placement on every database: NULL sorts lowest, like SQLite's default.
    return [
        table.c[k.column].desc().nulls_last() if k.descending else table.c[k.column].asc().nulls_first()
        for k in keys
    ]


def after_clause(table: sa.Table, keys: Sequence[SortKey], values: Sequence) -> sa.ColumnElement:
    """Rows strictly after `values` in the order of `keys` (NULL lowest), as bound SQL."""
    alternatives = []
    for index, key in enumerate(keys):
        equal_before = [
            _equal(table.c[k.column], v) for k, v in zip(keys[:index], values[:index], strict=True)
        ]
        alternatives.append(
            sa.and_(*equal_before, _beyond(table.c[key.column], values[index], key.descending))
        )
    return sa.or_(*alternatives)


def _equal(column, value):
    return column.is_(None) if value is None else column == value


def _beyond(column, value, descending: bool):
    if descending:
        return sa.false() if value is None else sa.or_(column < value, column.is_(None))
    return column.is_not(None) if value is None else column > value


def encode_cursor(keys: Sequence[SortKey], values: Sequence) -> str:
    payload = {
        "s": [("-" if k.descending else "") + k.column for k in keys],
        "v": [v.isoformat() if isinstance(v, (date, datetime)) else v for v in values],
    }
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(
    dataset: Dataset, keys: Sequence[SortKey], cursor: str, aware: Collection[str] = ()
) -> list:
    signature = [("-" if k.descending else "") + k.column for k in keys]
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        stored, values = payload["s"], payload["v"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request(
            "cursor: not a cursor this API issued; use next_cursor from the previous page", "cursor"
        ) from None
    if stored != signature or not isinstance(values, list) or len(values) != len(keys):
        raise bad_request("cursor: it belongs to a request with another sort order", "cursor")
    parsed = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            parsed.append(None)
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, (str, int, float)):
            raise bad_request("cursor: holds a value of the wrong kind", "cursor")
        parsed.append(parse_value(dataset, key.column, str(value), "cursor", key.column in aware))
    return parsed
