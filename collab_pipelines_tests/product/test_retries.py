"""With deploy/dagster.yaml's run retries: a transient failure is retried and then succeeds."""

import dagster as dg
import pytest
import sqlalchemy as sa

from collab_pipelines import settings
from collab_pipelines_tests.product import jobs, team
from collab_pipelines_tests.retries import retrying_instance, run_with_retries


@pytest.fixture
def postgres_shop(postgres_url, tmp_path, state_dir, monkeypatch):
    team.create_source(postgres_url)
    config = team.write_config(tmp_path / "config", tmp_path / "no-model")
    monkeypatch.setenv(settings.CONFIG_DIR_ENV, str(config))
    monkeypatch.setenv(team.SOURCE_ENV, postgres_url)
    monkeypatch.delenv(settings.SUITES_FILE_ENV, raising=False)
    return postgres_url


def set_connections(admin_url: str, database: str, allowed: bool) -> None:
    """The database goes away (every session ended, new ones refused), or comes back."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
    admin.dispose()


@pytest.mark.timeout(300)
def test_a_dropped_source_connection_is_retried_and_then_succeeds(postgres_shop, postgres_server_url):
    database = sa.make_url(postgres_shop).database

    def before_attempt(attempt: int) -> None:
        set_connections(postgres_server_url, database, allowed=attempt > 0)

    try:
        with retrying_instance() as instance:
            attempts = run_with_retries(
                dg.reconstructable(jobs.export_orders),
                instance,
                before_attempt=before_attempt,
                tags={"dagster/partition": "2024-03-02"},
            )
            statuses = [run.status for run in attempts]
            failures = [
                e.dagster_event.step_failure_data.error.to_string()
                for run in attempts
                for e in instance.all_logs(run.run_id)
                if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
            ]
            assert statuses == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS], (
                statuses,
                failures,
            )
            [failure] = failures
            assert "OperationalError" in failure, failure
    finally:
        set_connections(postgres_server_url, database, allowed=True)
    engine = sa.create_engine(settings.warehouse_url())
    with engine.connect() as connection:
        days = connection.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar_one()
    engine.dispose()
    assert days == team.ORDERS_PER_DAY
