"""A year's backfill of the daily exports: through Dagster vs a plain pandas script.

Both read the same SQL from the same demo product database and write the same rows into a
fresh SQLite warehouse. Prints both times, their ratio and the goals (the run at most 1.5 times
the plain script, the project's own work at most 1.1), each met or not, on the
embedded SQLite instance and, when a PostgreSQL server answers, on a PostgreSQL instance run the
way the production deployment runs it: DAGSTER_EVENT_BATCH_SIZE as deploy/docker-compose.yml
sets it. Dagster's floor (the same run with assets that do nothing) is measured on both.

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
import yaml
from _goals import judged

from collab_pipelines.demo.paths import DEMO_CATALOG
from collab_pipelines.demo.source import ProductDatabase
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

EXPORTS = ("flights", "weather")
FIRST, LAST = "2013-01-01", "2013-12-31"
RANGE_TAGS = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
COMPOSE_FILE = Path(__file__).resolve().parents[1] / "deploy" / "docker-compose.yml"


def production_event_batch_size() -> str:
    """DAGSTER_EVENT_BATCH_SIZE as the Compose deployment sets it for every Dagster process."""
    for service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values():
        value = (service.get("environment") or {}).get("DAGSTER_EVENT_BATCH_SIZE")
        if value is not None:
            return str(value)
    raise SystemExit(f"{COMPOSE_FILE}: no service sets DAGSTER_EVENT_BATCH_SIZE")


def through_dagster(work: Path, instance_overrides: dict | None = None, label: str = "sqlite") -> float:
    assets = [a for a in build_export_assets(load_catalog(DEMO_CATALOG)) if a.key.to_user_string() in EXPORTS]
    warehouse = Warehouse(url=f"sqlite:///{work / f'dagster_warehouse_{label}.db'}")
    with dg.instance_for_test(overrides=instance_overrides) as instance:
        started = time.perf_counter()
        result = dg.materialize(
            assets,
            instance=instance,
            tags=RANGE_TAGS,
            resources={"warehouse": warehouse, "sources": SqlSources()},
        )
        elapsed = time.perf_counter() - started
        assert result.success and len(instance.get_runs()) == 1
        assert len(result.asset_materializations_for_node("flights")) == 365, "not the year's run"
    return elapsed


def dagster_floor(instance_overrides: dict | None = None) -> float:
    """Dagster's own cost of the same run shape: two assets, 365 partitions, doing nothing."""
    partitions = load_catalog(DEMO_CATALOG).exports["flights"].partition
    from collab_pipelines.exports.partitions import daily_partitions

    partitions_def = daily_partitions(partitions)

    def empty(name: str) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run())
        def _empty() -> dg.MaterializeResult:
            return dg.MaterializeResult()

        return _empty

    with dg.instance_for_test(overrides=instance_overrides) as instance:
        started = time.perf_counter()
        dg.materialize([empty(name) for name in EXPORTS], instance=instance, tags=RANGE_TAGS)
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


def on_postgres_instance(work: Path, batch_size: str) -> tuple[float, float] | None:
    """The project's run and the floor, each on a fresh PostgreSQL instance database."""
    times = []
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = batch_size
    try:
        for measure in (lambda o: through_dagster(work, o, "postgres"), dagster_floor):
            instance_db = postgres_instance_database()
            if instance_db is None:
                return None
            try:
                times.append(measure({"storage": {"postgres": {"postgres_url": instance_db}}}))
            finally:
                drop_database(instance_db)
    finally:
        os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
    return times[0], times[1]


def line(label: str, seconds: float, plain: float | None = None) -> str:
    ratio = f"   ratio {seconds / plain:5.2f}" if plain else ""
    return f"  {label:58s} {seconds:7.2f} s{ratio}"


RUN_GOAL, OWN_WORK_GOAL = 1.5, 1.1


def goals(run: float, floor: float, plain: float) -> str:
    return (
        f"  run ratio {run / plain:.2f} ({judged(run / plain, at_most=RUN_GOAL)}); own work ratio "
        f"{(run - floor) / plain:.2f} ({judged((run - floor) / plain, at_most=OWN_WORK_GOAL)})"
    )


def main() -> int:
    os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
    batch_size = production_event_batch_size()
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
        postgres = on_postgres_instance(work, batch_size)
    print(f"year backfill of {', '.join(EXPORTS)} ({rows} rows, 365 days, one run)")
    print(line("plain pandas + SQLAlchemy script:", plain))
    print("  embedded SQLite instance (dagster.yaml):")
    print(line("  through Dagster:", dagster, plain))
    print(line("  Dagster's floor, the same run with assets that do nothing:", floor, plain))
    print(line("  the project's own work (Dagster run minus the floor):", dagster - floor, plain))
    print(goals(dagster, floor, plain))
    if postgres is not None:
        on_pg, pg_floor = postgres
        print(f"  PostgreSQL instance, DAGSTER_EVENT_BATCH_SIZE={batch_size} (as deploy/docker-compose.yml):")
        print(line("  through Dagster:", on_pg, plain))
        print(line("  Dagster's floor, the same run with assets that do nothing:", pg_floor, plain))
        print(line("  the project's own work (Dagster run minus the floor):", on_pg - pg_floor, plain))
        print(goals(on_pg, pg_floor, plain))
    print("  Dagster records a planned event and a")
    print("  materialization for each of the 730 asset partitions (365 days x 2 exports); that")
    print("  bookkeeping is the floor above.")
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
