"""The evaluation asset: one partition per commit (or combination), gates as asset checks."""

import warnings
from pathlib import Path

import dagster as dg
from pydantic import Field

from collab_pipelines.evaluation import environments
from collab_pipelines.evaluation.candidate_process import EvaluationFailed
from collab_pipelines.evaluation.champion import promoted_in_run
from collab_pipelines.evaluation.champion_assets import champion_materializations
from collab_pipelines.evaluation.commit_evaluation import Evaluation, evaluate_key
from collab_pipelines.evaluation.feedback import publish
from collab_pipelines.evaluation.partitions import evaluation_commits
from collab_pipelines.evaluation.repos import GitError
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import EvaluationKey, EvaluationKeyError
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.warehouse.resources import Warehouse

EVALUATION_GROUP = "evaluation"
EVALUATION_ASSET = dg.AssetKey("model_evaluation")
GATES_CHECK, DIFF_CHECK = "metric_gates", "prediction_diff"
OWNERS = ["team:data-science", "team:data-engineering"]


class EvaluationConfig(dg.Config):
    data_through: str | None = Field(
        default=None,
        description="Evaluate on the exports through this day (YYYY-MM-DD) instead of the latest, "
        "to reproduce a recorded result: its data_through is in the materialization's metadata.",
    )


def _export_deps(catalog_path: Path | str | None) -> list[dg.AssetDep]:
    # A contract may read any export, so every export is upstream; all of a daily export's
    # partitions feed every evaluation.
    return [
        dg.AssetDep(spec.name, partition_mapping=dg.AllPartitionMapping() if spec.is_partitioned else None)
        for spec in load_catalog(catalog_path).exports.values()
    ]


def _check_specs() -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():
        # Partitioned checks put each gate's verdict on its commit's partition in the UI.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                GATES_CHECK,
                asset=EVALUATION_ASSET,
                partitions_def=evaluation_commits,
                description="The contract's gates: absolute floors, and drops against the "
                "baseline that are beyond tolerance and beyond noise (paired bootstrap).",
            ),
            dg.AssetCheckSpec(
                DIFF_CHECK,
                asset=EVALUATION_ASSET,
                partitions_def=evaluation_commits,
                description="The prediction-diff gate: the share of test rows whose predicted "
                "label changed against the baseline, within the contract's "
                "max_changed_predictions. A blocking breach regresses the commit (error); an "
                "advisory one is a warning beside a passing verdict.",
            ),
        ]


def build_model_evaluation(catalog_path: Path | str | None = None) -> dg.AssetsDefinition:
    """The evaluation asset, downstream of every export in the catalog at `catalog_path`.

    Built when the definitions are, not at import, so the catalog read is the one the
    definitions' configuration folder names.
    """

    @dg.asset(
        key=EVALUATION_ASSET,
        partitions_def=evaluation_commits,
        deps=_export_deps(catalog_path),
        check_specs=_check_specs(),
        group_name=EVALUATION_GROUP,
        owners=OWNERS,
        kinds={"python", "scikit-learn", "git"},
        tags={"collab/pattern": "evaluation"},
        description="Trains and scores one commit of a model repository (or one combination of commits "
        "of a suite) on a time-based split of the latest exports, in its own process with time and "
        "memory limits. Writes evaluation_results, evaluation_metrics and evaluation_predictions.",
        metadata={"dagster/table_name": "evaluation_results"},
        # A dropped warehouse or git connection is worth another try; a commit's own failure
        # (dg.Failure with allow_retries=False) is not, and bypasses this policy.
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
    )
    def model_evaluation(
        context: dg.AssetExecutionContext,
        config: EvaluationConfig,
        model_repositories: ModelRepositories,
        warehouse: Warehouse,
    ) -> dg.MaterializeResult:
        key = context.partition_key

        try:
            evaluation = evaluate_key(
                key,
                model_repositories.suites(),
                model_repositories.repository,
                warehouse,
                data_through=config.data_through,
                run_id=context.run.run_id,
                log=context.log,
                output=model_output(context),
                trigger=context.run.tags.get(TRIGGER_TAG),
                running=evaluations_running(context),
            )
        except EvaluationFailed as failure:
            publish_failure(key, failure, model_repositories, context)
            raise commit_failure(failure) from None
        publish_evaluation(evaluation, model_repositories, context)
        promoted = promoted_in_run(warehouse, evaluation.checkout.suite.name, context.run.run_id)
        for event in champion_materializations(promoted) if promoted else ():
            context.log_event(event)
        for note in evaluation.notes:
            context.log.info(note)
        return dg.MaterializeResult(
            metadata=evaluation_metadata(evaluation),
            check_results=check_results(evaluation),
            data_version=dg.DataVersion(f"{evaluation.data.data_version}-{key}"),
        )

    return model_evaluation


TRIGGER_TAG = "collab/trigger"
_RUNNING = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def evaluations_running(context: dg.AssetExecutionContext):
    """The keys other runs are evaluating now (queued or started), asked again on each call."""

    def keys() -> set[str]:
        runs = [
            record.dagster_run
            for record in context.instance.get_run_records(dg.RunsFilter(statuses=_RUNNING))
        ]
        return {
            run.tags["dagster/partition"]
            for run in runs
            if run.run_id != context.run.run_id
            and "dagster/partition" in run.tags
            # A report of the same commit is partitioned alike; only an evaluation counts (an
            # empty selection is a whole job's run, as materialize() makes).
            and (not run.asset_selection or EVALUATION_ASSET in run.asset_selection)
        }

    return keys


def model_output(context: dg.AssetExecutionContext):
    """The model's prints and warnings, and the build of its environment, in the run's logs
    while it runs."""

    def forward(stream: str, line: str) -> None:
        label = f"[{stream}]" if stream == environments.STREAM else f"[model {stream}]"
        (context.log.warning if stream == "stderr" else context.log.info)(f"{label} {line}")

    return forward


def commit_failure(failure: EvaluationFailed, **metadata) -> dg.Failure:
    """The data scientist's own traceback, where the UI shows the failed step. The same commit
    fails the same way again: a retry would only repeat it."""
    return dg.Failure(
        description=str(failure),
        metadata={
            **metadata,
            "stage": failure.stage,
            "traceback": dg.MetadataValue.md(f"```\n{failure.traceback_text or str(failure)}\n```"),
        },
        allow_retries=False,
    )


def evaluation_metadata(evaluation: Evaluation) -> dict:
    data, outcome, verdict = evaluation.data, evaluation.outcome, evaluation.verdict
    # Plain floats under stable names are what the UI plots across partitions (commits).
    metadata: dict = {f"metric/{name}": float(value) for name, value in outcome.metrics.items()}
    for name, comparison in verdict.comparisons.items():
        if comparison.difference is not None:
            metadata[f"change/{name}"] = float(comparison.difference)
    metadata.update(
        {
            "verdict": evaluation.status,
            "prediction_diff": evaluation.diff.outcome,
            "reasons": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in verdict.reasons)),
            "baseline": evaluation.baseline_key or "none",
            # How far the verdict can be trusted: where the code ran, and what it changed of its contract.
            "sandbox": evaluation.sandbox,
            "contract_changed": dg.MetadataValue.md(
                "\n".join(f"- {change}" for change in evaluation.contract_changes) or "none"
            ),
            "data_through": data.data_through,
            "split_at": data.split_at.isoformat(),
            "data_version": data.data_version,
            "rows_read": dg.MetadataValue.json(data.rows),
            "train_rows": outcome.train_rows,
            "test_rows": outcome.test_rows,
            "seconds": round(outcome.seconds, 2),
            "dagster/row_count": outcome.test_rows,
        }
    )
    for name, value in outcome.reported.items():
        # What the model reported itself (collab_eval.report): numbers plot across commits.
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        metadata[f"model/{name}"] = float(value) if is_number else dg.MetadataValue.json(value)
    for name, commit in evaluation.checkout.commits.items():
        metadata[f"commit/{name}"] = commit.sha
        metadata[f"author/{name}"] = f"{commit.author} <{commit.email}>"
        metadata[f"message/{name}"] = commit.message
        metadata[f"committed_at/{name}"] = dg.MetadataValue.timestamp(commit.committed_at)
    return metadata


def check_results(evaluation: Evaluation) -> list[dg.AssetCheckResult]:
    verdict = evaluation.verdict
    gate_metadata = {
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in verdict.reasons)),
        "baseline": evaluation.baseline_key or "none",
    }
    for name, comparison in verdict.comparisons.items():
        if comparison.ci_low is not None:
            gate_metadata[f"ci/{name}"] = f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]"
    results = [
        dg.AssetCheckResult(
            check_name=GATES_CHECK,
            asset_key=EVALUATION_ASSET,
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(verdict.reasons),
            metadata=gate_metadata,
        )
    ]
    diff = evaluation.diff
    metadata = {"outcome": diff.outcome}
    if diff.share is not None:
        metadata.update(
            {"changed_share": float(diff.share), "changed": diff.changed, "shared_rows": diff.shared}
        )
    results.append(
        dg.AssetCheckResult(
            check_name=DIFF_CHECK,
            asset_key=EVALUATION_ASSET,
            passed=not diff.breached,
            # An advisory breach shows as a warning beside a passing verdict; a blocking one
            # has already made the commit regressed.
            severity=dg.AssetCheckSeverity.ERROR
            if diff.outcome == "blocking breach"
            else dg.AssetCheckSeverity.WARN,
            description=diff.sentence,
            metadata=metadata,
        )
    )
    return results


def publish_evaluation(
    evaluation: Evaluation, model_repositories: ModelRepositories, context: dg.AssetExecutionContext
) -> None:
    comparisons = evaluation.verdict.comparisons
    publish(
        evaluation.checkout.suite,
        model_repositories.repository,
        str(evaluation.checkout.key),
        {name: commit.sha for name, commit in evaluation.checkout.commits.items()},
        evaluation.status,
        evaluation.verdict.reasons,
        {m: (c.value, c.difference, c.ci_low, c.ci_high) for m, c in comparisons.items()},
        context.run.run_id,
        context.log,
    )


def publish_failure(
    key: str,
    failure: EvaluationFailed,
    model_repositories: ModelRepositories,
    context: dg.AssetExecutionContext,
) -> None:
    """A failed commit gets its note and status too, when its key and suite can be read."""
    try:
        parsed = EvaluationKey.parse(key)
        suite = model_repositories.suites()[parsed.suite]
        commits = {}
        for name, short in parsed.commits:
            repo = model_repositories.repository(suite.repository(name))
            commits[name] = repo.resolve(short)
    except (EvaluationKeyError, KeyError, GitError):
        return  # nothing to attach a note to; the failure itself names the problem
    sentence = f"{failure.stage} failed: {str(failure)[:500]}"
    publish(
        suite,
        model_repositories.repository,
        key,
        commits,
        "failed",
        [sentence],
        {},
        context.run.run_id,
        context.log,
    )
