"""The model-repository contract: `collab.toml` at the root of a data scientist's repository.

Plain parsing, no Dagster. Errors name the commit, the file and the field, because the reader
is the data scientist whose commit failed. Its JSON Schema is docs/schemas/collab.schema.json.

    [model]
    entry_point = "model:build"          # returns a scikit-learn estimator or pipeline
    # or a pair:  fit = "model:fit"  and  predict = "model:predict"

    [data]
    dataset = "flights"                  # an export from the catalog
    time_column = "sched_dep_at"         # the time-based split uses it
    row_id = "id"                        # identifies a row, to compare predictions across commits
    target = {column = "dep_delay", above = 15}   # a dataset column, 0/1 or with a threshold
    withheld = ["arr_delay", "dep_time"] # columns that give the target away: empty in held-out rows
    features = "features:build"          # frames -> DataFrame of features and the target
    join = ["weather"]                   # more datasets the feature function receives

    [evaluation]
    metrics = ["roc_auc", "accuracy"]    # scikit-learn scorer names
    test_days = 7                        # the most recent days are held out
    max_changed_predictions = 0.2        # prediction-diff gate: share of labels allowed to change
    prediction_diff = "advisory"         # or "blocking": a breach makes the commit regressed

    [gates.roc_auc]
    min = 0.55                           # absolute floor
    max_drop = 0.01                      # largest drop against the baseline

    [environment]                        # optional: the commit's own packages (see docs)
    lock = "requirements.lock"           # default: requirements.txt, else pyproject.toml
    env = ["MODEL_SEED"]                 # variables passed through to the model's process
"""

import re
import tomllib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from collab_pipelines.config import ConfigError, StrictModel, parse

CONTRACT_FILE = "collab.toml"
_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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


# Who owns a field, shown in the JSON Schema (docs/schemas/collab.schema.json) as "x-owner":
# the commit's own fields say how to run its code; decisive fields decide its verdict, and the
# suite pins them (suites.yaml `pinned`) or flags a commit that changes them.
COMMIT_OWNED = {"x-owner": "commit"}
DECISIVE = {
    "x-owner": "suite: decisive; pinned in suites.yaml, a change against the baseline is a contract change"
}


class ContractError(ConfigError):
    """The contract file is missing or wrong; the message names where and what."""


def _reference(value: str) -> str:
    if not _REFERENCE.match(value):
        raise ValueError(f"{value!r} is not 'module:function'")
    return value


def _metric(value: str) -> str:
    if value not in SUPPORTED_METRICS:
        raise ValueError(f"unknown metric {value!r}; supported: {sorted(SUPPORTED_METRICS)}")
    return value


def variable_name(value: str) -> str:
    if not _VARIABLE.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


Reference = Annotated[str, AfterValidator(_reference)]
Number = Annotated[float, Field(strict=True)]


def _field_error(loc: tuple, message: str, value: Any) -> ValidationError:
    """An error placed on one field, raised from a validator that checks several fields."""
    details = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
    return ValidationError.from_exception_data("collab.toml", [details])


class ModelSection(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=COMMIT_OWNED)

    entry_point: Reference | None = Field(default=None, description="A function returning an estimator.")
    fit: Reference | None = Field(default=None, description="fit(X, y, **params) -> model")
    predict: Reference | None = Field(default=None, description="predict(model, X) -> labels or scores")

    @model_validator(mode="after")
    def _one_way(self):
        if self.entry_point and (self.fit or self.predict):
            raise ValueError("give either entry_point or the fit/predict pair, not both")
        if not self.entry_point and not (self.fit and self.predict):
            raise _field_error(
                ("entry_point",),
                "missing; name a function returning an estimator, or fit and predict",
                None,
            )
        return self


class TargetSpec(StrictModel):
    """The label the harness computes from the dataset: a 0/1 column, or a column above a threshold."""

    column: str = Field(min_length=1, description="A column of the dataset.")
    above: Number | None = Field(default=None, description="The label is 1 where the column exceeds it.")


class DataSection(StrictModel):
    dataset: str = Field(min_length=1, description="An export from the catalog.", json_schema_extra=DECISIVE)
    target: Annotated[str, Field(min_length=1)] | TargetSpec = Field(
        description="The label, computed by the harness from the dataset (never by the model's "
        "code): a 0/1 column's name, or {column, above}. Rows without a value are not scored.",
        json_schema_extra=DECISIVE,
    )
    withheld: tuple[str, ...] = Field(
        default=(),
        description="Columns of the dataset that give the target away (an arrival delay beside a "
        "departure delay): like the target, empty in the held-out rows the feature function sees.",
        json_schema_extra=DECISIVE,
    )
    time_column: str = Field(
        min_length=1, description="The time-based split uses it.", json_schema_extra=DECISIVE
    )
    row_id: str = Field(
        default="id", description="Identifies a row across commits.", json_schema_extra=DECISIVE
    )
    features: Reference | None = Field(
        default=None,
        description="frames -> a table with the row id and the model's features",
        json_schema_extra=COMMIT_OWNED,
    )
    join: tuple[str, ...] = Field(
        default=(), description="More datasets the feature function receives.", json_schema_extra=COMMIT_OWNED
    )
    slices: tuple[str, ...] = Field(
        json_schema_extra=COMMIT_OWNED,
        default=(),
        description="Columns whose values the evaluation report shows metrics for, one row per value "
        "(e.g. origin airport), so a drop confined to one slice shows.",
    )


class EvaluationSection(StrictModel):
    """Decisive: the suite pins these (suites.yaml `pinned.evaluation`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=DECISIVE)

    metrics: tuple[Annotated[str, AfterValidator(_metric)], ...] = Field(default=("roc_auc",), min_length=1)
    test_days: Annotated[int, Field(strict=True, ge=1)] = 7
    max_changed_predictions: Annotated[Number, Field(ge=0, le=1)] | None = Field(
        default=None, description="Share of predicted labels allowed to change against the baseline."
    )
    prediction_diff: Literal["advisory", "blocking"] = Field(
        default="advisory",
        description="Whether a breach of max_changed_predictions makes the commit regressed "
        "(blocking) or is recorded and shown beside a passing verdict (advisory).",
    )


class DataPins(StrictModel):
    """The data fields a suite may pin; unset ones are the commit's."""

    dataset: str | None = Field(default=None, min_length=1)
    target: Annotated[str, Field(min_length=1)] | TargetSpec | None = None
    time_column: str | None = Field(default=None, min_length=1)
    row_id: str | None = Field(default=None, min_length=1)
    withheld: tuple[str, ...] | None = None


class EvaluationPins(StrictModel):
    """The evaluation fields a suite may pin; unset ones are the commit's."""

    metrics: tuple[Annotated[str, AfterValidator(_metric)], ...] | None = Field(default=None, min_length=1)
    test_days: Annotated[int, Field(strict=True, ge=1)] | None = None
    max_changed_predictions: Annotated[Number, Field(ge=0, le=1)] | None = None
    prediction_diff: Literal["advisory", "blocking"] | None = None


class GateSection(StrictModel):
    """Decisive: the suite pins the gates (suites.yaml `pinned.gates`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=DECISIVE)

    min: Number | None = None
    max_drop: Number | None = None
    max_relative_drop: Number | None = None


class EnvironmentSection(StrictModel):
    lock: str | None = Field(
        default=None,
        description="A pinned requirements file in the repository to build the environment from "
        "(default: requirements.txt, else pyproject.toml; neither means the project's own packages).",
    )
    env: tuple[Annotated[str, AfterValidator(variable_name)], ...] = Field(
        default=(),
        description="Environment variables passed through to the model's process; each must be in "
        "the suite's allowed_env.",
        json_schema_extra=DECISIVE,
    )


class ContractFile(StrictModel):
    """collab.toml: how the project trains, scores and gates a model repository."""

    model: ModelSection = Field(default_factory=dict, validate_default=True)
    data: DataSection
    evaluation: EvaluationSection = EvaluationSection()
    gates: dict[str, GateSection] = Field(default_factory=dict)
    environment: EnvironmentSection = EnvironmentSection()

    @model_validator(mode="after")
    def _gated_metrics_are_computed(self):
        for metric in self.gates:
            if metric not in self.evaluation.metrics:
                raise _field_error(
                    ("gates", metric),
                    f"gates a metric that is not computed; metrics are {list(self.evaluation.metrics)}",
                    metric,
                )
        return self


@dataclass(frozen=True)
class Gate:
    metric: str
    min: float | None = None
    max_drop: float | None = None
    max_relative_drop: float | None = None


@dataclass(frozen=True)
class Contract:
    """The parsed contract, flat: the candidate's process receives it as JSON."""

    dataset: str
    target: str
    time_column: str
    row_id: str
    features: str | None
    entry_point: str | None
    fit: str | None
    predict: str | None
    join: tuple[str, ...] = ()
    target_above: float | None = None
    withheld: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("roc_auc",)
    test_days: int = 7
    max_changed_predictions: float | None = None
    prediction_diff: str = "advisory"
    gates: dict[str, Gate] = field(default_factory=dict)
    lock: str | None = None
    env: tuple[str, ...] = ()

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
    return from_file(parse(ContractFile, raw, where, entry_depth=0, error=ContractError))


def from_file(file: ContractFile) -> Contract:
    model, data, evaluation = file.model, file.data, file.evaluation
    target = data.target if isinstance(data.target, TargetSpec) else TargetSpec(column=data.target)
    return Contract(
        dataset=data.dataset,
        target=target.column,
        target_above=target.above,
        withheld=data.withheld,
        time_column=data.time_column,
        row_id=data.row_id,
        features=data.features,
        entry_point=model.entry_point,
        fit=model.fit,
        predict=model.predict,
        join=data.join,
        metrics=evaluation.metrics,
        test_days=evaluation.test_days,
        max_changed_predictions=evaluation.max_changed_predictions,
        prediction_diff=evaluation.prediction_diff,
        gates={
            metric: Gate(metric, **{k: v for k, v in gate.model_dump().items() if v is not None})
            for metric, gate in file.gates.items()
        },
        lock=file.environment.lock,
        env=file.environment.env,
    )
