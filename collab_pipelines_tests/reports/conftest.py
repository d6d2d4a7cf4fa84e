"""A warehouse with a week of real exports and two evaluations, built once and copied per test."""

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines import settings
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

FIRST_DAY, LAST_DAY = "2013-01-01", "2013-01-07"
BASELINE_KEY = "delay-model:model@aaaa1111"
CANDIDATE_KEY = "delay-model:model@bbbb2222"


def fill_evaluations(warehouse: Warehouse) -> None:
    """Two evaluations of a delay model on the exported flights, the second against the first."""
    flights = warehouse.read("flights", columns=["id", "sched_dep_at", "dep_delay", "carrier"])
    flights = flights.dropna(subset=["dep_delay"]).reset_index(drop=True)
    rng = np.random.default_rng(7)
    y_true = (flights["dep_delay"] > 15).astype(int)
    signal = (flights["dep_delay"].clip(-20, 60) / 40).to_numpy()
    results, metrics, predictions = [], [], []
    for key, noise, baseline_key, evaluated_at in [
        (BASELINE_KEY, 0.9, None, "2013-01-08 01:00:00"),
        (CANDIDATE_KEY, 0.5, BASELINE_KEY, "2013-01-08 02:00:00"),
    ]:
        score = 1 / (1 + np.exp(-(signal * 3 - 1 + rng.normal(0, noise, len(flights)))))
        y_pred = (score > 0.5).astype(int)
        predictions.append(
            pd.DataFrame(
                {
                    "evaluation_key": key,
                    "row_id": flights["id"].astype(str),
                    "time": flights["sched_dep_at"],
                    "y_true": y_true,
                    "y_pred": y_pred,
                    "y_score": score,
                }
            )
        )
        accuracy = float((y_pred == y_true).mean())
        results.append(
            {
                "evaluation_key": key,
                "suite": "delay-model",
                "commits": key.split(":")[1],
                "status": "passed",
                "message": "all gates passed",
                "baseline_key": baseline_key,
                "split_at": pd.Timestamp("2013-01-05"),
                "data_through": LAST_DAY,
                "data_version": "v1",
                "train_rows": 2000,
                "test_rows": len(flights),
                "seconds": 3.2,
                "evaluated_at": pd.Timestamp(evaluated_at),
                "run_id": key[-8:],
            }
        )
        metrics.append(
            {
                "evaluation_key": key,
                "metric": "accuracy",
                "value": accuracy,
                "baseline_value": None,
                "ci_low": accuracy - 0.01,
                "ci_high": accuracy + 0.01,
            }
        )
    metrics[1]["baseline_value"] = metrics[0]["value"]
    warehouse.replace("evaluation_results", pd.DataFrame(results))
    warehouse.replace("evaluation_metrics", pd.DataFrame(metrics))
    warehouse.replace("evaluation_predictions", pd.concat(predictions, ignore_index=True))


@pytest.fixture(scope="session")
def warehouse_template(tmp_path_factory, source_template: Path) -> Path:
    state = tmp_path_factory.mktemp("reports-state")
    shutil.copy(source_template, state / "product.db")
    path = state / "warehouse.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(settings.STATE_DIR_ENV, str(state))
        patch.delenv(settings.WAREHOUSE_URL_ENV, raising=False)
        patch.delenv("COLLAB_SOURCE_URL", raising=False)
        warehouse = Warehouse(url=f"sqlite:///{path}")
        exports = [a for a in build_export_assets(load_catalog()) if a.key.path[0] in ("flights", "weather")]
        with dg.instance_for_test() as instance:
            dg.materialize(
                exports,
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": FIRST_DAY,
                    "dagster/asset_partition_range_end": LAST_DAY,
                },
                resources={"warehouse": warehouse, "sources": SqlSources()},
            )
        fill_evaluations(warehouse)
        warehouse.engine().dispose()
    return path


@pytest.fixture
def warehouse(state_dir: Path, warehouse_template: Path) -> Warehouse:
    """The project's default warehouse (a SQLite file in the state folder), already filled."""
    shutil.copy(warehouse_template, state_dir / "warehouse.db")
    return Warehouse()


def count_rows(url: str, sql: str, **params) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(sql), params).scalar_one())
    finally:
        engine.dispose()
