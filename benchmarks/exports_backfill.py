"""A year's backfill of the daily exports: through Dagster vs a plain pandas script.

Both read the same SQL from the same demo product database and write the same rows into a
fresh SQLite warehouse (or $COLLAB_BENCH_WAREHOUSE_URL's server, one database per side).
Prints both times and their ratio; the target is at most 1.5.

    .venv/bin/python benchmarks/exports_backfill.py
"""

import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from collab_pipelines.demo.paths import DEMO_CATALOG
from collab_pipelines.demo.source import ProductDatabase
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

EXPORTS = ("flights", "weather")
FIRST, LAST = "2013-01-01", "2013-12-31"


def through_dagster(work: Path, instance_overrides: dict | None = None, label: str = "sqlite") -> float:
    assets = [a for a in build_export_assets(load_catalog(DEMO_CATALOG)) if a.key.to_user_string() in EXPORTS]
    warehouse = Warehouse(url=f"sqlite:///{work / f'dagster_warehouse_{label}.db'}")
    with dg.instance_for_test(overrides=instance_overrides) as instance:
        started = time.perf_counter()
        result = dg.materialize(
            assets,
            instance=instance,
            tags={"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST},
            resources={"warehouse": warehouse, "sources": SqlSources()},
        )
        elapsed = time.perf_counter() - started
        assert result.success and len(instance.get_runs()) == 1
        assert len(result.asset_materializations_for_node("flights")) == 365, "not the year's run"
    return elapsed


def dagster_floor() -> float:
    """Dagster's own cost of the same run shape: two assets, 365 partitions, doing nothing."""
    partitions = load_catalog(DEMO_CATALOG).exports["flights"].partition
    from collab_pipelines.exports.partitions import daily_partitions

    partitions_def = daily_partitions(partitions)

    def empty(name: str) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run())
        def _empty() -> dg.MaterializeResult:
            return dg.MaterializeResult()

        return _empty

    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        dg.materialize(
            [empty(name) for name in EXPORTS],
            instance=instance,
            tags={"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST},
        )
        return time.perf_counter() - started


def plain_script(work: Path, source_url: str) -> float:
    catalog = load_catalog(DEMO_CATALOG)
    source = sa.create_engine(source_url)
    target = sa.create_engine(f"sqlite:///{work / 'plain_warehouse.db'}")
    started = time.perf_counter()
    for name in EXPORTS:
        spec = catalog.exports[name]
        frame = pd.read_sql(
            sa.text(spec.sql),
            source,
            params={
                "partition_start": pd.Timestamp(FIRST).to_pydatetime(),
                "partition_end": pd.Timestamp("2014-01-01").to_pydatetime(),
            },
        )
        with target.begin() as connection:
            frame.to_sql(name, connection, if_exists="replace", index=False, chunksize=20_000)
    return time.perf_counter() - started


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["COLLAB_STATE_DIR"] = str(work)
        source_url = f"sqlite:///{work / 'product.db'}"
        ProductDatabase(sa.create_engine(source_url)).initialize(date(2014, 1, 1))
        plain = plain_script(work, source_url)
        dagster = through_dagster(work)
        rows = sum(
            Warehouse(url=f"sqlite:///{work / 'dagster_warehouse_sqlite.db'}").count(n) for n in EXPORTS
        )
        floor = dagster_floor()
        on_postgres = None
        instance_db = postgres_instance_database()
        if instance_db:
            overrides = {"storage": {"postgres": {"postgres_url": instance_db}}}
            on_postgres = through_dagster(work, overrides, "postgres")
            drop_database(instance_db)
    print(f"year backfill of {', '.join(EXPORTS)} ({rows} rows, 365 days, one run)")
    print(f"  plain pandas + SQLAlchemy script:                       {plain:8.2f} s")
    print(
        f"  through Dagster, embedded SQLite instance:              {dagster:8.2f} s"
        f"   ratio {dagster / plain:5.2f}"
    )
    if on_postgres is not None:
        print(
            f"  through Dagster, PostgreSQL instance (production):      {on_postgres:8.2f} s"
            f"   ratio {on_postgres / plain:5.2f}"
        )
    print(
        f"  Dagster's floor: the same run with assets that do nothing:  {floor:8.2f} s"
        f"   ratio {floor / plain:5.2f}"
    )
    print(
        f"  the project's own work (Dagster run minus the floor):       {dagster - floor:8.2f} s"
        f"   ratio {(dagster - floor) / plain:5.2f}"
    )
    print("  target: ratio <= 1.5. Dagster records a planned event and a materialization for each")
    print("  of the 730 asset partitions (365 days x 2 exports); that bookkeeping is the floor above.")
    return 0


def postgres_instance_database() -> str | None:
    """A fresh database for Dagster's own storage, if a PostgreSQL server answers."""
    server = os.environ.get("COLLAB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    name = f"collab_bench_{os.getpid()}"
    try:
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        print(f"(no PostgreSQL server for the production variant: {error.orig})")
        return None
    return sa.make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = sa.make_url(url).database
    server = sa.make_url(url).set(database="postgres").render_as_string(hide_password=False)
    with sa.create_engine(server, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    sys.exit(main())
