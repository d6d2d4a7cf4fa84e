"""One evaluation from key to verdict, recorded: check out, train, score, compare, record.

No Dagster here beyond what it is handed: the asset, the tuning job and the benchmark call
it. The checkout, the run and the verdict are `verdict.py`'s, shared with a data scientist's
try; this adds the warehouse: where the data is read and the verdict recorded. Whatever the
data scientist's code does wrong becomes an `EvaluationFailed` naming the commit; the failure is
recorded in the warehouse too, so the data API shows it.
"""

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import sqlalchemy as sa

from collab_pipelines.evaluation.candidate_process import EvaluationFailed, OutputLog
from collab_pipelines.evaluation.champion import apply_policy
from collab_pipelines.evaluation.contract import CONTRACT_FILE
from collab_pipelines.evaluation.data import (
    EvaluationData,
    EvaluationDataError,
    load_evaluation_data,
)
from collab_pipelines.evaluation.gates import GateVerdict
from collab_pipelines.evaluation.records import (
    FAILED,
    PASSED,
    PREDICTIONS,
    RESULTS,
    empty_predictions,
    metrics_frame,
    results_row,
    write_evaluation,
)
from collab_pipelines.evaluation.repos import GitError, GitRepository
from collab_pipelines.evaluation.suites import Suite
from collab_pipelines.evaluation.verdict import (
    BASELINE_WAIT_SECONDS,
    Checkout,
    Evaluation,
    await_ancestors,
    check_out,
    declared_and_pinned,
    harness_failure,
    judged,
    run_commit,
    sandbox_label,
)
from collab_pipelines.warehouse.engine import WarehouseError
from collab_pipelines.warehouse.resources import Warehouse

__all__ = ["Checkout", "Evaluation", "check_out", "evaluate_key", "run_commit"]


class WarehouseRecords:
    """The recorded evaluations, read from the warehouse's evaluation tables."""

    transient = (WarehouseError, sa.exc.OperationalError)

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def passing(self, suite: str) -> Sequence[tuple[str, str]]:
        if not self.warehouse.has_table(RESULTS):
            return []
        passed = self.warehouse.read(
            RESULTS, where={"suite": suite, "status": PASSED}, columns=["evaluation_key", "commits"]
        )
        return list(zip(passed["evaluation_key"], passed["commits"], strict=True))

    def result(self, key: str) -> dict | None:
        if not self.warehouse.has_table(RESULTS):
            return None
        results = self.warehouse.read(RESULTS, where={"evaluation_key": key})
        return None if results.empty else results.iloc[0].to_dict()

    def predictions(self, key: str) -> pd.DataFrame:
        return self.warehouse.read(PREDICTIONS, where={"evaluation_key": key})


def evaluate_key(
    key_text: str,
    suites: dict[str, Suite],
    repository: Callable[[object], GitRepository],
    warehouse: Warehouse,
    *,
    data_through: str | None = None,
    run_id: str = "",
    log=None,
    output: OutputLog | None = None,
    trigger: str | None = None,
    running: Callable[[], Iterable[str]] | None = None,
) -> Evaluation:
    """Evaluate one key and record it. Raises EvaluationFailed (also recorded) for a bad commit.

    `trigger` is the repository and branch whose new commit made the combination (the sensor's
    `collab/trigger` tag), recorded so a commit's own change can be told from the combinations
    others' commits made with it. `running` gives the keys being evaluated now: the verdict
    waits for those that are ancestor combinations of this one (`await_ancestors`).
    """
    checkout = None
    try:
        checkout = check_out(key_text, suites, repository)
        declared, contract = declared_and_pinned(checkout)

        def load() -> EvaluationData:
            try:
                return load_evaluation_data(contract, warehouse, checkout.where(CONTRACT_FILE), data_through)
            except EvaluationDataError as error:
                raise EvaluationFailed(str(error), "contract") from error

        data, outcome = run_commit(checkout, contract, load, checkout.suite.limits, output=output)
        try:
            still_running = await_ancestors(checkout, running, log) if running else []
        except GitError as error:
            raise harness_failure(checkout, error) from error
        evaluation = judged(
            checkout, declared, contract, data, outcome, suites, repository, WarehouseRecords(warehouse), log
        )
    except EvaluationFailed as failure:
        _record_failure(key_text, checkout, failure, warehouse, run_id, trigger)
        raise
    if still_running:
        verdict = evaluation.verdict
        sentence = (
            f"the baseline was chosen while {', '.join(still_running)} (ancestor combinations) were "
            f"still being evaluated after {BASELINE_WAIT_SECONDS:g} s"
        )
        evaluation = dataclasses.replace(
            evaluation, verdict=GateVerdict(verdict.passed, [*verdict.reasons, sentence], verdict.comparisons)
        )
    record(evaluation, warehouse, run_id, trigger)
    apply_policy(evaluation, warehouse, run_id, log)
    return evaluation


def _commit_shas(checkout: Checkout | None) -> dict[str, str]:
    return {name: commit.sha for name, commit in checkout.commits.items()} if checkout else {}


def _record_failure(
    key_text: str,
    checkout: Checkout | None,
    failure: EvaluationFailed,
    warehouse: Warehouse,
    run_id: str,
    trigger: str | None = None,
) -> None:
    suite = checkout.suite.name if checkout else key_text.partition(":")[0]
    row = results_row(
        key_text,
        suite,
        _commit_shas(checkout),
        run_id,
        status=FAILED,
        message=str(failure)[:4000],
        sandbox=sandbox_label(checkout.suite) if checkout else None,
        trigger=trigger_of(checkout, trigger),
    )
    write_evaluation(warehouse, key_text, row, metrics_frame(key_text, {}), empty_predictions())


def trigger_of(checkout: Checkout | None, trigger: str | None) -> str | None:
    """The run's trigger; a suite of one repository has no other change to tell it from."""
    if trigger or checkout is None or len(checkout.commits) != 1:
        return trigger
    name = next(iter(checkout.commits))
    return f"{name}/{checkout.suite.repository(name).branches[0]}"


def record(evaluation: Evaluation, warehouse: Warehouse, run_id: str, trigger: str | None = None) -> None:
    key = str(evaluation.checkout.key)
    predictions = evaluation.outcome.predictions.copy()
    times = evaluation.data.frames[evaluation.contract.dataset]
    row_ids = times[evaluation.contract.row_id].astype(str)
    # A row id seen twice keeps its last time. Looked up as one index, not a dict built from
    # every row of the dataset (tens of thousands of Timestamp objects per evaluation).
    last = ~row_ids.duplicated(keep="last").to_numpy()
    time_by_row = pd.Series(
        pd.to_datetime(times[evaluation.contract.time_column]).to_numpy()[last],
        index=row_ids.to_numpy()[last],
    )
    predicted_ids = predictions["row_id"].astype(str)
    frame = pd.DataFrame(
        {
            "evaluation_key": key,
            "row_id": predicted_ids,
            "time": pd.to_datetime(time_by_row.reindex(predicted_ids.to_numpy()).to_numpy()),
            "y_true": predictions["y_true"].round().astype("Int64"),
            "y_pred": predictions["y_pred"].round().astype("Int64"),
            "y_score": predictions["y_score"].astype(float),
        }
    )
    data, outcome, diff = evaluation.data, evaluation.outcome, evaluation.diff
    results = results_row(
        key,
        evaluation.checkout.suite.name,
        _commit_shas(evaluation.checkout),
        run_id,
        status=evaluation.status,
        message="; ".join(evaluation.verdict.reasons)[:4000],
        baseline_key=evaluation.baseline_key,
        split_at=data.split_at,
        data_through=data.data_through,
        data_version=data.data_version,
        train_rows=outcome.train_rows,
        test_rows=outcome.test_rows,
        seconds=outcome.seconds,
        prediction_diff=diff.outcome,
        changed_share=diff.share,
        contract=json.dumps(evaluation.declared, sort_keys=True),
        sandbox=evaluation.sandbox,
        trigger=trigger_of(evaluation.checkout, trigger),
    )
    write_evaluation(warehouse, key, results, metrics_frame(key, evaluation.verdict.comparisons), frame)
