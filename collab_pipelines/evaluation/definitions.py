from pathlib import Path

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.evaluation.assets import build_model_evaluation
from collab_pipelines.evaluation.champion_assets import champion_specs, promote_champion
from collab_pipelines.evaluation.jobs import add_commit_history_job, evaluate_commits
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.sensors import model_commits_sensor
from collab_pipelines.evaluation.suites import load_suites
from collab_pipelines.evaluation.tuning import tune_model, tuning_candidates


def build_defs(catalog_path: Path | str | None = None) -> dg.Definitions:
    """Everything pattern 2 defines, downstream of the exports in `catalog_path`.

    The warehouse resource comes from the root.
    """
    return dg.Definitions(
        assets=[
            build_model_evaluation(catalog_path),
            tuning_candidates,
            *champion_specs(load_suites(settings.suites_file())),
        ],
        jobs=[evaluate_commits, add_commit_history_job, tune_model, promote_champion],
        sensors=[model_commits_sensor],
        resources={"model_repositories": ModelRepositories()},
    )
