"""parse → plan → stream, each on its own: no server, a small SQLite table made here."""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from collab_pipelines.data_api import rows
from collab_pipelines.data_api.catalog import DatasetCatalog
from collab_pipelines.data_api.problems import ApiProblem
from collab_pipelines.data_api.query import Filter, SortKey
from collab_pipelines.warehouse.datasets import Dataset

TRIPS = Dataset(
    name="trips",
    description="test trips",
    columns={
        "id": "integer",
        "origin": "string",
        "delay": "float",
        "late": "boolean",
        "left_at": "datetime",
        "_loaded_at": "datetime",
        "_partition": "string",
    },
    primary_key=("id",),
    asset_key="trips",
    partition_column="_partition",
    partitioning="daily",
)
SCORES = Dataset(
    name="scores",
    description="no write stamp",
    columns={"key": "string", "value": "float", "ok": "boolean"},
    primary_key=("key",),
    asset_key="scores",
    partition_column="key",
    partitioning="dynamic:keys",
)
AVAILABLE = tuple(TRIPS.columns)
BOUNDS = rows.Partitions(date(2013, 1, 1), date(2014, 1, 1), lambda: "2013-01-03")


def parse(aware=frozenset(), partitions=BOUNDS, dataset=TRIPS, **params) -> rows.RowsRequest:
    available = tuple(dataset.columns)
    return rows.parse(dataset, available, rows.RowsParameters(**params), partitions, aware)


def refusal(**params) -> str:
    with pytest.raises(ApiProblem) as caught:
        parse(**params)
    assert caught.value.problem.status == 400
    return caught.value.problem.detail


def test_parse_types_every_value_and_completes_the_order_with_the_key():
    request = parse(
        columns="origin,delay",
        filters=["delay:gte:2.5", "late:eq:true", "origin:in:JFK,LGA", "left_at:lt:2013-01-02T06:00"],
        sort="-delay",
        limit=5,
    )
    assert request.selected == ["origin", "delay"]
    assert request.filters == [
        Filter("delay", "gte", 2.5),
        Filter("late", "eq", True),
        Filter("origin", "in", ["JFK", "LGA"]),
        Filter("left_at", "lt", datetime(2013, 1, 2, 6)),
    ]
    assert request.keys == [SortKey("delay", True), SortKey("id", False)]
    assert request.partitions is None and request.limit == 5


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"partition": "2013-01-02"}, ["2013-01-02"]),
        ({"partition": "latest"}, ["2013-01-03"]),
        ({"partition_from": "2013-01-02"}, ("2013-01-02", "9999-12-31")),
        ({"partition_to": "2013-01-02"}, ("0000-01-01", "2013-01-02")),
    ],
)
def test_parse_partitions(params, expected):
    assert parse(**params).partitions == expected


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"partition": "2013-01-02", "partition_from": "2013-01-01"}, "not both"),
        ({"partition_from": "2013-01-05", "partition_to": "2013-01-01"}, "is after"),
        ({"partition": "2012-12-31"}, "outside 'trips'"),
        ({"partition": "2013-02-30"}, "is not a day"),
        ({"columns": "id,,origin"}, "empty column name"),
        ({"columns": ""}, "empty column name"),
        ({"filters": ["delay:gte:1_0"]}, "is not a number"),
        ({"filters": ["late:eq:TRUE"]}, "true or false"),
        ({"filters": ["left_at:gte:20130105"]}, "ISO 8601"),
        ({"filters": ["delay:gte:soon"]}, "delay (float)"),
        ({"filters": ["late:lt:true"]}, "has no order"),
        ({"sort": "nope"}, "has no column 'nope'"),
    ],
)
def test_parse_refuses_with_the_reason(params, words):
    assert words in refusal(**params)


def test_parse_refuses_an_offset_on_a_column_without_a_time_zone_and_honours_it_on_one_with():
    detail = refusal(filters=["left_at:gte:2013-01-03T12:00:00-05:00"])
    assert "left_at holds date-times without a time zone" in detail and "without an offset" in detail
    assert "UTC offset" in refusal(filters=["left_at:gte:2013-01-03T17:00:00Z"])
    aware = parse(aware=frozenset({"left_at"}), filters=["left_at:gte:2013-01-03T12:00:00-05:00"])
    assert aware.filters[0].value == datetime(2013, 1, 3, 17, tzinfo=UTC)
    assert aware.filters[0].value.utcoffset() is not None
    no_offset = parse(aware=frozenset({"left_at"}), filters=["left_at:gte:2013-01-03T17:00:00"])
    assert no_offset.filters[0].value == datetime(2013, 1, 3, 17, tzinfo=UTC)


def test_parse_dynamic_partitions_have_no_range():
    assert parse(dataset=SCORES, partition="abc@1").partitions == ["abc@1"]
    with pytest.raises(ApiProblem, match="dynamic partitions"):
        parse(dataset=SCORES, partition_from="2013-01-01")


@pytest.fixture
def warehouse():
    engine = sa.create_engine("sqlite://")
    loaded = datetime(2013, 2, 1, 9, 30)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE trips (id BIGINT, origin TEXT, delay FLOAT, late BOOLEAN, left_at DATETIME,"
                " _loaded_at DATETIME, _partition TEXT)"
            )
        )
        for i in range(30):
            day = f"2013-01-0{1 + i % 3}"
            connection.execute(
                sa.text("INSERT INTO trips VALUES (:i, :o, :d, :l, :t, :loaded, :p)"),
                {
                    "i": i,
                    "o": ["JFK", "LGA", "EWR"][i % 3],
                    "d": None if i % 7 == 0 else float(i % 10),
                    "l": i % 2,
                    "t": datetime(2013, 1, 1) + timedelta(hours=i),
                    "loaded": loaded + timedelta(minutes=i),
                    "p": day,
                },
            )
    return engine


def table(engine, dataset=TRIPS):
    return DatasetCatalog(engine, instance=None, datasets={dataset.name: dataset}).table(
        dataset, dataset.columns
    )


def order_by_delay(i: int) -> tuple:
    """-delay, NULL last, then id: the order the API promises, computed from the rows' recipe."""
    null = i % 7 == 0
    return (null, 0 if null else -(i % 10), i)


def test_plan_selects_the_page_plus_one_in_order_and_the_key_columns_it_lacks(warehouse):
    request = parse(columns="origin", sort="-delay", partition="2013-01-02", limit=4)
    plan = rows.plan(request, table(warehouse), chunk_rows=100)
    with warehouse.connect() as connection:
        page = connection.execute(plan.page).all()
    # Day two holds ids 1, 4, ..., 28; NULL delays (id 7, 28) sort lowest, so last when descending.
    day = sorted(range(1, 30, 3), key=order_by_delay)
    assert [row[2] for row in page] == day[:5]
    assert [row[0] for row in page] == [["JFK", "LGA", "EWR"][i % 3] for i in day[:5]]
    assert plan.width == 1 and plan.key_positions == [1, 2]


def test_plan_fingerprint_covers_only_the_partitions_asked_for_and_moves_with_a_write(warehouse):
    plan = rows.plan(parse(partition="2013-01-02", filters=["delay:gt:100"]), table(warehouse), 100)
    with warehouse.connect() as connection:
        before = rows.fingerprint(connection, plan)
    assert before.rows == 10 and before.stamped
    assert before.modified == datetime(2013, 2, 1, 9, 58, tzinfo=UTC)  # id 28, the day's newest
    with warehouse.begin() as connection:
        connection.execute(sa.text("UPDATE trips SET _loaded_at = '2013-03-01 00:00:00' WHERE id = 4"))
    with warehouse.connect() as connection:
        after = rows.fingerprint(connection, plan)
    assert after.rows == 10 and after.modified == datetime(2013, 3, 1, tzinfo=UTC)
    assert after.etag("x") != before.etag("x") and before.etag("x") != before.etag("y")


def test_plan_fingerprint_without_a_write_stamp_aggregates_every_column():
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE scores (key TEXT, value FLOAT, ok BOOLEAN)"))
        connection.execute(sa.text("INSERT INTO scores VALUES ('a', 1.0, 1), ('b', 2.0, 0)"))
    plan = rows.plan(parse(dataset=SCORES), table(engine, SCORES), 100)
    with engine.connect() as connection:
        before = rows.fingerprint(connection, plan)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE scores SET value = 5.0 WHERE key = 'b'"))
    with engine.connect() as connection:
        after = rows.fingerprint(connection, plan)
    assert not before.stamped and before.modified is None and before.rows == after.rows == 2
    assert before.etag() != after.etag()


@pytest.mark.parametrize("chunk_rows", [3, 100])  # a page in one chunk, and one spread over many
def test_stream_pages_end_with_a_cursor_to_the_next(warehouse, chunk_rows):
    closed = []
    seen, cursor = [], None
    while True:
        request = parse(columns="id", sort="-delay", limit=7, cursor=cursor)
        plan = rows.plan(request, table(warehouse), chunk_rows)
        page = rows.stream(warehouse.connect(), plan, chunk_rows, lambda: closed.append(1))
        seen.extend(row[0] for chunk in page.chunks for row in chunk)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted(range(30), key=order_by_delay)
    assert seen == expected and len(closed) == 5
