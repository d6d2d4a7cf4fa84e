"""Evaluation suites: which model repositories to watch, and how an evaluation is named.

Plain parsing, no Dagster. The suites file belongs to the engineers (a deployment's
`suites.yaml`); the contract inside each repository belongs to the data scientists.

    suites:
      delay-model:                       # one suite, one repository
        repositories:
          model: {location: /srv/git/delay-model, branches: [main, experiments]}
      delays:                            # a suite that combines two people's repositories
        contract: model                  # the repository holding collab.toml (default: the first)
        baseline: last_passing           # or {champion: "delays:features@1a2b3c4d5e+model@5e6f7a8b9c"}
        initial_commits: 10              # commits evaluated when a repository is first seen
        limits: {seconds: 600, memory_mb: 4096}
        repositories:
          features: {location: "https://git.example.com/ada/features.git", branches: [main]}
          model: {location: "git@git.example.com:bob/model.git"}

An evaluation key names the suite and every commit it combines, e.g.
`delays:features@1a2b3c4d5e+model@5e6f7a8b9c`, so the UI's partition list says what was run.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from collab_pipelines.evaluation.harness import Limits

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
SHORT_SHA_LENGTH = 10


class SuiteConfigError(ValueError):
    """The suites file is wrong; the message names the file and the field."""


class EvaluationKeyError(ValueError):
    """A partition key that does not name a suite and its commits."""


@dataclass(frozen=True)
class RepositorySpec:
    name: str
    location: str
    branches: tuple[str, ...] = ("main",)


@dataclass(frozen=True)
class Suite:
    name: str
    repositories: tuple[RepositorySpec, ...]
    contract_repository: str
    champion: str | None = None
    initial_commits: int = 10
    limits: Limits = field(default_factory=Limits)

    def repository(self, name: str) -> RepositorySpec:
        for spec in self.repositories:
            if spec.name == name:
                return spec
        raise EvaluationKeyError(f"suite {self.name!r} has no repository {name!r}")


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


def load_suites(path: Path) -> dict[str, Suite]:
    """Read the suites file; a missing file means no suite yet, not an error."""
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SuiteConfigError(f"{path}: not valid YAML: {error}") from error
    return parse_suites(raw, str(path))


def parse_suites(raw: object, where: str) -> dict[str, Suite]:
    def fail(field_name: str, problem: str) -> SuiteConfigError:
        return SuiteConfigError(f"{where}: field '{field_name}': {problem}")

    if not isinstance(raw, dict) or not isinstance(raw.get("suites", {}), dict):
        raise fail("suites", "must be a mapping of suite names to suites")
    suites = {}
    for name, body in (raw.get("suites") or {}).items():
        prefix = f"suites.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise fail(prefix, "a suite name uses letters, digits, '_', '.' and '-' only")
        if not isinstance(body, dict):
            raise fail(prefix, "must be a mapping")
        unknown = set(body) - {"repositories", "contract", "baseline", "initial_commits", "limits"}
        if unknown:
            raise fail(prefix, f"unknown key(s) {sorted(unknown)}")
        repositories = []
        for repo_name, repo in (body.get("repositories") or {}).items():
            repo_prefix = f"{prefix}.repositories.{repo_name}"
            if not isinstance(repo_name, str) or not _NAME.match(repo_name):
                raise fail(repo_prefix, "a repository name uses letters, digits, '_', '.' and '-' only")
            if not isinstance(repo, dict) or not isinstance(repo.get("location"), str):
                raise fail(f"{repo_prefix}.location", "missing: a local path or a git URL")
            branches = repo.get("branches", [repo.get("branch", "main")])
            if (
                not isinstance(branches, list)
                or not branches
                or not all(isinstance(b, str) for b in branches)
            ):
                raise fail(f"{repo_prefix}.branches", "must be a non-empty list of branch names")
            repositories.append(RepositorySpec(repo_name, repo["location"], tuple(branches)))
        if not repositories:
            raise fail(f"{prefix}.repositories", "a suite needs at least one repository")
        contract = body.get("contract", repositories[0].name)
        if contract not in {r.name for r in repositories}:
            raise fail(f"{prefix}.contract", f"{contract!r} is not one of the suite's repositories")
        baseline = body.get("baseline", "last_passing")
        champion = None
        if isinstance(baseline, dict) and set(baseline) == {"champion"}:
            champion = str(baseline["champion"])
            if EvaluationKey.parse(champion).suite != name:
                raise fail(
                    f"{prefix}.baseline.champion", f"{champion!r} is not an evaluation of suite {name!r}"
                )
        elif baseline != "last_passing":
            raise fail(f"{prefix}.baseline", "use 'last_passing' or {champion: <evaluation key>}")
        initial = body.get("initial_commits", 10)
        if isinstance(initial, bool) or not isinstance(initial, int) or initial < 1:
            raise fail(f"{prefix}.initial_commits", f"{initial!r} is not a positive whole number")
        limits_raw = body.get("limits", {})
        if not isinstance(limits_raw, dict) or set(limits_raw) - {"seconds", "memory_mb"}:
            raise fail(f"{prefix}.limits", "allowed keys are seconds and memory_mb")
        try:
            limits = Limits(**{k: type(getattr(Limits(), k))(v) for k, v in limits_raw.items()})
        except (TypeError, ValueError) as error:
            raise fail(f"{prefix}.limits", str(error)) from error
        suites[name] = Suite(name, tuple(repositories), contract, champion, initial, limits)
    return suites
