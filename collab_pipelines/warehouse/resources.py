"""The warehouse as a Dagster resource: SQLite by default, any SQLAlchemy URL in production."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from collab_pipelines import settings
from collab_pipelines.warehouse.engine import (
    check_identifier,
    count_rows,
    describe,
    engine_for_url,
    read_rows,
    replace_rows,
)
from collab_pipelines.warehouse.tables import TableLayout


class Warehouse(dg.ConfigurableResource):
    """The analytical database every pattern writes to and the data API reads from.

    Writes replace a keyed slice of a table (a day, a commit, an upload) inside one
    transaction: a re-run is idempotent and a failure leaves the previous rows in place.
    """

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Empty means $COLLAB_WAREHOUSE_URL, else a SQLite file "
        "in the project's state folder.",
    )

    def resolved_url(self) -> str:
        return self.url or settings.warehouse_url()

    def engine(self, *, readonly: bool = False) -> sa.Engine:
        return engine_for_url(self.resolved_url(), readonly=readonly)

    @property
    def dialect(self) -> str:
        return self.engine().dialect.name

    def describe(self) -> str:
        """A name for logs and metadata that never shows credentials."""
        return describe(self.engine())

    def has_table(self, table: str) -> bool:
        return sa.inspect(self.engine()).has_table(check_identifier(table, "table name"))

    def replace(
        self,
        table: str,
        frame: pd.DataFrame | Iterable[pd.DataFrame],
        *,
        where: Mapping[str, Any | Sequence[Any]] | None = None,
        chunksize: int = 20_000,
        layout: TableLayout | None = None,
        before_commit: Callable[[sa.Connection], None] | None = None,
    ) -> int:
        """See `engine.replace_rows`: the rows matching `where` become `frame`, atomically,
        in a table with `layout`'s types, key and indexes (`warehouse.tables`)."""
        return replace_rows(
            self.engine(),
            table,
            frame,
            where=where,
            chunksize=chunksize,
            layout=layout,
            before_commit=before_commit,
        )

    def read(
        self,
        table: str,
        *,
        where: Mapping[str, Any | Sequence[Any]] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        return read_rows(self.engine(), table, where=where, columns=columns)

    def count(self, table: str, *, where: Mapping[str, Any | Sequence[Any]] | None = None) -> int:
        return count_rows(self.engine(), table, where=where)
