"""The product without the demo, on a team's own source, configuration and model repository.

Source → export → evaluation → report → data API, through the product location
(`collab_pipelines.definitions`), with no demo asset, job, sensor, schedule or table anywhere.
"""

import json
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from collab_pipelines import settings
from collab_pipelines.data_api.client import Client
from collab_pipelines.definitions import build_definitions
from collab_pipelines_tests.data_api.conftest import TOKEN, Deployment, start_api
from collab_pipelines_tests.evaluation.conftest import Repo
from collab_pipelines_tests.evaluation.test_evaluation import evaluate
from collab_pipelines_tests.evaluation.test_sensor import Ticks
from collab_pipelines_tests.product import jobs, team


@pytest.fixture
def shop(tmp_path, state_dir, monkeypatch):
    """The team's world: a source database, a model repository and a configuration folder."""
    source_url = f"sqlite:///{tmp_path / 'shop.db'}"
    frame = team.create_source(source_url)
    repo = Repo(tmp_path / "returns-model")
    sha = repo.commit("Baseline returns model", team.MODEL_FILES)
    config = team.write_config(tmp_path / "config", repo.path)
    monkeypatch.setenv(settings.CONFIG_DIR_ENV, str(config))
    monkeypatch.setenv(team.SOURCE_ENV, source_url)
    # The team's suites live in its configuration folder, not in a variable.
    monkeypatch.delenv(settings.SUITES_FILE_ENV, raising=False)
    return {"source_url": source_url, "orders": frame, "sha": sha, "config": config}


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    return names


# A fresh process, as a code server is: the environment is set before anything is imported.
LIST_DEFINITIONS = """
import json
from collab_pipelines.definitions import build_definitions
repo = build_definitions().get_repository_def()
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()),
    "jobs": sorted(j.name for j in repo.get_all_jobs()),
    "schedules": {s.name: s.description or "" for s in repo.schedule_defs},
    "sensors": {s.name: s.description or "" for s in repo.sensor_defs},
}))
"""


def product_definitions() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LIST_DEFINITIONS], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_product_defines_nothing_of_the_demo(shop):
    found = product_definitions()
    assets = set(found["assets"])
    assert {"orders", "model_evaluation", "evaluation_report"} <= assets, assets
    assert assets.isdisjoint(team.DEMO_ASSETS), assets & team.DEMO_ASSETS
    assert set(found["jobs"]).isdisjoint(team.DEMO_JOBS)
    assert set(found["schedules"]).isdisjoint(team.DEMO_SCHEDULES)
    for name, description in {**found["schedules"], **found["sensors"]}.items():
        assert "demo" not in description.lower(), name


def test_an_empty_configuration_folder_is_an_empty_product(tmp_path, state_dir, monkeypatch):
    monkeypatch.setenv(settings.CONFIG_DIR_ENV, str(tmp_path / "nothing-here"))
    monkeypatch.delenv(settings.SUITES_FILE_ENV, raising=False)
    found = product_definitions()
    assert set(found["assets"]).isdisjoint(team.DEMO_ASSETS), found["assets"]
    assert found["schedules"] == {}


@pytest.mark.timeout(600)
def test_source_to_export_to_evaluation_to_report_to_api(shop, state_dir, instance, tmp_path):
    defs = dg.Definitions.merge(
        build_definitions(),
        dg.Definitions(jobs=[dg.define_asset_job("export_orders", selection=["orders"])]),
    )
    last_day = f"2024-03-{team.DAYS:02d}"
    exported = defs.resolve_job_def("export_orders").execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: "2024-03-01", ASSET_PARTITION_RANGE_END_TAG: last_day},
    )
    assert exported.success

    ticks = Ticks(instance)
    keys = ticks.keys()
    assert keys == [f"returns:model@{shop['sha'][:10]}"]
    evaluation = evaluate(instance, keys[0])
    assert evaluation.success

    report = dg.execute_job(
        dg.reconstructable(jobs.render_evaluation_report),
        instance=instance,
        tags={"dagster/partition": keys[0]},
    )
    assert report.success
    [record] = instance.fetch_materializations(dg.AssetKey("evaluation_report"), limit=1).records
    assert record.partition_key == keys[0]

    warehouse_url = settings.warehouse_url()
    warehouse_tables = tables(warehouse_url)
    assert {"orders", "evaluation_results"} <= warehouse_tables
    assert warehouse_tables.isdisjoint(team.DEMO_TABLES), warehouse_tables & team.DEMO_TABLES
    assert tables(shop["source_url"]) == {"orders"}  # the source is read, never written

    deployment = Deployment("sqlite", state_dir, warehouse_url, instance.root_directory, instance)
    api = start_api(deployment, tmp_path)
    client = Client(api.url, TOKEN)
    try:
        names = set(client.datasets()["name"])
        assert "orders" in names and names.isdisjoint(team.DEMO_ASSETS), names
        rows = client.rows("orders")
        assert sorted(rows["id"]) == sorted(shop["orders"]["id"])
        [evaluation] = client.evaluations(shop["sha"]).to_dict("records")
        assert evaluation["evaluation_key"] == keys[0] and evaluation["status"] == "passed"
        assert 0.5 < evaluation["metric/roc_auc"] <= 1
        html = client.report("evaluation_report", partition=keys[0])
        assert "returns" in html and "flight" not in html.lower()
    finally:
        client.close()
        api.stop()
