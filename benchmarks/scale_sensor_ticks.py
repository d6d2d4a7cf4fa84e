"""The exports' new-data sensor and schedule tick with 10,000 days of history.

A catalog entry whose daily partitions start 10,000 days ago, with every day but the last
materialized in a real (SQLite) instance and one range run in flight. Prints the median time
of a sensor tick (fresh cursor, so it reconsiders all 10,000 days) and of a schedule tick,
against the goal of 1 s. The baseline is the same tick with no history.

The history is written as materialization events reported to the instance (benchmarks/_history.py
says where and why); the ticks read it the same way as a range run's (the instance's
materialized partitions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml
from _history import instance_with_history

from collab_pipelines.exports.definitions import build_defs
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

GOAL_SECONDS = 1.0


def catalog(work: Path, start: date) -> Path:
    entry = {
        "name": "events",
        "connection": "shop",
        "description": "Events.",
        "owners": ["team:bench"],
        "sql": "SELECT id, at FROM events WHERE at >= :partition_start AND at < :partition_end",
        "partition": {"column": "at", "start": start.isoformat()},
        "primary_key": ["id"],
        "columns": {"id": "integer", "at": "datetime"},
        # The source is empty: only the history of days matters here.
        "checks": {"non_empty": "off"},
    }
    path = work / "catalog.yaml"
    path.write_text(
        yaml.safe_dump({"connections": {"shop": {"url_env": "BENCH_SHOP_URL"}}, "exports": [entry]})
    )
    return path


def ticks(defs: dg.Definitions, instance: dg.DagsterInstance, repeats: int = 5) -> tuple[float, float]:
    sensor = defs.get_sensor_def("daily_exports_new_data_sensor")
    schedule = defs.get_schedule_def("daily_exports_schedule")
    sensor_times, schedule_times = [], []
    # The first tick of each pays for imports and caches; the median of the rest is reported.
    for _ in range(repeats + 1):
        started = time.perf_counter()
        sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"sources": SqlSources()}))
        sensor_times.append(time.perf_counter() - started)
        context = dg.build_schedule_context(
            instance=instance,
            resources={"sources": SqlSources()},
            repository_def=defs.get_repository_def(),
            scheduled_execution_time=datetime.now(UTC),
        )
        started = time.perf_counter()
        schedule.evaluate_tick(context)
        schedule_times.append(time.perf_counter() - started)
    return statistics.median(sensor_times[1:]), statistics.median(schedule_times[1:])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["COLLAB_STATE_DIR"] = str(work)
        os.environ["BENCH_SHOP_URL"] = f"sqlite:///{work / 'shop.db'}"
        with sa.create_engine(os.environ["BENCH_SHOP_URL"]).begin() as connection:
            connection.execute(sa.text("CREATE TABLE events (id INTEGER, at TEXT)"))
        start = datetime.now(UTC).date() - timedelta(days=args.days)
        defs = dg.Definitions.merge(
            build_defs(catalog(work, start)),
            dg.Definitions(resources={"warehouse": Warehouse(), "sources": SqlSources()}),
        )
        (work / "empty").mkdir()
        with dg.instance_for_test(temp_dir=str(work / "empty")) as instance:
            empty = ticks(defs, instance)
        days = [(start + timedelta(days=i)).isoformat() for i in range(args.days - 1)]

        def fill(instance: dg.DagsterInstance) -> None:
            for day in days:
                instance.report_runless_asset_event(dg.AssetMaterialization("events", partition=day))
            instance.add_run(
                dg.DagsterRun(
                    job_name="daily_exports",
                    status=dg.DagsterRunStatus.STARTED,
                    tags={"dagster/partition": (start + timedelta(days=args.days - 1)).isoformat()},
                )
            )

        with instance_with_history(work / "history", fill) as (instance, filled):
            assert len(instance.get_materialized_partitions(dg.AssetKey("events"))) == len(days)
            full = ticks(defs, instance)
    print(
        f"exports ticks with {args.days} days of history ({len(days)} materialized, written in {filled:.0f} s)"
    )
    for label, before, after in (
        ("new-data sensor", empty[0], full[0]),
        ("daily schedule", empty[1], full[1]),
    ):
        print(
            f"  {label:16s} no history {before * 1000:7.1f} ms   {args.days} days {after * 1000:7.1f} ms"
            f"   ratio {after / before:5.2f}   goal < {GOAL_SECONDS:.0f} s: {'met' if after < GOAL_SECONDS else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
