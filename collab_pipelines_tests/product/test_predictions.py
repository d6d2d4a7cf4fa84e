"""The champion's daily predictions, on a team's own source and model repository (not the demo).

A day predicted by the `<suite>_predictions` asset equals what the champion's commit predicts
when a person runs it by hand on the same rows; the data API serves the rows as JSON and
Parquet; a new champion predicts the suite's recent days again.
"""

import json
import os
import subprocess
import sys

import dagster as dg
import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from collab_pipelines import settings
from collab_pipelines.definitions import build_definitions
from collab_pipelines.evaluation import champion
from collab_pipelines.evaluation.prediction_assets import CHAMPION_SENSOR, DRIFT_CHECK
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import load_suites
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.data_api.conftest import TOKEN, Deployment, start_api
from collab_pipelines_tests.evaluation.conftest import Repo
from collab_pipelines_tests.evaluation.test_evaluation import evaluate
from collab_pipelines_tests.evaluation.test_sensor import Ticks
from collab_pipelines_tests.product import team
from collab_pipelines_tests.product.conftest import TRAIN_DAYS

DAY, EARLIER = f"2024-03-{team.DAYS:02d}", f"2024-03-{team.DAYS - 1:02d}"
PREDICTIONS = "returns_predictions"
# What a person runs by hand: the commit's own features and model, fitted on the five days
# before the day (with their labels) and predicting the day.
BY_HAND = """
import sys
import pandas as pd
sys.path.insert(0, sys.argv[1])
import features, model
orders = pd.read_parquet(sys.argv[2])
day = pd.Timestamp(sys.argv[3])
table = features.build({"orders": orders})
labels = orders.set_index("id")["returned"]
past = table[(table["placed_at"] < day) & (table["placed_at"] >= day - pd.Timedelta(days=int(sys.argv[4])))]
today = table[(table["placed_at"] >= day) & (table["placed_at"] < day + pd.Timedelta(days=1))]
drop = ["id", "placed_at", "returned"]
fitted = model.build().fit(past.drop(columns=drop), labels.loc[past["id"]].to_numpy())
print(pd.Series(fitted.predict_proba(today.drop(columns=drop))[:, 1], index=today["id"].astype(str)).to_json())
"""


def materializations(result: dg.ExecuteInProcessResult, asset: str) -> list[dg.AssetMaterialization]:
    # The predictions' run also reports champion_monitoring.
    return [m for m in result.asset_materializations_for_node(asset) if m.asset_key == dg.AssetKey(asset)]


def predict(defs: dg.Definitions, instance, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [defs.get_assets_def(PREDICTIONS)],
        partition_key=day,
        instance=instance,
        raise_on_error=False,
        resources={"model_repositories": ModelRepositories(), "warehouse": Warehouse()},
    )


def exported(instance, start: str = "2024-03-01", end: str = DAY) -> dg.Definitions:
    """The product's definitions, with the shop's orders of these days exported."""
    defs = dg.Definitions.merge(
        build_definitions(),
        dg.Definitions(jobs=[dg.define_asset_job("export_orders", selection=["orders"])]),
    )
    tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
    assert defs.resolve_job_def("export_orders").execute_in_process(instance=instance, tags=tags).success
    return defs


def by_hand(tmp_path, repo: Repo, orders: pd.DataFrame, day: str) -> pd.Series:
    code = tmp_path / "by-hand"
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=repo.path, check=True, capture_output=True
    ).stdout
    code.mkdir(exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    orders.to_parquet(tmp_path / "orders.parquet")
    (tmp_path / "by_hand.py").write_text(BY_HAND)
    printed = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "by_hand.py"),
            str(code),
            str(tmp_path / "orders.parquet"),
            day,
            str(TRAIN_DAYS),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return pd.Series(json.loads(printed)).sort_index()


def test_the_champion_predicts_each_day_as_its_commit_does_by_hand_and_the_api_serves_it(
    shop, state_dir, instance, tmp_path
):
    defs = exported(instance)
    warehouse = Warehouse()

    without = predict(defs, instance, DAY)
    assert not without.success
    assert "has no champion yet: promote one with the promote_champion job" in str(without.all_events)

    [key] = Ticks(instance).keys()
    assert evaluate(instance, key).success
    suite = load_suites(settings.suites_file())["returns"]
    champion.promote(warehouse, suite, key, "ada@example.com", "the first model", "test-run")
    for day in (EARLIER, DAY):
        result = predict(defs, instance, day)
        assert result.success, result.all_events
    [materialization] = materializations(result, PREDICTIONS)
    assert materialization.metadata["champion"].value == key
    assert materialization.metadata["dagster/row_count"].value == team.ORDERS_PER_DAY

    stored = warehouse.read(PREDICTIONS, where={"_partition": DAY}).set_index("row_id").sort_index()
    expected = by_hand(tmp_path, shop["repo"], shop["orders"], DAY)
    assert list(stored.index) == list(expected.index)
    np.testing.assert_allclose(stored["y_score"].to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert set(stored["evaluation_key"]) == {key}

    deployment = Deployment("sqlite", state_dir, settings.warehouse_url(), instance.root_directory, instance)
    # The team's suites file, which names the predictions dataset.
    api = start_api(deployment, tmp_path, {settings.SUITES_FILE_ENV: str(settings.suites_file())})
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{api.url}/v1/datasets/{PREDICTIONS}/rows"
        response = httpx.get(url, params={"partition": DAY, "limit": 1000}, headers=headers)
        assert response.status_code == 200, response.text
        served = response.json()["data"]
        # JSON carries 15 significant digits of a stored double.
        np.testing.assert_allclose(
            sorted(float(r["y_score"]) for r in served), sorted(stored["y_score"].tolist()), rtol=1e-12
        )
        parquet = httpx.get(
            url, params={"partition": DAY, "format": "parquet", "limit": 1000}, headers=headers
        )
        assert parquet.status_code == 200, parquet.text
        (tmp_path / "served.parquet").write_bytes(parquet.content)
        frame = pq.read_table(tmp_path / "served.parquet").to_pandas().set_index("row_id").sort_index()
        np.testing.assert_allclose(frame["y_score"].to_numpy(), expected.to_numpy(), rtol=1e-6)
    finally:
        api.stop()


def test_a_new_champion_predicts_the_recent_days_again(shop, state_dir, instance, tmp_path):
    defs = exported(instance)
    warehouse = Warehouse()
    suite = load_suites(settings.suites_file())["returns"]
    ticks = Ticks(instance)
    [first] = ticks.keys()
    assert evaluate(instance, first).success
    sensor = defs.get_sensor_def(CHAMPION_SENSOR)
    context = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
    assert sensor(context).run_requests == []  # no champion, nothing to predict with
    champion.promote(warehouse, suite, first, "ada", "first", "run-1")
    assert predict(defs, instance, DAY).success  # predicted by hand before the sensor looks

    # The suite's first champion: the recent exported days that nobody predicted yet, which
    # the automation sensor passed over while there was no champion (repredict_days: 2).
    first_sight = sensor(dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}))
    assert [r.partition_key for r in first_sight.run_requests] == [EARLIER]
    for day in ["2024-03-09", "2024-03-10", EARLIER]:
        assert predict(defs, instance, day).success

    shop["repo"].commit(
        "Regularise more",
        {"model.py": team.MODEL.replace("LogisticRegression()", "LogisticRegression(C=0.5)")},
    )
    [second] = ticks.keys()
    assert evaluate(instance, second).success
    champion.promote(warehouse, suite, second, "bob", "simpler", "run-2")
    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": warehouse}, cursor=first_sight.cursor
    )
    changed = sensor(context)
    assert sorted(r.partition_key for r in changed.run_requests) == [EARLIER, DAY]  # repredict_days: 2
    assert all(r.asset_selection == [dg.AssetKey(PREDICTIONS)] for r in changed.run_requests)
    for request in changed.run_requests:
        assert predict(defs, instance, request.partition_key).success
    by_day = warehouse.read(PREDICTIONS).groupby("_partition")["evaluation_key"].agg(set)
    assert by_day.to_dict() == {
        "2024-03-09": {first},
        "2024-03-10": {first},
        EARLIER: {second},
        DAY: {second},
    }
    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": warehouse}, cursor=changed.cursor
    )
    assert sensor(context).run_requests == []  # nothing twice


def test_drift_fires_on_a_shifted_day_and_stays_quiet_on_an_ordinary_one(shop, state_dir, instance):
    # The shop's prices jump on the last day: the same orders, six times the amount.
    engine = sa.create_engine(os.environ[team.SOURCE_ENV])
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE orders SET amount = amount * 6 WHERE placed_at >= :day"), {"day": DAY}
        )
    engine.dispose()
    defs = exported(instance)
    [key] = Ticks(instance).keys()
    assert evaluate(instance, key).success
    champion.promote(
        Warehouse(), load_suites(settings.suites_file())["returns"], key, "ada", "first", "run-1"
    )

    checks = {}
    for day in (EARLIER, DAY):
        result = predict(defs, instance, day)
        assert result.success
        checks[day] = {c.check_name: c for c in result.get_asset_check_evaluations()}
        [materialization] = materializations(result, PREDICTIONS)
        quality = materialization.metadata
        assert (
            quality["quality/roc_auc_low"].value
            <= quality["quality/roc_auc"].value
            <= quality["quality/roc_auc_high"].value
        )
    quiet, shifted = checks[EARLIER][DRIFT_CHECK], checks[DAY][DRIFT_CHECK]
    assert quiet.passed, quiet.description
    assert not shifted.passed and shifted.severity == dg.AssetCheckSeverity.ERROR
    assert shifted.description.startswith("amount"), shifted.description
    assert shifted.metadata["psi/amount"].value > 0.25 > quiet.metadata["psi/amount"].value
