"""The warehouse without Dagster: engines, keyed replace, filtered read and bulk insert.

Report kernels, the data API and the resource all use this module; it imports neither
Dagster nor any pattern, so a kernel or a client that reads the warehouse starts quickly.
"""

import io
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from collab_pipelines import fault_points
from collab_pipelines.warehouse.tables import TableLayout, ensure_table

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ENGINES: dict[tuple[str, bool], sa.Engine] = {}
_ENGINES_LOCK = threading.Lock()


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the table and what went wrong."""


def check_identifier(name: str, what: str = "identifier") -> str:
    """Table and column names are never bound parameters, so they must be plain words."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise WarehouseError(f"invalid {what} {name!r}: use letters, digits and underscores")
    return name


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the data API read while an export writes; the busy timeout makes a
    # concurrent writer wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _readonly_session(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()


def engine_for_url(url: str, *, readonly: bool = False) -> sa.Engine:
    """One engine per URL and process, so pools are shared by every asset in a run.

    `readonly=True` gives a connection the database itself keeps read-only: SQLite opens
    the file with `mode=ro`, PostgreSQL marks every session's transactions READ ONLY.
    """
    key = (url, readonly)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None:
            return engine
        sa_url = sa.make_url(url)
        if sa_url.get_backend_name() == "sqlite":
            database = sa_url.database or ""
            if readonly and database and database != ":memory:":
                engine = sa.create_engine(
                    f"sqlite:///file:{database}?mode=ro&uri=true",
                    connect_args={"check_same_thread": False},
                )
            else:
                engine = sa.create_engine(url, connect_args={"check_same_thread": False})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
            if readonly:
                sa.event.listen(engine, "connect", _readonly_session)
        _ENGINES[key] = engine
        return engine


def dispose_engines(url: str) -> None:
    """Close this process's pools for `url` (both modes), e.g. before its database is dropped."""
    with _ENGINES_LOCK:
        for key in [k for k in _ENGINES if k[0] == url]:
            _ENGINES.pop(key).dispose()


def replace_rows(
    engine: sa.Engine,
    table: str,
    frame: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    where: Mapping[str, Any | Sequence[Any]] | None = None,
    chunksize: int = 20_000,
    layout: TableLayout | None = None,
    before_commit: Callable[[sa.Connection], None] | None = None,
) -> int:
    """Replace the rows matching `where` (all rows if None) with `frame`, atomically.

    `where` maps column names to a value or a list of values; the rows deleted are those
    whose every named column is one of its values. `frame` may be an iterable of frames (a
    range read in chunks): they are written one by one in the same transaction, so memory
    follows the chunk. `layout` declares the table's types, key and indexes (`tables`); an
    existing table is migrated to it in place. `before_commit`, if given, runs on the same
    connection after the last chunk, so what it writes commits with the rows or not at all
    (the exports' ledger of written days). Returns the number of rows written.
    """
    check_identifier(table, "table name")
    chunks = iter([frame] if isinstance(frame, pd.DataFrame) else frame)
    first = next(chunks, None)
    if first is None:
        raise WarehouseError(f"writing to table {table!r}: no frame given, not even an empty one")
    for column in first.columns:
        check_identifier(str(column), f"column name in table {table!r}")
    written = 0
    failed_chunk: Exception | None = None
    try:
        with engine.begin() as connection:
            _serialize_replacements(connection, table)
            dates = ensure_table(connection, table, first, layout or TableLayout())
            target = sa.Table(table, sa.MetaData(), autoload_with=connection)
            delete = target.delete()
            for column, values in (where or {}).items():
                if column not in target.c:
                    raise WarehouseError(f"table {table!r} has no column {column!r} to replace by")
                delete = delete.where(target.c[column].in_(_as_list(values)))
            connection.execute(delete)
            chunk = first
            while chunk is not None:
                _insert_rows(connection, table, chunk, chunksize=chunksize, dates=dates)
                written += len(chunk)
                fault_points.reached("warehouse.chunk_written")
                chunk = _next_chunk(chunks)
            if before_commit is not None:
                before_commit(connection)
    except WarehouseError:
        raise
    except _ChunkSourceError as failed:
        # The caller's chunks failed (a refused row, a lost source): the transaction is rolled
        # back all the same, and the caller's own error is raised as it was.
        failed_chunk = failed.error
    except Exception as error:
        raise WarehouseError(
            f"writing {written or len(first)} rows to table {table!r} in {describe(engine)} failed; "
            f"the previous rows are unchanged: {error}"
        ) from error
    finally:
        # A generator of chunks holds its source's cursor until it is closed.
        getattr(chunks, "close", lambda: None)()
    if failed_chunk is not None:
        raise failed_chunk
    return written


class _ChunkSourceError(Exception):
    """Carries an error raised while producing a chunk past the transaction's rollback."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _next_chunk(chunks: Iterator[pd.DataFrame]) -> pd.DataFrame | None:
    try:
        return next(chunks, None)
    except Exception as error:
        raise _ChunkSourceError(error) from error


def read_rows(
    engine: sa.Engine,
    table: str,
    *,
    where: Mapping[str, Any | Sequence[Any]] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a table, optionally only rows matching `where` (same form as `replace_rows`)."""
    with engine.connect() as connection:
        return pd.read_sql(_select(connection, engine, table, where, columns), connection)


def iter_rows(
    engine: sa.Engine,
    table: str,
    *,
    where: Mapping[str, Any | Sequence[Any]] | None = None,
    columns: Sequence[str] | None = None,
    chunksize: int = 50_000,
) -> Iterator[pd.DataFrame]:
    """`read_rows` in frames of `chunksize` rows, through a server-side cursor on PostgreSQL,
    so a reader of ten years holds one chunk at a time."""
    with engine.connect() as connection:
        streaming = connection.execution_options(stream_results=True, max_row_buffer=chunksize)
        query = _select(connection, engine, table, where, columns)
        yield from pd.read_sql(query, streaming, chunksize=chunksize)


def _select(connection, engine, table, where, columns) -> sa.Select:
    check_identifier(table, "table name")
    if not sa.inspect(connection).has_table(table):
        raise WarehouseError(f"table {table!r} does not exist in {describe(engine)}")
    target = sa.Table(table, sa.MetaData(), autoload_with=connection)
    selected = [target.c[check_identifier(c, "column name")] for c in columns or []]
    query = sa.select(*selected) if selected else sa.select(target)
    for column, values in (where or {}).items():
        if column not in target.c:
            raise WarehouseError(f"table {table!r} has no column {column!r}")
        query = query.where(target.c[column].in_(_as_list(values)))
    return query


def count_rows(
    engine: sa.Engine, table: str, *, where: Mapping[str, Any | Sequence[Any]] | None = None
) -> int:
    check_identifier(table, "table name")
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(table):
            return 0
        target = sa.Table(table, sa.MetaData(), autoload_with=connection)
        query = sa.select(sa.func.count()).select_from(target)
        for column, values in (where or {}).items():
            query = query.where(target.c[column].in_(_as_list(values)))
        return int(connection.execute(query).scalar_one())


def describe(engine: sa.Engine) -> str:
    """A name for logs and metadata that never shows credentials."""
    return engine.url.render_as_string(hide_password=True)


# SQLAlchemy's storage format for DateTime on SQLite; writing the same text keeps the
# column comparable with typed bound parameters.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _serialize_replacements(connection: sa.Connection, table: str) -> None:
    # Two replacements of the same rows at once (a backfill beside the sensor's run of the
    # same day) would each delete what the other had not yet committed and both insert: the
    # key refuses the second, or a table without one keeps both. On PostgreSQL, writers of a
    # table take turns until commit; readers are not held. SQLite already has one writer.
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
            {"name": f"collab_pipelines.replace.{table}"},
        )


def insert_frame(
    connection: sa.Connection,
    table: str,
    frame: pd.DataFrame,
    *,
    chunksize: int = 20_000,
    layout: TableLayout | None = None,
) -> None:
    """Append `frame` to `table` inside the caller's transaction, creating the table if needed.

    The table gets `layout`'s types, key and indexes (columns it does not name follow the
    frame's dtypes), and an existing table is migrated to it (`tables.ensure_table`).
    """
    dates = ensure_table(connection, table, frame, layout or TableLayout())
    _insert_rows(connection, table, frame, chunksize=chunksize, dates=dates)


def _insert_rows(
    connection: sa.Connection,
    table: str,
    frame: pd.DataFrame,
    *,
    chunksize: int,
    dates: frozenset[str] = frozenset(),
) -> None:
    # The driver's bulk path (sqlite3 executemany, PostgreSQL COPY) is several times faster
    # than to_sql's per-value conversions on a year of data.
    if frame.empty:
        return
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        frame.to_sql(table, connection, if_exists="append", index=False, chunksize=chunksize)
        return
    columns = ", ".join(connection.dialect.identifier_preparer.quote(str(c)) for c in frame.columns)
    quoted_table = connection.dialect.identifier_preparer.quote(table)
    cursor = connection.connection.driver_connection.cursor()
    try:
        for start in range(0, len(frame), chunksize):
            chunk = _driver_ready(frame.iloc[start : start + chunksize], dialect, dates)
            if dialect == "sqlite":
                placeholders = ", ".join("?" for _ in frame.columns)
                rows = chunk.itertuples(index=False, name=None)
                cursor.executemany(f"INSERT INTO {quoted_table} ({columns}) VALUES ({placeholders})", rows)
            else:
                buffer = io.StringIO()
                chunk.to_csv(buffer, index=False, header=False, na_rep="\\N")
                buffer.seek(0)
                cursor.copy_expert(
                    f"COPY {quoted_table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
                )
    finally:
        cursor.close()


def _driver_ready(chunk: pd.DataFrame, dialect: str, dates: frozenset[str] = frozenset()) -> pd.DataFrame:
    converted = {}
    for column in chunk.columns:
        series = chunk[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            if getattr(series.dt, "tz", None) is not None:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            # A date column holds days: SQLAlchemy reads SQLite's DATE back as YYYY-MM-DD only.
            series = series.dt.strftime("%Y-%m-%d" if column in dates else _SQLITE_DATETIME)
        elif pd.api.types.is_bool_dtype(series) and dialect == "sqlite":
            series = series.astype("Int64")
        converted[column] = series.astype(object).where(series.notna(), None)
    return pd.DataFrame(converted, index=chunk.index)


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        return [values]
    return list(values)
