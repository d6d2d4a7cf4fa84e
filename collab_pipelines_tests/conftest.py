"""Fixtures shared by every pattern's tests: state folders, services, the demo source."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from collab_pipelines import settings
from collab_pipelines.demo.paths import DEMO_CONFIG

# The fault suite's per-fault figures, printed at the end of any run that includes it.
from collab_pipelines_tests.faults.figures import (  # noqa: F401
    pytest_runtest_logreport,
    pytest_terminal_summary,
)

# Pattern tests run on the demo's configuration unless they write their own (product/ does).
os.environ.setdefault(settings.CONFIG_DIR_ENV, str(DEMO_CONFIG))

POSTGRES_URL_ENV = "COLLAB_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
# The demo source used by most tests: the first days of January 2013.
SOURCE_THROUGH = date(2013, 1, 8)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_service(name: str, reason: str) -> None:
    """Skip with a reason where a service is absent, but fail in CI, where it must be there."""
    message = f"{name} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(message)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project state folder, used by everything that resolves paths lazily."""
    path = tmp_path / "state"
    path.mkdir()
    monkeypatch.setenv(settings.STATE_DIR_ENV, str(path))
    # Shared files (reports, landing zone, tuning work) then live in it too, as on one machine.
    monkeypatch.delenv(settings.SHARED_DIR_ENV, raising=False)
    monkeypatch.setenv(settings.SUITES_FILE_ENV, str(path / "suites.yaml"))
    monkeypatch.delenv(settings.WAREHOUSE_URL_ENV, raising=False)
    monkeypatch.delenv("COLLAB_SOURCE_URL", raising=False)
    return path


@pytest.fixture(autouse=True)
def no_leaked_defs_state_storage() -> Iterator[None]:
    # Dagster 1.13 keeps the entered instance's state storage in a context variable, and a
    # fixture that outlives one test restores it, on teardown, to an instance already disposed
    # ("Attempted to resolve undefined DagsterInstance weakref" in a later, unrelated test).
    # Every test starts from no current storage; the instances it enters set their own.
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.SQLAlchemyError as error:  # any connection failure means: no server here
        require_service("PostgreSQL", f"{sa.make_url(url).render_as_string(hide_password=True)}: {error}")
    return url


@contextlib.contextmanager
def new_postgres_database(server_url: str, prefix: str = "collab_test") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server, dropped afterwards."""
    from collab_pipelines.warehouse.engine import dispose_engines

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engines(url)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with new_postgres_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def source_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo product database released through SOURCE_THROUGH, built once per session."""
    from collab_pipelines.demo.source import ProductDatabase

    path = tmp_path_factory.mktemp("source") / "product.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    ProductDatabase(engine).initialize(SOURCE_THROUGH)
    engine.dispose()
    return path


@pytest.fixture
def product_db(state_dir: Path, source_template: Path) -> Path:
    """A private copy of the demo source at the catalog's default location."""
    path = state_dir / "product.db"
    shutil.copy(source_template, path)
    return path


# The days exported_warehouse_file holds: every day the demo source has released.
EXPORTED_FIRST, EXPORTED_LAST = "2013-01-01", "2013-01-07"


@pytest.fixture(scope="session")
def exported_warehouse_file(tmp_path_factory, source_template) -> Path:
    """A SQLite warehouse holding the flights and weather exports, made once by the real assets."""
    from collab_pipelines.exports.assets import build_export_assets
    from collab_pipelines.exports.catalog import load_catalog
    from collab_pipelines.exports.resources import SqlSources
    from collab_pipelines.warehouse.resources import Warehouse

    state = tmp_path_factory.mktemp("exported-state")
    shutil.copy(source_template, state / "product.db")
    assets = [
        a for a in build_export_assets(load_catalog()) if a.key.to_user_string() in ("flights", "weather")
    ]
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv(settings.STATE_DIR_ENV, str(state))
        patch.delenv(settings.WAREHOUSE_URL_ENV, raising=False)
        dg.materialize(
            assets,
            instance=instance,
            resources={"warehouse": Warehouse(), "sources": SqlSources()},
            tags={
                "dagster/asset_partition_range_start": EXPORTED_FIRST,
                "dagster/asset_partition_range_end": EXPORTED_LAST,
            },
        )
    # The warehouse runs in WAL mode: fold the log into the file so a copy holds every row.
    with sqlite3.connect(state / "warehouse.db") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return state / "warehouse.db"


SLOW_ENV = "COLLAB_SLOW_TESTS"


def pytest_collection_modifyitems(config, items):
    # Issue 25's daemon acceptance takes many minutes on 2 cores; `make test-slow` runs it.
    if os.environ.get(SLOW_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"a slow test: `make test-slow` (or {SLOW_ENV}=1) runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
