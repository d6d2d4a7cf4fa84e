"""The verdict back on the commit: git notes pushed to a real remote, and commit statuses
posted to a stand-in of the hosts' documented endpoints."""

from pathlib import Path

import pytest

from collab_pipelines.evaluation.feedback import StatusError, note_text, post_status, publish
from collab_pipelines.evaluation.repos import GitRepository
from collab_pipelines.evaluation.suites import CommitStatus, parse_suites
from collab_pipelines_tests.evaluation.status_standin import StatusStandIn

SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


class Log:
    def __init__(self):
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.mark.parametrize(
    ("status", "state"), [("passed", "success"), ("regressed", "failure"), ("failed", "error")]
)
def test_a_github_commit_status_is_posted_as_documented(monkeypatch, status, state):
    monkeypatch.setenv("GITHUB_STATUS_TOKEN", "gh-token-1")
    with StatusStandIn("github", "gh-token-1") as github:
        settings = CommitStatus(
            host="github", repository="ada/delay-model", token_env="GITHUB_STATUS_TOKEN", api_url=github.url
        )
        post_status(settings, SHA, status, f"{status}: " + "x" * 200, "http://ui/runs/r1", "delay-model")
    assert github.refused == []
    [request] = github.accepted
    assert (request["owner"], request["repo"], request["sha"]) == ("ada", "delay-model", SHA)
    assert request["body"] == {
        "state": state,
        "target_url": "http://ui/runs/r1",
        "description": (f"{status}: " + "x" * 200)[:139] + "…",
        "context": "collab/evaluation/delay-model",
    }


def test_a_gitlab_commit_status_is_posted_as_documented(monkeypatch):
    monkeypatch.setenv("GITLAB_TOKEN", "gl-token-1")
    with StatusStandIn("gitlab", "gl-token-1") as gitlab:
        settings = CommitStatus(
            host="gitlab", repository="ada/models/delay", token_env="GITLAB_TOKEN", api_url=gitlab.url
        )
        post_status(settings, SHA, "regressed", "regressed: roc_auc dropped", "http://ui/runs/r2", "delays")
    [request] = gitlab.accepted
    assert request["project"] == "ada/models/delay" and "%2F" in request["path"]
    assert request["body"] == {
        "state": "failed",
        "target_url": "http://ui/runs/r2",
        "description": "regressed: roc_auc dropped",
        "name": "collab/evaluation/delays",
    }


def test_a_refused_status_says_what_the_host_answered(monkeypatch):
    monkeypatch.setenv("GITHUB_STATUS_TOKEN", "wrong")
    with StatusStandIn("github", "right") as github:
        settings = CommitStatus(
            host="github", repository="ada/m", token_env="GITHUB_STATUS_TOKEN", api_url=github.url
        )
        with pytest.raises(StatusError, match="HTTP 401: .*Bad credentials"):
            post_status(settings, SHA, "passed", "passed", "http://ui/runs/r", "s")
    monkeypatch.delenv("GITHUB_STATUS_TOKEN")
    with pytest.raises(StatusError, match=r"\$GITHUB_STATUS_TOKEN .* is not set"):
        post_status(settings, SHA, "passed", "passed", "http://ui/runs/r", "s")


def test_the_note_is_pushed_and_shows_in_a_clone(make_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_STATUS_TOKEN", "gh")
    remote = tmp_path / "remote.git"
    repo = make_repo("model")
    sha = repo.commit("Drop the hour", {"model.py": "x = 1\n"})
    repo.git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "--quiet", "origin", "main")
    with StatusStandIn("github", "gh") as github:
        suite = parse_suites(
            {
                "suites": {
                    "delays": {
                        "repositories": {"model": {"location": str(repo.path)}},
                        "notes": {"push": True},
                        "commit_status": {
                            "host": "github",
                            "repository": "ada/model",
                            "token_env": "GITHUB_STATUS_TOKEN",
                            "api_url": github.url,
                        },
                    }
                }
            },
            "suites.yaml",
        )["delays"]
        log = Log()
        publish(
            suite,
            lambda spec: GitRepository(spec.location, tmp_path / "mirrors", spec.name),
            f"delays:model@{sha[:10]}",
            {"model": sha},
            "regressed",
            ["roc_auc dropped by 0.0300 against delays:model@0123456789 (allowed 0.01)"],
            {"roc_auc": (0.61, -0.03, -0.05, -0.01), "accuracy": (0.7, None, None, None)},
            "run-123",
            log,
        )
    assert log.warnings == []
    assert [r["body"]["state"] for r in github.accepted] == ["failure"]
    clone = tmp_path / "clone"
    repo.git("clone", "--quiet", str(remote), str(clone))
    repo.git("-C", str(clone), "fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
    shown = repo.git("-C", str(clone), "log", "-1", "--notes=collab", "--format=%N")
    assert (
        shown
        == note_text(
            f"delays:model@{sha[:10]}",
            "regressed",
            ["roc_auc dropped by 0.0300 against delays:model@0123456789 (allowed 0.01)"],
            {"roc_auc": (0.61, -0.03, -0.05, -0.01), "accuracy": (0.7, None, None, None)},
            "http://localhost:3000/runs/run-123",
        ).strip()
    )
    assert "roc_auc 0.6100, change -0.0300, 90% interval [-0.0500, -0.0100]" in shown


def publish_passed(suite, tmp_path: Path, sha: str, metrics: dict) -> Log:
    """Publish a passing verdict on the suite's one commit `sha`; the log holds any warning."""
    log = Log()
    publish(
        suite,
        lambda spec: GitRepository(spec.location, tmp_path / "mirrors", spec.name),
        f"s:model@{sha[:10]}",
        {"model": sha},
        "passed",
        ["every gate passed"],
        metrics,
        "run-1",
        log,
    )
    return log


def test_the_note_reaches_a_repository_watched_by_url(make_repo, tmp_path):
    # The data scientist pushes to a bare repository served by URL; the suite watches the URL.
    remote = tmp_path / "remote.git"
    repo = make_repo("model")
    sha = repo.commit("Add the hour", {"model.py": "x = 1\n"})
    repo.git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    repo.git("push", "--quiet", str(remote), "main")
    suite = parse_suites(
        {
            "suites": {
                "s": {"repositories": {"model": {"location": f"file://{remote}"}}, "notes": {"push": True}}
            }
        },
        "suites.yaml",
    )["s"]
    GitRepository(f"file://{remote}", tmp_path / "mirrors", "model").sync()  # as the commit sensor did
    log = publish_passed(suite, tmp_path, sha, {"roc_auc": (0.7, None, None, None)})
    assert log.warnings == []
    clone = tmp_path / "clone"
    repo.git("clone", "--quiet", f"file://{remote}", str(clone))
    repo.git("-C", str(clone), "fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
    shown = repo.git("-C", str(clone), "log", "-1", "--notes=collab", "--format=%N")
    assert f"collab evaluation s:model@{sha[:10]}: passed" in shown


def test_a_note_that_cannot_be_pushed_is_a_warning_naming_the_commit(make_repo, tmp_path):
    repo = make_repo("model")
    sha = repo.commit("One", {"a.py": "1\n"})
    suite = parse_suites(
        {"suites": {"s": {"repositories": {"model": {"location": str(repo.path)}}, "notes": {"push": True}}}},
        "f",
    )["s"]
    log = publish_passed(suite, tmp_path, sha, {})
    [warning] = log.warnings
    assert f"model@{sha[:10]}" in warning and "push" in warning
    assert (
        GitRepository(str(repo.path), tmp_path / "m")
        .note(sha)
        .startswith(f"collab evaluation s:model@{sha[:10]}: passed")
    )
