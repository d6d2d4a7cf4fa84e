"""Writing one evaluation to the warehouse: its result, metrics and predictions, in one
transaction, so a reader never sees a result without its predictions or the reverse.

No Dagster. The tables are declared in datasets.py (docs/evaluation.md lists their columns).
"""

import json
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from collab_pipelines import fault_points
from collab_pipelines.warehouse.engine import WarehouseError, describe, insert_frame
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines.warehouse.tables import TableLayout

RESULTS, METRICS, PREDICTIONS = "evaluation_results", "evaluation_metrics", "evaluation_predictions"
# Every reader (the data API, reports, the next commit's baseline) selects one evaluation key,
# and every write deletes one: the index keeps both from scanning all evaluations ever made.
# No key is declared to the database: a model's own row ids are not guaranteed unique.
_LAYOUT = TableLayout(indexes=(("evaluation_key",),))
PASSED, REGRESSED, FAILED = "passed", "regressed", "failed"
# Columns added after a deployment may have created its tables; added on first write.
_ADDED_COLUMNS = {
    RESULTS: {
        "prediction_diff": sa.Text(),
        "changed_share": sa.Float(),
        "contract": sa.Text(),
        "sandbox": sa.Text(),
        "trigger": sa.Text(),
    }
}


def results_row(key_text: str, suite: str, commits: dict[str, str], run_id: str, **values) -> pd.DataFrame:
    row = {
        "evaluation_key": key_text,
        "suite": suite,
        "commits": json.dumps(commits, sort_keys=True),
        "status": None,
        "message": None,
        "baseline_key": None,
        "split_at": None,
        "data_through": None,
        "data_version": None,
        "train_rows": None,
        "test_rows": None,
        "seconds": None,
        "prediction_diff": None,
        "changed_share": None,
        "contract": None,
        "sandbox": None,
        "trigger": None,
        "evaluated_at": datetime.now(UTC).replace(tzinfo=None),
        "run_id": run_id,
    }
    row.update(values)
    frame = pd.DataFrame([row])
    frame["split_at"] = pd.to_datetime(frame["split_at"])
    for column in ("train_rows", "test_rows"):
        frame[column] = frame[column].astype("Int64")
    for column in ("seconds", "changed_share"):
        frame[column] = frame[column].astype(float)
    return frame


def empty_predictions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "evaluation_key": pd.Series(dtype=str),
            "row_id": pd.Series(dtype=str),
            "time": pd.Series(dtype="datetime64[ns]"),
            "y_true": pd.Series(dtype="Int64"),
            "y_pred": pd.Series(dtype="Int64"),
            "y_score": pd.Series(dtype=float),
        }
    )


def metrics_frame(key: str, comparisons: dict) -> pd.DataFrame:
    rows = [
        {
            "evaluation_key": key,
            "metric": c.metric,
            "value": c.value,
            "baseline_value": c.baseline_value,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
        }
        for c in comparisons.values()
    ]
    frame = pd.DataFrame(
        rows, columns=["evaluation_key", "metric", "value", "baseline_value", "ci_low", "ci_high"]
    )
    for column in ("value", "baseline_value", "ci_low", "ci_high"):
        frame[column] = frame[column].astype(float)
    return frame


def write_evaluation(
    warehouse: Warehouse, key: str, results: pd.DataFrame, metrics: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    """Replace the key's rows in the three tables inside one transaction."""
    engine = warehouse.engine()
    try:
        with engine.begin() as connection:
            for table, frame in ((PREDICTIONS, predictions), (METRICS, metrics), (RESULTS, results)):
                _replace(connection, table, key, frame)
            # Every row of the evaluation written, none committed: the worst moment to lose the
            # worker (collab_pipelines_tests/faults/test_evaluation_write.py).
            fault_points.reached("evaluation.result_written")
    except Exception as error:
        raise WarehouseError(
            f"recording evaluation {key} in {describe(engine)} failed; its previous rows are unchanged: {error}"
        ) from error


def _replace(connection: sa.Connection, table: str, key: str, frame: pd.DataFrame) -> None:
    inspector = sa.inspect(connection)
    if inspector.has_table(table):
        present = {column["name"] for column in inspector.get_columns(table)}
        for column, column_type in _ADDED_COLUMNS.get(table, {}).items():
            if column not in present:
                preparer = connection.dialect.identifier_preparer
                kind = column_type.compile(dialect=connection.dialect)
                connection.execute(
                    sa.text(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column)} {kind}")
                )
        target = sa.Table(table, sa.MetaData(), autoload_with=connection)
        connection.execute(target.delete().where(target.c.evaluation_key == key))
    insert_frame(connection, table, frame, layout=_LAYOUT)
