"""Dagster's own storage on PostgreSQL, and the `dagster job execute` path users take."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from collab_pipelines.warehouse.resources import Warehouse


def test_runs_and_materializations_persist_in_postgresql(postgres_url, product_db, export_assets):
    from collab_pipelines.exports.resources import SqlSources

    overrides = {"storage": {"postgres": {"postgres_url": postgres_url}}}
    warehouse = Warehouse(url=postgres_url)
    with dg.instance_for_test(overrides=overrides) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = dg.materialize(
            [export_assets["flights"]],
            partition_key="2013-01-02",
            instance=instance,
            resources={"warehouse": warehouse, "sources": SqlSources()},
        )
        assert result.success
    # A second instance on the same database sees what the first recorded.
    with dg.instance_for_test(overrides=overrides) as reopened:
        assert [r.run_id for r in reopened.get_runs()] == [result.run_id]
        assert reopened.get_materialized_partitions(dg.AssetKey("flights")) == {"2013-01-02"}
    with sa.create_engine(postgres_url).connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    assert {"runs", "event_logs", "jobs", "job_ticks", "flights"} <= tables


def test_dagster_job_execute_writes_a_day(product_db, state_dir, tmp_path):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(Path("dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "execute",
            "-m",
            "collab_pipelines.definitions",
            "-j",
            "daily_exports",
            "--tags",
            json.dumps({"dagster/partition": "2013-01-06"}),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    warehouse = Warehouse(url=f"sqlite:///{state_dir / 'warehouse.db'}")
    flights = warehouse.read("flights")
    assert set(flights["_partition"]) == {"2013-01-06"}
    assert len(flights) > 800
    assert warehouse.count("weather", where={"_partition": "2013-01-06"}) > 0


def test_a_range_runs_days_are_written_in_event_batches(postgres_url, product_db, export_assets, monkeypatch):
    from collab_pipelines.exports.resources import SqlSources

    # As the deployments set it, but smaller than the range, so batches end mid-range and at its end.
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "2")
    overrides = {"storage": {"postgres": {"postgres_url": postgres_url}}}
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    with dg.instance_for_test(overrides=overrides) as instance:
        # What reaches the storage's batched write: the real one, which stores them.
        storage, batches = instance.event_log_storage, []
        store_event_batch = storage.store_event_batch
        monkeypatch.setattr(storage, "store_event_batch", lambda e: (batches.append(e), store_event_batch(e)))
        result = dg.materialize(
            [export_assets["flights"]],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
            resources={"warehouse": Warehouse(url=postgres_url), "sources": SqlSources()},
        )
        assert result.success
        # The first two days in one write (the third ends the batch alone). Dagster writes
        # yielded materializations one by one: this fails if it stops honouring the batch
        # metadata dagster_internals.batched_materializations gives them.
        batched_days = [
            [e.get_dagster_event().partition for e in batch if e.get_dagster_event().is_step_materialization]
            for batch in batches
        ]
        assert days[:2] in batched_days, batched_days
        assert instance.get_materialized_partitions(dg.AssetKey("flights")) == set(days)
        records = instance.fetch_materializations(dg.AssetKey("flights"), limit=10).records
        assert len(records) == len(days), "each day materialized once, not logged twice"
        versions = {r.partition_key: r.asset_materialization.tags["dagster/data_version"] for r in records}
        counts = {
            r.partition_key: r.asset_materialization.metadata["dagster/row_count"].value for r in records
        }
    assert sorted(versions) == days and len(set(versions.values())) == 3
    warehouse_counts = Warehouse(url=postgres_url).read("flights").groupby("_partition").size().to_dict()
    assert counts == warehouse_counts
