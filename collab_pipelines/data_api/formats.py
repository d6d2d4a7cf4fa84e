"""Streaming encoders: rows arrive in chunks from a server-side cursor and leave as bytes.

Each chunk becomes an Arrow table typed from the catalog, so every format carries the same
types whichever database the rows came from, and no more than one chunk is held at a time.
"""

import io
import json
from collections.abc import Iterable, Iterator, Sequence

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
    fmt: str, chunks: Iterable[Sequence[Sequence]], schema: pa.Schema, header: dict
) -> Iterator[bytes]:
    """The bytes of a response body, one piece per chunk of rows."""
    tables = (to_arrow(rows, schema) for rows in chunks)
    if fmt == "parquet":
        return _parquet(tables, schema)
    if fmt == "csv":
        return _csv(tables, schema)
    if fmt == "ndjson":
        return (_json_records(table, lines=True) for table in tables)
    return _json(tables, header)


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


def _csv(tables: Iterable[pa.Table], schema: pa.Schema) -> Iterator[bytes]:
    # Catalog names are plain identifiers, so the header never needs quoting.
    yield (",".join(field.name for field in schema) + "\n").encode()
    options = pa_csv.WriteOptions(include_header=False)
    for table in tables:
        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer, write_options=options)
        yield buffer.getvalue()


def _json_records(table: pa.Table, *, lines: bool) -> bytes:
    if table.num_rows == 0:
        return b""
    frame = table.to_pandas(types_mapper=_nullable)
    text = frame.to_json(orient="records", lines=lines, date_format="iso", date_unit="us", force_ascii=False)
    if lines and not text.endswith("\n"):
        text += "\n"
    return text.encode()


def _nullable(arrow_type: pa.DataType):
    # Nullable pandas dtypes keep integers whole and missing values as null in JSON.
    import pandas as pd

    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


def _json(tables: Iterable[pa.Table], header: dict) -> Iterator[bytes]:
    opening = json.dumps(header)[:-1]
    yield (opening + (", " if header else "") + '"data": [').encode()
    first = True
    for table in tables:
        records = _json_records(table, lines=False)
        if not records:
            continue
        # Each chunk is a JSON array; its brackets go, its records join the one array.
        yield (b"" if first else b",") + records[1:-1]
        first = False
    yield b"]}"
