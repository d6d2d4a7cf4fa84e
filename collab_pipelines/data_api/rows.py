"""A rows request in three steps, each testable on its own: parse → plan → stream.

* `parse` checks the raw parameters against the dataset and its table, and returns a
  `RowsRequest` (names checked, values typed) or raises a 400 naming the parameter.
* `plan` turns a request into SQL with bound parameters only: the page, the probe that finds
  the end of a page larger than a chunk, and the fingerprint behind ETag and Last-Modified.
* `stream` runs the plan on one connection and hands back the next cursor and the chunks.
"""

import dataclasses
import functools
import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from collab_pipelines.data_api import query as q
from collab_pipelines.data_api.problems import bad_request, not_found
from collab_pipelines.warehouse.columns import is_numeric
from collab_pipelines.warehouse.datasets import Dataset

LATEST = "latest"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PARTITION_KEY = re.compile(r"^[^\x00-\x1f]{1,256}$")
# Columns the writers stamp with the time of each write: the newest one is when the rows last changed.
WRITE_TIME_COLUMNS = ("_loaded_at", "evaluated_at", "loaded_at")


@dataclass(frozen=True)
class RowsParameters:
    """The query parameters of a rows request, as the client sent them."""

    partition: str | None = None
    partition_from: str | None = None
    partition_to: str | None = None
    columns: str | None = None
    filters: Sequence[str] = ()
    sort: str | None = None
    limit: int = 10_000
    cursor: str | None = None


@dataclass(frozen=True)
class Partitions:
    """What the instance knows of a dataset's partitions, asked only when a request needs it."""

    start: date | None = None
    end: date | None = None
    """Exclusive."""
    latest: Callable[[], str | None] = lambda: None


@dataclass(frozen=True)
class RowsRequest:
    dataset: Dataset
    selected: list[str]
    filters: list[q.Filter]
    keys: list[q.SortKey]
    after: list | None
    partitions: list[str] | tuple[str, str] | None
    """None (every row), a list of keys, or an inclusive (first, last) range of days."""
    limit: int

    def shape(self) -> str:
        """Everything that selects the rows, for the ETag (the format is added by the caller)."""
        return repr([self.dataset.name, self.selected, self.filters, self.keys, self.after])


def parse(
    dataset: Dataset,
    available: Sequence[str],
    params: RowsParameters,
    partitions: Partitions = Partitions(),
    aware: frozenset[str] = frozenset(),
) -> RowsRequest:
    selected = q.parse_columns(dataset, available, params.columns)
    keys = q.parse_sort(dataset, available, params.sort)
    return RowsRequest(
        dataset=dataset,
        selected=selected,
        filters=q.parse_filters(dataset, available, params.filters, aware),
        keys=keys,
        after=q.decode_cursor(dataset, keys, params.cursor, aware) if params.cursor is not None else None,
        partitions=parse_partitions(dataset, available, params, partitions),
        limit=params.limit,
    )


def parse_partitions(
    dataset: Dataset, available: Sequence[str], params: RowsParameters, partitions: Partitions
) -> list[str] | tuple[str, str] | None:
    partition, first, last = params.partition, params.partition_from, params.partition_to
    if partition is None and first is None and last is None:
        return None
    if not dataset.partition_column or dataset.partition_column not in available:
        raise bad_request(
            f"dataset {dataset.name!r} is not partitioned; drop partition parameters", "partition"
        )
    if partition is not None and (first is not None or last is not None):
        raise bad_request(
            "partition: give one partition or a range (partition_from, partition_to), not both", "partition"
        )
    daily = dataset.partitioning == "daily"
    if partition == LATEST:
        latest = partitions.latest()
        if latest is None:
            raise not_found(f"no partition of {dataset.name!r} has been materialized yet", "partition")
        return [latest]
    if partition is not None:
        if daily:
            _check_day(dataset, partition, "partition", partitions)
        elif not PARTITION_KEY.match(partition):
            raise bad_request("partition: a partition key is 1 to 256 printable characters", "partition")
        return [partition]
    if not daily:
        raise bad_request(
            f"dataset {dataset.name!r} has dynamic partitions, which have no order; "
            "partition_from and partition_to need a daily dataset",
            "partition_from",
        )
    first = _check_day(dataset, first, "partition_from", partitions) if first is not None else "0000-01-01"
    last = _check_day(dataset, last, "partition_to", partitions) if last is not None else "9999-12-31"
    if first > last:
        raise bad_request(f"partition_from {first} is after partition_to {last}", "partition_from")
    return (first, last)


def _check_day(dataset: Dataset, key: str, parameter: str, partitions: Partitions) -> str:
    try:
        day = date.fromisoformat(key) if _DAY.match(key) else None
    except ValueError:
        day = None
    if day is None:
        raise bad_request(
            f"{parameter}: {key[:80]!r} is not a day (YYYY-MM-DD) of daily dataset {dataset.name!r}",
            parameter,
        )
    start, end = partitions.start, partitions.end
    if (start and day < start) or (end and day >= end):
        span = f"{start or '...'} to {end or '...'} (exclusive)"
        raise bad_request(f"{parameter}: {key} is outside {dataset.name!r}'s partitions, {span}", parameter)
    return key


@dataclass(frozen=True)
class Plan:
    request: RowsRequest
    page: sa.Select
    """The page's rows plus one, selected columns first, then the sort keys they lack."""
    probe: sa.Select
    """The sort keys of the page's last row and the one after it: for pages beyond one chunk."""
    fingerprint: sa.Select
    """Rows and write times of the partitions asked for: changes whenever their data does."""
    versioned: sa.Select
    """The same, with PostgreSQL's row versions (`_ROW_VERSIONS`)."""
    key_positions: list[int]
    width: int
    stamped: bool
    """Whether the fingerprint's second column is a write time (then it is Last-Modified)."""
    records: bool = False
    """Whether the page's first column is each row as a JSON object, written by the database."""


def _as_stored(column: sa.Column, dataset: Dataset, sqlite: bool):
    """On SQLite, dates and date-times leave as their stored text, for Arrow to parse in bulk."""
    if sqlite and dataset.columns[column.name] in ("date", "datetime"):
        return sa.type_coerce(column, sa.String).label(column.name)
    return column


# SQLite's functions take at most 127 arguments, two per column in json_object.
_MAX_JSON_COLUMNS = 60
# The length of SQLAlchemy's text form of a SQLite date-time, "2013-01-05 06:00:00.000000",
# which JSON shows with a "T" (ISO 8601). Checking the length costs a third of a pattern match,
# which is most of what writing a day's JSON takes.
_STORED_DATETIME_LENGTH = 26


def _json_value(column: sa.Column, kind: str):
    """`column` as the JSON encoders show its type (`formats.JsonRecords`), in SQLite's SQL."""
    if kind == "float":
        # JSON has no infinity (NaN is stored as NULL); + 0.0 keeps a whole number a float.
        return sa.case((sa.func.abs(column) <= 1.7976931348623157e308, column + 0.0))
    if kind == "boolean":
        return sa.case(
            (column.is_(None), None), (column != 0, sa.func.json("true")), else_=sa.func.json("false")
        )
    text = sa.type_coerce(column, sa.String)
    if kind == "date":
        return sa.func.substr(text, 1, 10)
    if kind == "datetime":
        # Other texts SQLite reads as a date-time (no fraction, a zone) come out to the millisecond.
        return sa.case(
            (
                sa.func.length(text) == _STORED_DATETIME_LENGTH,
                sa.func.replace(text, " ", "T"),
            ),
            else_=sa.func.strftime("%Y-%m-%dT%H:%M:%f", text) + "000",
        )
    return column


@functools.lru_cache(maxsize=256)
def _json_object(table: sa.Table, kinds: tuple[tuple[str, str], ...]) -> sa.ColumnElement:
    """json_object over the (column, type) pairs, as one SQL text.

    Built and compiled once per table and columns: as an expression of two dozen CASEs it
    costs more to build and to key SQLAlchemy's statement cache than the query takes to run.
    """
    arguments = []
    for name, kind in kinds:
        # Names are the catalog's plain identifiers, checked by parse: safe as literals.
        arguments += [sa.literal_column(f"'{name}'"), _json_value(table.c[name], kind)]
    expression = sa.func.json_object(*arguments)
    sql = expression.compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True})
    return sa.literal_column(str(sql), sa.String).label("record")


# Plans of requests without filter or cursor, by everything that shapes them: the same day asked
# again reuses its statements, whose SQLAlchemy cache keys are then already computed.
_PLANS: dict[tuple, Plan] = {}
_MAX_PLANS = 512


def plan(
    request: RowsRequest, table: sa.Table, chunk_rows: int, sqlite: bool = False, json_records: bool = False
) -> Plan:
    """`json_records` (SQLite only) has the database write each row of the page as a JSON object."""
    if request.filters or request.after is not None:
        return _plan(request, table, chunk_rows, sqlite, json_records)
    partitions = request.partitions
    key = (
        table,
        request.dataset.name,
        tuple(request.selected),
        tuple(request.keys),
        tuple(partitions) if isinstance(partitions, list) else partitions,
        isinstance(partitions, list),
        request.limit,
        chunk_rows,
        sqlite,
        json_records,
    )
    cached = _PLANS.get(key)
    if cached is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        cached = _PLANS[key] = _plan(request, table, chunk_rows, sqlite, json_records)
    return dataclasses.replace(cached, request=request)


def _plan(request: RowsRequest, table: sa.Table, chunk_rows: int, sqlite: bool, json_records: bool) -> Plan:
    dataset = request.dataset
    scope = []
    if request.partitions is not None:
        column = table.c[dataset.partition_column]
        scope.append(
            column.in_(request.partitions)
            if isinstance(request.partitions, list)
            else column.between(*request.partitions)
        )
    where = [*scope, *(q.filter_clause(table, f) for f in request.filters)]
    if request.after is not None:
        where.append(q.after_clause(table, request.keys, request.after))
    order = q.order_clauses(table, request.keys)
    # The key columns ride along (and are cut off again) so the page's last row names the
    # next cursor; one row beyond the page says whether there is a next page at all.
    records = json_records and sqlite and len(request.selected) <= _MAX_JSON_COLUMNS
    if records:
        # The row as one JSON text, then every sort key, for the cursor.
        names = [k.column for k in request.keys]
        columns = [_json_object(table, tuple((c, dataset.columns[c]) for c in request.selected))]
        key_positions = list(range(1, len(names) + 1))
    else:
        names = request.selected + [k.column for k in request.keys if k.column not in request.selected]
        columns = []
        key_positions = [names.index(k.column) for k in request.keys]
    columns += [_as_stored(table.c[c], dataset, sqlite) for c in names]
    page = (
        sa.select(*columns)
        .select_from(table)
        .where(*where)
        .order_by(*order)
        .limit(request.limit + 1)
        .execution_options(yield_per=chunk_rows)
    )
    probe = (
        sa.select(*(table.c[k.column] for k in request.keys))
        .where(*where)
        .order_by(*order)
        .offset(request.limit - 1)
        .limit(2)
    )
    aggregates, stamped = _fingerprint_columns(dataset, table)
    fingerprint = sa.select(*aggregates).select_from(table).where(*scope)
    return Plan(
        request=request,
        page=page,
        probe=probe,
        fingerprint=fingerprint,
        versioned=fingerprint.add_columns(_ROW_VERSIONS),
        key_positions=key_positions,
        width=1 if records else len(request.selected),
        stamped=stamped,
        records=records,
    )


# PostgreSQL gives every row version the id of the transaction that wrote it (xmin): any INSERT,
# UPDATE or DELETE in these rows moves the sum, whoever wrote it and whatever it left in the
# write stamps. It reads the rows the count reads already. SQLite's counterpart is in `fingerprint`.
_ROW_VERSIONS = sa.func.sum(sa.cast(sa.cast(sa.literal_column("xmin"), sa.Text), sa.BigInteger))


def _fingerprint_columns(dataset: Dataset, table: sa.Table) -> tuple[list, bool]:
    stamps = [c for c in WRITE_TIME_COLUMNS if c in table.c and dataset.columns[c] == "datetime"]
    if stamps:
        # Every writer stamps its rows: the newest stamp is Last-Modified.
        return [sa.func.count(), *(sa.func.max(table.c[c]) for c in stamps)], True
    # No write stamp: the count with a sum or the extremes of every column stands in for one.
    aggregates = [sa.func.count()]
    for column in table.c:
        kind = dataset.columns[column.name]
        if is_numeric(kind):
            aggregates.append(sa.func.sum(column))
        elif kind != "boolean":  # PostgreSQL has no max(boolean)
            aggregates.extend((sa.func.min(column), sa.func.max(column)))
        else:
            aggregates.append(sa.func.count(column))
    return aggregates, False


@dataclass
class Fingerprint:
    values: tuple
    stamped: bool

    @property
    def rows(self) -> int:
        return int(self.values[0])

    @property
    def modified(self) -> datetime | None:
        """The newest write stamp (stored as naive UTC), if the dataset stamps its writes."""
        if not self.stamped:
            return None
        stamps = [v for v in self.values[1:] if isinstance(v, datetime)]
        if not stamps:
            return None
        newest = max(s if s.tzinfo else s.replace(tzinfo=UTC) for s in stamps)
        return newest.astimezone(UTC)

    def etag(self, *parts: object) -> str:
        token = repr([_plain(v) for v in self.values]) + "|" + "|".join(str(p) for p in parts)
        return '"' + hashlib.sha256(token.encode()).hexdigest()[:32] + '"'


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def fingerprint(connection: sa.Connection, plan: Plan) -> Fingerprint:
    if connection.dialect.name == "postgresql":
        return Fingerprint(tuple(connection.execute(plan.versioned).one()), plan.stamped)
    # Taken before the rows: a write that lands in between shows as a change next time, never
    # hides one.
    generation = _sqlite_generation(connection) if connection.dialect.name == "sqlite" else ()
    return Fingerprint(tuple(connection.execute(plan.fingerprint).one()) + generation, plan.stamped)


def _sqlite_generation(connection: sa.Connection) -> tuple:
    """What every committed write to a SQLite warehouse changes: its files' sizes and times.

    SQLite keeps no per-row version, so a direct UPDATE that leaves the write stamps and the
    count alone would go unseen by the aggregates. In WAL mode each commit appends to the
    `-wal` file (and a checkpoint rewrites the database file): a change anywhere in the
    warehouse changes every ETag, which costs a 304, never a stale answer. Two stats.
    """
    path = _sqlite_path(connection.engine.url)
    if path is None:
        return ()
    stamps = []
    for name in (path, path + "-wal"):
        try:
            info = os.stat(name)
        except FileNotFoundError:
            stamps.append(None)
            continue
        stamps.append((info.st_size, info.st_mtime_ns))
    return tuple(stamps)


@functools.lru_cache(maxsize=16)
def _sqlite_path(url: sa.URL) -> str | None:
    database = url.database or ""
    if database.startswith("file:"):  # the read-only URI form (warehouse.engine)
        database = database.removeprefix("file:").split("?", 1)[0]
    return None if database in ("", ":memory:") else database


@dataclass
class Page:
    next_cursor: str | None
    chunks: Iterator[Sequence[Sequence]] = field(repr=False)
    whole: bool = False
    """Whether the first chunk holds the whole page (no more fetches)."""


def stream(connection: sa.Connection, plan: Plan, chunk_rows: int, on_close: Callable[[], None]) -> Page:
    """Run the page on `connection`; `on_close` runs once the last chunk is taken (or on error)."""
    request, key_positions = plan.request, plan.key_positions
    try:
        result = connection.execute(plan.page)
        first = result.fetchmany(chunk_rows)
        if len(first) < chunk_rows:
            # The whole page is in hand (the usual case): no second query.
            last = first[request.limit - 1] if len(first) > request.limit else None
        else:
            # A page larger than a chunk: one cheap query on the key columns finds its end.
            tail = connection.execute(plan.probe).all()
            last = tail[0] if len(tail) == 2 else None
            key_positions = list(range(len(request.keys)))
        next_cursor = (
            q.encode_cursor(request.keys, [last[i] for i in key_positions]) if last is not None else None
        )
    except BaseException:
        on_close()
        raise

    def chunks() -> Iterator[Sequence[Sequence]]:
        remaining, width = request.limit, plan.width
        # A JSON record is taken from each row's first value: the keys after it need no cutting.
        trim = not plan.records and any(p >= width for p in plan.key_positions)
        try:
            more = result.partitions() if len(first) == chunk_rows else ()
            for rows in itertools.chain((first,), more):
                rows = rows[:remaining]
                remaining -= len(rows)
                yield [row[:width] for row in rows] if trim else rows
                if remaining <= 0:
                    break
        finally:
            result.close()
            on_close()

    return Page(next_cursor, chunks(), whole=len(first) < chunk_rows or len(first) >= request.limit)
