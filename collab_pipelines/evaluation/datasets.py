"""The warehouse tables continuous evaluation writes, one row set per evaluation partition.

An evaluation key names a suite and every commit it combines, e.g.
`delay-model:model@1a2b3c4d` or `delays:features@1a2b3c4d+model@5e6f7a8b`.
"""

from collab_pipelines.evaluation.predictions_table import MONITORING, MONITORING_COLUMNS
from collab_pipelines.warehouse.datasets import Dataset

_OWNERS = ("team:data-science", "team:data-engineering")
_PARTITIONING = "dynamic:evaluation_commits"


def _per_evaluation(
    name: str, description: str, columns: dict[str, str], primary_key: tuple[str, ...]
) -> Dataset:
    """A table model_evaluation writes, one slice per evaluation key."""
    return Dataset(
        name=name,
        description=description,
        columns=columns,
        primary_key=primary_key,
        asset_key="model_evaluation",
        owners=_OWNERS,
        partition_column="evaluation_key",
        partitioning=_PARTITIONING,
        pattern="evaluation",
    )


DATASETS: list[Dataset] = [
    _per_evaluation(
        name="evaluation_results",
        description=(
            "One row per evaluated commit (or combination of commits): its verdict, the baseline it "
            "was compared with, and the data it was trained and scored on, so it can be reproduced. "
            "prediction_diff is the prediction-diff gate's outcome (none, within, advisory breach, "
            "blocking breach) and changed_share the share of predicted labels that changed. contract "
            "holds the decisive fields as the commit's collab.toml declared them (JSON), and sandbox "
            "how the commit ran: bubblewrap, or none where the suite trusts it unsandboxed. trigger "
            "is the repository and branch whose new commit made the combination (model/main): the "
            "change this evaluation judges; the other repositories' commits are those it was "
            "combined with. A suite's first poll makes one combination of every repository's newest "
            "commit, and its trigger names each (features/main, model/main)."
        ),
        columns={
            "evaluation_key": "string",
            "suite": "string",
            "commits": "string",
            "status": "string",
            "message": "string",
            "baseline_key": "string",
            "split_at": "datetime",
            "data_through": "string",
            "data_version": "string",
            "train_rows": "integer",
            "test_rows": "integer",
            "seconds": "float",
            "prediction_diff": "string",
            "changed_share": "float",
            "contract": "string",
            "sandbox": "string",
            "trigger": "string",
            "evaluated_at": "datetime",
            "run_id": "string",
        },
        primary_key=("evaluation_key",),
    ),
    _per_evaluation(
        name="evaluation_metrics",
        description="Every metric of every evaluation, with the baseline's value on the same test rows "
        "and ci_low/ci_high, the 90% paired-bootstrap interval of value - baseline_value (gated metrics).",
        columns={
            "evaluation_key": "string",
            "metric": "string",
            "value": "float",
            "baseline_value": "float",
            "ci_low": "float",
            "ci_high": "float",
        },
        primary_key=("evaluation_key", "metric"),
    ),
    _per_evaluation(
        name="evaluation_predictions",
        description=(
            "Every held-out prediction of every evaluation, keyed by evaluation and row, for "
            "regression tests between commits. row_id is the contract's row identifier."
        ),
        columns={
            "evaluation_key": "string",
            "row_id": "string",
            "time": "datetime",
            "y_true": "integer",
            "y_pred": "integer",
            "y_score": "float",
        },
        primary_key=("evaluation_key", "row_id"),
    ),
    Dataset(
        name="champion_history",
        description=(
            "Every promotion and demotion of a suite's champion, the evaluation the product uses: "
            "action (promote or demote), evaluation_key (the new champion, null on demote), "
            "previous_key, commits (JSON, repository to SHA), by (who: a person, or "
            "policy:last_passing), reason, run_id and at (UTC). The newest row of a suite says its "
            "champion."
        ),
        columns={
            "suite": "string",
            "action": "string",
            "evaluation_key": "string",
            "previous_key": "string",
            "commits": "string",
            "by": "string",
            "reason": "string",
            "run_id": "string",
            "at": "datetime",
        },
        primary_key=("suite", "at"),
        asset_key="champion_history",  # reported by promote_champion and the last_passing policy
        owners=_OWNERS,
        # Every suite's rows side by side: only a token for every suite may read it whole.
        pattern="evaluation",
    ),
    Dataset(
        name="tuning_candidates",
        description="Every hyperparameter candidate the tuning job scored, and which one was best.",
        columns={
            "tuning_run_id": "string",
            "evaluation_key": "string",
            "candidate": "integer",
            "params": "string",
            "metric": "string",
            "value": "float",
            "best": "boolean",
            "status": "string",
            "message": "string",
        },
        primary_key=("tuning_run_id", "candidate", "metric"),
        asset_key="tuning_candidates",  # reported by the tune_model job
        owners=_OWNERS,
        pattern="evaluation",
    ),
]


MONITORING_DATASET = Dataset(
    name=MONITORING,
    description=(
        "Each suite's champion watched on each predicted day, one row per measure: measure "
        "metric (the champion's, role champion, or a challenger's scored on the same day: value "
        "with its 90% bootstrap interval ci_low/ci_high, threshold the suite's floor, verdict "
        "within, unsure or below), drift (one per watched column: value the population stability "
        "index, verdict ok, warn or error, detail how it moved in words) and cause (when the "
        "champion fell: verdict data, champion or unknown, detail the explanation)."
    ),
    columns=dict(MONITORING_COLUMNS),
    primary_key=("suite", "day", "evaluation_key", "measure", "name"),
    asset_key=MONITORING,  # reported by each suite's <suite>_predictions
    owners=_OWNERS,
    # Every suite's rows side by side: only a token for every suite may read it whole.
    pattern="evaluation",
)


def prediction_datasets() -> list[Dataset]:
    """`<suite>_predictions`, one per suite of the suites file that asks for predictions, and
    champion_monitoring if any does."""
    from collab_pipelines import settings
    from collab_pipelines.evaluation.predictions_table import COLUMNS, table_name
    from collab_pipelines.evaluation.suites import load_suites

    predictions = [
        Dataset(
            name=table_name(suite.name),
            description=(
                f"The daily predictions of suite {suite.name!r}'s champion: every row of "
                f"{suite.pinned.data.dataset} of the day, with the label the model predicts (y_pred), "
                "its score (y_score), the champion's evaluation key and commits, and the data version "
                "of the inputs it was fitted on. A change of champion predicts the recent days again."
            ),
            columns=COLUMNS,
            primary_key=("_partition", "row_id"),
            asset_key=table_name(suite.name),
            owners=_OWNERS,
            partition_column="_partition",
            partitioning="daily",
            pattern="predictions",
        )
        for suite in load_suites(settings.suites_file()).values()
        if suite.predictions is not None
    ]
    return [*predictions, MONITORING_DATASET] if predictions else []
