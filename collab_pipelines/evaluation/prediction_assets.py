"""The champion's daily predictions in Dagster: `<suite>_predictions`, one asset per suite that
asks for them, partitioned by the days of its dataset's export.

Lineage runs from the export through the evaluations and the suite's champion to the
predictions. A new day of the export triggers the day's predictions (the automation sensor
below); a new champion predicts the suite's most recent days again
(`predictions_champion_sensor`).
"""

import json
from pathlib import Path

import dagster as dg

from collab_pipelines.evaluation.assets import EVALUATION_ASSET, EVALUATION_GROUP, OWNERS
from collab_pipelines.evaluation.candidate_process import EvaluationFailed
from collab_pipelines.evaluation.predictions import predict_day
from collab_pipelines.evaluation.predictions_table import table_name
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import Suite, asset_name
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.partitions import daily_partitions
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES
from collab_pipelines.warehouse.resources import Warehouse

CHAMPION_SENSOR = "predictions_champion_sensor"


def champion_asset_key(suite_name: str) -> dg.AssetKey:
    return dg.AssetKey(f"{asset_name(suite_name)}_champion")


def build_prediction_defs(catalog_path: Path | str | None = None) -> dg.Definitions:
    """The predictions assets and their sensors, for the suites of the suites file."""
    from collab_pipelines import settings
    from collab_pipelines.evaluation.suites import load_suites

    suites = load_suites(settings.suites_file())
    assets = build_prediction_assets(suites, catalog_path)
    return dg.Definitions(assets=assets, sensors=prediction_sensors(assets, suites))


def build_prediction_assets(
    suites: dict[str, Suite], catalog_path: Path | str | None = None
) -> list[dg.AssetsDefinition]:
    exports = load_catalog(catalog_path).exports
    assets = []
    for suite in suites.values():
        dataset = suite.pinned.data.dataset
        if suite.predictions is None:
            continue
        export = exports.get(dataset)
        if export is None or not export.is_partitioned:
            raise dg.DagsterInvalidDefinitionError(
                f"suite {suite.name!r}: predictions need a daily export, and the pinned dataset "
                f"{dataset!r} is {'not in the catalog' if export is None else 'not partitioned by day'}"
            )
        assets.append(_prediction_asset(suite, dataset, daily_partitions(export.partition)))
    return assets


def _on_the_days_export(read_whole: list[dg.AssetKey]) -> dg.AutomationCondition:
    """A day is predicted once its export is written. The evaluations and the champion are read
    whole and trigger nothing here: a champion's change would otherwise predict every day there
    is; `predictions_champion_sensor` predicts the recent ones instead."""
    ignored = dg.AssetSelection.assets(*read_whole)
    return (
        dg.AutomationCondition.any_deps_updated().ignore(ignored)
        & ~dg.AutomationCondition.any_deps_missing().ignore(ignored)
        & ~dg.AutomationCondition.any_deps_in_progress().ignore(ignored)
        & ~dg.AutomationCondition.in_progress()
    ).with_label("predict a day once its export is written")


def _prediction_asset(suite: Suite, dataset: str, partitions_def) -> dg.AssetsDefinition:
    name, suite_name = table_name(suite.name), suite.name
    champion = champion_asset_key(suite.name)

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep(dataset),
            # Read whole, and not a trigger: the champion is one of many evaluations.
            dg.AssetDep(EVALUATION_ASSET, partition_mapping=dg.AllPartitionMapping()),
            dg.AssetDep(champion),
        ],
        automation_condition=_on_the_days_export([EVALUATION_ASSET, champion]),
        group_name=EVALUATION_GROUP,
        owners=OWNERS,
        kinds={"python", "scikit-learn"},
        tags={"collab/pattern": "evaluation", "collab/suite": asset_name(suite.name)},
        description=f"The daily predictions of suite {suite.name!r}'s champion for every row of {dataset}: "
        "its commit, fitted in the sandboxed harness on the days before, predicts the day. Served by "
        f"the data API as the dataset {name}.",
        metadata={"dagster/table_name": name},
        # A lost connection is worth another try; the champion's own failure is not.
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
    )
    def predictions(
        context: dg.AssetExecutionContext, model_repositories: ModelRepositories, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        from collab_pipelines.evaluation.champion import current_champion

        day = context.partition_key
        champion_key = current_champion(warehouse, suite_name)
        if champion_key is None:
            raise dg.Failure(
                f"suite {suite_name!r} has no champion yet: promote one with the promote_champion job "
                "(or set champion: {policy: last_passing} in the suites file)",
                allow_retries=False,
            )

        def forward(stream: str, line: str) -> None:
            (context.log.warning if stream == "stderr" else context.log.info)(f"[model {stream}] {line}")

        try:
            day_predictions = predict_day(
                champion_key,
                model_repositories.suites(),
                model_repositories.repository,
                warehouse,
                day,
                run_id=context.run.run_id,
                output=forward,
            )
        except EvaluationFailed as failure:
            raise dg.Failure(
                description=str(failure),
                metadata={
                    "champion": champion_key,
                    "stage": failure.stage,
                    "traceback": dg.MetadataValue.md(f"```\n{failure.traceback_text or str(failure)}\n```"),
                },
                allow_retries=False,
            ) from None
        rows = day_predictions.rows
        return dg.MaterializeResult(
            metadata={
                "champion": champion_key,
                "commits": dg.MetadataValue.json(json.loads(rows["commits"].iloc[0]) if len(rows) else {}),
                "dagster/row_count": len(rows),
                "predicted_positive_share": float(rows["y_pred"].mean()) if len(rows) else 0.0,
                "mean_score": float(rows["y_score"].mean()) if len(rows) else 0.0,
                "train_rows": day_predictions.train_rows,
                "data_version": day_predictions.data_version,
            },
            data_version=dg.DataVersion(f"{day_predictions.data_version}-{champion_key}"),
        )

    return predictions


def prediction_sensors(
    assets: list[dg.AssetsDefinition], suites: dict[str, Suite]
) -> list[dg.SensorDefinition]:
    if not assets:
        return []
    automation = dg.AutomationConditionSensorDefinition(
        "predictions_automation_sensor",
        target=dg.AssetSelection.assets(*assets),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Predicts a day with the suite's champion once the day's export is written.",
        # The champion failing on a day fails the same way again on the same data.
        run_tags=NO_RETRY_OF_STEP_FAILURES,
    )
    return [automation, build_champion_sensor(assets, suites)]


def build_champion_sensor(assets: list[dg.AssetsDefinition], suites: dict[str, Suite]) -> dg.SensorDefinition:
    by_suite = {
        suite.name: asset
        for asset in assets
        for suite in suites.values()
        if asset.key.path[-1] == table_name(suite.name)
    }

    @dg.sensor(
        name=CHAMPION_SENSOR,
        target=assets,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="When a suite's champion changes, predicts its most recent days again "
        "(predictions.repredict_days in the suites file) with the new champion.",
    )
    def predictions_champion_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
        from collab_pipelines.evaluation.champion import current_champion

        seen = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for suite_name, asset in by_suite.items():
            champion = current_champion(warehouse, suite_name)
            if champion is None or seen.get(suite_name) == champion:
                continue
            if suite_name in seen:  # a change, not the first sight of the suite's champion
                days = _predicted_days(context.instance, asset)[
                    -suites[suite_name].predictions.repredict_days :
                ]
                requests += [
                    dg.RunRequest(
                        run_key=f"{champion}:{day}",
                        asset_selection=[asset.key],
                        partition_key=day,
                        tags={**NO_RETRY_OF_STEP_FAILURES, "collab/champion": champion},
                    )
                    for day in days
                ]
                context.log.info(
                    f"{suite_name}: champion {seen[suite_name]} -> {champion}; predicting {days} again"
                )
            seen[suite_name] = champion
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return predictions_champion_sensor


def _predicted_days(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> list[str]:
    return sorted(instance.get_materialized_partitions(asset.key))
