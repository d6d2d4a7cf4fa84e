"""deploy/dagster.yaml, the production instance, against a real PostgreSQL server."""

import dagster as dg
import sqlalchemy as sa

from collab_pipelines_tests.e2e.processes import PROJECT


def test_production_instance_config_runs_on_postgresql(
    postgres_url, tmp_path, monkeypatch, product_db, export_assets
):
    from collab_pipelines.exports.resources import SqlSources
    from collab_pipelines.warehouse.resources import Warehouse

    url = sa.make_url(postgres_url)
    for name, value in {
        "HOST": url.host,
        "PORT": str(url.port or 5432),
        "USER": url.username,
        "PASSWORD": url.password or "",
        "DB": url.database,
    }.items():
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "deploy" / "dagster.yaml").read_text())

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        # What the daemon's queue reads: the concurrency settings over the coordinator's own.
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 6
        assert [(limit["key"], limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [
            ("collab/pattern", "evaluation", 2)
        ]
        result = dg.materialize(
            [export_assets["airlines"]],
            instance=instance,
            resources={"warehouse": Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}"), "sources": SqlSources()},
        )
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("airlines")) is not None


def test_production_instance_config_holds_no_secret():
    config = (PROJECT / "deploy" / "dagster.yaml").read_text()
    assert "env: DAGSTER_PG_PASSWORD" in config
    assert "postgres_url" not in config
