"""Turning a source query's rows into a frame with the catalog's column types.

SQLite returns datetimes as text and PostgreSQL as timestamps; coercing to the declared
types here makes the warehouse tables identical whichever database the rows came from.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from collab_pipelines.exports.catalog import ExportSpec
from collab_pipelines.warehouse.tables import TableLayout

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
    """Check the query's columns against the catalog and cast each to its declared type.

    A cast that would lose information is refused, before anything is written, naming the
    column and a row: a time of day a `date` column would drop, an integer that does not fit
    64 bits, a string longer than its `max_lengths`, a repeated primary key.
    """
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
        except (ValueError, TypeError, OverflowError) as error:
            bad = _first_bad_value(frame, column, column_type, spec)
            raise ExportDataError(
                f"export {spec.name!r}: column {column!r} is declared {column_type} but {bad}: {error}"
            ) from error
    result = pd.DataFrame(coerced, index=frame.index)
    _refuse_losses(frame, result, spec)
    return result


def _refuse_losses(raw: pd.DataFrame, coerced: pd.DataFrame, spec: ExportSpec) -> None:
    for column, column_type in spec.columns.items():
        values = coerced[column]
        if column_type == "date":
            stamps = pd.to_datetime(raw[column], errors="coerce", format="mixed")
            if getattr(stamps.dt, "tz", None) is not None:
                stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
            lost = stamps.notna() & (stamps != stamps.dt.normalize())
            problem = "which has a time of day that a date column would drop; declare it datetime"
        elif column_type == "string" and column in spec.max_lengths:
            limit = spec.max_lengths[column]
            lost = (values.str.len() > limit).fillna(False).astype(bool)
            problem = f"which is longer than its declared max_lengths ({limit})"
        else:
            continue
        if lost.any():
            index = lost.idxmax()
            raise ExportDataError(
                f"export {spec.name!r}: column {column!r} is declared {column_type} but "
                f"{_row(raw, index, spec)} holds {_plain(raw.at[index, column])!r}, {problem}; "
                f"{int(lost.sum())} row(s) like it, nothing was written"
            )
    if spec.checks.primary_key_unique == "error" and len(coerced):
        repeated = coerced.duplicated(list(spec.primary_key), keep="first")
        if repeated.any():
            index = repeated.idxmax()
            raise ExportDataError(
                f"export {spec.name!r}: {_row(coerced, index, spec)} repeats the primary key "
                f"({', '.join(spec.primary_key)}); {int(repeated.sum())} repeated row(s), nothing "
                f"was written (set checks.primary_key_unique to warn to write them anyway)"
            )


def _row(frame: pd.DataFrame, index, spec: ExportSpec) -> str:
    return f"row { ({k: _plain(frame.at[index, k]) for k in spec.primary_key if k in frame.columns}) }"


def _first_bad_value(frame: pd.DataFrame, column: str, column_type: str, spec: ExportSpec) -> str:
    for index, value in frame[column].items():
        if pd.isna(value):
            continue
        try:
            _coerce_column(pd.Series([value]), column_type)
        except (ValueError, TypeError, OverflowError):
            return f"{_row(frame, index, spec)} holds {_plain(value)!r}"
    return "a value does not convert"


def _plain(value):
    # numpy scalars print as np.int64(5); people reading the error expect 5.
    return value.item() if hasattr(value, "item") else value


def export_layout(spec: ExportSpec) -> TableLayout:
    """The warehouse table of an export: the catalog's types, its key if the key check is an
    error (the database then refuses a repeated key too), an index on the partition column."""
    column_types = {**spec.columns, LOADED_AT_COLUMN: "datetime"}
    if spec.is_partitioned:
        column_types[PARTITION_COLUMN] = "string"
    return TableLayout(
        column_types=column_types,
        primary_key=spec.primary_key if spec.checks.primary_key_unique == "error" else (),
        indexes=((PARTITION_COLUMN,),) if spec.is_partitioned else (),
        max_lengths=dict(spec.max_lengths),
    )
