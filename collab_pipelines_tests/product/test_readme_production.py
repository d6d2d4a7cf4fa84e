"""README's Production section, followed from scratch: its walkthrough block runs as written,
with only the `<...>` values replaced by a source database and a model repository made here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from collab_pipelines_tests.e2e.processes import PROJECT
from collab_pipelines_tests.evaluation.conftest import Repo
from collab_pipelines_tests.product import team

MARKER = "<!-- production-walkthrough -->"


def walkthrough() -> str:
    production = (PROJECT / "README.md").read_text().split("## Production", 1)[1]
    block = production.split(MARKER, 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    return block


def fresh_checkout(tmp_path: Path) -> tuple[Path, dict]:
    """A folder holding only the project's own files, as a team starts from, and a clean environment."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in (
        "Makefile",
        "setup.py",
        ".venv",
        "deploy",
        "collab_pipelines",
        "workspace.yaml",
        "dagster.yaml",
    ):
        (checkout / name).symlink_to(PROJECT / name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COLLAB_", "DAGSTER_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        DAGSTER_HOME=str(home),
        COLLAB_STATE_DIR=str(tmp_path / "state"),
        # The checkout's venv is installed; make must not reinstall it because setup.py is newer.
        MAKEFLAGS="-o .venv/.installed",
    )
    return checkout, env


@pytest.mark.timeout(300)
def test_make_check_fails_on_a_broken_configuration(tmp_path):
    checkout, env = fresh_checkout(tmp_path)
    config = team.write_config(checkout / "config", tmp_path / "model")
    catalog = (config / "catalog.yaml").read_text()
    (config / "catalog.yaml").write_text(
        catalog.replace("primary_key:\n  - id", "primary_key:\n  - order_no")
    )
    assert "order_no" in (config / "catalog.yaml").read_text()
    done = subprocess.run(
        ["make", "check"], cwd=checkout, env=env, capture_output=True, text=True, timeout=250, check=False
    )
    assert done.returncode != 0, done.stdout[-2000:]
    assert "catalog.yaml" in done.stdout + done.stderr and "order_no" in done.stdout + done.stderr


@pytest.mark.timeout(600)
def test_the_production_walkthrough_runs_as_written(tmp_path):
    source_url = f"sqlite:///{tmp_path / 'shop.db'}"
    orders = team.create_source(source_url)
    repo = Repo(tmp_path / "returns-model")
    repo.commit("Baseline returns model", team.MODEL_FILES)
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    script = (
        walkthrough()
        .replace("<your model repository>", str(repo.path))
        .replace("<your source database URL>", source_url)
        .replace("<your warehouse URL>", warehouse_url)
    )
    assert "<your" not in script, "a placeholder the test does not fill"

    checkout, env = fresh_checkout(tmp_path)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])

    engine = sa.create_engine(warehouse_url)
    with engine.connect() as connection:
        exported = connection.execute(sa.text("SELECT id FROM orders ORDER BY id")).scalars().all()
        tables = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    first_day = orders[orders["placed_at"] < team.FIRST_DAY.replace(day=2)]
    assert exported == sorted(first_day["id"].tolist())
    assert tables.isdisjoint(team.DEMO_TABLES), tables
