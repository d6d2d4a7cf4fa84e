"""The contract a verdict is judged by: the commit's collab.toml under the suite's pins.

No Dagster. The suite (the engineers') pins the decisive fields; the commit (the data
scientist's) says how to call its code. `decisive` lists the fields that decide a verdict as
the commit declared them, flat and comparable, so a commit whose declaration differs from its
baseline's is seen ("contract changed") even where the suite's pin made the change moot.
"""

import dataclasses
from typing import Any

from collab_pipelines.evaluation.contract import Contract, ContractError, Gate, TargetSpec
from collab_pipelines.evaluation.suites import Suite


def decisive(contract: Contract) -> dict[str, Any]:
    """The fields that decide a verdict, by their collab.toml path."""
    fields: dict[str, Any] = {
        "data.dataset": contract.dataset,
        "data.target.column": contract.target,
        "data.target.above": contract.target_above,
        "data.time_column": contract.time_column,
        "data.row_id": contract.row_id,
        "data.withheld": sorted(contract.withheld),
        "evaluation.metrics": sorted(contract.metrics),
        "evaluation.test_days": contract.test_days,
        "evaluation.max_changed_predictions": contract.max_changed_predictions,
        "evaluation.prediction_diff": contract.prediction_diff,
        "environment.env": sorted(contract.env),
    }
    for metric, gate in sorted(contract.gates.items()):
        for bound in ("min", "max_drop", "max_relative_drop"):
            fields[f"gates.{metric}.{bound}"] = getattr(gate, bound)
    return fields


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each decisive field that differs, as 'path: old -> new'."""
    return [
        f"{path}: {old.get(path)!r} -> {new.get(path)!r}"
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    ]


def pin(contract: Contract, suite: Suite, where: str) -> Contract:
    """The contract with the suite's pinned fields in place of the commit's; refuses a commit
    that asks for a variable the suite does not allow."""
    refused = sorted(set(contract.env) - set(suite.allowed_env))
    if refused:
        raise ContractError(
            f"{where}: [environment] env names {refused}, which suite {suite.name!r} does not allow "
            f"(allowed_env: {list(suite.allowed_env)}); the engineers add a variable to allowed_env in "
            "the suites file"
        )
    data, evaluation = suite.pinned.data, suite.pinned.evaluation
    values: dict[str, Any] = {
        name: getattr(data, name) for name in ("dataset", "time_column", "row_id", "withheld")
    } | {
        name: getattr(evaluation, name)
        for name in ("metrics", "test_days", "max_changed_predictions", "prediction_diff")
    }
    values = {name: value for name, value in values.items() if value is not None}
    if data.target is not None:
        target = data.target if isinstance(data.target, TargetSpec) else TargetSpec(column=data.target)
        values |= {"target": target.column, "target_above": target.above}
    if suite.pinned.gates is not None:
        values["gates"] = {
            metric: Gate(metric, **{k: v for k, v in gate.model_dump().items() if v is not None})
            for metric, gate in suite.pinned.gates.items()
        }
    pinned = dataclasses.replace(contract, **values)
    ungated = sorted(set(pinned.gates) - set(pinned.metrics))
    if ungated:
        raise ContractError(
            f"{where}: [gates] name {ungated}, which suite {suite.name!r} does not compute "
            f"(its metrics: {list(pinned.metrics)})"
        )
    return pinned
