"""Validating an uploaded file against its upload type, collecting every problem found.

The report is written for the uploader, who reads it as `<file>.error.txt` over SFTP: each
problem names the row (as numbered in their file, header = row 1) and the column.
"""

import io
from dataclasses import dataclass, field
from pathlib import PurePath

import pandas as pd

from collab_pipelines.intake.schemas import UploadType

MAX_PROBLEMS_LISTED = 50


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

    raw = _read(data, suffix, report)
    if raw is None:
        return pd.DataFrame(), report
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c.name for c in upload_type.columns if c.required and c.name not in raw.columns]
    unknown = [c for c in raw.columns if c not in upload_type.column_names]
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

    typed = pd.DataFrame(index=raw.index)
    for column in upload_type.columns:
        values = raw[column.name] if column.name in raw.columns else pd.Series(pd.NA, index=raw.index)
        typed[column.name] = _check_column(values, column, report)
    if upload_type.key:
        duplicated = typed.duplicated(list(upload_type.key), keep="first")
        for index in typed.index[duplicated]:
            key = ", ".join(f"{k}={typed.at[index, k]}" for k in upload_type.key)
            report.problems.append(f"row {_row_number(index)}: repeats the key ({key}) of an earlier row")
    report.rows = len(typed)
    return (typed if report.ok else pd.DataFrame()), report


def _read(data: bytes, suffix: str, report: ValidationReport) -> pd.DataFrame | None:
    try:
        if suffix == ".csv":
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as error:
                line = data[: error.start].count(b"\n") + 1
                report.problems.append(
                    f"encoding: the file is not UTF-8 (byte {data[error.start]:#04x} on line {line}); save it as UTF-8"
                )
                return None
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
        if suffix == ".xlsx":
            return pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl")
        return pd.read_parquet(io.BytesIO(data)).astype(object)
    except Exception as error:  # noqa: BLE001 -- every parser has its own errors; all mean "not readable"
        report.problems.append(f"the file cannot be read as {suffix[1:].upper()}: {error}")
        return None


def _row_number(index: int) -> int:
    return int(index) + 2  # the header is row 1 in the uploader's file


def _check_column(values: pd.Series, column, report: ValidationReport) -> pd.Series:
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if column.required:
        for index in values.index[blank]:
            report.problems.append(f"row {_row_number(index)}, column {column.name}: value missing")
    present = values[~blank]
    if column.type == "string":
        converted = values.where(~blank, None).astype("string").str.strip()
        if column.choices:
            bad = present[~present.astype(str).str.strip().isin(column.choices)]
            for index, value in bad.items():
                report.problems.append(
                    f"row {_row_number(index)}, column {column.name}: {value!r} is not one of {', '.join(column.choices)}"
                )
        return converted
    if column.type == "datetime":
        converted = pd.to_datetime(values.where(~blank, None), errors="coerce", format="mixed")
        kind = "a date and time (YYYY-MM-DD HH:MM)"
    else:
        converted = pd.to_numeric(values.where(~blank, None), errors="coerce")
        kind = "a number" if column.type == "float" else "a whole number"
    unparsed = converted.isna() & ~blank
    for index in values.index[unparsed]:
        report.problems.append(
            f"row {_row_number(index)}, column {column.name}: {values[index]!r} is not {kind}"
        )
    if column.type != "datetime":
        for bound, outside in (
            (column.minimum, converted < (column.minimum if column.minimum is not None else 0)),
            (column.maximum, converted > (column.maximum if column.maximum is not None else 0)),
        ):
            if bound is None:
                continue
            for index in values.index[outside.fillna(False)]:
                report.problems.append(
                    f"row {_row_number(index)}, column {column.name}: {converted[index]} is outside "
                    f"[{column.minimum}, {column.maximum}]"
                )
        return converted.astype("float64")
    return converted.astype("datetime64[us]")
