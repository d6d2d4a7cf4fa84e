"""Finding what to evaluate: new commits, and the new combinations they make in a suite.

Plain git, no Dagster. The cursor holds, per suite, repository and branch, the newest commit
already considered; a poll walks only the commits after it, so its cost follows what is new,
not the length of the history.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

from collab_pipelines.evaluation.repos import Commit, GitError, GitRepository
from collab_pipelines.evaluation.suites import EvaluationKey, RepositorySpec, Suite

SuiteCursor = dict[str, dict[str, str]]
"""repository name -> branch -> newest SHA considered."""
# Between the repositories/branches of a trigger: no git branch name holds a space.
TRIGGER_SEPARATOR = ", "


@dataclass(frozen=True)
class Candidate:
    key: str
    commits: dict[str, Commit]
    """Every repository's commit in this combination."""
    trigger: str
    """The repository and branch whose new commit made it, e.g. "model/main"; several joined by
    TRIGGER_SEPARATOR where new commits of several made it at once (a suite's first poll)."""


@dataclass(frozen=True)
class Discovery:
    candidates: list[Candidate]
    cursor: "SuiteCursor"
    backlog: dict[str, int]
    """repository/branch -> new commits left for the following ticks (a burst's remainder)."""


def discover(
    suite: Suite, cursor: SuiteCursor, repository: Callable[[RepositorySpec], GitRepository]
) -> Discovery:
    """The suite's new evaluations since `cursor`, oldest first, and the cursor after them.

    At most `suite.commits_per_tick` new commits per branch are taken; the cursor moves past
    those only, so a larger burst is worked off over the following ticks. Raises GitError
    when a repository cannot be read; the caller keeps the old cursor, so nothing is skipped.
    """
    repos = {spec.name: repository(spec) for spec in suite.specs}
    new_cursor: SuiteCursor = {name: dict(cursor.get(name, {})) for name in repos}
    news: dict[str, list[tuple[str, Commit]]] = {}
    current: dict[str, Commit] = {}
    backlog: dict[str, int] = {}
    for spec in suite.specs:
        repo = repos[spec.name]
        repo.sync()
        seen = cursor.get(spec.name, {})
        news[spec.name] = []
        for branch in spec.branches:
            commits, left = _new_commits(repo, branch, seen.get(branch), suite)
            if left:
                backlog[f"{spec.name}/{branch}"] = left
            news[spec.name].extend((branch, commit) for commit in commits)
            new_cursor[spec.name][branch] = (
                commits[-1].sha if commits else seen.get(branch) or repo.head(branch)
            )
        primary = spec.branches[0]
        # What the others are combined with: the primary branch as of the previous poll, or
        # its head on first sight.
        previous = seen.get(primary)
        current[spec.name] = (
            repo.commit(previous) if previous and _exists(repo, previous) else repo.commit(repo.head(primary))
        )

    candidates: dict[str, Candidate] = {}
    for spec, branch, commit in _in_commit_time_order(suite, news):
        combination = {**current, spec.name: commit}
        if branch == spec.branches[0]:
            current[spec.name] = commit
        key = str(
            EvaluationKey(
                suite.name, tuple((other.name, combination[other.name].sha) for other in suite.specs)
            )
        )
        made_by = f"{spec.name}/{branch}"
        if key not in candidates:
            candidates[key] = Candidate(key, combination, made_by)
        elif made_by not in candidates[key].trigger.split(TRIGGER_SEPARATOR):
            # The first poll combines every repository's newest commit: that one combination is
            # each of them's own change, and `collab-eval wait` answers each author with it.
            first = candidates[key]
            candidates[key] = replace(first, trigger=first.trigger + TRIGGER_SEPARATOR + made_by)
    return Discovery(list(candidates.values()), new_cursor, backlog)


def _in_commit_time_order(
    suite: Suite, news: dict[str, list[tuple[str, Commit]]]
) -> list[tuple[RepositorySpec, str, Commit]]:
    """Every repository's new commits merged by commit time (the committer's date), so each
    combination pairs a commit with what the other repositories held when it was made. A
    repository's own commits keep their order (a rebase can leave its dates out of order), and
    equal times follow the suites file's order of repositories."""
    queues = {spec.name: list(news[spec.name]) for spec in suite.specs}
    merged = []
    while any(queues.values()):
        spec = min(
            (spec for spec in suite.specs if queues[spec.name]),
            key=lambda spec: queues[spec.name][0][1].committed_at,
        )
        branch, commit = queues[spec.name].pop(0)
        merged.append((spec, branch, commit))
    return merged


def _new_commits(
    repo: GitRepository, branch: str, since: str | None, suite: Suite
) -> tuple[list[Commit], int]:
    if since is None:
        # First sight: the newest few; the history before them is the add_commit_history job's.
        return repo.commits_since(branch, None, limit=suite.initial_commits), 0
    try:
        return repo.commits_after(branch, since, suite.commits_per_tick)
    except GitError:
        # The commit we stopped at is gone (a force-push): start again from the newest few.
        return repo.commits_since(branch, None, limit=suite.initial_commits), 0


def _exists(repo: GitRepository, sha: str) -> bool:
    try:
        repo.resolve(sha)
    except GitError:
        return False
    return True
