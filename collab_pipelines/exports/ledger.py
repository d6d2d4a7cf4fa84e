"""The warehouse's own record of what each export wrote, committed in the same transaction as the rows.

A day's rows live in the warehouse and Dagster's record of them (the day's materialization) in
the instance's event log: two databases, and no transaction spans both. A run writes the rows
first and records each day after the commit, so a run killed in between (issue 24: a range run
killed while recording its 181 days) leaves days the product serves that Dagster calls missing.

The ledger closes that gap. One row per export and day (the whole table for an export without
a date) says which run wrote it, with which row count and data version, and whether Dagster
recorded it. The run marks its days recorded after their materializations were written; the
export records sensor (exports/sensors.py) reports the days of a finished run that are still
unmarked, from the ledger, so the warehouse and Dagster's record agree again without any run.
No Dagster import here: the sensor and the asset bring that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

LEDGER_TABLE = "_collab_export_days"
WHOLE_TABLE = ""

_metadata = sa.MetaData()
ledger = sa.Table(
    LEDGER_TABLE,
    _metadata,
    sa.Column("export", sa.String(63), primary_key=True),
    # The partition key, or WHOLE_TABLE for an export without a date.
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("data_version", sa.String(64), nullable=False),
    sa.Column("recorded", sa.Boolean, nullable=False),
)


@dataclass(frozen=True)
class WrittenDay:
    export: str
    day: str
    run_id: str
    row_count: int
    data_version: str


def write(connection: sa.Connection, days: Sequence[WrittenDay]) -> None:
    """In the caller's transaction (the rows'), the days it wrote, not yet recorded by Dagster."""
    if not days:
        return
    _metadata.create_all(connection, tables=[ledger], checkfirst=True)
    for export in {d.export for d in days}:
        connection.execute(
            ledger.delete().where(
                ledger.c.export == export, ledger.c.day.in_([d.day for d in days if d.export == export])
            )
        )
    connection.execute(
        ledger.insert(),
        [
            {
                "export": d.export,
                "day": d.day,
                "run_id": d.run_id,
                "row_count": d.row_count,
                "data_version": d.data_version,
                "recorded": False,
            }
            for d in days
        ],
    )


def mark_recorded(engine: sa.Engine, export: str, run_id: str, days: Sequence[str] | None = None) -> None:
    """Dagster holds these days' materializations: the days `run_id` wrote (all, or `days`)."""
    update = ledger.update().where(ledger.c.export == export, ledger.c.run_id == run_id)
    if days is not None:
        update = update.where(ledger.c.day.in_(list(days)))
    with engine.begin() as connection:
        if sa.inspect(connection).has_table(LEDGER_TABLE):
            connection.execute(update.values(recorded=True))


def unrecorded(engine: sa.Engine, limit: int = 1000) -> list[WrittenDay]:
    """Days written whose materialization the run that wrote them did not confirm, oldest run first."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(LEDGER_TABLE):
            return []
        rows = connection.execute(
            sa.select(
                ledger.c.export, ledger.c.day, ledger.c.run_id, ledger.c.row_count, ledger.c.data_version
            )
            .where(ledger.c.recorded.is_(False))
            .order_by(ledger.c.run_id, ledger.c.export, ledger.c.day)
            .limit(limit)
        ).all()
    return [WrittenDay(*row) for row in rows]
