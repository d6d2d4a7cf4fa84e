"""Reading an export's query in chunks, through the database driver's own cursor.

A range run reads its whole window with one query, but holds only `chunk_rows` rows at a time:
PostgreSQL streams them through a server-side (named) cursor, SQLite and other databases
through `fetchmany`. The driver's cursor skips SQLAlchemy's per-row objects, about a fifth of
`pandas.read_sql`'s time on a year of flights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from itertools import count

import pandas as pd
import sqlalchemy as sa

from collab_pipelines.exports.catalog import PARTITION_END_PARAM, PARTITION_START_PARAM, ExportSpec
from collab_pipelines.exports.resources import SourceConnectionError

_CURSOR_NAMES = count()


def export_statement(spec: ExportSpec, partitioned: bool) -> sa.TextClause:
    statement = sa.text(spec.sql)
    if partitioned:
        # Typed parameters make SQLite compare its text timestamps in its own format.
        statement = statement.bindparams(
            sa.bindparam(PARTITION_START_PARAM, type_=sa.DateTime()),
            sa.bindparam(PARTITION_END_PARAM, type_=sa.DateTime()),
        )
    return statement


def _driver_call(connection: sa.Connection, statement: sa.TextClause, params: dict) -> tuple[str, object]:
    """The statement in the driver's parameter style, with SQLAlchemy's own value conversions."""
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    values = compiled.construct_params(params)
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None and name in values:
            values[name] = process(values[name])
    if compiled.positional:
        return compiled.string, tuple(values[name] for name in compiled.positiontup or ())
    return compiled.string, values


def _frames(cursor, sql: str, arguments, chunk_rows: int) -> Iterator[pd.DataFrame]:
    cursor.execute(sql, arguments)
    first = True
    while True:
        rows = cursor.fetchmany(chunk_rows)
        if not rows and not first:
            return
        columns = [column[0] for column in cursor.description]
        # pandas.read_sql builds its frame the same way.
        yield pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
        first = False
        if len(rows) < chunk_rows:
            return


def read_chunks(spec: ExportSpec, engine: sa.Engine, params: dict, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The query's rows as frames of at most `chunk_rows` rows; at least one frame, maybe empty,
    so an export of no rows still has the query's columns."""
    statement = export_statement(spec, bool(params))
    try:
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            if connection.dialect.name == "postgresql":
                # A named cursor is psycopg2's server-side cursor: rows stay on the server
                # until fetched, so a year's query never lands in memory at once.
                cursor = driver.cursor(name=f"collab_export_{next(_CURSOR_NAMES)}")
                cursor.itersize = chunk_rows
            else:
                cursor = driver.cursor()
            try:
                sql, arguments = _driver_call(connection, statement, params)
                yield from _frames(cursor, sql, arguments, chunk_rows)
            except BaseException:
                # The read stopped early: a refused chunk, or the reader abandoned (GeneratorExit,
                # perhaps while collected after its transaction was rolled back). That error is the
                # one to report; closing a server-side cursor whose transaction is gone only says
                # "named cursor isn't valid anymore", which would bury it.
                with contextlib.suppress(engine.dialect.loaded_dbapi.Error):
                    cursor.close()
                raise
            cursor.close()
    except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as error:
        raise SourceConnectionError(
            f"export {spec.name!r}: reading from connection {spec.connection!r} failed: "
            f"{getattr(error, 'orig', error)}"
        ) from error
