"""The commit sensor: one evaluation partition, and one run, per new commit or combination."""

import json

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.evaluation.jobs import evaluate_commits
from collab_pipelines.evaluation.partitions import evaluation_commits
from collab_pipelines.evaluation.repos import GitError
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.watcher import Candidate, discover

_MESSAGE_TAG_LENGTH = 120


def commit_tags(candidate: Candidate, suite: str) -> dict[str, str]:
    tags = {"collab/pattern": "evaluation", "collab/suite": suite, "collab/trigger": candidate.trigger}
    for repo, commit in candidate.commits.items():
        tags[f"collab/commit.{repo}"] = commit.sha
        tags[f"collab/author.{repo}"] = commit.author
        tags[f"collab/committed_at.{repo}"] = commit.committed_at.isoformat()
        tags[f"collab/message.{repo}"] = commit.message[:_MESSAGE_TAG_LENGTH]
    return tags


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
            f"No evaluation suite is configured (suites file: {model_repositories.suites_file or settings.suites_file()})")
    requests, keys, problems = [], [], []
    for suite in suites.values():
        try:
            candidates, cursor[suite.name] = discover(suite, cursor.get(suite.name, {}),
                                                      model_repositories.repository)
        except GitError as error:
            # One unreachable repository must not stop the other suites; its cursor stays,
            # so its commits are found on a later tick.
            problems.append(f"suite {suite.name!r}: {error}")
            context.log.warning(f"suite {suite.name!r} skipped this tick: {error}")
            continue
        for candidate in candidates:
            keys.append(candidate.key)
            requests.append(dg.RunRequest(run_key=candidate.key, partition_key=candidate.key,
                                          tags=commit_tags(candidate, suite.name)))
    if not requests:
        return dg.SensorResult(
            skip_reason="No new commit. " + " ".join(problems) if problems else "No new commit.",
            cursor=json.dumps(cursor, sort_keys=True))
    context.log.info(f"{len(keys)} new evaluation(s): {', '.join(keys)}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[evaluation_commits.build_add_request(keys)],
        cursor=json.dumps(cursor, sort_keys=True),
    )
