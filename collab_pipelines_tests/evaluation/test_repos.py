"""Reading real git repositories: new commits since a cursor, files at a commit, exports."""

import pytest

from collab_pipelines.evaluation.repos import GitError, GitRepository


def test_commits_since_a_cursor_oldest_first(make_repo, tmp_path):
    repo = make_repo()
    first = repo.commit("Baseline logistic regression", {"model.py": "v1"})
    second = repo.commit("Add weather features", {"model.py": "v2"})
    third = repo.commit("Tune regularisation", {"model.py": "v3"})
    git = GitRepository(str(repo.path), tmp_path / "mirrors")
    git.sync()
    assert [c.sha for c in git.commits_since("main", None)] == [first, second, third]
    new = git.commits_since("main", first)
    assert [c.sha for c in new] == [second, third]
    assert new[0].message == "Add weather features" and new[0].author == "Ada Scientist"
    assert git.commits_since("main", third) == []
    assert git.head("main") == third


def test_a_remote_repository_is_mirrored_and_fetched(make_repo, tmp_path):
    repo = make_repo()
    first = repo.commit("one", {"a.txt": "1"})
    git = GitRepository(f"file://{repo.path}", tmp_path / "mirrors")
    git.sync()
    assert [c.sha for c in git.commits_since("main", None)] == [first]
    second = repo.commit("two", {"a.txt": "2"})
    git.sync()
    assert [c.sha for c in git.commits_since("main", first)] == [second]


def test_files_at_a_commit_and_an_export_that_leaves_the_work_tree_alone(make_repo, tmp_path):
    repo = make_repo()
    first = repo.commit("one", {"model.py": "VERSION = 1\n", "collab.toml": "x"})
    repo.commit("two", {"model.py": "VERSION = 2\n", "collab.toml": None})
    (repo.path / "scratch.txt").write_text("uncommitted work")
    git = GitRepository(str(repo.path), tmp_path / "mirrors")
    assert git.read_file(first, "collab.toml") == "x"
    assert git.read_file(git.head("main"), "collab.toml") is None
    exported = git.export(first, tmp_path / "checkout")
    assert (exported / "model.py").read_text() == "VERSION = 1\n"
    assert (repo.path / "model.py").read_text() == "VERSION = 2\n"
    assert (repo.path / "scratch.txt").exists() and repo.git("status", "--porcelain") == "?? scratch.txt"


def test_errors_name_the_repository(tmp_path):
    git = GitRepository(str(tmp_path / "nowhere"), tmp_path / "mirrors", name="features")
    with pytest.raises(GitError, match="repository 'features'.*is not a git repository"):
        git.sync()
    remote = GitRepository(f"file://{tmp_path / 'missing'}", tmp_path / "mirrors", name="model")
    with pytest.raises(GitError, match="repository 'model': cloning"):
        remote.sync()
