"""What a warehouse table needs from the database: declared types, its key and its indexes.

Every writer declares its table's layout (`TableLayout`) and `ensure_table` makes the
database match it, inside the writer's transaction:

- a new table is created with the catalog's types (PostgreSQL: bigint, double precision,
  date, timestamp, varchar(n)) rather than whatever pandas guesses, a primary key when one
  is declared, and an index on every column its readers filter by (the partition, an
  evaluation key, an upload). A key column has no default: its values are the source's,
  never a sequence's (SQLAlchemy would make a lone integer key SERIAL on PostgreSQL);
- an existing table is migrated in place: missing indexes are created, a declared key
  becomes a unique index (SQLite cannot add a primary key to a table), and on PostgreSQL a
  column whose type differs from the declared one is converted with `ALTER COLUMN ... TYPE
  ... USING`, and a key column's sequence default from an earlier version is dropped. Rows are
  never copied or dropped, and a failure rolls the whole write back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from collab_pipelines.warehouse.columns import SQLALCHEMY_TYPES


@dataclass(frozen=True)
class TableLayout:
    column_types: Mapping[str, str] = field(default_factory=dict)
    """Column to its `warehouse.columns` type; columns not named follow the frame's dtype."""
    primary_key: tuple[str, ...] = ()
    """The columns the database keeps unique (a primary key, or a unique index)."""
    indexes: tuple[tuple[str, ...], ...] = ()
    """The columns (or column groups) readers filter by, each indexed."""
    max_lengths: Mapping[str, int] = field(default_factory=dict)
    """String columns with a declared longest value (varchar(n) on PostgreSQL)."""


def layout_of(dataset, max_lengths: Mapping[str, int] | None = None) -> TableLayout:
    """The layout a registry `Dataset` declares: its types, its key, its partition column."""
    partition = (dataset.partition_column,) if dataset.partition_column else None
    return TableLayout(
        column_types=dict(dataset.columns),
        primary_key=tuple(dataset.primary_key),
        indexes=(partition,) if partition else (),
        max_lengths=dict(max_lengths or {}),
    )


def index_name(prefix: str, table: str, columns: Sequence[str]) -> str:
    name = f"{prefix}_{table}_{'_'.join(columns)}"
    if len(name) <= 63:
        return name
    # PostgreSQL truncates identifiers at 63 bytes; a digest keeps long names distinct.
    return f"{name[:50]}_{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def _frame_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def _sa_type(column: str, frame: pd.DataFrame, layout: TableLayout) -> sa.types.TypeEngine:
    word = layout.column_types.get(column) or _frame_type(frame[column])
    if word == "string" and column in layout.max_lengths:
        return sa.String(layout.max_lengths[column])
    if word == "float":
        return sa.Double()
    return SQLALCHEMY_TYPES[word]()


def ensure_table(
    connection: sa.Connection, table: str, frame: pd.DataFrame, layout: TableLayout
) -> frozenset[str]:
    """Create `table` with `layout`, or bring an existing one up to it (see the module doc).

    Returns the table's `date` columns, which the writer sends as days, not timestamps.
    """
    inspector = sa.inspect(connection)
    if not inspector.has_table(table):
        columns = [
            sa.Column(str(c), _sa_type(str(c), frame, layout), autoincrement=False) for c in frame.columns
        ]
        constraints = (
            [sa.PrimaryKeyConstraint(*layout.primary_key, name=index_name("pk", table, layout.primary_key))]
            if layout.primary_key
            else []
        )
        sa.Table(table, sa.MetaData(), *columns, *constraints).create(connection)
    else:
        _migrate_types(connection, inspector, table, frame, layout)
        _drop_key_sequences(connection, inspector, table, layout)
        if layout.primary_key and not _is_unique(inspector, table, layout.primary_key):
            _create_index(connection, table, layout.primary_key, unique=True)
    for columns in layout.indexes:
        if tuple(columns) != tuple(layout.primary_key[: len(columns)]):
            _create_index(connection, table, columns, unique=False)
    return frozenset(
        c["name"]
        for c in sa.inspect(connection).get_columns(table)
        if isinstance(c["type"], sa.Date) and not isinstance(c["type"], sa.DateTime)
    )


def _is_unique(inspector: sa.Inspector, table: str, key: Sequence[str]) -> bool:
    if list(inspector.get_pk_constraint(table).get("constrained_columns") or []) == list(key):
        return True
    return any(
        ix.get("unique") and list(ix["column_names"]) == list(key) for ix in inspector.get_indexes(table)
    )


def _create_index(connection: sa.Connection, table: str, columns: Sequence[str], *, unique: bool) -> None:
    quote = connection.dialect.identifier_preparer.quote
    name = index_name("ux" if unique else "ix", table, columns)
    connection.execute(
        sa.text(
            f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {quote(name)} "
            f"ON {quote(table)} ({', '.join(quote(c) for c in columns)})"
        )
    )


def _drop_key_sequences(
    connection: sa.Connection, inspector: sa.Inspector, table: str, layout: TableLayout
) -> None:
    """Tables created before keys were declared without autoincrement got a SERIAL key on
    PostgreSQL: a row written without its key would take the sequence's next number."""
    if connection.dialect.name != "postgresql" or not layout.primary_key:
        return
    quote = connection.dialect.identifier_preparer.quote
    for column in inspector.get_columns(table):
        if column["name"] not in layout.primary_key or not str(column.get("default") or "").startswith(
            "nextval("
        ):
            continue
        sequence = connection.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": quote(table), "column": column["name"]},
        ).scalar()
        connection.execute(
            sa.text(f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column['name'])} DROP DEFAULT")
        )
        if sequence:  # owned by the column, so used by nothing else
            connection.execute(sa.text(f"DROP SEQUENCE IF EXISTS {sequence}"))


def _migrate_types(
    connection: sa.Connection,
    inspector: sa.Inspector,
    table: str,
    frame: pd.DataFrame,
    layout: TableLayout,
) -> None:
    # SQLite stores any value in any column; only PostgreSQL's types need converting.
    if connection.dialect.name != "postgresql" or not layout.column_types:
        return
    quote = connection.dialect.identifier_preparer.quote
    existing = {c["name"]: c["type"] for c in inspector.get_columns(table)}
    for column in layout.column_types:
        if column not in existing or column not in frame.columns:
            continue
        wanted = _sa_type(column, frame, layout).compile(dialect=connection.dialect)
        have = existing[column].compile(dialect=connection.dialect)
        if _normal(wanted) != _normal(have):
            connection.execute(
                sa.text(
                    f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} "
                    f"TYPE {wanted} USING {quote(column)}::{wanted}"
                )
            )


def _normal(sql_type: str) -> str:
    same = {"TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP", "FLOAT(53)": "DOUBLE PRECISION", "VARCHAR": "TEXT"}
    return same.get(sql_type.upper(), sql_type.upper())
