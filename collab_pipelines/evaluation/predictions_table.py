"""The champion's predictions table, `<suite>_predictions`: its name and columns.

Apart from predictions.py so the dataset registry (read by the data API and report kernels)
declares it without importing the harness.
"""

from collab_pipelines.evaluation.suites import asset_name

PARTITION_COLUMN = "_partition"
COLUMNS = {
    "row_id": "string",
    "time": "datetime",
    "y_pred": "integer",
    "y_score": "float",
    "evaluation_key": "string",
    "commits": "string",
    "data_version": "string",
    "run_id": "string",
    "predicted_at": "datetime",
    PARTITION_COLUMN: "string",
}


def table_name(suite_name: str) -> str:
    """Also the asset's name: `delay-model` -> `delay_model_predictions`."""
    return f"{asset_name(suite_name)}_predictions"
