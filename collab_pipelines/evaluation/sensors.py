"""The commit sensor: one evaluation partition, and one run, per new commit or combination."""

import json

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.datasets import all_datasets
from collab_pipelines.evaluation.contract import (
    CONTRACT_FILE,
    ContractError,
    parse_contract,
)
from collab_pipelines.evaluation.jobs import NO_RETRY_OF_STEP_FAILURES, evaluate_commits
from collab_pipelines.evaluation.partitions import evaluation_commits
from collab_pipelines.evaluation.repos import GitError
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import Suite
from collab_pipelines.evaluation.watcher import Candidate, discover

_MESSAGE_TAG_LENGTH = 120


def commit_tags(candidate: Candidate, suite: str) -> dict[str, str]:
    tags = {
        "collab/pattern": "evaluation",
        "collab/suite": suite,
        "collab/trigger": candidate.trigger,
        **NO_RETRY_OF_STEP_FAILURES,
    }
    for repo, commit in candidate.commits.items():
        tags[f"collab/commit.{repo}"] = commit.sha
        tags[f"collab/author.{repo}"] = commit.author
        tags[f"collab/committed_at.{repo}"] = commit.committed_at.isoformat()
        tags[f"collab/message.{repo}"] = commit.message[:_MESSAGE_TAG_LENGTH]
    return tags


def unexported_datasets(
    instance: dg.DagsterInstance,
    model_repositories: ModelRepositories,
    suite: Suite,
    candidates: list[Candidate],
) -> list[str]:
    """The datasets the newest candidate's contract reads that were never materialized."""
    if not candidates:
        return []
    newest = candidates[-1].commits[suite.contract_repository]
    repo = model_repositories.repository(suite.repository(suite.contract_repository))
    try:
        contract = parse_contract(repo.read_file(newest.sha, CONTRACT_FILE), CONTRACT_FILE)
    except ContractError:
        return []  # a broken contract is the evaluation's to explain, not the sensor's
    datasets = all_datasets()
    return [
        name
        for name in contract.datasets
        if name in datasets
        and instance.get_latest_materialization_event(dg.AssetKey(datasets[name].asset_key)) is None
    ]


@dg.sensor(
    name="model_commits_sensor",
    job=evaluate_commits,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the model repositories of every evaluation suite. Each new commit (or, in a "
    "suite of several repositories, each new combination of commits) becomes a partition of "
    "model_evaluation and a run. Its cursor holds the newest commit considered per branch.",
)
def model_commits_sensor(context: dg.SensorEvaluationContext, model_repositories: ModelRepositories):
    cursor = json.loads(context.cursor) if context.cursor else {}
    suites = model_repositories.suites()
    if not suites:
        return dg.SkipReason(
            f"No evaluation suite is configured (suites file: {model_repositories.suites_file or settings.suites_file()})"
        )
    requests, keys, problems = [], [], []
    for suite in suites.values():
        previous = cursor.get(suite.name, {})
        try:
            found = discover(suite, cursor.get(suite.name, {}), model_repositories.repository)
        except GitError as error:
            # One unreachable repository must not stop the other suites; its cursor stays,
            # so its commits are found on a later tick.
            problems.append(f"suite {suite.name!r}: {error}")
            context.log.warning(f"suite {suite.name!r} skipped this tick: {error}")
            continue
        candidates, cursor[suite.name] = found.candidates, found.cursor
        for branch, left in found.backlog.items():
            # Said in the tick's log and skip reason; the next ticks take these, oldest first.
            message = f"suite {suite.name!r}: {left} newer commit(s) of {branch} wait for the next ticks"
            context.log.info(message)
            problems.append(message + ".")
        waiting = unexported_datasets(context.instance, model_repositories, suite, candidates)
        if waiting:
            # Evaluating before the data exists would only fail; the cursor stays, so these
            # commits are found again once the exports have run.
            cursor[suite.name] = previous
            problems.append(f"suite {suite.name!r} waits for its first export of {', '.join(waiting)}.")
            continue
        for candidate in candidates:
            keys.append(candidate.key)
            requests.append(
                dg.RunRequest(
                    run_key=candidate.key,
                    partition_key=candidate.key,
                    tags=commit_tags(candidate, suite.name),
                )
            )
    if not requests:
        return dg.SensorResult(
            skip_reason=" ".join(["No new commit to evaluate.", *problems]),
            cursor=json.dumps(cursor, sort_keys=True),
        )
    context.log.info(f"{len(keys)} new evaluation(s): {', '.join(keys)}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[evaluation_commits.build_add_request(keys)],
        cursor=json.dumps(cursor, sort_keys=True),
    )
