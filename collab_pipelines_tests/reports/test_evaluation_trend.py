"""The trend across commits shows every commit with its verdict: a failed one, which has no
metrics, and a regressed one are marked as such, in the plot and in the table."""

import nbformat

from collab_pipelines.evaluation.gates import Comparison
from collab_pipelines.evaluation.records import (
    empty_predictions,
    metrics_frame,
    results_row,
    write_evaluation,
)
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.reports import jobs
from collab_pipelines_tests.reports.helpers import execute, materializations

SUITE = "churn"
VERDICTS = [  # in the order evaluated: commit, verdict, roc_auc (none for the failed one)
    ("model@aaaaaaaaaa", "passed", 0.71),
    ("model@bbbbbbbbbb", "regressed", 0.64),
    ("model@cccccccccc", "failed", None),
    ("model@dddddddddd", "passed", 0.72),
]


def test_the_trend_marks_failed_and_regressed_commits(state_dir, instance):
    warehouse = Warehouse()
    for commit, status, value in VERDICTS:
        key = f"{SUITE}:{commit}"
        comparisons = {} if value is None else {"roc_auc": Comparison("roc_auc", value)}
        row = results_row(key, SUITE, {"model": commit[6:] * 4}, "r", status=status, message=status)
        write_evaluation(warehouse, key, row, metrics_frame(key, comparisons), empty_predictions())

    assert execute(jobs.evaluation_trend_job, instance).success
    notebook = nbformat.read(materializations(instance, "evaluation_trend")[None]["notebook"], as_version=4)
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    text = "\n".join(str(output.get("data", {}).get("text/markdown", "")) for output in outputs)
    assert f"Suite `{SUITE}`: 4 commit(s), 2 passed, 1 regressed, 1 failed" in text
    assert "Failed, so without metrics (marked × at the foot of each plot): `model@cccccccccc`" in text
    [table] = [
        o["data"]["text/plain"] for o in outputs if "status" in o.get("data", {}).get("text/plain", "")
    ]
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert rows == {
        "model@aaaaaaaaaa": ["passed", "0.71"],
        "model@bbbbbbbbbb": ["regressed", "0.64"],
        "model@cccccccccc": ["failed", "NaN"],
        "model@dddddddddd": ["passed", "0.72"],
    }
    assert any("image/png" in output.get("data", {}) for output in outputs)
