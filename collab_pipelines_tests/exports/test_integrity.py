"""Nothing wrong gets in, nothing right goes stale: exports on small sources the tests create."""

import gc
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.definitions import build_defs
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

EVENTS = {
    "name": "events",
    "connection": "shop",
    "description": "Events.",
    "owners": ["team:shop"],
    "sql": "SELECT id, day, code, n FROM events WHERE day >= :partition_start AND day < :partition_end",
    "partition": {"column": "day", "start": "2024-01-01"},
    "primary_key": ["id"],
    "columns": {"id": "integer", "day": "date", "code": "string", "n": "integer"},
    "max_lengths": {"code": 3},
}


@pytest.fixture
def shop(tmp_path):
    """A source with one row per day on 2024-01-01..03, and an export catalog for it."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with sa.create_engine(url).begin() as connection:
        connection.execute(sa.text("CREATE TABLE events (id INTEGER, day TEXT, code TEXT, n INTEGER)"))
        for index in range(3):
            connection.execute(
                sa.text("INSERT INTO events VALUES (:id, :day, 'JFK', 1)"),
                {"id": index, "day": f"2024-01-0{index + 1} 00:00:00.000000"},
            )
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump({"connections": {"shop": {"url_env": "SHOP_URL"}}, "exports": [EVENTS]})
    )
    return url, catalog


def export(shop, warehouse, instance, *, day=None, first=None, last=None, chunk_rows=50_000):
    url, catalog = shop
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(
        build_export_assets(load_catalog(catalog)),
        partition_key=day,
        tags=tags if first else {},
        instance=instance,
        resources={
            "warehouse": warehouse,
            "sources": SqlSources(urls={"shop": url}, chunk_rows=chunk_rows),
        },
        raise_on_error=False,
    )


def failure(result) -> str:
    assert not result.success
    return result.get_step_failure_events()[0].event_specific_data.error.to_string()


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "UPDATE events SET day = '2024-01-02 05:00:00.000000' WHERE id = 1",
            "column 'day' is declared date but row {'id': 1} holds '2024-01-02 05:00:00.000000', "
            "which has a time of day",
        ),
        (
            "UPDATE events SET code = 'JFKX' WHERE id = 1",
            "column 'code' is declared string but row {'id': 1} holds 'JFKX', which is longer than "
            "its declared max_lengths (3)",
        ),
        ("UPDATE events SET n = 9223372036854775807 * 2 WHERE id = 1", "column 'n' is declared integer"),
        ("UPDATE events SET id = 1 WHERE id = 2", "row {'id': 1} repeats the primary key (id)"),
    ],
)
def test_a_lossy_cast_is_refused_before_anything_is_written(shop, tmp_path, instance, statement, expected):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert export(shop, warehouse, instance, first="2024-01-01", last="2024-01-03").success
    before = warehouse.read("events").sort_values("id")["id"].tolist()
    with sa.create_engine(shop[0]).begin() as connection:
        connection.execute(sa.text(statement))
    message = failure(export(shop, warehouse, instance, first="2024-01-01", last="2024-01-03"))
    assert expected in message
    assert warehouse.read("events").sort_values("id")["id"].tolist() == before == [0, 1, 2]


def test_a_days_version_and_row_count_are_its_own_whichever_run_exported_it(shop, tmp_path, instance):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    key = dg.AssetKey("events")

    def latest(day: str):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
        ).records
        materialization = records[0].asset_materialization
        return materialization.tags["dagster/data_version"], materialization.metadata[
            "dagster/row_count"
        ].value

    assert export(shop, warehouse, instance, day="2024-01-02").success
    alone = latest("2024-01-02")
    assert export(shop, warehouse, instance, first="2024-01-01", last="2024-01-03").success
    assert latest("2024-01-02") == alone
    assert alone[1] == 1
    assert latest("2024-01-01")[0] != alone[0]
    assert export(shop, warehouse, instance, day="2024-01-02").success
    assert latest("2024-01-02") == alone


def day_versions(instance, days) -> dict[str, str]:
    records = instance.fetch_materializations(dg.AssetKey("events"), limit=100).records
    latest = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        latest[record.partition_key] = record.asset_materialization.tags["dagster/data_version"]
    return {day: latest[day] for day in days}


def postgres_copy(shop, url: str, *statements: str) -> str:
    """The shop's events in the PostgreSQL database at `url`, then `statements` run there."""
    rows = sa.create_engine(shop[0]).connect().execute(sa.text("SELECT * FROM events")).all()
    with sa.create_engine(url).begin() as connection:
        connection.execute(sa.text("CREATE TABLE events (id bigint, day timestamp, code text, n bigint)"))
        connection.execute(
            sa.text("INSERT INTO events VALUES (:id, :day, :code, :n)"), [r._asdict() for r in rows]
        )
        for statement in statements:
            connection.execute(sa.text(statement))
    return url


@pytest.mark.parametrize("source", ["sqlite", "postgresql"])
def test_a_range_read_in_chunks_writes_and_versions_what_one_read_does(shop, tmp_path, request, source):
    url, catalog = shop
    if source == "postgresql":
        # The same rows in a PostgreSQL source: read through a server-side cursor.
        url = postgres_copy(shop, request.getfixturevalue("postgres_url"))
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    results = {}
    for chunk_rows in (1, 2, 50_000):
        with dg.instance_for_test() as instance:
            warehouse = Warehouse(url=f"sqlite:///{tmp_path / f'chunks_{chunk_rows}.db'}")
            result = export(
                (url, catalog), warehouse, instance, first=days[0], last=days[-1], chunk_rows=chunk_rows
            )
            assert result.success
            rows = warehouse.read("events").drop(columns="_loaded_at").sort_values("id")
            results[chunk_rows] = (rows.to_dict("records"), day_versions(instance, days))
    assert results[1] == results[2] == results[50_000]
    assert [r["id"] for r in results[1][0]] == [0, 1, 2]


def test_a_refused_row_in_a_later_chunk_leaves_the_warehouse_as_it_was(shop, tmp_path, instance):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert export(shop, warehouse, instance, first="2024-01-01", last="2024-01-03", chunk_rows=1).success
    before = warehouse.read("events").sort_values("id")["_loaded_at"].tolist()
    with sa.create_engine(shop[0]).begin() as connection:
        connection.execute(sa.text("UPDATE events SET code = 'JFKX' WHERE id = 2"))
    message = failure(export(shop, warehouse, instance, first="2024-01-01", last="2024-01-03", chunk_rows=1))
    assert "row {'id': 2} holds 'JFKX'" in message
    assert warehouse.read("events").sort_values("id")["_loaded_at"].tolist() == before

    # A key repeated across chunks: the table's key refuses it, and the whole write rolls back.
    with sa.create_engine(shop[0]).begin() as connection:
        connection.execute(sa.text("UPDATE events SET code = 'JFK', id = 0 WHERE id = 2"))
    message = failure(export(shop, warehouse, instance, first="2024-01-01", last="2024-01-03", chunk_rows=1))
    assert "table 'events'" in message and "previous rows are unchanged" in message
    assert warehouse.read("events").sort_values("id")["_loaded_at"].tolist() == before


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_an_export_table_has_its_index_key_and_types(shop, tmp_path, instance, request, dialect):
    url = (
        f"sqlite:///{tmp_path / 'warehouse.db'}"
        if dialect == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    warehouse = Warehouse(url=url)
    assert export(shop, warehouse, instance, first="2024-01-01", last="2024-01-03").success
    inspector = sa.inspect(warehouse.engine())
    assert inspector.get_pk_constraint("events")["constrained_columns"] == ["id"]
    assert {tuple(ix["column_names"]) for ix in inspector.get_indexes("events")} == {("_partition",)}
    types = {c["name"]: c["type"] for c in inspector.get_columns("events")}
    assert isinstance(types["day"], sa.Date) and not isinstance(types["day"], sa.DateTime)
    assert isinstance(types["n"], sa.BigInteger)
    assert types["code"].length == 3


def defs_for(catalog) -> dg.Definitions:
    resources = dg.Definitions(resources={"warehouse": Warehouse(), "sources": SqlSources()})
    return dg.Definitions.merge(build_defs(catalog), resources)


def running_run(instance, job_name: str, tags: dict) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name=job_name, status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    return run


def test_the_schedule_does_not_export_a_day_the_sensor_took(shop, instance, monkeypatch):
    url, catalog = shop
    defs = defs_for(catalog)
    monkeypatch.setenv("SHOP_URL", url)
    schedule = defs.get_schedule_def("daily_exports_schedule")

    def tick():
        context = dg.build_schedule_context(
            instance=instance,
            resources={"sources": SqlSources()},
            repository_def=defs.get_repository_def(),
            scheduled_execution_time=datetime.now(UTC),
        )
        return schedule.evaluate_tick(context)

    # Run on the wall clock: every day through yesterday is complete, the newest is taken
    # by the sensor's range run still in flight.
    newest = tick().run_requests[0].partition_key
    running_run(
        instance,
        "daily_exports",
        {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": newest},
    )
    result = tick()
    assert result.run_requests == []
    assert "already exported, or being exported" in result.skip_message


def test_the_sensor_does_not_export_a_day_the_schedule_took(shop, instance, monkeypatch):
    url, catalog = shop
    monkeypatch.setenv("SHOP_URL", url)
    sensor = defs_for(catalog).get_sensor_def("daily_exports_new_data_sensor")
    first = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources={"sources": SqlSources()})
    )
    newest = (
        first.run_requests[-1].tags.get("dagster/asset_partition_range_end")
        or first.run_requests[-1].partition_key
    )
    running_run(instance, "daily_exports", {"dagster/partition": newest})
    # A fresh cursor: the sensor reconsiders every day, and leaves the schedule's day alone.
    again = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources={"sources": SqlSources()})
    )
    windows = [
        (
            r.tags.get("dagster/asset_partition_range_start") or r.partition_key,
            r.tags.get("dagster/asset_partition_range_end") or r.partition_key,
        )
        for r in again.run_requests
    ]
    assert all(not (start <= newest <= end) for start, end in windows)


def test_one_dimension_run_on_a_fresh_start(tmp_path, instance):
    catalog = tmp_path / "catalog.yaml"
    dimension = {key: value for key, value in EVENTS.items() if key != "partition"}
    dimension["sql"] = "SELECT id, day, code, n FROM events"
    catalog.write_text(
        yaml.safe_dump({"connections": {"shop": {"url_env": "SHOP_URL"}}, "exports": [dimension]})
    )
    sensor = defs_for(catalog).get_sensor_def("dimension_exports_missing_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert len(first.run_requests) == 1
    running = running_run(instance, "dimension_exports", {})
    second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert second.run_requests == []
    assert running.run_id in second.skip_message


def test_a_refused_day_from_a_postgresql_source_reports_only_its_own_error(
    shop, tmp_path, instance, request, monkeypatch
):
    # Read through a server-side cursor, one row a chunk: the refusal comes while the cursor is open.
    url = postgres_copy(
        shop, request.getfixturevalue("postgres_url"), "UPDATE events SET code = 'JFKX' WHERE id = 1"
    )
    # An error raised while the abandoned read is collected never reaches the run's events: Python
    # hands it to sys.unraisablehook ("Exception ignored in ..."), which is where it showed.
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    result = export((url, shop[1]), warehouse, instance, first="2024-01-01", last="2024-01-03", chunk_rows=1)
    message = failure(result)
    assert "row {'id': 1} holds 'JFKX'" in message and "SourceConnectionError" not in message
    del result
    gc.collect()
    assert [repr(u.exc_value) for u in unraisable] == []
