import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml

from collab_pipelines.warehouse.resources import Warehouse

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Scientist",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Scientist",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


class Repo:
    """A real git repository with real commits, made by the test."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=self.path,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **GIT_ENV},
        ).stdout.strip()

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

    def add(
        self, name: str, repositories: dict[str, "Repo | str"], branches: dict | None = None, **options
    ) -> None:
        self.suites[name] = {
            "repositories": {
                repo_name: {
                    "location": str(repo.path if isinstance(repo, Repo) else repo),
                    "branches": (branches or {}).get(repo_name, ["main"]),
                }
                for repo_name, repo in repositories.items()
            },
            **options,
        }
        self.path.write_text(yaml.safe_dump({"suites": self.suites}, sort_keys=False))


@pytest.fixture
def suites(state_dir) -> Suites:
    return Suites(state_dir / "suites.yaml")


@pytest.fixture
def ticks(instance, warehouse):
    """Sensor ticks in an instance that knows the exported warehouse's exports (test_sensor.py
    has its own, without exports)."""
    from collab_pipelines_tests.evaluation.test_sensor import Ticks

    # The warehouse copy holds exports made in another instance; this one learns of them here.
    for name in ("flights", "weather"):
        instance.report_runless_asset_event(dg.AssetMaterialization(name))
    return Ticks(instance)
