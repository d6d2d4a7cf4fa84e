"""The model-repository contract: `collab.toml` at the root of a data scientist's repository.

Plain parsing, no Dagster. Errors name the commit, the file and the field, because the reader
is the data scientist whose commit failed.

    [model]
    entry_point = "model:build"          # returns a scikit-learn estimator or pipeline
    # or a pair:  fit = "model:fit"  and  predict = "model:predict"

    [data]
    dataset = "flights"                  # an export from the catalog
    time_column = "sched_dep_at"         # the time-based split uses it
    row_id = "id"                        # identifies a row, to compare predictions across commits
    target = "delayed"                   # a column the feature function returns
    features = "features:build"          # frames -> DataFrame of features and the target
    join = ["weather"]                   # more datasets the feature function receives

    [evaluation]
    metrics = ["roc_auc", "accuracy"]    # scikit-learn scorer names
    test_days = 7                        # the most recent days are held out
    max_changed_predictions = 0.2        # prediction-diff test: share of labels allowed to change

    [gates.roc_auc]
    min = 0.55                           # absolute floor
    max_drop = 0.01                      # largest drop against the baseline
"""

import re
import tomllib
from dataclasses import dataclass, field

CONTRACT_FILE = "collab.toml"
_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Metrics the harness can compute from labels and scores; names follow scikit-learn.
SUPPORTED_METRICS = {
    "roc_auc": "score",
    "average_precision": "score",
    "neg_log_loss": "score",
    "neg_brier_score": "score",
    "accuracy": "label",
    "balanced_accuracy": "label",
    "f1": "label",
    "precision": "label",
    "recall": "label",
}


class ContractError(ValueError):
    """The contract file is missing or wrong; the message names where and what."""


@dataclass(frozen=True)
class Gate:
    metric: str
    min: float | None = None
    max_drop: float | None = None
    max_relative_drop: float | None = None


@dataclass(frozen=True)
class Contract:
    dataset: str
    target: str
    time_column: str
    row_id: str
    features: str | None
    entry_point: str | None
    fit: str | None
    predict: str | None
    join: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("roc_auc",)
    test_days: int = 7
    max_changed_predictions: float | None = None
    gates: dict[str, Gate] = field(default_factory=dict)

    @property
    def datasets(self) -> tuple[str, ...]:
        return (self.dataset, *self.join)


def parse_contract(text: str | None, where: str) -> Contract:
    """Parse `collab.toml`; `where` names it in errors, e.g. "repo@abc1234:collab.toml"."""
    if text is None:
        raise ContractError(f"{where}: no {CONTRACT_FILE} in this commit; see README's model contract")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ContractError(f"{where}: not valid TOML: {error}") from error

    def fail(field_name: str, problem: str) -> ContractError:
        return ContractError(f"{where}: field '{field_name}': {problem}")

    def table(name: str) -> dict:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise fail(name, "must be a table")
        return value

    def reference(section: dict, key: str, prefix: str) -> str | None:
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or not _REFERENCE.match(value)):
            raise fail(f"{prefix}.{key}", f"{value!r} is not 'module:function'")
        return value

    unknown = set(raw) - {"model", "data", "evaluation", "gates"}
    if unknown:
        raise ContractError(f"{where}: unknown table(s) {sorted(unknown)}")
    model, data, evaluation, gates_raw = table("model"), table("data"), table("evaluation"), table("gates")

    entry_point = reference(model, "entry_point", "model")
    fit, predict = reference(model, "fit", "model"), reference(model, "predict", "model")
    if entry_point and (fit or predict):
        raise fail("model", "give either entry_point or the fit/predict pair, not both")
    if not entry_point and not (fit and predict):
        raise fail("model.entry_point", "missing; name a function returning an estimator, or fit and predict")

    for required in ("dataset", "target", "time_column"):
        if not isinstance(data.get(required), str) or not data[required]:
            raise fail(f"data.{required}", "missing; it is required")
    join = data.get("join", [])
    if not isinstance(join, list) or not all(isinstance(j, str) for j in join):
        raise fail("data.join", "must be a list of dataset names")

    metrics = evaluation.get("metrics", ["roc_auc"])
    if not isinstance(metrics, list) or not metrics:
        raise fail("evaluation.metrics", "must be a non-empty list of scikit-learn metric names")
    for metric in metrics:
        if metric not in SUPPORTED_METRICS:
            raise fail(
                "evaluation.metrics", f"unknown metric {metric!r}; supported: {sorted(SUPPORTED_METRICS)}"
            )
    test_days = evaluation.get("test_days", 7)
    if isinstance(test_days, bool) or not isinstance(test_days, int) or test_days < 1:
        raise fail("evaluation.test_days", f"{test_days!r} is not a positive whole number of days")

    max_changed = evaluation.get("max_changed_predictions")
    if max_changed is not None and (
        isinstance(max_changed, bool)
        or not isinstance(max_changed, (int, float))
        or not 0 <= max_changed <= 1
    ):
        raise fail("evaluation.max_changed_predictions", f"{max_changed!r} is not a share between 0 and 1")
    unknown_keys = set(evaluation) - {"metrics", "test_days", "max_changed_predictions"}
    if unknown_keys:
        raise fail("evaluation", f"unknown key(s) {sorted(unknown_keys)}")

    gates = {}
    for metric, settings in gates_raw.items():
        if metric not in metrics:
            raise fail(f"gates.{metric}", f"gates a metric that is not computed; metrics are {metrics}")
        if not isinstance(settings, dict) or set(settings) - {"min", "max_drop", "max_relative_drop"}:
            raise fail(f"gates.{metric}", "allowed keys are min, max_drop and max_relative_drop")
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail(f"gates.{metric}.{key}", f"{value!r} is not a number")
        gates[metric] = Gate(metric=metric, **{k: float(v) for k, v in settings.items()})

    return Contract(
        dataset=data["dataset"],
        target=data["target"],
        time_column=data["time_column"],
        row_id=str(data.get("row_id", "id")),
        features=reference(data, "features", "data"),
        entry_point=entry_point,
        fit=fit,
        predict=predict,
        join=tuple(join),
        metrics=tuple(metrics),
        test_days=test_days,
        max_changed_predictions=None if max_changed is None else float(max_changed),
        gates=gates,
    )
