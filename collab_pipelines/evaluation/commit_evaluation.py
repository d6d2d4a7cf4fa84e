"""One evaluation from key to verdict: check out, train, score, compare, record.

No Dagster here beyond what it is handed: the asset, the tuning job and the benchmark call
it. Whatever the data scientist's code does wrong becomes an `EvaluationFailed` naming the
commit; the failure is recorded in the warehouse too, so the data API shows it.
"""

import dataclasses
import json
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from collab_pipelines.evaluation.candidate_process import (
    CandidateProcess,
    EvaluationFailed,
    Outcome,
    OutputLog,
)
from collab_pipelines.evaluation.champion import apply_policy
from collab_pipelines.evaluation.contract import (
    CONTRACT_FILE,
    Contract,
    ContractError,
    parse_contract,
)
from collab_pipelines.evaluation.data import (
    EvaluationData,
    EvaluationDataError,
    load_evaluation_data,
)
from collab_pipelines.evaluation.gates import (
    DiffVerdict,
    GateVerdict,
    changed_share,
    compare,
    diff_gate,
    judge,
    with_diff,
)
from collab_pipelines.evaluation.pins import changes, decisive, pin
from collab_pipelines.evaluation.records import (
    FAILED,
    PASSED,
    PREDICTIONS,
    REGRESSED,
    RESULTS,
    empty_predictions,
    metrics_frame,
    results_row,
    write_evaluation,
)
from collab_pipelines.evaluation.repos import Commit, GitError, GitRepository
from collab_pipelines.evaluation.suites import EvaluationKey, EvaluationKeyError, Limits, Suite
from collab_pipelines.warehouse.engine import WarehouseError
from collab_pipelines.warehouse.resources import Warehouse


@dataclass
class Checkout:
    """The exact commits of one evaluation key, resolved in their repositories."""

    key: EvaluationKey
    suite: Suite
    repositories: dict[str, GitRepository]
    commits: dict[str, Commit]

    @property
    def contract_commit(self) -> Commit:
        return self.commits[self.suite.contract_repository]

    def where(self, path: str | None = None) -> str:
        repo = self.suite.contract_repository
        location = f"{repo}@{self.commits[repo].short}" if repo in self.commits else str(self.key)
        return f"{self.key} ({location}:{path})" if path else f"{self.key} ({location})"

    def declared(self) -> Contract:
        """The contract as the commit's collab.toml declares it."""
        text = self.repositories[self.suite.contract_repository].read_file(
            self.contract_commit.sha, CONTRACT_FILE
        )
        return parse_contract(text, self.where(CONTRACT_FILE))

    def contract(self) -> Contract:
        """The contract the commit is judged by: its declaration under the suite's pins."""
        return pin(self.declared(), self.suite, self.where(CONTRACT_FILE))

    def export(self, directory: Path) -> list[Path]:
        """Each repository's files at its commit, the contract's repository first."""
        order = [self.suite.contract_repository] + [
            name for name in self.repositories if name != self.suite.contract_repository
        ]
        return [self.repositories[name].export(self.commits[name].sha, directory / name) for name in order]


@dataclass
class Evaluation:
    checkout: Checkout
    contract: Contract
    data: EvaluationData
    outcome: Outcome
    baseline_key: str | None
    verdict: GateVerdict
    diff: DiffVerdict
    notes: list[str] = field(default_factory=list)
    declared: dict = field(default_factory=dict)
    """The decisive fields as the commit's collab.toml declares them (pins.decisive)."""
    contract_changes: list[str] = field(default_factory=list)
    """How they differ from the baseline's declaration."""

    @property
    def sandbox(self) -> str:
        return sandbox_label(self.checkout.suite)

    @property
    def status(self) -> str:
        return PASSED if self.verdict.passed else REGRESSED


def sandbox_label(suite: Suite) -> str:
    return "none (suite sets unsandboxed: true)" if suite.unsandboxed else "bubblewrap"


def check_out(
    key_text: str, suites: dict[str, Suite], repository: Callable[[object], GitRepository]
) -> Checkout:
    try:
        key = EvaluationKey.parse(key_text)
    except EvaluationKeyError as error:
        raise EvaluationFailed(str(error), "checkout") from error
    suite = suites.get(key.suite)
    if suite is None:
        raise EvaluationFailed(
            f"{key_text}: suite {key.suite!r} is not in the suites file (known: {sorted(suites)})", "checkout"
        )
    if [name for name, _ in key.commits] != [spec.name for spec in suite.specs]:
        raise EvaluationFailed(
            f"{key_text}: suite {suite.name!r} combines "
            f"{[spec.name for spec in suite.specs]}, the key names "
            f"{[name for name, _ in key.commits]}",
            "checkout",
        )
    repositories, commits = {}, {}
    for name, short in key.commits:
        repo = repository(suite.repository(name))
        try:
            repo.sync()
            commits[name] = repo.commit(repo.resolve(short))
        except GitError as error:
            raise EvaluationFailed(
                f"{key_text}: commit {name}@{short} cannot be read: {error}", "checkout"
            ) from error
        repositories[name] = repo
    return Checkout(key, suite, repositories, commits)


def run_commit(
    checkout: Checkout,
    contract: Contract,
    data: EvaluationData | Callable[[], EvaluationData],
    limits: Limits,
    params: dict | None = None,
    output: OutputLog | None = None,
) -> tuple[EvaluationData, Outcome]:
    """Export the commit, start its process, then hand it the data.

    Given a callable, the data is read while the process starts and imports the commit (about
    a second of the process's, spent reading the warehouse instead of waiting).
    """
    with tempfile.TemporaryDirectory(prefix="collab-checkout-") as tmp:
        sources = checkout.export(Path(tmp))
        with CandidateProcess(
            sources,
            contract,
            checkout.where(),
            limits,
            params,
            output=output,
            sandboxed=not checkout.suite.unsandboxed,
        ) as candidate:
            if callable(data):
                data = data()
            return data, candidate.finish(data.frames, data.split_at)


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
) -> Evaluation:
    """Evaluate one key and record it. Raises EvaluationFailed (also recorded) for a bad commit."""
    checkout = None
    try:
        checkout = check_out(key_text, suites, repository)
        try:
            declared = checkout.declared()
            contract = pin(declared, checkout.suite, checkout.where(CONTRACT_FILE))
        except ContractError as error:
            raise EvaluationFailed(str(error), "contract") from error

        def load() -> EvaluationData:
            try:
                return load_evaluation_data(contract, warehouse, checkout.where(CONTRACT_FILE), data_through)
            except EvaluationDataError as error:
                raise EvaluationFailed(str(error), "contract") from error

        data, outcome = run_commit(checkout, contract, load, checkout.suite.limits, output=output)
        evaluation = _judged(checkout, declared, contract, data, outcome, suites, repository, warehouse, log)
    except EvaluationFailed as failure:
        _record_failure(key_text, checkout, failure, warehouse, run_id)
        raise
    record(evaluation, warehouse, run_id)
    apply_policy(evaluation, warehouse, run_id, log)
    return evaluation


def _judged(checkout, declared, contract, data, outcome, suites, repository, warehouse, log) -> Evaluation:
    """The verdict on what the model returned. The model has done its part here: an error of the
    harness's own is recorded as the commit's failed evaluation, with its traceback, rather than
    a crash that run retries would repeat until they give up."""
    try:
        baseline_key, baseline_predictions, notes = _baseline(
            checkout, contract, data, suites, repository, warehouse, log
        )
        comparisons = compare(
            contract.metrics,
            outcome.predictions,
            baseline_predictions,
            outcome.metrics,
            gated=tuple(contract.gates),
        )
        changed = (
            None if baseline_predictions is None else changed_share(outcome.predictions, baseline_predictions)
        )
        diff = diff_gate(contract, changed, baseline_key)
        verdict = with_diff(judge(contract, comparisons, baseline_key), diff)
        changes = _contract_changes(baseline_key, decisive(declared), warehouse)
        verdict = _with_contract_changes(verdict, checkout.suite, baseline_key, changes)
        if checkout.suite.unsandboxed:
            verdict = GateVerdict(
                verdict.passed,
                [*verdict.reasons, f"UNSANDBOXED: suite {checkout.suite.name!r} sets unsandboxed: true"],
                verdict.comparisons,
            )
        return Evaluation(
            checkout, contract, data, outcome, baseline_key, verdict, diff, notes, decisive(declared), changes
        )
    except (EvaluationFailed, WarehouseError, sa.exc.OperationalError):
        raise  # the commit's own failure, or a lost connection worth the asset's retry
    except Exception as error:
        raise EvaluationFailed(
            f"{checkout.where()}: the harness failed after the model returned "
            f"({type(error).__name__}: {error}); this is the project's error, not the commit's",
            "harness",
            traceback.format_exc()[-8000:],
        ) from error


def _contract_changes(baseline_key: str | None, declared: dict, warehouse: Warehouse) -> list[str]:
    """The decisive fields this commit declares differently from its baseline."""
    if baseline_key is None or not warehouse.has_table(RESULTS):
        return []
    results = warehouse.read(RESULTS, where={"evaluation_key": baseline_key})
    if results.empty or "contract" not in results.columns or not results.iloc[0]["contract"]:
        return []  # recorded before contracts were: nothing to compare with
    return changes(json.loads(results.iloc[0]["contract"]), declared)


def _with_contract_changes(
    verdict: GateVerdict, suite: Suite, baseline_key, changed: list[str]
) -> GateVerdict:
    if not changed:
        return verdict
    reason = f"contract changed against baseline {baseline_key}: " + "; ".join(changed)
    if suite.contract_changes == "block":
        return GateVerdict(
            False,
            [f"{reason} (blocked: suite {suite.name!r} sets contract_changes: block)", *verdict.reasons],
            verdict.comparisons,
        )
    return GateVerdict(
        verdict.passed,
        [*verdict.reasons, f"{reason} (flagged: suite {suite.name!r} sets contract_changes: flag)"],
        verdict.comparisons,
    )


def _baseline(
    checkout: Checkout, current: Contract, data: EvaluationData, suites, repository, warehouse: Warehouse, log
):
    """The baseline's key and its predictions on this evaluation's test rows, if there is one."""
    baseline_key = find_baseline(checkout, warehouse)
    if baseline_key is None:
        return None, None, ["no baseline yet: this is the suite's first passing candidate"]
    results = warehouse.read(RESULTS, where={"evaluation_key": baseline_key})
    same_data = (
        not results.empty
        and results.iloc[0]["data_version"] == data.data_version
        and pd.Timestamp(results.iloc[0]["split_at"]) == data.split_at
    )
    if same_data:
        predictions = warehouse.read(PREDICTIONS, where={"evaluation_key": baseline_key})
        return baseline_key, predictions, [f"baseline {baseline_key} was scored on the same data"]
    # The data moved since the baseline was scored: score it again on exactly these rows,
    # so the comparison is paired. Its stored results stay as they were.
    try:
        baseline = check_out(baseline_key, suites, repository)
        # The baseline's code, judged on this evaluation's data fields and split: a paired comparison.
        code = baseline.contract()
        contract = dataclasses.replace(
            current,
            **{
                name: getattr(code, name)
                for name in ("features", "entry_point", "fit", "predict", "lock", "env")
            },
        )
        _, outcome = run_commit(baseline, contract, data, baseline.suite.limits)
    except (EvaluationFailed, ContractError) as error:
        if log:
            log.warning(f"baseline {baseline_key} could not be re-scored on the new data: {error}")
        return baseline_key, None, [f"baseline {baseline_key} could not be re-scored on this data: {error}"]
    return baseline_key, outcome.predictions, [f"baseline {baseline_key} was re-scored on this data"]


def find_baseline(checkout: Checkout, warehouse: Warehouse) -> str | None:
    """A pinned champion, else the nearest passing evaluation in this commit's history."""
    suite, key = checkout.suite, str(checkout.key)
    if suite.pinned_baseline:
        return None if suite.pinned_baseline == key else suite.pinned_baseline
    if not warehouse.has_table(RESULTS):
        return None
    passed = warehouse.read(
        RESULTS, where={"suite": suite.name, "status": PASSED}, columns=["evaluation_key", "commits"]
    )
    if passed.empty:
        return None
    history = {
        name: checkout.repositories[name].ancestors(commit.sha) for name, commit in checkout.commits.items()
    }
    positions = {name: {sha: index for index, sha in enumerate(shas)} for name, shas in history.items()}
    best, best_distance = None, None
    for candidate, commits_json in zip(passed["evaluation_key"], passed["commits"], strict=True):
        if candidate == key:
            continue
        commits = json.loads(commits_json)
        try:
            distance = sum(positions[name][commits[name]] for name in positions)
        except KeyError:
            continue  # not in this commit's history (another branch, or another combination)
        if best_distance is None or distance < best_distance:
            best, best_distance = candidate, distance
    return best


def _commit_shas(checkout: Checkout | None) -> dict[str, str]:
    return {name: commit.sha for name, commit in checkout.commits.items()} if checkout else {}


def _record_failure(
    key_text: str, checkout: Checkout | None, failure: EvaluationFailed, warehouse: Warehouse, run_id: str
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
    )
    write_evaluation(warehouse, key_text, row, metrics_frame(key_text, {}), empty_predictions())


def record(evaluation: Evaluation, warehouse: Warehouse, run_id: str) -> None:
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
    )
    write_evaluation(warehouse, key, results, metrics_frame(key, evaluation.verdict.comparisons), frame)
