import dagster as dg

from collab_pipelines.evaluation.assets import model_evaluation
from collab_pipelines.evaluation.jobs import add_commit_history_job, evaluate_commits
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.sensors import model_commits_sensor
from collab_pipelines.evaluation.tuning import tune_model, tuning_candidates


def build_defs() -> dg.Definitions:
    """Everything pattern 2 defines. The warehouse resource comes from the root."""
    return dg.Definitions(
        assets=[model_evaluation, tuning_candidates],
        jobs=[evaluate_commits, add_commit_history_job, tune_model],
        sensors=[model_commits_sensor],
        resources={"model_repositories": ModelRepositories()},
    )
