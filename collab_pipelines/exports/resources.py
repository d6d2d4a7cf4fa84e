"""Connections to the source databases named in the export catalog."""

import os
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from collab_pipelines import settings
from collab_pipelines.exports.catalog import Connection
from collab_pipelines.warehouse.engine import engine_for_url

# A year of flights peaks at 380 MB with it and at 278 MB with 10,000-row chunks, in about the
# same time (benchmarks/scale_exports.py, docs/exports.md).
DEFAULT_CHUNK_ROWS = 50_000


class SourceConnectionError(RuntimeError):
    """A source database could not be reached or queried; names the connection."""


class SqlSources(dg.ConfigurableResource):
    """The product databases the exports read from, one per catalog connection.

    A connection's URL is, in order: an override here, the environment variable the
    catalog names for it, or the catalog's default (which may use `{state_dir}`).
    """

    urls: dict[str, str] = Field(
        default_factory=dict,
        description="Per-connection URL overrides, by catalog connection name.",
    )
    chunk_rows: int = Field(
        default=DEFAULT_CHUNK_ROWS,
        gt=0,
        description="Rows an export reads, checks and writes at a time. A range run's memory "
        "follows this, not the number of days (docs/exports.md).",
    )

    def url_for(self, connection: Connection) -> str:
        url = self.urls.get(connection.name) or os.environ.get(connection.url_env)
        if not url and connection.default_url:
            url = connection.default_url.format(state_dir=settings.state_dir())
        if not url:
            raise SourceConnectionError(f"connection {connection.name!r}: no URL; set ${connection.url_env}")
        return url

    def engine(self, connection: Connection) -> sa.Engine:
        return engine_for_url(self.url_for(connection))

    def scalar(self, connection: Connection, sql: str, **params: Any) -> Any:
        try:
            with self.engine(connection).connect() as conn:
                return conn.execute(sa.text(sql), params).scalar()
        except sa.exc.SQLAlchemyError as error:
            safe_url = sa.make_url(self.url_for(connection)).render_as_string(hide_password=True)
            raise SourceConnectionError(
                f"connection {connection.name!r} ({safe_url}): query failed: {sql.strip()!r}: "
                f"{error.__class__.__name__}: {error.orig if hasattr(error, 'orig') else error}"
            ) from error
