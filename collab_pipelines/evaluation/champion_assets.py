"""The champion in Dagster: one `<suite>_champion` asset per suite, the champion_history table,
and the promote_champion job a person launches from the launchpad.

The assets are declared, not computed: the job's op and the evaluation asset (when the
suite's policy promotes) log their materializations, so each one's page shows who made which
evaluation champion, when and why.
"""

from datetime import UTC
from typing import Literal

import dagster as dg
from pydantic import Field

from collab_pipelines.evaluation.champion import (
    DEMOTE,
    HISTORY,
    PROMOTE,
    ChampionError,
    Change,
    demote,
    mark,
    promote,
)
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import Suite, asset_name
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES
from collab_pipelines.warehouse.resources import Warehouse

CHAMPION_BY_TAG, CHAMPION_REASON_TAG = "collab/champion_by", "collab/champion_reason"
# Set by Dagster+ (and by a deployment's own launcher) to the person who launched the run.
USER_TAG = "dagster/user"
HISTORY_ASSET = dg.AssetKey(HISTORY)
_KINDS = {"python", "git"}


def champion_key(suite_name: str) -> dg.AssetKey:
    return dg.AssetKey(f"{asset_name(suite_name)}_champion")


def champion_specs(suites: dict[str, Suite]) -> list[dg.AssetSpec]:
    """champion_history and one `<suite>_champion` per suite."""
    # Imported here: assets.py imports this module for the policy's materializations.
    from collab_pipelines.evaluation.assets import EVALUATION_ASSET, EVALUATION_GROUP, OWNERS

    by_key: dict[dg.AssetKey, str] = {}
    for name in suites:
        key = champion_key(name)
        if key in by_key:
            raise ValueError(
                f"suites {by_key[key]!r} and {name!r} both make the asset {key.to_user_string()}"
            )
        by_key[key] = name
    common = {
        "deps": [EVALUATION_ASSET],
        "group_name": EVALUATION_GROUP,
        "owners": OWNERS,
        "kinds": _KINDS,
        "tags": {"collab/pattern": "evaluation"},
    }
    history = dg.AssetSpec(
        HISTORY_ASSET,
        description="Every promotion and demotion of every suite's champion: who, when, why, from "
        "which evaluation and to which. Written by the promote_champion job and by a suite's "
        "last_passing policy.",
        metadata={"dagster/table_name": HISTORY},
        **common,
    )
    return [history] + [
        dg.AssetSpec(
            key,
            description=f"The champion of suite {name!r}: the evaluated, passing commit (or combination "
            "of commits) the product uses. A person promotes it with the promote_champion job, or "
            "the suite's policy (champion: {policy: last_passing}) promotes each passing commit on "
            f"its branch. The tag collab/champion/{name} marks it in the model repository.",
            **common,
        )
        for key, name in by_key.items()
    ]


def champion_materializations(change: Change) -> list[dg.AssetMaterialization]:
    metadata = {
        "champion": change.evaluation_key or "none (demoted)",
        "action": change.action,
        "previous": change.previous_key or "none",
        "by": change.by,
        "reason": change.reason,
        "commits": dg.MetadataValue.json(change.commits),
        # Recorded as naive UTC, as every table of the warehouse is.
        "at": dg.MetadataValue.timestamp(change.at.replace(tzinfo=UTC).timestamp()),
    }
    return [
        dg.AssetMaterialization(champion_key(change.suite), metadata=metadata),
        dg.AssetMaterialization(HISTORY_ASSET, metadata={"suite": change.suite, **metadata}),
    ]


class PromotionConfig(dg.Config):
    suite: str = Field(description="The suite, as named in the suites file.")
    action: Literal["promote", "demote"] = Field(
        default=PROMOTE, description="promote: make evaluation_key the champion; demote: leave none."
    )
    evaluation_key: str | None = Field(
        default=None,
        description="The passed evaluation to promote, e.g. delay-model:model@1a2b3c4d5e (the "
        "model_evaluation partition). On demote, if given, it must be the current champion.",
    )
    reason: str = Field(description="Why: recorded in champion_history and as the run's tag.")
    by: str | None = Field(
        default=None, description=f"Who decides; default the run's {USER_TAG} tag, else 'unknown'."
    )


@dg.op(
    description="Promotes an evaluation to its suite's champion, or demotes the champion, and "
    "records who and why in champion_history, in the run's tags and on the suite's champion asset."
)
def change_champion(
    context: dg.OpExecutionContext,
    config: PromotionConfig,
    model_repositories: ModelRepositories,
    warehouse: Warehouse,
) -> None:
    by = config.by or context.run.tags.get(USER_TAG) or "unknown"
    context.instance.add_run_tags(context.run_id, {CHAMPION_BY_TAG: by, CHAMPION_REASON_TAG: config.reason})
    suites = model_repositories.suites()
    if config.suite not in suites:
        raise dg.Failure(
            f"suite {config.suite!r} is not in the suites file; known: {sorted(suites)}", allow_retries=False
        )
    suite = suites[config.suite]
    try:
        if config.action == DEMOTE:
            change = demote(warehouse, suite, by, config.reason, context.run_id, config.evaluation_key)
        elif config.evaluation_key is None:
            raise ChampionError(f"promoting in suite {suite.name!r}: give the evaluation_key to promote")
        else:
            change = promote(warehouse, suite, config.evaluation_key, by, config.reason, context.run_id)
    except ChampionError as error:
        raise dg.Failure(str(error), allow_retries=False) from None
    mark(
        suite, model_repositories.repository(suite.repository(suite.contract_repository)), change, context.log
    )
    for event in champion_materializations(change):
        context.log_event(event)
    context.log.info(
        f"{change.action}: champion of {suite.name} is {change.evaluation_key or 'none'} (was {change.previous_key or 'none'})"
    )


@dg.job(
    name="promote_champion",
    tags={"collab/pattern": "evaluation", **NO_RETRY_OF_STEP_FAILURES},
    description="Promotes a passed evaluation to its suite's champion (or demotes it), with the "
    "person and the reason. Launch it from the launchpad.",
)
def promote_champion():
    change_champion()
