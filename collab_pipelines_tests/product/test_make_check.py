"""`make check` checks the team's own instance: its DAGSTER_HOME and COLLAB_STATE_DIR are kept (a
PostgreSQL instance stays PostgreSQL), and it says which instance it checks."""

import subprocess

import pytest
import sqlalchemy as sa
import yaml

from collab_pipelines_tests.product.test_readme_production import fresh_checkout


@pytest.mark.timeout(300)
def test_make_check_uses_and_names_the_teams_postgresql_instance(tmp_path, postgres_url):
    checkout, env = fresh_checkout(tmp_path)
    home = tmp_path / "dagster_home"
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": {"postgres": {"postgres_url": postgres_url}}})
    )
    (checkout / "config").mkdir()  # an empty configuration folder: nothing to export or evaluate
    done = subprocess.run(
        ["make", "check"], cwd=checkout, env=env, capture_output=True, text=True, timeout=250, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    said = [line for line in output.splitlines() if line.startswith("make check: Dagster instance")]
    assert said == [
        f"make check: Dagster instance {home} (PostgresRunStorage), state folder {env['COLLAB_STATE_DIR']}"
    ], output[-3000:]
    # The check opened the team's database, and made no instance of its own in the checkout.
    engine = sa.create_engine(postgres_url)
    try:
        assert "runs" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert not (checkout / ".state").exists()
