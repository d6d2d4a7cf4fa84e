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

# The champion watched day by day, every suite's rows in one table (monitoring.py writes it).
MONITORING = "champion_monitoring"
MONITORING_COLUMNS = {
    "suite": "string",
    "day": "string",
    "evaluation_key": "string",
    "role": "string",
    "measure": "string",
    "name": "string",
    "value": "float",
    "ci_low": "float",
    "ci_high": "float",
    "threshold": "float",
    "verdict": "string",
    "detail": "string",
    "rows": "integer",
    "run_id": "string",
    "at": "datetime",
}


def table_name(suite_name: str) -> str:
    """Also the asset's name: `delay-model` -> `delay_model_predictions`."""
    return f"{asset_name(suite_name)}_predictions"


# The tag each `<suite>_predictions` asset carries, holding its suite's name: the reports
# pattern renders each suite's drift report downstream of the assets that carry it.
PREDICTIONS_TAG = "collab/predictions-of"
