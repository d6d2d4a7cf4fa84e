"""Reading data scientists' git repositories without touching their work trees.

Plain git through subprocess, no Dagster. A local path is read in place with read-only git
commands; a URL is cloned once as a bare mirror under the state folder and fetched on each
poll. Code at a commit is exported with `git archive` into a fresh directory.
"""

import hashlib
import io
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_FIELD, _RECORD = "\x1f", "\x1e"
_FORMAT = _FIELD.join(["%H", "%an", "%ae", "%ct", "%s"]) + _RECORD


class GitError(RuntimeError):
    """A git command failed; the message names the repository, the command and git's words."""


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    email: str
    committed_at: datetime
    message: str

    @property
    def short(self) -> str:
        return self.sha[:10]


class GitRepository:
    def __init__(self, location: str, mirrors: Path, name: str | None = None):
        self.location = location
        self.name = name or Path(location.rstrip("/")).name.removesuffix(".git")
        self.is_local = "://" not in location and not location.startswith("git@")
        digest = hashlib.sha256(location.encode()).hexdigest()[:12]
        self.git_dir = Path(location) if self.is_local else mirrors / f"{self.name}-{digest}.git"

    def _git(self, *args: str, input_bytes: bytes | None = None, check: bool = True) -> bytes:
        command = ["git", "--git-dir", str(self._resolved_git_dir()), *args]
        completed = subprocess.run(command, input=input_bytes, capture_output=True, timeout=300, check=False)
        if check and completed.returncode != 0:
            raise GitError(
                f"repository {self.name!r} ({self.location}): `git {' '.join(args)}` failed: "
                f"{completed.stderr.decode(errors='replace').strip()}"
            )
        return completed.stdout

    def _resolved_git_dir(self) -> Path:
        if self.is_local:
            dot_git = Path(self.location) / ".git"
            return dot_git if dot_git.exists() else Path(self.location)
        return self.git_dir

    def sync(self) -> None:
        """Bring a remote repository's mirror up to date; a local one needs nothing."""
        if self.is_local:
            if not self._resolved_git_dir().exists():
                raise GitError(f"repository {self.name!r}: {self.location} is not a git repository")
            return
        if not self.git_dir.exists():
            self.git_dir.parent.mkdir(parents=True, exist_ok=True)
            completed = subprocess.run(
                ["git", "clone", "--mirror", "--quiet", self.location, str(self.git_dir)],
                capture_output=True,
                timeout=600,
                check=False,
            )
            if completed.returncode != 0:
                raise GitError(
                    f"repository {self.name!r}: cloning {self.location} failed: "
                    f"{completed.stderr.decode(errors='replace').strip()}"
                )
        else:
            self._git("fetch", "--prune", "--quiet", "origin")

    def head(self, branch: str) -> str:
        return self._git("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}").decode().strip()

    def commits_since(self, branch: str, since: str | None, limit: int = 50) -> list[Commit]:
        """Commits on `branch` after `since` (exclusive), oldest first.

        The cost follows the number of new commits, not the length of the history. With no
        `since`, the newest `limit` commits are returned.
        """
        revisions = [f"refs/heads/{branch}"] + ([f"^{since}"] if since else [])
        output = self._git("log", f"--format={_FORMAT}", f"--max-count={limit}", "--first-parent", *revisions)
        commits = []
        for record in output.decode("utf-8", errors="replace").split(_RECORD):
            if not record.strip():
                continue
            sha, author, email, timestamp, subject = record.strip("\n").split(_FIELD)
            commits.append(Commit(sha, author, email, datetime.fromtimestamp(int(timestamp), UTC), subject))
        return list(reversed(commits))

    def commit(self, sha: str) -> Commit:
        output = self._git("log", "-1", f"--format={_FORMAT}", sha).decode("utf-8", errors="replace")
        sha, author, email, timestamp, subject = output.strip().rstrip(_RECORD).split(_FIELD)
        return Commit(sha, author, email, datetime.fromtimestamp(int(timestamp), UTC), subject)

    def read_file(self, sha: str, path: str) -> str | None:
        completed = subprocess.run(
            ["git", "--git-dir", str(self._resolved_git_dir()), "show", f"{sha}:{path}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if completed.returncode != 0:
            return None
        return completed.stdout.decode("utf-8", errors="replace")

    def export(self, sha: str, target: Path) -> Path:
        """Write the files of `sha` into `target` (a new directory), never a work tree of the repo."""
        archive = self._git("archive", "--format=tar", sha)
        target.mkdir(parents=True, exist_ok=False)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        return target

    def resolve(self, revision: str) -> str:
        """The full SHA of a (possibly short) commit id, or a GitError naming it."""
        return self._git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").decode().strip()

    def ancestors(self, sha: str, limit: int = 1000) -> list[str]:
        """`sha` and its first-parent ancestors, nearest first: the branch history it was built on."""
        return self._git("rev-list", "--first-parent", f"--max-count={limit}", sha).decode().split()
