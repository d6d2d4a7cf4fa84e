"""One candidate from its commits to its verdict: check out, run, find the baseline, judge.

No Dagster and no warehouse: the server's evaluation (`commit_evaluation.py`, which records the
verdict in the warehouse) and a data scientist's try (`local_try.py`, which reads the records
through the data API) share every line of it, so they give the same verdict on the same data.
Where the records are kept is a `Records`; whatever reads them says which of its errors are
worth the asset's retry rather than the commit's failure.
"""

import dataclasses
import json
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from collab_pipelines.evaluation.candidate_process import (
    CandidateProcess,
    EvaluationFailed,
    Outcome,
    OutputLog,
)
from collab_pipelines.evaluation.contract import CONTRACT_FILE, Contract, ContractError, parse_contract
from collab_pipelines.evaluation.gates import (
    DiffVerdict,
    GateVerdict,
    changed_share,
    compare,
    diff_gate,
    judge,
    with_diff,
)
from collab_pipelines.evaluation.inputs import EvaluationData
from collab_pipelines.evaluation.pins import changes, decisive, pin
from collab_pipelines.evaluation.repos import Commit, GitError, GitRepository
from collab_pipelines.evaluation.suites import (
    SHORT_SHA_LENGTH,
    EvaluationKey,
    EvaluationKeyError,
    Limits,
    Suite,
)

PASSED, REGRESSED, FAILED = "passed", "regressed", "failed"


class Records(Protocol):
    """The recorded evaluations a verdict compares with."""

    transient: tuple[type[BaseException], ...]
    """Errors of reaching the records (a lost connection): never the commit's failure."""

    def passing(self, suite: str) -> Sequence[tuple[str, str]]:
        """(evaluation key, commits as JSON) of the suite's passed evaluations."""

    def result(self, key: str) -> dict | None:
        """The recorded result of one evaluation: data_version, split_at, contract."""

    def predictions(self, key: str) -> pd.DataFrame:
        """row_id, y_true, y_pred, y_score of one evaluation."""


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

    def contract_text(self) -> str | None:
        return self.repositories[self.suite.contract_repository].read_file(
            self.contract_commit.sha, CONTRACT_FILE
        )

    def declared(self) -> Contract:
        """The contract as the commit's collab.toml declares it."""
        return parse_contract(self.contract_text(), self.where(CONTRACT_FILE))

    def contract(self) -> Contract:
        """The contract the commit is judged by: its declaration under the suite's pins."""
        return pin(self.declared(), self.suite, self.where(CONTRACT_FILE))

    def history(self) -> dict[str, list[str]]:
        """Each repository's commit and its first-parent ancestors, nearest first."""
        return {name: self.repositories[name].ancestors(commit.sha) for name, commit in self.commits.items()}

    def positions(self) -> dict[str, dict[str, int]]:
        """Per repository, each first-parent ancestor's (short) SHA and its steps back."""
        return {
            name: {sha[:SHORT_SHA_LENGTH]: index for index, sha in enumerate(shas)}
            for name, shas in self.history().items()
        }

    def where_in(self, name: str) -> str:
        """Where a failure of repository `name`'s own code lies: the key and that commit."""
        return f"{self.key} ({name}@{self.commits[name].short})"

    def order(self) -> list[str]:
        """The repositories as exported and put on the import path: the contract's first."""
        return [self.suite.contract_repository] + [
            name for name in self.repositories if name != self.suite.contract_repository
        ]

    def export(self, directory: Path) -> list[Path]:
        """Each repository's files at its commit, the contract's repository first."""
        return [
            self.repositories[name].export(self.commits[name].sha, directory / name) for name in self.order()
        ]


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
    baseline_predictions: pd.DataFrame | None = None
    """The baseline's predictions on the same test rows, where there is a baseline."""

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


def declared_and_pinned(checkout: Checkout) -> tuple[Contract, Contract]:
    """The contract as declared, and as judged (under the suite's pins); a bad one fails the commit."""
    try:
        declared = checkout.declared()
        return declared, pin(declared, checkout.suite, checkout.where(CONTRACT_FILE))
    except ContractError as error:
        raise EvaluationFailed(str(error), "contract") from error


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
    a second of the process's, spent reading the data instead of waiting).
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
            origins=[checkout.where_in(name) for name in checkout.order()],
        ) as candidate:
            if callable(data):
                data = data()
            return data, candidate.finish(data.frames, data.split_at)


def judged(
    checkout: Checkout,
    declared: Contract,
    contract: Contract,
    data: EvaluationData,
    outcome: Outcome,
    suites: dict[str, Suite],
    repository: Callable[[object], GitRepository],
    records: Records,
    log=None,
) -> Evaluation:
    """The verdict on what the model returned. The model has done its part here: an error of the
    harness's own is recorded as the commit's failed evaluation, with its traceback, rather than
    a crash that run retries would repeat until they give up."""
    try:
        baseline_key, baseline_predictions, notes = baseline(
            checkout, contract, data, suites, repository, records, log
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
        changed_fields = contract_changes(baseline_key, decisive(declared), records)
        verdict = with_contract_changes(verdict, checkout.suite, baseline_key, changed_fields)
        if checkout.suite.unsandboxed:
            verdict = GateVerdict(
                verdict.passed,
                [*verdict.reasons, f"UNSANDBOXED: suite {checkout.suite.name!r} sets unsandboxed: true"],
                verdict.comparisons,
            )
        return Evaluation(
            checkout,
            contract,
            data,
            outcome,
            baseline_key,
            verdict,
            diff,
            notes,
            decisive(declared),
            changed_fields,
            baseline_predictions,
        )
    except (EvaluationFailed, *records.transient):
        raise  # the commit's own failure, or a lost connection worth the asset's retry
    except Exception as error:
        raise harness_failure(checkout, error) from error


def harness_failure(checkout: Checkout, error: Exception) -> EvaluationFailed:
    """An error of the harness's own after the model returned: the commit's recorded failure,
    with the traceback being handled, rather than a crash that run retries would repeat."""
    return EvaluationFailed(
        f"{checkout.where()}: the harness failed after the model returned "
        f"({type(error).__name__}: {error}); this is the project's error, not the commit's",
        "harness",
        traceback.format_exc()[-8000:],
    )


def contract_changes(baseline_key: str | None, declared: dict, records: Records) -> list[str]:
    """The decisive fields this commit declares differently from its baseline."""
    if baseline_key is None:
        return []
    result = records.result(baseline_key)
    if not result or not result.get("contract"):
        return []  # recorded before contracts were: nothing to compare with
    return changes(json.loads(result["contract"]), declared)


def with_contract_changes(
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


def baseline(
    checkout: Checkout, current: Contract, data: EvaluationData, suites, repository, records: Records, log
):
    """The baseline's key and its predictions on this evaluation's test rows, if there is one."""
    baseline_key = find_baseline(checkout, records)
    if baseline_key is None:
        return None, None, ["no baseline yet: this is the suite's first passing candidate"]
    result = records.result(baseline_key)
    same_data = (
        result is not None
        and result.get("data_version") == data.data_version
        and result.get("split_at") is not None
        and pd.Timestamp(result["split_at"]) == data.split_at
    )
    if same_data:
        predictions = records.predictions(baseline_key)
        return baseline_key, predictions, [f"baseline {baseline_key} was scored on the same data"]
    # The data moved since the baseline was scored: score it again on exactly these rows,
    # so the comparison is paired. Its stored results stay as they were.
    try:
        base = check_out(baseline_key, suites, repository)
        # The baseline's code, judged on this evaluation's data fields and split: a paired comparison.
        code = base.contract()
        contract = dataclasses.replace(
            current,
            **{
                name: getattr(code, name)
                for name in ("features", "entry_point", "fit", "predict", "lock", "env")
            },
        )
        _, outcome = run_commit(base, contract, data, base.suite.limits)
    except (EvaluationFailed, ContractError) as error:
        if log:
            log.warning(f"baseline {baseline_key} could not be re-scored on the new data: {error}")
        return baseline_key, None, [f"baseline {baseline_key} could not be re-scored on this data: {error}"]
    return baseline_key, outcome.predictions, [f"baseline {baseline_key} was re-scored on this data"]


def find_baseline(checkout: Checkout, records: Records) -> str | None:
    """A pinned champion, else the nearest passing evaluation in this commit's history: the
    fewest first-parent steps back, summed over the repositories, ties going to the smaller key,
    so the choice depends on the commit graph and the verdicts, never on which run ended first."""
    suite, key = checkout.suite, str(checkout.key)
    if suite.pinned_baseline:
        return None if suite.pinned_baseline == key else suite.pinned_baseline
    passed = records.passing(suite.name)
    if not passed:
        return None
    positions = checkout.positions()
    best = None
    for candidate, commits_json in passed:
        distance = ancestor_distance(positions, json.loads(commits_json))
        if candidate != key and distance is not None and (best is None or (distance, candidate) < best):
            best = (distance, candidate)
    return best[1] if best else None


def ancestor_distance(positions: dict[str, dict[str, int]], commits: Mapping[str, str]) -> int | None:
    """How many first-parent steps `commits` (full or key-length SHAs) lie behind the combination
    `positions` was made from; None when it is not an ancestor combination (another branch)."""
    try:
        return sum(positions[name][commits[name][:SHORT_SHA_LENGTH]] for name in positions)
    except KeyError:
        return None


# How long a verdict waits for the evaluations of its ancestor combinations that are still
# running: longer than any one evaluation should take, short of a run that hangs for good.
BASELINE_WAIT_SECONDS = 3600.0
_WAIT_POLL_SECONDS = 2.0


def await_ancestors(
    checkout: Checkout,
    running: Callable[[], Iterable[str]],
    log=None,
    timeout: float = BASELINE_WAIT_SECONDS,
) -> list[str]:
    """Wait while an ancestor combination of this one is being evaluated (`running` gives the
    keys being evaluated now), so that the baseline is chosen once every nearer candidate has its
    verdict: the same baseline whichever run finishes first. Returns the ancestors still running
    when `timeout` ran out (none, normally)."""
    if checkout.suite.pinned_baseline:
        return []
    positions, key, said = checkout.positions(), str(checkout.key), set()
    deadline = time.monotonic() + timeout
    while True:
        waiting = sorted(other for other in set(running()) if other != key and _behind(positions, other, key))
        if not waiting or time.monotonic() >= deadline:
            return waiting
        if log and set(waiting) - said:
            log.info(
                f"{key} waits for the evaluation of {', '.join(waiting)} (an ancestor combination) "
                "before choosing its baseline"
            )
        said.update(waiting)
        time.sleep(_WAIT_POLL_SECONDS)


def _behind(positions: dict[str, dict[str, int]], other: str, key: str) -> bool:
    try:
        parsed = EvaluationKey.parse(other)
    except EvaluationKeyError:
        return False
    return (
        parsed.suite == key.partition(":")[0]
        and ancestor_distance(positions, dict(parsed.commits)) is not None
    )
