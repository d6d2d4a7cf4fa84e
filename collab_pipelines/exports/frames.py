"""Turning a source query's rows into a frame with the catalog's column types.

SQLite returns datetimes as text and PostgreSQL as timestamps; coercing to the declared
types here makes the warehouse tables identical whichever database the rows came from.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from collab_pipelines.exports.catalog import ExportSpec

PARTITION_COLUMN = "_partition"
LOADED_AT_COLUMN = "_loaded_at"


class ExportDataError(ValueError):
    """The source returned rows that do not fit the catalog; names the export and column."""


def _coerce_column(series: pd.Series, column_type: str) -> pd.Series:
    if column_type == "integer":
        return pd.to_numeric(series, errors="raise").astype("Int64")
    if column_type == "float":
        return pd.to_numeric(series, errors="raise").astype("float64")
    if column_type == "string":
        return series.astype("string")
    if column_type == "boolean":
        return series.astype("boolean")
    if column_type in ("date", "datetime"):
        values = pd.to_datetime(series, errors="raise", format="mixed")
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        values = values.astype("datetime64[us]")
        return values.dt.normalize() if column_type == "date" else values
    raise ExportDataError(f"unknown column type {column_type!r}")


def coerce_to_catalog(frame: pd.DataFrame, spec: ExportSpec) -> pd.DataFrame:
    """Check the query's columns against the catalog and cast each to its declared type."""
    declared: Mapping[str, str] = spec.columns
    missing = [c for c in declared if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in declared]
    if missing or unexpected:
        raise ExportDataError(
            f"export {spec.name!r}: the SQL's columns do not match the catalog: "
            f"missing {missing or 'none'}, not declared {unexpected or 'none'}"
        )
    coerced = {}
    for column, column_type in declared.items():
        try:
            coerced[column] = _coerce_column(frame[column], column_type)
        except (ValueError, TypeError) as error:
            bad = _first_bad_value(frame, column, column_type, spec)
            raise ExportDataError(
                f"export {spec.name!r}: column {column!r} is declared {column_type} but {bad}: {error}"
            ) from error
    return pd.DataFrame(coerced, index=frame.index)


def _first_bad_value(frame: pd.DataFrame, column: str, column_type: str, spec: ExportSpec) -> str:
    for index, value in frame[column].items():
        if pd.isna(value):
            continue
        try:
            _coerce_column(pd.Series([value]), column_type)
        except (ValueError, TypeError):
            key = {k: _plain(frame.at[index, k]) for k in spec.primary_key if k in frame.columns}
            return f"row {key} holds {value!r}"
    return "a value does not convert"


def _plain(value):
    # numpy scalars print as np.int64(5); people reading the error expect 5.
    return value.item() if hasattr(value, "item") else value


def null_rates(frame: pd.DataFrame, columns) -> dict[str, float]:
    if frame.empty:
        return {column: 0.0 for column in columns}
    return {column: float(frame[column].isna().mean()) for column in columns}
