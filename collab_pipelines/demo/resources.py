from __future__ import annotations

from collab_pipelines.demo.paths import DEMO_CATALOG
from collab_pipelines.demo.source import ProductDatabase
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources

PRODUCT_CONNECTION = "product"


def product_database(sources: SqlSources | None = None) -> ProductDatabase:
    """The demo product database, at the URL the export catalog resolves for `product`."""
    connection = load_catalog(DEMO_CATALOG).connections[PRODUCT_CONNECTION]
    return ProductDatabase((sources or SqlSources()).engine(connection))
