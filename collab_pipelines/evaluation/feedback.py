"""The verdict back where the data scientist works: a git note on the commit, and a commit
status on GitHub or GitLab. No Dagster.

The note lives under refs/notes/collab on every commit of the evaluation, one section per
combination the commit was judged in:

    git fetch origin 'refs/notes/*:refs/notes/*' && git log --notes=collab

The commit status goes to the suite's `commit_status` host, on the contract repository's
commit, through the host's documented REST API:
- GitHub: POST {api}/repos/{owner}/{repo}/statuses/{sha}
  (docs.github.com/en/rest/commits/statuses#create-a-commit-status);
- GitLab: POST {api}/projects/{id}/statuses/{sha}
  (docs.gitlab.com/ee/api/commits.html#set-the-pipeline-status-of-a-commit).
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from collab_pipelines.evaluation.repos import GitError, GitRepository
from collab_pipelines.evaluation.suites import CommitStatus, RepositorySpec, Suite

DAGSTER_URL_ENV = "COLLAB_DAGSTER_URL"
STATUS_CONTEXT = "collab/evaluation"
_GITHUB_STATES = {"passed": "success", "regressed": "failure", "failed": "error"}
_GITLAB_STATES = {"passed": "success", "regressed": "failed", "failed": "failed"}
_DEFAULT_API = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}


class StatusError(RuntimeError):
    """The host refused the commit status, or could not be reached; the message says which."""


def run_url(run_id: str) -> str:
    base = os.environ.get(DAGSTER_URL_ENV) or "http://localhost:3000"
    return f"{base.rstrip('/')}/runs/{run_id}"


def note_text(
    key: str,
    status: str,
    sentences: Sequence[str],
    metrics: Mapping[str, tuple[float, float | None, float | None, float | None]],
    link: str,
) -> str:
    """The note: verdict, metrics with their change and interval, the gate sentences, the run.

    `metrics` maps a metric to (value, change, interval low, interval high).
    """
    lines = [f"collab evaluation {key}: {status}"]
    for metric, (value, change, low, high) in metrics.items():
        text = f"  {metric} {value:.4f}"
        if change is not None:
            text += f", change {change:+.4f}"
        if low is not None and high is not None:
            text += f", 90% interval [{low:+.4f}, {high:+.4f}]"
        lines.append(text)
    lines += [f"- {sentence}" for sentence in sentences]
    lines.append(f"run: {link}")
    return "\n".join(lines) + "\n"


_HEADER = "collab evaluation "


def merged_note(existing: str | None, key: str, text: str) -> str:
    """The commit's note with `text` as the verdict of `key`: a commit judged in several
    combinations keeps each one's verdict, in the order first judged; judging the same
    combination again replaces its own."""
    sections: dict[str, str] = {}
    current = None
    for line in (existing or "").splitlines():
        if line.startswith(_HEADER):
            current = line[len(_HEADER) :].rpartition(": ")[0]
            sections[current] = ""
        if current is not None and line:
            sections[current] += line + "\n"
    sections[key] = text if text.endswith("\n") else text + "\n"
    return "\n".join(sections.values())


def post_status(
    settings: CommitStatus, sha: str, status: str, description: str, link: str, suite: str
) -> tuple[str, str]:
    """Post the verdict as the commit's status; returns (method, URL) of the request made."""
    token = os.environ.get(settings.token_env)
    if not token:
        raise StatusError(f"commit status: ${settings.token_env} (the suite's token_env) is not set")
    api = (settings.api_url or _DEFAULT_API[settings.host]).rstrip("/")
    context = f"{STATUS_CONTEXT}/{suite}"
    # Both hosts cut the description at 140 characters; cut it here, where the words are known.
    description = description if len(description) <= 140 else description[:139] + "…"
    if settings.host == "github":
        url = f"{api}/repos/{settings.repository}/statuses/{sha}"
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        body = {
            "state": _GITHUB_STATES[status],
            "target_url": link,
            "description": description,
            "context": context,
        }
    else:
        project = urllib.parse.quote(settings.repository, safe="")
        url = f"{api}/projects/{project}/statuses/{sha}"
        headers = {"PRIVATE-TOKEN": token}
        body = {
            "state": _GITLAB_STATES[status],
            "target_url": link,
            "description": description,
            "name": context,
        }
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={**headers, "Content-Type": "application/json", "User-Agent": "collab-pipelines"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise StatusError(
            f"commit status on {settings.host} {settings.repository}@{sha[:10]}: HTTP {error.code}: "
            f"{error.read()[:500].decode(errors='replace')}"
        ) from None
    except (urllib.error.URLError, TimeoutError) as error:
        raise StatusError(f"commit status: {url.split('?')[0]} cannot be reached: {error}") from None
    return "POST", url


def publish(
    suite: Suite,
    repository: Callable[[RepositorySpec], GitRepository],
    key: str,
    commits: Mapping[str, str],
    status: str,
    sentences: Sequence[str],
    metrics: Mapping[str, tuple[float, float | None, float | None, float | None]],
    run_id: str,
    log,
) -> None:
    """Write the note on every commit of the evaluation (and push it if the suite says so),
    and post the commit status. A note or status that cannot be written is a warning in the
    run's logs, naming the repository or host: the verdict itself is already recorded."""
    link = run_url(run_id)
    text = note_text(key, status, sentences, metrics, link)
    for name, sha in commits.items():
        repo = repository(suite.repository(name))
        try:
            with repo.notes_lock():
                repo.add_note(sha, merged_note(repo.note(sha), key, text))
                if suite.notes.push:
                    repo.push_notes(suite.notes.remote)
        except GitError as error:
            log.warning(f"the git note on {name}@{sha[:10]} was not written or pushed: {error}")
    if suite.commit_status is not None and suite.contract_repository in commits:
        description = f"{status}: " + "; ".join(sentences)
        try:
            post_status(
                suite.commit_status, commits[suite.contract_repository], status, description, link, suite.name
            )
        except StatusError as error:
            log.warning(str(error))
