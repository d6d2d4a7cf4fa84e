"""The champion's daily predictions in Dagster: `<suite>_predictions`, one asset per suite that
asks for them, partitioned by the days of its dataset's export.

Lineage runs from the export through the evaluations and the suite's champion to the
predictions. A new day of the export triggers the day's predictions (the automation sensor
below); a new champion predicts the suite's most recent days again
(`predictions_champion_sensor`).
"""

import json
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from collab_pipelines.evaluation import monitoring
from collab_pipelines.evaluation.assets import (
    EVALUATION_ASSET,
    EVALUATION_GROUP,
    OWNERS,
    commit_failure,
    model_output,
)
from collab_pipelines.evaluation.candidate_process import EvaluationFailed
from collab_pipelines.evaluation.drift import (
    DriftError,
    DriftVerdict,
    column_drift,
    judge_drift,
    watched_columns,
)
from collab_pipelines.evaluation.predictions import DayPredictions, predict_day, score_day
from collab_pipelines.evaluation.predictions_table import PREDICTIONS_TAG, table_name
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import Suite, asset_name
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.partitions import daily_partitions
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES
from collab_pipelines.warehouse.resources import Warehouse

CHAMPION_SENSOR = "predictions_champion_sensor"
QUALITY_CHECK, DRIFT_CHECK = "champion_quality", "feature_drift"


def champion_asset_key(suite_name: str) -> dg.AssetKey:
    return dg.AssetKey(f"{asset_name(suite_name)}_champion")


def build_prediction_defs(catalog_path: Path | str | None = None) -> dg.Definitions:
    """The predictions assets and their sensors, for the suites of the suites file."""
    from collab_pipelines import settings
    from collab_pipelines.evaluation.suites import load_suites

    suites = load_suites(settings.suites_file())
    assets = build_prediction_assets(suites, catalog_path)
    watch = [monitoring_spec(assets)] if assets else []
    return dg.Definitions(assets=[*assets, *watch], sensors=prediction_sensors(assets, suites))


def monitoring_spec(assets: list[dg.AssetsDefinition]) -> dg.AssetSpec:
    return dg.AssetSpec(
        monitoring.MONITORING,
        deps=[asset.key for asset in assets],
        group_name=EVALUATION_GROUP,
        owners=OWNERS,
        kinds={"python"},
        tags={"collab/pattern": "evaluation"},
        description="Every suite's champion watched on each predicted day: its metrics with 90% "
        "bootstrap intervals, each watched column's drift, and, when its quality fell, whether the "
        "data or the champion is the cause. Reported by each <suite>_predictions run.",
        metadata={"dagster/table_name": monitoring.MONITORING},
    )


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


def _on_the_days_export(evaluations: dg.AssetKey, champion: dg.AssetKey) -> dg.AutomationCondition:
    """A day is predicted once its export is written, if the suite has a champion. The
    evaluations and the champion are read whole and trigger nothing here: a champion's change
    would otherwise predict every day there is; `predictions_champion_sensor` predicts the
    recent ones instead, the first champion's included."""
    read_whole = dg.AssetSelection.assets(evaluations, champion)
    return (
        dg.AutomationCondition.any_deps_updated().ignore(read_whole)
        # No champion yet: nothing to predict with, and a failed run per exported day says nothing.
        & ~dg.AutomationCondition.any_deps_missing().ignore(dg.AssetSelection.assets(evaluations))
        & ~dg.AutomationCondition.any_deps_in_progress().ignore(read_whole)
        & ~dg.AutomationCondition.in_progress()
    ).with_label("predict a day once its export is written and the suite has a champion")


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
        automation_condition=_on_the_days_export(EVALUATION_ASSET, champion),
        group_name=EVALUATION_GROUP,
        owners=OWNERS,
        kinds={"python", "scikit-learn"},
        tags={
            "collab/pattern": "evaluation",
            "collab/suite": asset_name(suite.name),
            PREDICTIONS_TAG: suite.name,
        },
        description=f"The daily predictions of suite {suite.name!r}'s champion for every row of {dataset}: "
        "its commit, fitted in the sandboxed harness on the days before, predicts the day. Served by "
        f"the data API as the dataset {name}.",
        metadata={"dagster/table_name": name},
        check_specs=_check_specs(name, partitions_def),
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

        try:
            day_predictions = predict_day(
                champion_key,
                model_repositories.suites(),
                model_repositories.repository,
                warehouse,
                day,
                run_id=context.run.run_id,
                output=model_output(context),
            )
        except EvaluationFailed as failure:
            raise commit_failure(failure, champion=champion_key) from None
        rows = day_predictions.rows
        suite_spec = model_repositories.suites()[suite_name]
        drift = day_drift(day_predictions, suite_spec.drift)
        challengers, explanation = _challenge(
            context, day_predictions, suite_spec, model_repositories, warehouse
        )
        monitoring.record(
            warehouse,
            suite_name,
            day,
            monitoring.monitoring_rows(
                suite_name,
                day,
                champion_key,
                day_predictions.quality,
                drift if isinstance(drift, DriftVerdict) else None,
                challengers,
                explanation,
                context.run.run_id,
            ),
        )
        context.log_event(
            dg.AssetMaterialization(
                monitoring.MONITORING, metadata={"suite": suite_name, "day": day, "champion": champion_key}
            )
        )
        quality = {
            f"quality/{q.metric}{suffix}": value
            for q in day_predictions.quality.values()
            for suffix, value in (("", q.value), ("_low", q.low), ("_high", q.high))
        }
        return dg.MaterializeResult(
            check_results=[
                quality_check(name, day_predictions, explanation, suite_spec.predictions.challengers),
                drift_check(name, drift),
            ],
            metadata={
                # Plain floats under stable names: the Plots tab charts them over the days.
                **quality,
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


def _check_specs(name: str, partitions_def) -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # a verdict per day, on its partition
        return [
            dg.AssetCheckSpec(
                QUALITY_CHECK,
                asset=name,
                partitions_def=partitions_def,
                description="The champion's metrics on the day's rows whose outcome is known, with 90% "
                "bootstrap intervals, against the suite's gates' floors: ERROR when the whole interval "
                "is below a floor, WARN when the value alone is.",
            ),
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=name,
                partitions_def=partitions_def,
                description="Each watched column of the day against the training window (population "
                "stability index), against the suite's drift thresholds (drift: {warn, error}).",
            ),
        ]


def _challenge(context, day: DayPredictions, suite: Suite, model_repositories, warehouse):
    """When the champion fell, the suite's latest passing evaluations scored on the same day."""
    count = suite.predictions.challengers
    if not count or not monitoring.fallen(day.quality):
        return {}, None
    challengers: dict[str, dict | str] = {}
    for key in monitoring.latest_passing(warehouse, suite.name, day.champion, count):
        context.log.info(f"{suite.name}: the champion fell on {day.day}; scoring {key} on the same day")
        try:
            challengers[key] = score_day(
                key,
                day.contract,
                model_repositories.suites(),
                model_repositories.repository,
                warehouse,
                day.day,
            )
        except EvaluationFailed as failure:
            # One challenger's own failure says nothing of the data; the others still count.
            challengers[key] = f"{failure.stage}: {failure}"
    explanation = monitoring.explain(day.quality, challengers)
    context.log.info(f"{suite.name} {day.day}: {explanation.description}")
    return challengers, explanation


def quality_check(
    name: str, day: DayPredictions, explanation: monitoring.Explanation | None = None, challengers: int = 0
) -> dg.AssetCheckResult:
    qualities = list(day.quality.values())
    below = [q for q in qualities if q.verdict == "below"]
    unsure = [q for q in qualities if q.verdict == "unsure"]

    def words(q) -> str:
        floor = "" if q.floor is None else f", floor {q.floor:g}"
        return f"{q.metric} {q.value:.4f} [{q.low:.4f}, {q.high:.4f}]{floor}"

    if not qualities:
        description = "no row of the day has a known outcome yet (or only one class): nothing to score"
    else:
        description = f"on {qualities[0].rows} labelled rows: " + "; ".join(words(q) for q in qualities)
    if explanation is not None:
        description += f". Cause: {explanation.description}"
    elif (below or unsure) and not challengers:
        description += (
            ". To tell the data from the champion, set predictions.challengers in the suites file: "
            "the latest passing evaluations are then scored on such a day too"
        )
    metadata = {"champion": day.champion}
    if explanation is not None:
        metadata |= {"cause": explanation.cause, "better": dg.MetadataValue.json(list(explanation.better))}
    return dg.AssetCheckResult(
        asset_key=name,
        check_name=QUALITY_CHECK,
        passed=not below and not unsure,
        severity=dg.AssetCheckSeverity.ERROR if below else dg.AssetCheckSeverity.WARN,
        description=("fell below its band: " if below else "") + description,
        metadata=metadata,
    )


def day_drift(day: DayPredictions, spec) -> DriftVerdict | str:
    """Each watched column of the day against the training window, or why it cannot be measured."""
    contract = day.contract
    dataset = day.frames[contract.dataset]
    times = pd.to_datetime(dataset[contract.time_column])
    start = pd.Timestamp(day.day)
    # The warehouse's own columns (_partition, _loaded_at) move every day by design.
    own = {column for column in dataset.columns if str(column).startswith("_")}
    exclude = {contract.row_id, contract.time_column, contract.target, *contract.withheld, *own}
    try:
        columns = watched_columns(dataset, spec, exclude)
        return judge_drift(column_drift(dataset[times < start], dataset[times >= start], columns), spec)
    except DriftError as error:
        return str(error)


def drift_check(name: str, verdict: DriftVerdict | str) -> dg.AssetCheckResult:
    if isinstance(verdict, str):
        return dg.AssetCheckResult(
            asset_key=name,
            check_name=DRIFT_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"drift could not be measured: {verdict}",
        )
    return dg.AssetCheckResult(
        asset_key=name,
        check_name=DRIFT_CHECK,
        passed=verdict.severity == "ok",
        severity=dg.AssetCheckSeverity.ERROR if verdict.severity == "error" else dg.AssetCheckSeverity.WARN,
        description=verdict.description,
        metadata={f"psi/{d.column}": float(d.psi) for d in verdict.drifts},
    )


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
        "(predictions.repredict_days in the suites file) with the new champion; a suite's first "
        "champion predicts the recent exported days no champion has predicted.",
    )
    def predictions_champion_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
        from collab_pipelines.evaluation.champion import current_champion

        seen = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for suite_name, asset in by_suite.items():
            champion = current_champion(warehouse, suite_name)
            if champion is None or seen.get(suite_name) == champion:
                continue
            suite = suites[suite_name]
            predicted = _materialized_days(context.instance, asset.key)
            if suite_name in seen:  # a change: the recent predictions were another champion's
                days = predicted[-suite.predictions.repredict_days :]
                context.log.info(
                    f"{suite_name}: champion {seen[suite_name]} -> {champion}; predicting {days} again"
                )
            else:
                # The first champion seen (a new suite, or the sensor's first tick): the recent
                # exported days that no champion has predicted, which the automation sensor
                # passed over while the suite had none.
                exported = _materialized_days(context.instance, dg.AssetKey(suite.pinned.data.dataset))
                days = [d for d in exported[-suite.predictions.repredict_days :] if d not in set(predicted)]
                if days:
                    context.log.info(f"{suite_name}: first champion {champion}; predicting {days}")
            requests += [
                dg.RunRequest(
                    run_key=f"{champion}:{day}",
                    asset_selection=[asset.key],
                    partition_key=day,
                    tags={**NO_RETRY_OF_STEP_FAILURES, "collab/champion": champion},
                )
                for day in days
            ]
            seen[suite_name] = champion
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return predictions_champion_sensor


def _materialized_days(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[str]:
    return sorted(instance.get_materialized_partitions(key))
