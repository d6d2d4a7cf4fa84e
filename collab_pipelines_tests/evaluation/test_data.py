"""The evaluation reads the warehouse faster than pd.read_sql, and gets the same frames."""

from datetime import date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines.evaluation.data import read_frame
from collab_pipelines.warehouse.engine import dispose_engines, engine_for_url

ROWS = [
    # integer, integer with a gap, float, text, timestamp, day, flag, always empty
    (1, 10, 0.5, "UA", datetime(2013, 1, 1, 5, 15), date(2013, 1, 1), True, None),
    (2, None, None, None, None, None, None, None),
    (3, 30, -1.25, "über", datetime(2013, 1, 2, 23, 59, 59, 123456), date(2013, 1, 2), False, None),
]


def write_rows(url: str) -> sa.Engine:
    engine = engine_for_url(url)
    table = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("count", sa.BigInteger),
        sa.Column("score", sa.Double),
        sa.Column("carrier", sa.String),
        sa.Column("at", sa.DateTime),
        sa.Column("day", sa.Date),
        sa.Column("flag", sa.Boolean),
        sa.Column("unused", sa.String),
    )
    with engine.begin() as connection:
        table.create(connection)
        connection.execute(
            table.insert(), [dict(zip(table.columns.keys(), row, strict=True)) for row in ROWS]
        )
    return engine


def check_same_frames(engine: sa.Engine) -> None:
    queries = {
        "all": ('SELECT * FROM "events" ORDER BY "id"', {}),
        "some": ('SELECT * FROM "events" WHERE "id" >= :least ORDER BY "id"', {"least": 2}),
        "none": ('SELECT * FROM "events" WHERE "id" > :least', {"least": 99}),
    }
    with engine.connect() as connection:
        for name, (text, params) in queries.items():
            expected = pd.read_sql(sa.text(text), connection, params=params)
            pd.testing.assert_frame_equal(read_frame(connection, sa.text(text), params), expected, obj=name)


def test_sqlite_reads_the_frames_pandas_reads(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = write_rows(url)
    check_same_frames(engine)
    # SQLite keeps a text in an integer column: such a column is read by pandas itself.
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO events (id, count) VALUES (4, 'many')"))
    check_same_frames(engine)
    dispose_engines(url)


def test_postgresql_reads_the_frames_pandas_reads(postgres_url):
    check_same_frames(write_rows(postgres_url))


@pytest.mark.parametrize("rows", [0, 1])
def test_no_rows_and_one_row_keep_their_columns(tmp_path, rows):
    engine = write_rows(f"sqlite:///{tmp_path / 'warehouse.db'}")
    with engine.connect() as connection:
        query = sa.text('SELECT "id", "carrier" FROM "events" WHERE "id" <= :last')
        frame = read_frame(connection, query, {"last": rows})
    assert list(frame.columns) == ["id", "carrier"] and len(frame) == rows
