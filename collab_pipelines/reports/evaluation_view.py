"""What an evaluation report is about, for any suite: read from its `collab.toml`, not assumed.

The per-commit report (templates/evaluation_report.ipynb) explains one evaluation against
its baseline on the same test rows; the trend report (templates/evaluation_trend.ipynb) lays
every evaluated commit of a suite side by side. Everything a suite names (dataset, target,
time column, row id, metrics, gates, slices) comes from the contract at the evaluated commit,
read through the suites file and the repository, as the evaluation itself read it.

The tables and series the reports draw are in evaluation_figures.py. No Dagster at import:
a report kernel imports this.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from collab_pipelines import settings
from collab_pipelines.reports.notebook import ReportInputs

_STAGE = re.compile(r"\b(checkout|contract|environment|import|data|features|fit|predict|score)\b failed")


@dataclass(frozen=True)
class SuiteContract:
    """The parts of a suite's contract the reports use."""

    dataset: str
    target: str
    time_column: str
    row_id: str
    join: tuple[str, ...]
    metrics: tuple[str, ...]
    gates: dict[str, dict[str, float]]
    slices: tuple[str, ...] = ()
    where: str = ""


@dataclass
class Subject:
    """One evaluation and what it is compared with."""

    key: str
    result: pd.Series
    metrics: pd.DataFrame
    predictions: pd.DataFrame
    baseline: pd.DataFrame
    contract: SuiteContract | None
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.result["status"] == "failed"

    @property
    def baseline_key(self) -> str | None:
        value = self.result.get("baseline_key")
        return value if isinstance(value, str) and value else None


def read_contract(suite: str, commits_json: str | None) -> SuiteContract:
    """The suite's contract at the evaluated commit. Raises LookupError naming what is missing.

    `slices` is read from `[data]` (or `[evaluation]`) itself, whether or not this version of the
    contract model knows the field, so a report can use it before the evaluation does.
    """
    from collab_pipelines.config import parse
    from collab_pipelines.evaluation.contract import CONTRACT_FILE, ContractError, ContractFile, from_file
    from collab_pipelines.evaluation.pins import pin
    from collab_pipelines.evaluation.repos import GitError
    from collab_pipelines.evaluation.resources import ModelRepositories

    # The evaluation's own resource, with its defaults (suites file, mirrors folder): the kernel
    # reads the repositories where the commit sensor mirrors them, wherever that is.
    repositories = ModelRepositories()
    suites = repositories.suites()
    if suite not in suites:
        raise LookupError(f"suite {suite!r} is not in {settings.suites_file()}")
    spec = suites[suite].repository(suites[suite].contract_repository)
    commits = json.loads(commits_json or "{}")
    sha = commits.get(spec.name)
    if not sha:
        raise LookupError(f"the evaluation names no commit of {spec.name!r}")
    where = f"{spec.name}@{sha[:10]}:{CONTRACT_FILE}"
    try:
        text = repositories.repository(spec).read_file(sha, CONTRACT_FILE)
    except GitError as error:
        raise LookupError(f"{where} cannot be read: {error}") from error
    if text is None:
        raise LookupError(f"{where} does not exist")
    raw = tomllib.loads(text)
    slices: list[str] = []
    for section in ("data", "evaluation"):
        if isinstance(raw.get(section), dict) and "slices" in raw[section]:
            slices = list(raw[section].pop("slices") or [])
    try:
        file = parse(ContractFile, raw, where, entry_depth=0, error=ContractError)
        # What the verdict was judged by: the commit's declaration under the suite's pins.
        contract = pin(from_file(file), suites[suite], where)
    except ContractError as error:
        raise LookupError(str(error)) from error
    return SuiteContract(
        dataset=contract.dataset,
        target=contract.target,
        time_column=contract.time_column,
        row_id=contract.row_id,
        join=tuple(contract.join),
        metrics=tuple(contract.metrics),
        gates={
            m: {k: v for k, v in vars(g).items() if k != "metric" and v is not None}
            for m, g in contract.gates.items()
        },
        slices=tuple(str(s) for s in slices),
        where=where,
    )


def load_subject(inputs: ReportInputs) -> Subject:
    """The evaluation `inputs` is bound to, its metrics, predictions and baseline predictions."""
    results = inputs["results"]
    if results.empty:
        raise LookupError(f"no evaluation {inputs.partition_key!r} in {inputs.datasets['results']}")
    result = results.iloc[0]
    notes = []
    try:
        contract = read_contract(result["suite"], result.get("commits"))
    except LookupError as error:
        contract = None
        notes.append(f"The suite's contract could not be read ({error}); slices and features are left out.")
    baseline_key = result.get("baseline_key")
    predictions = inputs["predictions"]
    has_baseline = isinstance(baseline_key, str) and baseline_key
    baseline = (
        inputs.load("predictions", partition_keys=[baseline_key]) if has_baseline else predictions.iloc[0:0]
    )
    return Subject(inputs.partition_key, result, inputs["metrics"], predictions, baseline, contract, notes)


def failure_details(result: pd.Series, instance: Any = None) -> dict[str, str]:
    """Stage, message and traceback of a failed evaluation.

    The warehouse keeps the message (which names the stage); the traceback is in the failed
    run's step failure, read from the Dagster instance when one is at hand.
    """
    message = str(result.get("message") or "")
    stage = result.get("stage") if isinstance(result.get("stage"), str) else None
    match = _STAGE.search(message)
    details = {
        "stage": stage or (match.group(1) if match else "unknown"),
        "message": message,
        "traceback": "",
    }
    if isinstance(result.get("traceback"), str):
        details["traceback"] = result["traceback"]
        return details
    if instance is None and os.environ.get("DAGSTER_HOME") and isinstance(result.get("run_id"), str):
        import dagster as dg

        instance = dg.DagsterInstance.get()
    if instance is not None and isinstance(result.get("run_id"), str):
        details.update(_run_failure(instance, result["run_id"]))
    return details


def _run_failure(instance: Any, run_id: str) -> dict[str, str]:
    import dagster as dg

    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.event_specific_data
        failure = getattr(data, "user_failure_data", None)
        if failure is None:
            continue
        metadata = {k: getattr(v, "value", v) for k, v in (failure.metadata or {}).items()}
        found = {"traceback": str(metadata.get("traceback", "")).strip("`\n ")}
        if metadata.get("stage"):
            found["stage"] = str(metadata["stage"])
        return found
    return {}
