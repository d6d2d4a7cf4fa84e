"""The schedule and the new-data sensor against the real demo source and a real instance."""

import json
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from collab_pipelines.definitions import shared_resources
from collab_pipelines.demo.source import ProductDatabase
from collab_pipelines.exports.definitions import build_defs
from collab_pipelines.exports.freshness import contiguous_ranges
from collab_pipelines.exports.resources import SourceConnectionError, SqlSources
from collab_pipelines.exports.sensors import RANGE_END_TAG, RANGE_START_TAG

SENSOR = "daily_exports_new_data_sensor"
DEFS = dg.Definitions.merge(build_defs(), dg.Definitions(resources=shared_resources()))
SCHEDULE = "daily_exports_schedule"


def evaluate_sensor(instance, cursor=None):
    sensor = DEFS.get_sensor_def(SENSOR)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"sources": SqlSources()})
    return sensor.evaluate_tick(context)


def requested_windows(result) -> list[tuple[str, str]]:
    windows = []
    for request in result.run_requests:
        if request.partition_key:
            windows.append((request.partition_key, request.partition_key))
        else:
            windows.append((request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]))
    return windows


def test_sensor_requests_the_complete_days_as_one_range(product_db, instance):
    # The source's replay clock is at 2013-01-08 00:00: days 1..7 are complete.
    result = evaluate_sensor(instance)
    assert requested_windows(result) == [("2013-01-01", "2013-01-07")]
    assert result.run_requests[0].run_key == "daily_exports:2013-01-01..2013-01-07"
    assert json.loads(result.cursor) == {"through": "2013-01-07"}

    again = evaluate_sensor(instance, cursor=result.cursor)
    assert again.run_requests == []
    assert "No new complete day" in again.skip_message


def test_sensor_requests_only_new_days_after_the_clock_moves(product_db, instance):
    first = evaluate_sensor(instance)
    ProductDatabase(sa.create_engine(f"sqlite:///{product_db}")).advance(2)
    second = evaluate_sensor(instance, cursor=first.cursor)
    assert requested_windows(second) == [("2013-01-08", "2013-01-09")]
    third = evaluate_sensor(instance, cursor=second.cursor)
    assert third.run_requests == []


def test_sensor_skips_days_already_exported(product_db, instance, run_export, sqlite_warehouse):
    run_export(["flights", "weather"], sqlite_warehouse, day="2013-01-03")
    # Only flights for day 5: weather still misses it, so day 5 is requested.
    run_export(["flights"], sqlite_warehouse, day="2013-01-05")
    result = evaluate_sensor(instance)
    assert requested_windows(result) == [("2013-01-01", "2013-01-02"), ("2013-01-04", "2013-01-07")]


def test_sensor_names_the_connection_when_the_source_is_missing(state_dir, instance):
    # The tick must fail loudly, never skip quietly.
    with pytest.raises(SourceConnectionError, match=r"connection .product.*replay_clock"):
        evaluate_sensor(instance)


def test_schedule_requests_the_newest_complete_day(product_db, instance):
    schedule = DEFS.get_schedule_def(SCHEDULE)
    context = dg.build_schedule_context(
        instance=instance,
        resources={"sources": SqlSources()},
        repository_def=DEFS.get_repository_def(),
        scheduled_execution_time=datetime(2026, 1, 1, 0, 15, tzinfo=UTC),
    )
    result = schedule.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests] == ["2013-01-07"]


def test_contiguous_ranges():
    days = ["2013-01-01", "2013-01-02", "2013-01-04", "2013-01-31", "2013-02-01"]
    assert contiguous_ranges(days) == [
        ("2013-01-01", "2013-01-02"),
        ("2013-01-04", "2013-01-04"),
        ("2013-01-31", "2013-02-01"),
    ]


def test_missing_tables_are_requested_once(product_db, instance, run_export, sqlite_warehouse):
    sensor = DEFS.get_sensor_def("dimension_exports_missing_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert [r.run_key for r in first.run_requests] == ["missing:airlines,airports,planes"]
    run_export(["airlines", "airports"], sqlite_warehouse)
    second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert [r.run_key for r in second.run_requests] == ["missing:planes"]
    run_export(["planes"], sqlite_warehouse)
    third = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert third.run_requests == [] and "Every table" in third.skip_message
