import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml

from collab_pipelines import settings
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse import Warehouse

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Scientist", "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Scientist", "GIT_COMMITTER_EMAIL": "ada@example.com",
}


class Repo:
    """A real git repository with real commits, made by the test."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True,
                              env={**os.environ, **GIT_ENV}).stdout.strip()

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def make_repo(tmp_path):
    def make(name: str = "model") -> Repo:
        return Repo(tmp_path / "repos" / name)

    return make


# The exported days every evaluation test trains and scores on (the demo source releases
# the days before conftest.SOURCE_THROUGH).
EXPORTED_FIRST, EXPORTED_LAST = "2013-01-01", "2013-01-07"


@pytest.fixture(scope="session")
def exported_warehouse_file(tmp_path_factory, source_template) -> Path:
    """A SQLite warehouse holding the flights and weather exports, made once by the real assets."""
    state = tmp_path_factory.mktemp("exported-state")
    shutil.copy(source_template, state / "product.db")
    assets = [a for a in build_export_assets(load_catalog()) if a.key.to_user_string() in ("flights", "weather")]
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv(settings.STATE_DIR_ENV, str(state))
        patch.delenv(settings.WAREHOUSE_URL_ENV, raising=False)
        dg.materialize(assets, instance=instance, resources={"warehouse": Warehouse(), "sources": SqlSources()},
                       tags={"dagster/asset_partition_range_start": EXPORTED_FIRST,
                             "dagster/asset_partition_range_end": EXPORTED_LAST})
    # The warehouse runs in WAL mode: fold the log into the file so a copy holds every row.
    with sqlite3.connect(state / "warehouse.db") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return state / "warehouse.db"


@pytest.fixture
def warehouse(state_dir, exported_warehouse_file):
    """This test's own copy of the exported warehouse, at the state folder's default location."""

    shutil.copy(exported_warehouse_file, state_dir / "warehouse.db")
    return Warehouse()


class Suites:
    """The suites file of one test, written as the engineers would."""

    def __init__(self, path: Path):
        self.path = path
        self.suites: dict = {}

    def add(self, name: str, repositories: dict[str, "Repo | str"], branches: dict | None = None, **options) -> None:
        self.suites[name] = {
            "repositories": {
                repo_name: {"location": str(repo.path if isinstance(repo, Repo) else repo),
                            "branches": (branches or {}).get(repo_name, ["main"])}
                for repo_name, repo in repositories.items()
            },
            **options,
        }
        self.path.write_text(yaml.safe_dump({"suites": self.suites}, sort_keys=False))


@pytest.fixture
def suites(state_dir) -> Suites:
    return Suites(state_dir / "suites.yaml")
