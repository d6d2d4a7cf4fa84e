"""The champion's daily predictions: one day of the suite's dataset, predicted by the champion's
commit through the same sandboxed harness as its evaluation.

No Dagster. The champion's code is fitted on the suite's training window before the day
(`predictions.train_days`) and predicts every row of the day, with or without its label yet.
No model object ever leaves the candidate's process: each day is fitted afresh from the
commit, so the project never loads a pickle a data scientist's process wrote. The rows go to
the warehouse table `<suite>_predictions`, one partition a day, with the commit, the data
version of the inputs and the run, and the data API serves it as any dataset.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from collab_pipelines.evaluation.candidate_process import CandidateProcess, EvaluationFailed, OutputLog
from collab_pipelines.evaluation.commit_evaluation import check_out
from collab_pipelines.evaluation.contract import Contract, ContractError
from collab_pipelines.evaluation.data import EvaluationDataError, load_evaluation_data
from collab_pipelines.evaluation.gates import intervals
from collab_pipelines.evaluation.predictions_table import PARTITION_COLUMN, table_name
from collab_pipelines.evaluation.repos import GitRepository
from collab_pipelines.evaluation.scoring import compute_metrics
from collab_pipelines.evaluation.suites import Suite
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines.warehouse.tables import TableLayout

# Readers ask for a day; a day is replaced whole when it is predicted again.
_LAYOUT = TableLayout(indexes=((PARTITION_COLUMN,),))


@dataclass
class DayPredictions:
    suite: str
    day: str
    champion: str
    rows: pd.DataFrame
    data_version: str
    train_rows: int
    frames: dict[str, pd.DataFrame]
    """What the harness read: the training window and the day (for the drift check)."""
    contract: Contract
    quality: dict[str, Quality]
    """The champion's metrics on the day's rows whose label is known already (none: empty)."""


@dataclass(frozen=True)
class Quality:
    metric: str
    value: float
    low: float
    high: float
    rows: int
    floor: float | None
    """The suite's gate on the metric (`min`): the band the champion's quality should stay in."""

    @property
    def verdict(self) -> str:
        """below: the whole interval is under the floor; unsure: only the value is; within."""
        if self.floor is None or pd.isna(self.value) or self.value >= self.floor:
            return "within"
        return "below" if self.high < self.floor else "unsure"


def day_quality(contract: Contract, predicted: pd.DataFrame) -> dict[str, Quality]:
    """The champion's quality on the day: its metrics on the rows labelled already, with
    bootstrap intervals, against the suite's floors."""
    known = predicted[predicted["y_true"].notna()]
    if known.empty or known["y_true"].nunique() < 2:
        return {}
    values = compute_metrics(contract.metrics, known)
    bounds = intervals(contract.metrics, known)
    return {
        metric: Quality(
            metric,
            values[metric],
            *bounds[metric],
            len(known),
            contract.gates[metric].min if metric in contract.gates else None,
        )
        for metric in contract.metrics
    }


def predict_day(
    champion: str,
    suites: dict[str, Suite],
    repository: Callable[[object], GitRepository],
    warehouse: Warehouse,
    day: str,
    run_id: str = "",
    output: OutputLog | None = None,
) -> DayPredictions:
    """Predict `day` with the champion's commit and write it. Raises EvaluationFailed naming
    the champion and the day for anything the commit or its data does wrong."""
    fitted = _fit_and_predict(champion, suites, repository, warehouse, day, output)
    checkout, contract, data, predicted = fitted
    dataset = data.frames[contract.dataset]
    times = pd.Series(
        pd.to_datetime(dataset[contract.time_column]).to_numpy(), index=dataset[contract.row_id].astype(str)
    )
    row_ids = predicted["row_id"].astype(str)
    rows = pd.DataFrame(
        {
            "row_id": row_ids,
            "time": pd.to_datetime(times.reindex(row_ids.to_numpy()).to_numpy()),
            "y_pred": predicted["y_pred"].round().astype("Int64"),
            "y_score": predicted["y_score"].astype(float),
            "evaluation_key": champion,
            "commits": json.dumps(
                {name: commit.sha for name, commit in checkout.commits.items()}, sort_keys=True
            ),
            "data_version": data.data_version,
            "run_id": run_id,
            "predicted_at": datetime.now(UTC).replace(tzinfo=None),
            PARTITION_COLUMN: day,
        }
    )
    warehouse.replace(table_name(checkout.suite.name), rows, where={PARTITION_COLUMN: day}, layout=_LAYOUT)
    day_start = pd.Timestamp(day)
    train_rows = int((pd.to_datetime(dataset[contract.time_column]) < day_start).sum())
    return DayPredictions(
        checkout.suite.name,
        day,
        champion,
        rows,
        data.data_version,
        train_rows,
        data.frames,
        contract,
        day_quality(contract, predicted),
    )


def score_day(
    key: str,
    champion: Contract,
    suites: dict[str, Suite],
    repository: Callable[[object], GitRepository],
    warehouse: Warehouse,
    day: str,
    output: OutputLog | None = None,
) -> dict[str, Quality]:
    """Another evaluation (a challenger) fitted and scored on `day` exactly as the champion
    was, against the champion's metrics and floors. Nothing is written: the product's
    predictions stay the champion's."""
    *_, predicted = _fit_and_predict(key, suites, repository, warehouse, day, output)
    return day_quality(champion, predicted)


def _fit_and_predict(key, suites, repository, warehouse, day, output):
    """The commit of `key`, fitted in the sandboxed harness on the suite's training window
    before `day`, predicting every row of the day."""
    checkout = check_out(key, suites, repository)
    suite = checkout.suite
    where = f"{checkout.where()} predicting {day}"
    try:
        contract = checkout.contract()
    except ContractError as error:
        raise EvaluationFailed(str(error), "contract") from error
    spec = suite.predictions
    if spec is None:
        raise EvaluationFailed(
            f"suite {suite.name!r} asks for no predictions (predictions: in suites.yaml)", "contract"
        )
    since = (date.fromisoformat(day) - timedelta(days=spec.train_days)).isoformat()
    with tempfile.TemporaryDirectory(prefix="collab-predict-") as tmp:
        sources = checkout.export(Path(tmp))
        with CandidateProcess(
            sources, contract, where, suite.limits, output=output, sandboxed=not suite.unsandboxed
        ) as candidate:
            try:
                data = load_evaluation_data(contract, warehouse, where, data_through=day, since=since)
            except EvaluationDataError as error:
                raise EvaluationFailed(str(error), "contract") from error
            predicted = candidate.predict(data.frames, pd.Timestamp(day))
    return checkout, contract, data, predicted
