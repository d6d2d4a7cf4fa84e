from collections.abc import Callable

import dagster as dg
import pytest

from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse


@pytest.fixture
def export_assets() -> dict[str, dg.AssetsDefinition]:
    return {a.key.to_user_string(): a for a in build_export_assets(load_catalog())}


@pytest.fixture
def sqlite_warehouse(state_dir) -> Warehouse:
    return Warehouse(url=f"sqlite:///{state_dir / 'warehouse.db'}")


@pytest.fixture
def run_export(product_db, instance, export_assets) -> Callable:
    """Materialize exports for a day or a range of days, as a single run."""

    def run(names, warehouse: Warehouse, *, day=None, first=None, last=None, raise_on_error=True):
        tags = {}
        if first:
            tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        return dg.materialize(
            [export_assets[name] for name in names],
            partition_key=day,
            tags=tags,
            instance=instance,
            resources={"warehouse": warehouse, "sources": SqlSources()},
            raise_on_error=raise_on_error,
        )

    return run
