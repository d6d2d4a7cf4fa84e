"""An evaluation's git mirror after a killed fetch, and after a corrupt object: the next poll repairs it.

The fetch is killed at its worst moment, found by git's own `reference-transaction` hook: every
ref lock taken, nothing committed. A plain `git fetch` then fails on the lock files forever;
`GitRepository.sync` (what the commit sensor and the evaluation runs call) removes them, says so,
and sees the new commit. A mirror git cannot open is cloned again.
"""

import shutil
import subprocess
import sys

import pytest

from collab_pipelines.evaluation.repos import GitError, GitRepository
from collab_pipelines_tests.faults.points import FaultPoint

pytestmark = pytest.mark.faults
POINT = "git.refs_locked"
# Blocks once every ref of the fetch is locked, as fault_points.reached blocks: the marker with
# its pid, then a read of the FIFO.
HOOK = """#!/bin/sh
if [ "$1" = prepared ] && grep -q '^{point}' "{folder}/armed" 2>/dev/null; then
  echo $$ > "{folder}/{point}.partial" && mv "{folder}/{point}.partial" "{folder}/{point}.reached"
  cat "{folder}/{point}.release" > /dev/null
fi
"""


def git(*args, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit(work, name: str) -> str:
    (work / name).write_text(name)
    git("add", name, cwd=work)
    git("-c", "user.name=ds", "-c", "user.email=ds@example.com", "commit", "-q", "-m", name, cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def remote(tmp_path):
    """A data scientist's repository on a server (a bare repository over file://) and their clone."""
    bare, work = tmp_path / "model.git", tmp_path / "work"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("clone", "-q", str(bare), str(work))
    git("checkout", "-q", "-b", "main", cwd=work)
    commit(work, "first.py")
    return f"file://{bare}", work


def test_fetch_killed_with_its_refs_locked(tmp_path, remote, figures):
    url, work = remote
    mirrors = tmp_path / "mirrors"
    GitRepository(url, mirrors).sync()
    mirror = GitRepository(url, mirrors).git_dir
    faults = FaultPoint(tmp_path / "faults")
    (mirror / "hooks" / "reference-transaction").write_text(HOOK.format(point=POINT, folder=faults.folder))
    (mirror / "hooks" / "reference-transaction").chmod(0o755)
    new = commit(work, "second.py")

    faults.arm(POINT)
    poll = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from collab_pipelines.evaluation.repos import GitError, GitRepository as G; G({url!r}, __import__('pathlib').Path({str(mirrors)!r})).sync()",
        ]
    )
    faults.kill_at(POINT)
    poll.wait(30)
    locks = sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*.lock"))
    assert locks, "the killed fetch left no lock: the fault did not happen"
    stuck = subprocess.run(
        ["git", "--git-dir", str(mirror), "fetch", "-q", "origin"], capture_output=True, text=True
    )
    assert stuck.returncode != 0 and "lock" in stuck.stderr, stuck.stderr

    repository = GitRepository(url, mirrors)
    repaired = repository.sync()
    assert len(repaired) == 1 and "lock files" in repaired[0] and "model" in repaired[0], repaired
    assert repository.head("main") == new
    assert not list(mirror.rglob("*.lock"))
    figures(
        "git mirror: fetch SIGKILLed with its refs locked",
        rows_lost=0,
        rows_doubled=0,
        runs_stuck=0,
        commits_lost=int(repository.head("main") != new),
    )


@pytest.mark.parametrize("damage", ["pack cut short", "objects folder gone"])
def test_a_corrupt_mirror_is_read_again(tmp_path, remote, damage, figures):
    url, _ = remote
    repository = GitRepository(url, tmp_path / "mirrors")
    repository.sync()
    # What a crash of the machine mid-write can leave.
    if damage == "pack cut short":
        pack = next((repository.git_dir / "objects" / "pack").glob("*.pack"))
        pack.write_bytes(pack.read_bytes()[:40])
    else:
        shutil.rmtree(repository.git_dir / "objects")
    with pytest.raises(GitError):
        repository.commits_since("main", None)

    repaired = repository.sync()
    # git's own fetch refetches what a cut pack lost; a mirror git cannot open is cloned again.
    assert repaired == [] if damage == "pack cut short" else "cloned again" in repaired[0], repaired
    commits = [c.message for c in repository.commits_since("main", None)]
    assert commits == ["first.py"]
    figures(f"git mirror: {damage}", rows_lost=0, rows_doubled=0, runs_stuck=0, commits_lost=1 - len(commits))
