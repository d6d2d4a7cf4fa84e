"""JSON rows without pandas: the standard library's encoder from database rows, and SQLite's own.

Both must show every type as the API documents it (date-times as ISO 8601 with microseconds,
dates as YYYY-MM-DD, as CSV shows them, NaN and infinity as null, booleans as true/false) whatever form the
database hands the values in.
"""

import csv
import io
import json
import math
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from collab_pipelines.data_api import rows
from collab_pipelines.data_api.catalog import DatasetCatalog
from collab_pipelines.data_api.formats import JsonRecords, encode
from collab_pipelines.warehouse.datasets import Dataset

KINDS = {
    "id": "integer",
    "name": "string",
    "score": "float",
    "ok": "boolean",
    "day": "date",
    "at": "datetime",
}
EVERY_KIND = Dataset(
    name="every_kind",
    description="one column of each type",
    columns=KINDS,
    primary_key=("id",),
    asset_key="every_kind",
)
COLUMNS, TYPES = list(KINDS), list(KINDS.values())

# As SQLite hands them over: date-times and dates as stored text, booleans already bool.
SQLITE_ROWS = [
    (1, "plain", 1.5, True, "2013-01-05", "2013-01-05 06:00:00.000000"),
    (2, 'quote " comma , é \x00', float("nan"), False, "2013-01-06 00:00:00.000000", "2013-01-05 06:00:00"),
    (3, None, float("inf"), None, None, "2013-01-05T06:00:00.123456"),
    (4, "", None, True, "2013-01-07", None),
]
# As PostgreSQL's driver hands them over: dates and date-times as objects, some with a zone.
POSTGRES_ROWS = [
    (1, "plain", 1.5, True, date(2013, 1, 5), datetime(2013, 1, 5, 6, 0)),
    (
        2,
        "x",
        2,
        False,
        date(2013, 1, 6),
        datetime(2013, 1, 5, 6, 0, 0, 5, tzinfo=timezone(timedelta(hours=-5))),
    ),
    (3, None, -math.inf, None, None, None),
]
EXPECTED_SQLITE = [
    {"id": 1, "name": "plain", "score": 1.5, "ok": True, "day": "2013-01-05",
     "at": "2013-01-05T06:00:00.000000"},
    {"id": 2, "name": 'quote " comma , é \x00', "score": None, "ok": False, "day": "2013-01-06",
     "at": "2013-01-05T06:00:00.000000"},
    {"id": 3, "name": None, "score": None, "ok": None, "day": None, "at": "2013-01-05T06:00:00.123456"},
    {"id": 4, "name": "", "score": None, "ok": True, "day": "2013-01-07", "at": None},
]  # fmt: skip
EXPECTED_POSTGRES = [
    {"id": 1, "name": "plain", "score": 1.5, "ok": True, "day": "2013-01-05",
     "at": "2013-01-05T06:00:00.000000"},
    {"id": 2, "name": "x", "score": 2.0, "ok": False, "day": "2013-01-06",
     "at": "2013-01-05T11:00:00.000005"},
    {"id": 3, "name": None, "score": None, "ok": None, "day": None, "at": None},
]  # fmt: skip


def body(fmt: str, chunks, written: bool = False) -> bytes:
    return b"".join(encode(fmt, chunks, COLUMNS, TYPES, {"dataset": "every_kind"}, written=written))


@pytest.mark.parametrize(
    ("given", "expected"), [(SQLITE_ROWS, EXPECTED_SQLITE), (POSTGRES_ROWS, EXPECTED_POSTGRES)]
)
def test_json_and_ndjson_show_every_type_as_documented(given, expected):
    document = json.loads(body("json", [given[:2], [], given[2:]]))
    assert document == {"dataset": "every_kind", "data": expected}
    lines = body("ndjson", [given[:2], given[2:]]).decode()
    assert lines.endswith("\n") and [json.loads(line) for line in lines.splitlines()] == expected
    # Floats keep every digit, and whole floats stay floats.
    assert '"score":2.0' in body("ndjson", [[(1, "x", 2.0, None, None, None)]]).decode()
    assert json.loads(body("ndjson", [[(1, "x", 0.1 + 0.2, None, None, None)]]))["score"] == 0.1 + 0.2


def test_an_empty_page_is_an_empty_array():
    assert json.loads(body("json", [[]])) == {"dataset": "every_kind", "data": []}
    assert body("ndjson", [[]]) == b""
    assert JsonRecords(COLUMNS, TYPES).ndjson([]) == b""


def test_sqlite_writes_the_same_records_as_the_encoder():
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE every_kind (id BIGINT, name TEXT, score FLOAT, ok BOOLEAN, day DATE, at DATETIME)"
            )
        )
        for row in SQLITE_ROWS:
            # SQLite stores NaN as NULL; a whole number in the float column stays a float.
            connection.execute(
                sa.text("INSERT INTO every_kind VALUES (:a, :b, :c, :d, :e, :f)"),
                dict(zip("abcdef", row, strict=True)),
            )
        connection.execute(
            sa.text("INSERT INTO every_kind VALUES (5, 'w', 7, 0, '2013-01-08', '2013-01-05 06:00')")
        )
    table = DatasetCatalog(engine, instance=None, datasets={"every_kind": EVERY_KIND}).table(
        EVERY_KIND, COLUMNS
    )
    seen: dict[bool, list[dict]] = {}
    for written in (True, False):
        cursor, pages = None, []
        while True:
            paged = rows.parse(
                EVERY_KIND, COLUMNS, rows.RowsParameters(sort="-score", limit=3, cursor=cursor)
            )
            plan = rows.plan(paged, table, chunk_rows=2, sqlite=True, json_records=written)
            assert plan.records is written
            page = rows.stream(engine.connect(), plan, 2, lambda: None)
            pages += json.loads(body("json", page.chunks, written=plan.records))["data"]
            cursor = page.next_cursor
            if cursor is None:
                break
        seen[written] = pages
    assert seen[True] == seen[False]
    # Infinity sorts highest, then NULL (and NaN, stored as NULL) lowest.
    assert [r["id"] for r in seen[True]] == [3, 5, 1, 2, 4]
    assert seen[True][1] == {
        "id": 5, "name": "w", "score": 7.0, "ok": False, "day": "2013-01-08",
        "at": "2013-01-05T06:00:00.000000",
    }  # fmt: skip
    assert seen[True][2:] == [EXPECTED_SQLITE[0], EXPECTED_SQLITE[1], EXPECTED_SQLITE[3]]


@pytest.mark.parametrize("given", [SQLITE_ROWS, POSTGRES_ROWS], ids=["sqlite", "postgres"])
def test_a_date_is_the_same_text_in_json_ndjson_and_csv(given):
    as_json = [row["day"] for row in json.loads(body("json", [given]))["data"]]
    as_ndjson = [json.loads(line)["day"] for line in body("ndjson", [given]).decode().splitlines()]
    as_csv = [row["day"] or None for row in csv.DictReader(io.StringIO(body("csv", [given]).decode()))]
    assert as_json == as_ndjson == as_csv
    assert as_json[:2] == ["2013-01-05", "2013-01-06"]


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "parquet"])
@pytest.mark.parametrize("given", [SQLITE_ROWS, POSTGRES_ROWS], ids=["sqlite", "postgres"])
def test_a_page_in_one_piece_has_the_bytes_of_the_streamed_one(fmt, given):
    streamed = body(fmt, [given])
    whole = b"".join(encode(fmt, [given], COLUMNS, TYPES, {"dataset": "every_kind"}, whole=True))
    assert whole == streamed
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(whole))
        assert table.column("id").to_pylist() == [row[0] for row in given]
        assert table.schema.field("at").type == pa.timestamp("us")
