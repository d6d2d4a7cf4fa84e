"""Jobs of continuous evaluation: evaluate commits, and add a repository's history for a backfill."""

import dagster as dg
from pydantic import Field

from collab_pipelines.evaluation.assets import EVALUATION_ASSET
from collab_pipelines.evaluation.partitions import evaluation_commits
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import EvaluationKey

# A step failure of an evaluation is the commit's own and repeats on a retry; run retries
# (deploy/dagster.yaml) stay for what is not: a lost run worker, a killed pod. Transient
# errors inside the step get the asset's retry policy instead.
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES

evaluate_commits = dg.define_asset_job(
    "evaluate_commits",
    selection=dg.AssetSelection.assets(EVALUATION_ASSET),
    tags={"collab/pattern": "evaluation", **NO_RETRY_OF_STEP_FAILURES},
    description="Evaluates commits (partitions of model_evaluation). The commit sensor runs it for "
    "each new commit; a backfill over partitions re-evaluates commits on the latest data.",
)


class HistoryConfig(dg.Config):
    suite: str = Field(description="The suite, as named in the suites file.")
    repository: str | None = Field(
        default=None,
        description="The repository whose history to add; default: the suite's contract repository.",
    )
    branch: str | None = Field(default=None, description="The branch to walk; default: its first branch.")
    limit: int = Field(default=50, description="How many of the newest commits to add.")


@dg.op(
    description="Adds an evaluation partition for each historical commit of a repository, combined "
    "with the other repositories' current heads. Backfill them from the model_evaluation page."
)
def add_history_partitions(
    context: dg.OpExecutionContext, config: HistoryConfig, model_repositories: ModelRepositories
) -> list[str]:
    suites = model_repositories.suites()
    if config.suite not in suites:
        raise dg.Failure(f"suite {config.suite!r} is not in the suites file; known: {sorted(suites)}")
    suite = suites[config.suite]
    name = config.repository or suite.contract_repository
    spec = suite.repository(name)
    branch = config.branch or spec.branches[0]
    repos = {other.name: model_repositories.repository(other) for other in suite.specs}
    for repo in repos.values():
        repo.sync()
    heads = {other.name: repos[other.name].head(other.branches[0]) for other in suite.specs}
    keys = [
        str(
            EvaluationKey(
                suite.name,
                tuple(
                    (other.name, commit.sha if other.name == name else heads[other.name])
                    for other in suite.specs
                ),
            )
        )
        for commit in repos[name].commits_since(branch, None, limit=config.limit)
    ]
    existing = set(context.instance.get_dynamic_partitions(evaluation_commits.name))
    new = [key for key in keys if key not in existing]
    context.instance.add_dynamic_partitions(evaluation_commits.name, new)
    context.log.info(
        f"{len(new)} new partition(s) of {len(keys)} historical commit(s) on {name}/{branch}; "
        "backfill them from the model_evaluation asset page."
    )
    return keys


@dg.job(
    name="add_commit_history",
    tags={"collab/pattern": "evaluation"},
    description="Adds a repository's historical commits as evaluation partitions, ready for a backfill.",
)
def add_commit_history_job():
    add_history_partitions()
