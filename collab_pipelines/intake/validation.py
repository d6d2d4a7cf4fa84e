"""Validating an uploaded file against its upload type, collecting every problem found.

The report is written for the uploader, who reads it as `<file>.error.txt` over SFTP: each
problem names the row (the line in their CSV file, or the spreadsheet row; header = row 1)
and the column. The checks are vectorised pandas; only rows at fault cost a message.

A hand-written validator rather than pandera: its messages are the uploader's report (a
row number in their own file, not a frame index), CSV structure (field counts, a cut-off
last row) happens before any frame exists, and it adds no dependency.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import pandas as pd

from collab_pipelines.intake.upload_types import UploadColumn, UploadType
from collab_pipelines.warehouse.columns import PANDAS_DTYPES, is_numeric

MAX_PROBLEMS_LISTED = 50
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1"), ("false", "no", "0")
_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"


@dataclass
class ValidationReport:
    file_name: str
    upload_type: str
    problems: list[str] = field(default_factory=list)
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [
            f"Upload {self.file_name!r} was not ingested ({self.upload_type}).",
            f"{len(self.problems)} problem(s) found:",
            "",
        ]
        lines += [f"- {problem}" for problem in self.problems[:MAX_PROBLEMS_LISTED]]
        if len(self.problems) > MAX_PROBLEMS_LISTED:
            lines.append(f"- ... and {len(self.problems) - MAX_PROBLEMS_LISTED} more")
        lines += ["", "Fix the file and upload it again; nothing from it was loaded."]
        return "\n".join(lines) + "\n"


def validate_upload(
    data: bytes, file_name: str, upload_type: UploadType
) -> tuple[pd.DataFrame, ValidationReport]:
    """Parse and check an upload. Returns the typed rows and the report; rows only if ok."""
    report = ValidationReport(file_name=file_name, upload_type=upload_type.name)
    suffix = PurePath(file_name).suffix.lower()
    if len(data) == 0:
        report.problems.append("the file is empty")
        return pd.DataFrame(), report
    if len(data) > upload_type.max_bytes:
        report.problems.append(
            f"the file is {len(data):,} bytes; the limit for {upload_type.name} is {upload_type.max_bytes:,}"
        )
        return pd.DataFrame(), report
    if suffix not in upload_type.formats:
        report.problems.append(
            f"unsupported file type {suffix or '(none)'}; use one of {', '.join(upload_type.formats)}"
        )
        return pd.DataFrame(), report

    read = _read(data, suffix, report, upload_type)
    if read is None:
        return pd.DataFrame(), report
    raw, rows = read
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c.name for c in upload_type.column_list if c.required and c.name not in raw.columns]
    unknown = [c for c in raw.columns if c not in upload_type.columns]
    if missing:
        report.problems.append(f"header: missing required column(s) {', '.join(missing)}")
    if unknown:
        report.problems.append(
            f"header: unknown column(s) {', '.join(unknown)}; expected {', '.join(upload_type.column_names)}"
        )
    if missing or unknown:
        return pd.DataFrame(), report
    if len(raw) == 0:
        report.problems.append("the file has a header but no rows")
        return pd.DataFrame(), report
    if len(raw) > upload_type.max_rows:
        report.problems.append(f"the file has {len(raw):,} rows; the limit is {upload_type.max_rows:,}")
        return pd.DataFrame(), report

    raw.index = pd.RangeIndex(len(raw))
    typed = pd.DataFrame(index=raw.index)
    for column in upload_type.column_list:
        values = raw[column.name] if column.name in raw.columns else pd.Series(pd.NA, index=raw.index)
        typed[column.name] = _typed(values, column, rows, report)
    if upload_type.key:
        duplicated = typed.duplicated(list(upload_type.key), keep="first")
        for index in np.flatnonzero(duplicated.to_numpy()):
            key = ", ".join(f"{k}={typed.at[index, k]}" for k in upload_type.key)
            report.problems.append(f"row {rows[index]}: repeats the key ({key}) of an earlier row")
    report.rows = len(typed)
    return (typed if report.ok else pd.DataFrame()), report


def _read(
    data: bytes, suffix: str, report: ValidationReport, upload_type: UploadType
) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The file as strings, and each data row's number in the uploader's file."""
    try:
        if suffix == ".csv":
            return _read_csv(data, report, upload_type)
        if suffix == ".xlsx":
            frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl")
        else:
            frame = pd.read_parquet(io.BytesIO(data)).astype(object)
        return frame, np.arange(2, len(frame) + 2)
    except Exception as error:  # noqa: BLE001 -- every parser has its own errors; all mean "not readable"
        report.problems.append(f"the file cannot be read as {suffix[1:].upper()}: {error}")
        return None


def _read_csv(
    data: bytes, report: ValidationReport, upload_type: UploadType
) -> tuple[pd.DataFrame, np.ndarray] | None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        report.problems.append(
            f"encoding: the file is not UTF-8 (byte {data[error.start]:#04x} on line {line}); save it as UTF-8"
        )
        return None
    rows = _csv_structure(data, text, report)
    if rows is None:
        return None
    options = {"keep_default_na": False, "skipinitialspace": True, "skip_blank_lines": True}
    header = next(csv.reader(io.StringIO(text.partition("\n")[0])), [])
    numeric = [h for h in header if (c := upload_type.columns.get(h.strip().lower())) and is_numeric(c.type)]
    try:
        # Numbers parsed by pandas' C parser: the common, valid upload never goes through strings.
        frame = pd.read_csv(
            io.StringIO(text),
            dtype={**dict.fromkeys(header, str), **dict.fromkeys(numeric, "float64")},
            na_values=dict.fromkeys(numeric, [""]),
            **options,
        )
    except ValueError:
        # Some value is not a number: read everything as text, so each one is reported by row.
        frame = pd.read_csv(io.StringIO(text), dtype=str, **options)
    return frame, rows


def _csv_structure(data: bytes, text: str, report: ValidationReport) -> np.ndarray | None:
    """Every record has the header's number of fields, and the last one is not cut short.

    Returns the line number of each data record (blank lines are skipped, as pandas does),
    or None with the problems reported.
    """
    if '"' in text:
        starts, counts = [], []
        reader = csv.reader(io.StringIO(text, newline=""))
        line = 0
        for record in reader:
            if record:
                starts.append(line + 1)
                counts.append(len(record))
            line = reader.line_num
        starts, counts = np.asarray(starts), np.asarray(counts)
    else:
        # No quoting: a field count is a comma count, done on the bytes at numpy speed.
        raw = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(raw == ord("\n"))
        if len(raw) and raw[-1] != ord("\n"):
            ends = np.append(ends, len(raw))
        begins = np.concatenate(([0], ends[:-1] + 1))
        commas = np.flatnonzero(raw == ord(","))
        length = ends - begins
        carriage = raw[np.minimum(begins, len(raw) - 1)] == ord("\r") if len(raw) else np.zeros(0, bool)
        filled = (length > 1) | ((length == 1) & ~carriage)
        starts = np.flatnonzero(filled) + 1
        counts = (np.searchsorted(commas, ends) - np.searchsorted(commas, begins))[filled] + 1
    if not len(counts):
        return np.arange(0)
    width = counts[0]
    bad = np.flatnonzero(counts != width)
    for index in bad:
        report.problems.append(
            f"row {starts[index]}: {counts[index]} field(s), but the header has {width}"
            + (
                "; the file ends in this row, so it was probably cut short"
                if index == len(counts) - 1
                else ""
            )
        )
    if not text.endswith("\n") and len(counts) > 1 and (not len(bad) or bad[-1] != len(counts) - 1):
        report.problems.append(
            f"row {starts[-1]}: the file ends in the middle of this row (no line break after it), "
            "so it may be cut short; upload the whole file again"
        )
    return None if report.problems else starts[1:]


def _typed(values: pd.Series, column: UploadColumn, rows: np.ndarray, report: ValidationReport) -> pd.Series:
    if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
        stripped = values.astype("string").str.strip()
        blank = (stripped.isna() | (stripped == "")).to_numpy(dtype=bool, na_value=False)
    else:  # parquet gives typed values
        stripped, blank = values, values.isna().to_numpy(dtype=bool, na_value=False)

    def problems(mask, message) -> None:
        for index in np.flatnonzero(mask):
            report.problems.append(f"row {rows[index]}, column {column.name}: {message(index)}")

    if column.required:
        problems(blank, lambda _: "value missing")
    present = stripped.where(~blank, None)
    kind = column.type
    if kind == "string":
        if column.choices:
            outside = ~blank & ~present.isin(column.choices).to_numpy(dtype=bool, na_value=False)
            problems(outside, lambda i: f"{values.iloc[i]!r} is not one of {', '.join(column.choices)}")
        return present.astype("string")
    if kind == "boolean":
        words = present.astype("string").str.lower()
        truth = words.isin(TRUE_WORDS).to_numpy(dtype=bool, na_value=False)
        unknown = ~blank & ~truth & ~words.isin(FALSE_WORDS).to_numpy(dtype=bool, na_value=False)
        problems(unknown, lambda i: f"{values.iloc[i]!r} is not true or false")
        return pd.Series(np.where(blank, None, truth), index=values.index).astype("boolean")
    if kind in ("date", "datetime"):
        return _temporal(values, present, blank, column, problems)
    numbers = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    converted = values.astype("float64") if numbers else pd.to_numeric(present, errors="coerce")
    unparsed = converted.isna().to_numpy(dtype=bool, na_value=False) & ~blank
    problems(
        unparsed,
        lambda i: f"{_shown(values.iloc[i])} is not {'a number' if kind == 'float' else 'a whole number'}",
    )
    if kind == "integer":
        fraction = (converted % 1 != 0).to_numpy(dtype=bool, na_value=False) & ~unparsed & ~blank
        problems(fraction, lambda i: f"{_shown(values.iloc[i])} is not a whole number")
    for bound, compare in ((column.minimum, converted.lt), (column.maximum, converted.gt)):
        if bound is not None:
            problems(
                compare(bound).to_numpy(dtype=bool, na_value=False),
                lambda i: (
                    f"{converted.iloc[i]:g} is outside [{_number(column.minimum)}, {_number(column.maximum)}]"
                ),
            )
    if kind == "integer":
        return converted.where(~pd.Series(blank | unparsed, index=values.index)).round().astype("Int64")
    return converted.astype(PANDAS_DTYPES["float"])


def _shown(value: object) -> str:
    """A value as the uploader wrote it: text quoted, numbers plain."""
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def _number(bound: float | None) -> str:
    return "" if bound is None else f"{bound:g}"


def _temporal(values, present, blank, column: UploadColumn, problems) -> pd.Series:
    text = present.astype("string")
    try:
        # The valid upload's path: one ISO 8601 parse, no per-value checks.
        fast = pd.to_datetime(text, format="ISO8601")
        if fast.dt.tz is None and (column.type == "datetime" or (fast == fast.dt.normalize()).all()):
            return fast.astype("datetime64[us]")
    except (ValueError, TypeError):
        pass
    offset = (
        text.str.contains(_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool, na_value=False) & ~blank
    )
    problems(offset, lambda i: f"{values.iloc[i]!r} has a time-zone offset; give local times without one")
    converted = pd.to_datetime(
        text.where(~pd.Series(offset, index=values.index)), errors="coerce", format="ISO8601"
    )
    unparsed = converted.isna().to_numpy(dtype=bool, na_value=False) & ~blank & ~offset
    expected = "a date (YYYY-MM-DD)" if column.type == "date" else "a date and time (YYYY-MM-DD HH:MM)"
    problems(unparsed, lambda i: f"{values.iloc[i]!r} is not {expected}")
    if column.type == "date":
        timed = (converted != converted.dt.normalize()).fillna(False).to_numpy(dtype=bool, na_value=False)
        problems(timed, lambda i: f"{values.iloc[i]!r} has a time of day; the column holds dates only")
    return converted.astype("datetime64[us]")
