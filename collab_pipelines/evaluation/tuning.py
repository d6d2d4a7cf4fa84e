"""Parameter tuning: score a grid of hyperparameters for one commit, one step per candidate.

Candidates are dynamic outputs, so the executor spreads them over the cores (or over Celery
workers); the data and the code are prepared once and shared by every candidate.
"""

import itertools
import json
import shutil
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from collab_pipelines import settings
from collab_pipelines.evaluation.candidate_process import EvaluationFailed, evaluate, write_frames
from collab_pipelines.evaluation.commit_evaluation import check_out
from collab_pipelines.evaluation.contract import ContractError
from collab_pipelines.evaluation.data import EvaluationDataError, load_evaluation_data
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES
from collab_pipelines.warehouse.resources import Warehouse

TUNING_ASSET = dg.AssetKey("tuning_candidates")
OWNERS = ["team:data-science", "team:data-engineering"]

tuning_candidates = dg.AssetSpec(
    TUNING_ASSET,
    deps=["model_evaluation"],
    description="Every hyperparameter candidate the tune_model job scored, with its metrics and the "
    "best one marked. Written by the tune_model job.",
    group_name="evaluation",
    owners=OWNERS,
    kinds={"python", "scikit-learn"},
    tags={"collab/pattern": "evaluation"},
    metadata={"dagster/table_name": "tuning_candidates"},
)


class TuningConfig(dg.Config):
    evaluation_key: str = Field(
        description="The commit to tune: a partition key of model_evaluation, e.g. 'delay-model:model@1a2b3c4d5e'."
    )
    grid: dict[str, list[Any]] = Field(
        description="Hyperparameter name to the values to try; every combination is a candidate. "
        "Names are the estimator's set_params names (e.g. 'classifier__max_depth'), or keyword "
        "arguments of the contract's fit function."
    )
    metric: str | None = Field(
        default=None, description="The metric that picks the best; default: the contract's first."
    )
    data_through: str | None = Field(
        default=None, description="Tune on the exports through this day; default: the latest."
    )


@dg.op(
    out=dg.DynamicOut(dict),
    description="Checks out the commit, prepares the data once, and "
    "emits one candidate per combination of the grid.",
)
def plan_tuning(
    context: dg.OpExecutionContext,
    config: TuningConfig,
    model_repositories: ModelRepositories,
    warehouse: Warehouse,
):
    names = sorted(config.grid)
    if not names or any(not config.grid[name] for name in names):
        raise dg.Failure("grid: give every hyperparameter at least one value")
    try:
        checkout = check_out(
            config.evaluation_key, model_repositories.suites(), model_repositories.repository
        )
        contract = checkout.contract()
        data = load_evaluation_data(contract, warehouse, checkout.where(), config.data_through)
    except (EvaluationFailed, ContractError, EvaluationDataError) as error:
        raise dg.Failure(str(error)) from None
    metric = config.metric or contract.metrics[0]
    if metric not in contract.metrics:
        raise dg.Failure(
            f"metric {metric!r} is not computed by the contract; it computes {list(contract.metrics)}"
        )
    # Candidates may be scored by Celery workers on other machines: they read this folder.
    work = settings.shared_dir() / "tuning" / context.run_id
    work.mkdir(parents=True, exist_ok=True)
    sources = checkout.export(work / "code")
    frames = write_frames(data.frames, work)
    candidates = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(config.grid[name] for name in names))
    ]
    context.log.info(f"{len(candidates)} candidate(s) for {checkout.key} on data through {data.data_through}")
    for index, params in enumerate(candidates):
        yield dg.DynamicOutput(
            {
                "index": index,
                "params": params,
                "sources": sources,
                "frames": frames,
                "work": str(work),
                "contract": contract,
                "split_at": data.split_at,
                "limits": checkout.suite.limits,
                "sandboxed": not checkout.suite.unsandboxed,
                "where": f"{checkout.where()} candidate {index} {params}",
                "metric": metric,
                "key": str(checkout.key),
            },
            mapping_key=f"candidate_{index}",
        )


@dg.op(description="Trains and scores one candidate in its own process.")
def score_candidate(context: dg.OpExecutionContext, candidate: dict) -> dict:
    result = {key: candidate[key] for key in ("index", "params", "metric", "key", "work")}
    try:
        outcome = evaluate(
            candidate["sources"],
            candidate["contract"],
            # Read from the shared folder: the harness splits and masks them itself.
            {name: pd.read_parquet(path) for name, path in candidate["frames"].items()},
            candidate["split_at"],
            candidate["where"],
            candidate["limits"],
            candidate["params"],
            sandboxed=candidate.get("sandboxed", True),
        )
    except EvaluationFailed as failure:
        # One bad candidate (say, an invalid value) is recorded and the others go on.
        context.log.warning(str(failure))
        return {**result, "status": "failed", "message": str(failure)[:2000], "metrics": {}}
    context.log.info(f"candidate {candidate['index']} {candidate['params']}: {outcome.metrics}")
    return {**result, "status": "scored", "message": "", "metrics": outcome.metrics}


@dg.op(description="Records every candidate's metrics in the warehouse and names the best.")
def record_tuning(context: dg.OpExecutionContext, scores: list[dict], warehouse: Warehouse):
    scores = sorted(scores, key=lambda s: s["index"])
    metric = scores[0]["metric"]
    scored = [s for s in scores if s["status"] == "scored" and pd.notna(s["metrics"].get(metric))]
    best = max(scored, key=lambda s: s["metrics"][metric]) if scored else None
    rows = []
    for score in scores:
        for name, value in (score["metrics"] or {"": None}).items():
            rows.append(
                {
                    "tuning_run_id": context.run_id,
                    "evaluation_key": score["key"],
                    "candidate": score["index"],
                    "params": json.dumps(score["params"], sort_keys=True),
                    "metric": name or metric,
                    "value": value,
                    "best": best is not None and score["index"] == best["index"],
                    "status": score["status"],
                    "message": score["message"],
                }
            )
    frame = pd.DataFrame(rows)
    frame["value"] = frame["value"].astype(float)
    warehouse.replace("tuning_candidates", frame, where={"tuning_run_id": context.run_id})
    shutil.rmtree(scores[0]["work"], ignore_errors=True)
    table = pd.DataFrame(
        [
            {"candidate": s["index"], **s["params"], metric: s["metrics"].get(metric), "status": s["status"]}
            for s in scores
        ]
    )
    metadata = {
        "evaluation_key": scores[0]["key"],
        "metric": metric,
        "candidates": len(scores),
        "failed": sum(s["status"] == "failed" for s in scores),
        "candidates_table": dg.MetadataValue.md(table.to_markdown(index=False)),
    }
    if best:
        metadata["best_params"] = dg.MetadataValue.json(best["params"])
        metadata[f"best/{metric}"] = float(best["metrics"][metric])
        context.log.info(f"best candidate: {best['params']} with {metric} = {best['metrics'][metric]:.4f}")
    else:
        context.log.warning("no candidate could be scored")
    context.log_event(dg.AssetMaterialization(TUNING_ASSET, metadata=metadata))
    if best is None:
        raise dg.Failure("no candidate could be scored; the table tuning_candidates has every reason")
    return best["params"]


@dg.job(
    description="Scores a grid of hyperparameters for one commit, in parallel, records every candidate "
    "in tuning_candidates and names the best. Configure it in the launchpad or with "
    "`dagster job execute -j tune_model -c tuning.yaml`.",
    # A bad grid or plan fails the same way again; scoring failures are per candidate already.
    tags={"collab/pattern": "evaluation", **NO_RETRY_OF_STEP_FAILURES},
)
def tune_model():
    record_tuning(plan_tuning().map(score_candidate).collect())
