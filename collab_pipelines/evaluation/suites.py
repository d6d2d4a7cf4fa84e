"""Evaluation suites: which model repositories to watch, and how an evaluation is named.

Plain parsing, no Dagster. The suites file belongs to the engineers (a deployment's
`suites.yaml`); the contract inside each repository belongs to the data scientists.
Its JSON Schema is docs/schemas/suites.schema.json.

    suites:
      delay-model:                       # one suite, one repository
        repositories:
          model: {location: /srv/git/delay-model, branches: [main, experiments]}
      delays:                            # a suite that combines two people's repositories
        contract: model                  # the repository holding collab.toml (default: the first)
        baseline: last_passing           # or {champion: "delays:features@1a2b3c4d5e+model@5e6f7a8b9c"}
        initial_commits: 10              # commits evaluated when a repository is first seen
        commits_per_tick: 50             # a burst is worked off over the following ticks
        limits: {seconds: 600, memory_mb: 4096}
        notes: {push: true}              # push refs/notes/collab to the repository's origin
        commit_status: {host: github, repository: ada/model, token_env: GITHUB_TOKEN}
        pinned:                          # what decides a verdict; wins over collab.toml's values
          data: {dataset: flights, time_column: sched_dep_at, row_id: id,
                 target: {column: dep_delay, above: 15}, withheld: [dep_time, arr_delay]}
          evaluation: {metrics: [roc_auc], test_days: 7}
          gates: {roc_auc: {min: 0.55, max_drop: 0.01}}
        allowed_env: [MODEL_SEED]        # the only variables a model may receive
        contract_changes: block          # a commit changing a decisive field is not passed
        repositories:
          features: {location: "https://git.example.com/ada/features.git", branches: [main]}
          model: {location: "git@git.example.com:bob/model.git"}

The suites file is the engineers': what decides a verdict (the dataset, the target, the test
window, the metrics and the gates) is pinned here, where a commit cannot loosen it. A commit's
collab.toml may still declare those fields; a change of them against its baseline's is a
"contract change", which `contract_changes` blocks (default) or flags.

An evaluation key names the suite and every commit it combines, e.g.
`delays:features@1a2b3c4d5e+model@5e6f7a8b9c`, so the UI's partition list says what was run.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from collab_pipelines.config import ConfigError, StrictModel, parse, read_yaml
from collab_pipelines.evaluation.contract import DataPins, EvaluationPins, GateSection, variable_name

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
SHORT_SHA_LENGTH = 10


class SuiteConfigError(ConfigError):
    """The suites file is wrong; the message names the file, the suite and the field."""


class EvaluationKeyError(ValueError):
    """A partition key that does not name a suite and its commits."""


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r}: a name uses letters, digits, '_', '.' and '-' only")
    return value


Name = Annotated[str, AfterValidator(_name)]
Positive = Annotated[StrictInt, Field(ge=1)]


class Limits(StrictModel):
    """What one candidate's process may use."""

    seconds: float = Field(default=600, gt=0, description="Wall-clock limit of one evaluation run.")
    memory_mb: Positive = Field(default=4096, description="Address-space limit of each process.")
    processes: Positive = Field(default=64, description="Processes and threads the model may run at once.")
    open_files: Positive = Field(default=256, description="Files each process may hold open.")
    scratch_mb: Positive = Field(
        default=1024, description="Size of the scratch space (/tmp, $HOME) and of any one file written."
    )


class RepositorySpec(StrictModel):
    name: SkipJsonSchema[str] = Field(default="", exclude=True)  # its key in the file
    location: str = Field(description="A local path or a git URL (https://, ssh, git@host:path).")
    branches: tuple[str, ...] = Field(default=("main",), min_length=1, description="Branches to follow.")


class Champion(StrictModel):
    champion: str = Field(description="The evaluation key every commit is compared with.")


class Notes(StrictModel):
    push: bool = Field(
        default=False,
        description="Push refs/notes/collab to the repository's remote after each evaluation, so "
        "`git log --notes=collab` shows the verdict in every clone.",
    )
    remote: str = Field(default="origin", description="The remote a local repository pushes notes to.")


class CommitStatus(StrictModel):
    """A commit status on the contract repository's commit, through the host's REST API."""

    host: Literal["github", "gitlab"]
    repository: str = Field(description="owner/name on GitHub; the project path or id on GitLab.")
    token_env: str = Field(description="The environment variable holding the API token.")
    api_url: str | None = Field(
        default=None,
        description="The API's base URL; default https://api.github.com or https://gitlab.com/api/v4.",
    )


class Pinned(StrictModel):
    """The decisive fields the suite fixes, in collab.toml's own sections and names."""

    data: DataPins = DataPins()
    evaluation: EvaluationPins = EvaluationPins()
    gates: dict[str, GateSection] | None = Field(
        default=None, description="The gates, whole: a commit's own [gates] are ignored when set."
    )

    @model_validator(mode="after")
    def _gated_metrics_are_computed(self):
        if self.gates and self.evaluation.metrics:
            ungated = sorted(set(self.gates) - set(self.evaluation.metrics))
            if ungated:
                raise ValueError(
                    f"gates {ungated} name metrics that are not pinned: {list(self.evaluation.metrics)}"
                )
        return self


# Names a suite cannot hand to a model: the deployment's own settings and secrets. The model
# has no network in its sandbox, but a variable's value could still be written into its output.
_FORBIDDEN_ENV = re.compile(r"^(DAGSTER_|COLLAB_|PG|AWS_|GOOGLE_|AZURE_)|(PASSWORD|SECRET|TOKEN|_KEY)", re.I)


def _allowed_variable(value: str) -> str:
    value = variable_name(value)
    if _FORBIDDEN_ENV.search(value):
        raise ValueError(f"{value!r} looks like a deployment setting or a secret; a model may not receive it")
    return value


class ChampionPolicy(StrictModel):
    """How the suite's champion (the commit the product uses) is chosen."""

    policy: Literal["manual", "last_passing"] = Field(
        default="manual",
        description="manual: promoted by the promote_champion job only; last_passing: every passing "
        "evaluation of a commit on `branch` becomes the champion.",
    )
    branch: str = Field(default="main", description="The branch last_passing follows.")


class PredictionsSpec(StrictModel):
    """The champion's daily predictions: a daily-partitioned asset and dataset per suite."""

    train_days: Positive = Field(
        default=60, description="Days before each predicted day the model is fitted on."
    )
    repredict_days: Positive = Field(
        default=7, description="The most recent days predicted again when the champion changes."
    )
    challengers: int = Field(
        default=0,
        ge=0,
        le=10,
        description="When the champion's quality falls below a gate's floor on a day, this many of the "
        "suite's latest passing evaluations are fitted and scored on the same day: if they fall too, "
        "the data moved; if one does not, the champion is the cause. 0: the champion alone is scored.",
    )


class DriftSpec(StrictModel):
    """Per-column drift between the training window and each predicted day (population stability index)."""

    columns: tuple[str, ...] = Field(
        default=(),
        description="Columns of the dataset to watch; default: every column but the row id, the time, "
        "the target and the withheld ones.",
    )
    warn: float = Field(default=0.1, gt=0, description="A PSI above it is a warning.")
    error: float = Field(default=0.25, gt=0, description="A PSI above it fails the check at ERROR severity.")

    @model_validator(mode="after")
    def _warn_before_error(self):
        if self.warn > self.error:
            raise ValueError(f"warn ({self.warn}) is above error ({self.error})")
        return self


class Suite(StrictModel):
    name: SkipJsonSchema[str] = Field(default="", exclude=True)  # its key in the file
    repositories: dict[Name, RepositorySpec] = Field(min_length=1)
    contract: str | None = Field(
        default=None, description="The repository holding collab.toml; default: the first."
    )
    baseline: Literal["last_passing"] | Champion = "last_passing"
    initial_commits: Positive = Field(default=10, description="Commits evaluated on first sight.")
    commits_per_tick: Positive = Field(
        default=50,
        description="New commits requested per branch and sensor tick; a larger burst is worked "
        "off over the following ticks, oldest first, and none is skipped.",
    )
    limits: Limits = Limits()
    notes: Notes = Notes()
    commit_status: CommitStatus | None = None
    pinned: Pinned = Field(
        default_factory=Pinned,
        description="Owned by the suite: the fields that decide a verdict (dataset, target, test "
        "window, metrics, gates). A commit's collab.toml cannot change them.",
    )
    allowed_env: tuple[Annotated[str, AfterValidator(_allowed_variable)], ...] = Field(
        default=(),
        description="Owned by the suite: the environment variables a model may receive; a commit "
        "naming any other in collab.toml's [environment] env fails.",
    )
    contract_changes: Literal["block", "flag"] = Field(
        default="block",
        description="Owned by the suite: a commit whose decisive fields in collab.toml differ from "
        "its baseline's is regressed (block) or passes with the change listed (flag).",
    )
    champion: ChampionPolicy = Field(default_factory=ChampionPolicy)
    predictions: PredictionsSpec | None = Field(
        default=None,
        description="The champion's daily predictions (asset and dataset <suite>_predictions); "
        "none unless set.",
    )
    drift: DriftSpec = Field(default_factory=DriftSpec)
    unsandboxed: bool = Field(
        default=False,
        description="Runs the commits without the sandbox (network, files and the parent's "
        "processes in reach). Only for trusted in-house repositories; every verdict says so.",
    )

    @model_validator(mode="before")
    @classmethod
    def _names(cls, raw):
        # A repository's name is its key; the models carry it so the code can pass one object.
        if isinstance(raw, dict) and isinstance(raw.get("repositories"), dict):
            raw = {
                **raw,
                "repositories": {
                    key: {**value, "name": key} if isinstance(value, dict) else value
                    for key, value in raw["repositories"].items()
                },
            }
        return raw

    @model_validator(mode="after")
    def _contract_is_a_repository(self):
        if self.contract is not None and self.contract not in self.repositories:
            raise ValueError(f"contract {self.contract!r} is not one of the suite's repositories")
        if isinstance(self.baseline, Champion):
            try:
                suite = EvaluationKey.parse(self.baseline.champion).suite
            except EvaluationKeyError as error:
                raise ValueError(str(error)) from None
            if self.name and suite != self.name:
                raise ValueError(
                    f"baseline.champion {self.baseline.champion!r} is not an evaluation of suite {self.name!r}"
                )
        return self

    @model_validator(mode="after")
    def _predictions_know_their_dataset(self):
        # The predictions asset is drawn downstream of its export before any commit is read.
        if self.predictions is not None and self.pinned.data.dataset is None:
            raise ValueError("predictions need the dataset pinned: pinned: {data: {dataset: ...}}")
        return self

    @property
    def contract_repository(self) -> str:
        return self.contract or next(iter(self.repositories))

    @property
    def pinned_baseline(self) -> str | None:
        """The evaluation key `baseline: {champion: ...}` pins every comparison to, if any."""
        return self.baseline.champion if isinstance(self.baseline, Champion) else None

    @property
    def specs(self) -> tuple[RepositorySpec, ...]:
        return tuple(self.repositories.values())

    def repository(self, name: str) -> RepositorySpec:
        if name not in self.repositories:
            raise EvaluationKeyError(f"suite {self.name!r} has no repository {name!r}")
        return self.repositories[name]


class SuitesFile(StrictModel):
    """The suites file: evaluation suites by name."""

    suites: dict[Name, Suite] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _names(cls, raw):
        if isinstance(raw, dict) and isinstance(raw.get("suites"), dict):
            raw = {
                **raw,
                "suites": {
                    key: {**value, "name": key} if isinstance(value, dict) else value
                    for key, value in raw["suites"].items()
                },
            }
        return raw


@dataclass(frozen=True)
class EvaluationKey:
    suite: str
    commits: tuple[tuple[str, str], ...]
    """(repository name, sha) in the suite's repository order."""

    def __str__(self) -> str:
        return f"{self.suite}:" + "+".join(f"{repo}@{sha[:SHORT_SHA_LENGTH]}" for repo, sha in self.commits)

    @classmethod
    def parse(cls, key: str) -> "EvaluationKey":
        suite, sep, rest = key.partition(":")
        if not sep or not _NAME.match(suite) or not rest:
            raise EvaluationKeyError(f"{key!r} is not an evaluation key like 'suite:repo@1a2b3c4d5e'")
        commits = []
        for part in rest.split("+"):
            repo, at, sha = part.partition("@")
            if not at or not _NAME.match(repo) or not _SHORT_SHA.match(sha):
                raise EvaluationKeyError(f"{key!r}: {part!r} is not 'repository@sha'")
            commits.append((repo, sha))
        return cls(suite, tuple(commits))


def asset_name(suite_name: str) -> str:
    """The suite's name as it appears in asset names (`delay-model` -> `delay_model_champion`):
    an asset name takes letters, digits and '_' only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", suite_name)


def load_suites(path: Path) -> dict[str, Suite]:
    """Read the suites file; a missing file means no suite yet, not an error."""
    if not path.exists():
        return {}
    return parse_suites(read_yaml(path, SuiteConfigError) or {}, str(path))


def parse_suites(raw: object, where: str) -> dict[str, Suite]:
    return parse(SuitesFile, raw, where, entry_depth=2, error=SuiteConfigError).suites
