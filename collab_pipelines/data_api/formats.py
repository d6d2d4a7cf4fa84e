"""Streaming encoders: rows arrive in chunks from a server-side cursor and leave as bytes.

JSON and NDJSON are written straight from the database's rows with the standard library's C
encoder, a column at a time; CSV and Parquet go through an Arrow table typed from the catalog.
Either way every format carries the same types whichever database the rows came from, and no
more than one chunk is held at a time.
"""

import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from collab_pipelines.warehouse.columns import arrow_types

FORMATS = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
ARROW_TYPES = arrow_types()


def arrow_schema(columns: Sequence[str], types: Sequence[str]) -> pa.Schema:
    return pa.schema([pa.field(name, ARROW_TYPES[kind]) for name, kind in zip(columns, types, strict=True)])


def to_arrow(rows: Sequence[Sequence], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.Table.from_arrays(
        [_array(values, field.type) for values, field in zip(columns, schema, strict=True)], schema=schema
    )


def _array(values: Sequence, arrow_type: pa.DataType) -> pa.Array:
    if (pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)) and any(
        isinstance(v, str) for v in values
    ):
        # SQLite's stored text ("2013-01-05 06:00:00.000000"), parsed by Arrow in one pass:
        # SQLAlchemy's per-value parsing is most of a page's cost otherwise.
        text = pa.array(values, type=pa.string())
        if pa.types.is_date(arrow_type):
            return pc.cast(pc.utf8_slice_codeunits(text, 0, 10), pa.date32())
        return pc.cast(text, arrow_type)
    return pa.array(values, type=arrow_type)


def encode(
    fmt: str,
    chunks: Iterable[Sequence[Sequence]],
    columns: Sequence[str],
    types: Sequence[str],
    header: dict,
    written: bool = False,
    whole: bool = False,
) -> Iterator[bytes]:
    """The bytes of a response body, one piece per chunk of rows.

    `written`: each row is one JSON object the database wrote (JSON and NDJSON only).
    `whole`: the body is wanted in one piece (a page of one chunk); the bytes are the same.
    """
    if fmt in ("json", "ndjson"):
        records = WrittenRecords() if written else JsonRecords(columns, types)
        if fmt == "ndjson":
            return (records.ndjson(rows) for rows in chunks)
        return _json(records, chunks, header)
    schema = arrow_schema(columns, types)
    tables = (to_arrow(rows, schema) for rows in chunks)
    if fmt == "parquet":
        return _parquet_whole(tables, schema) if whole else _parquet(tables, schema)
    return _csv(tables, schema)


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken away after each row group."""

    def __init__(self):
        self.pieces: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.pieces.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data, self.pieces = b"".join(self.pieces), []
        return data


def _parquet(tables: Iterable[pa.Table], schema: pa.Schema) -> Iterator[bytes]:
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    try:
        for table in tables:
            writer.write_table(table)
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


def _parquet_whole(tables: Iterable[pa.Table], schema: pa.Schema) -> Iterator[bytes]:
    # Arrow's own buffer as the sink: no Python file object between the writer and its bytes,
    # which cost 0.3 ms of a day's 2 ms of Parquet (measured). A stream cannot use it: its bytes
    # are readable only once the file is closed.
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, compression="snappy") as writer:
        for table in tables:
            writer.write_table(table)
    yield sink.getvalue().to_pybytes()


def _csv(tables: Iterable[pa.Table], schema: pa.Schema) -> Iterator[bytes]:
    # Catalog names are plain identifiers, so the header never needs quoting.
    yield (",".join(field.name for field in schema) + "\n").encode()
    options = pa_csv.WriteOptions(include_header=False)
    for table in tables:
        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer, write_options=options)
        yield buffer.getvalue()


def _json(
    records: "JsonRecords | WrittenRecords", chunks: Iterable[Sequence[Sequence]], header: dict
) -> Iterator[bytes]:
    opening = json.dumps(header)[:-1]
    yield (opening + (", " if header else "") + '"data": [').encode()
    first = True
    for rows in chunks:
        if not rows:
            continue
        yield (b"" if first else b",") + records.array_items(rows)
        first = False
    yield b"]}"


# -- JSON records from database rows ---------------------------------------------------------
# A column's values are encoded in one call of the C encoder, separated by a NUL, which no
# encoded value can hold (ensure_ascii escapes every control character inside a string); the
# pieces are then interleaved with the keys by slice assignment and joined once. Per value,
# Python code runs only where a column's values are not already what JSON shows (a date, a
# PostgreSQL date-time, a non-finite float): then that column is normalized and encoded again.
_SEPARATOR = "\x00"
_ENCODE = json.JSONEncoder(allow_nan=False, separators=(_SEPARATOR, ":")).encode
_NONE = type(None)
# SQLAlchemy's text form of a SQLite date-time; JSON shows it with a "T" (ISO 8601), as before.
_STORED_DATETIME = r'(?:"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"|null)'
_STORED_DATETIMES = re.compile(f"{_STORED_DATETIME}(?:{_SEPARATOR}{_STORED_DATETIME})*")
_PLAIN = {"integer": {int, _NONE}, "float": {float, _NONE}, "string": {str, _NONE}, "boolean": {bool, _NONE}}


def _datetime_text(value) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif not isinstance(value, datetime):  # a date in a date-time column
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        # A time-zone-aware column (PostgreSQL timestamptz) is shown in UTC, without offset.
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def _date_text(value) -> str:
    if isinstance(value, str):
        day = date.fromisoformat(value[:10])
    elif isinstance(value, datetime):
        day = value.date()
    else:
        day = value
    # YYYY-MM-DD, as CSV and Parquet show a date: the same value in every format.
    return day.isoformat()


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


_NORMALIZE: dict[str, Callable] = {
    "integer": int,
    "float": _finite,
    "string": str,
    "boolean": bool,
    "date": _date_text,
    "datetime": _datetime_text,
}


class JsonRecords:
    """Rows of `columns` (catalog `types`) as JSON objects, without per-value Python in the usual case."""

    def __init__(self, columns: Sequence[str], types: Sequence[str]):
        self.types = list(types)
        self.keys = [("{" if i == 0 else ",") + json.dumps(name) + ":" for i, name in enumerate(columns)]

    @staticmethod
    def _column(values: Sequence, kind: str) -> list[str]:
        if kind in _PLAIN and set(map(type, values)) <= _PLAIN[kind]:
            try:
                return _ENCODE(values)[1:-1].split(_SEPARATOR)
            except ValueError:  # NaN or infinity: JSON has no such number, it shows null
                pass
        elif kind == "datetime" and set(map(type, values)) <= _PLAIN["string"]:
            text = _ENCODE(values)[1:-1]
            if _STORED_DATETIMES.fullmatch(text):
                return text.replace(" ", "T").split(_SEPARATOR)
        normalize = _NORMALIZE[kind]
        return _ENCODE([None if v is None else normalize(v) for v in values])[1:-1].split(_SEPARATOR)

    def _objects(self, rows: Sequence[Sequence], between: str, end: str) -> bytes:
        if not rows:
            return b""
        keys, step = self.keys, 2 * len(self.keys)
        pieces = [None] * (step * len(rows))
        pieces[0::2] = keys * len(rows)
        # Each row's first key closes the row before it.
        pieces[step::step] = [between + keys[0]] * (len(rows) - 1)
        for index, (values, kind) in enumerate(zip(zip(*rows, strict=True), self.types, strict=True)):
            pieces[2 * index + 1 :: step] = self._column(values, kind)
        pieces.append(end)
        return "".join(pieces).encode()

    def array_items(self, rows: Sequence[Sequence]) -> bytes:
        """The objects of a JSON array, comma-separated, without the brackets."""
        return self._objects(rows, "},", "}")

    def ndjson(self, rows: Sequence[Sequence]) -> bytes:
        return self._objects(rows, "}\n", "}\n")


class WrittenRecords:
    """Rows whose first value is the row as a JSON object already (`rows.plan`'s `json_records`)."""

    @staticmethod
    def array_items(rows: Sequence[Sequence]) -> bytes:
        return ",".join([row[0] for row in rows]).encode()

    @staticmethod
    def ndjson(rows: Sequence[Sequence]) -> bytes:
        return "".join([row[0] + "\n" for row in rows]).encode()
