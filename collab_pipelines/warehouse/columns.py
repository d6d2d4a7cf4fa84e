"""The one definition of a column type, shared by exports, uploads, the registry and the data API.

A dataset declares each column as one of these six words; every pattern maps the word to
what it needs (a SQLAlchemy type to create or query a table, a pandas dtype to coerce a
frame, a JSON Schema type to document an API row) from the tables below, never its own.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import sqlalchemy as sa

ColumnType = Literal["integer", "float", "string", "boolean", "date", "datetime"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)

# Exact-width types, so PostgreSQL stores what the catalog says rather than what pandas guessed.
SQLALCHEMY_TYPES: dict[str, type[sa.types.TypeEngine]] = {
    "integer": sa.BigInteger,
    "float": sa.Float,
    "string": sa.String,
    "boolean": sa.Boolean,
    "date": sa.Date,
    "datetime": sa.DateTime,
}

# Nullable pandas dtypes: an integer column with a missing value stays integer.
PANDAS_DTYPES: dict[str, str] = {
    "integer": "Int64",
    "float": "float64",
    "string": "string",
    "boolean": "boolean",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns]",
}

JSON_SCHEMA_TYPES: dict[str, dict[str, str]] = {
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
}


def arrow_types() -> dict[str, Any]:
    """Arrow types (the data API's wire types); pyarrow loads only for whoever asks."""
    import pyarrow as pa

    return {
        "integer": pa.int64(),
        "float": pa.float64(),
        "string": pa.string(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us"),
    }


def is_temporal(column_type: str) -> bool:
    return column_type in ("date", "datetime")


def is_numeric(column_type: str) -> bool:
    return column_type in ("integer", "float")
