"""An evaluation's three tables are written in one transaction, on SQLite and PostgreSQL."""

import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines.evaluation.gates import Comparison
from collab_pipelines.evaluation.records import (
    METRICS,
    PREDICTIONS,
    RESULTS,
    metrics_frame,
    results_row,
    write_evaluation,
)
from collab_pipelines.warehouse.engine import WarehouseError
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.conftest import new_postgres_database

KEY = "delays:model@1a2b3c4d5e"


def predictions(score: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "evaluation_key": KEY,
            "row_id": ["1", "2"],
            "time": pd.to_datetime(["2013-01-01 05:00", "2013-01-01 06:00"]),
            "y_true": pd.Series([0, 1], dtype="Int64"),
            "y_pred": pd.Series([0, 1], dtype="Int64"),
            "y_score": [score, 1 - score],
        }
    )


def write(warehouse: Warehouse, status: str, score: float, results: pd.DataFrame | None = None) -> None:
    write_evaluation(
        warehouse,
        KEY,
        results
        if results is not None
        else results_row(KEY, "delays", {"model": "1a2b"}, "run", status=status),
        metrics_frame(KEY, {"roc_auc": Comparison("roc_auc", score)}),
        predictions(score),
    )


def check_atomic(warehouse: Warehouse) -> None:
    write(warehouse, "passed", 0.1)
    # The results table is written last; a failure there must leave the first two as they were.
    broken = results_row(KEY, "delays", {"model": "1a2b"}, "run", status="regressed").assign(no_such_column=1)
    with pytest.raises(WarehouseError, match=f"recording evaluation {KEY} .* previous rows are unchanged"):
        write(warehouse, "regressed", 0.3, broken)
    assert warehouse.read(PREDICTIONS)["y_score"].tolist() == [0.1, 0.9]
    assert warehouse.read(METRICS)["value"].tolist() == [0.1]
    assert warehouse.read(RESULTS)["status"].tolist() == ["passed"]
    write(warehouse, "regressed", 0.3)
    assert warehouse.read(RESULTS)["status"].tolist() == ["regressed"]
    assert warehouse.read(PREDICTIONS)["y_score"].tolist() == [0.3, 0.7]


def test_one_transaction_per_evaluation_on_sqlite(state_dir):
    check_atomic(Warehouse())


def test_one_transaction_per_evaluation_on_postgresql(postgres_server_url):
    with new_postgres_database(postgres_server_url, "collab_records") as url:
        check_atomic(Warehouse(url=url))


def test_an_older_results_table_gets_the_new_columns(state_dir):
    warehouse = Warehouse()
    old = results_row(KEY, "delays", {"model": "1a2b"}, "run", status="passed").drop(
        columns=["prediction_diff", "changed_share"]
    )
    warehouse.replace(RESULTS, old)
    write_evaluation(
        warehouse,
        KEY,
        results_row(KEY, "delays", {}, "run", status="passed", prediction_diff="within", changed_share=0.02),
        metrics_frame(KEY, {}),
        predictions(0.2),
    )
    [row] = warehouse.read(RESULTS).to_dict("records")
    assert row["prediction_diff"] == "within" and row["changed_share"] == 0.02


def indexed_columns(warehouse: Warehouse, table: str) -> set[tuple[str, ...]]:
    return {tuple(index["column_names"]) for index in sa.inspect(warehouse.engine()).get_indexes(table)}


def check_indexed(warehouse: Warehouse) -> None:
    # A table created before the index existed is migrated on the next write, rows intact.
    warehouse.replace(RESULTS, results_row("old:model@0000000", "old", {}, "run", status="passed"))
    assert ("evaluation_key",) not in indexed_columns(warehouse, RESULTS)
    write(warehouse, "passed", 0.1)
    for table in (RESULTS, METRICS, PREDICTIONS):
        assert ("evaluation_key",) in indexed_columns(warehouse, table), table
    assert sorted(warehouse.read(RESULTS)["evaluation_key"]) == sorted([KEY, "old:model@0000000"])


def test_evaluation_tables_are_indexed_by_key_on_sqlite(state_dir):
    check_indexed(Warehouse())


def test_evaluation_tables_are_indexed_by_key_on_postgresql(postgres_server_url):
    with new_postgres_database(postgres_server_url, "collab_records") as url:
        check_indexed(Warehouse(url=url))
