"""Reading data scientists' git repositories without touching their work trees.

Plain git through subprocess, no Dagster. A local path is read in place with read-only git
commands; a URL is cloned once as a bare mirror under the state folder and fetched on each
poll. Code at a commit is exported with `git archive` into a fresh directory.
"""

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_FIELD, _RECORD = "\x1f", "\x1e"
NOTES_REF = "refs/notes/collab"
# Notes are commits on the notes ref; they need an author even where git has no identity set.
_IDENTITY = ("-c", "user.name=collab-pipelines", "-c", "user.email=collab-pipelines@localhost")
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
        self._locks = mirrors / "locks"

    def _git(self, *args: str) -> bytes:
        command = ["git", "--git-dir", str(self._resolved_git_dir()), *args]
        completed = subprocess.run(command, capture_output=True, timeout=300, check=False)
        if completed.returncode != 0:
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

    def sync(self) -> list[str]:
        """Bring a remote repository's mirror up to date; a local one needs nothing.

        A fetch or clone killed mid-way (a run worker or daemon killed, docs/reliability.md)
        leaves ref lock files or half a mirror, and every later fetch would fail on them. Every
        process that writes a mirror holds `notes_lock`, so under it a lock file is a dead
        process's: it is removed. A clone is made beside the mirror and renamed into place, so
        a mirror is whole or absent; one git cannot read is cloned again. Returns what it
        repaired, in sentences naming the repository, for the caller's log.
        """
        if self.is_local:
            if not self._resolved_git_dir().exists():
                raise GitError(f"repository {self.name!r}: {self.location} is not a git repository")
            return []
        self.git_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.notes_lock():
            repaired = self._remove_leftovers()
            if not self.git_dir.exists():
                self._clone()
                return repaired
            try:
                self._git("fetch", "--prune", "--quiet", "origin")
            except GitError as error:
                if self._readable():
                    raise
                problem = str(error)
            else:
                # A fetch succeeds over objects a crash cut short; the callers' reads would not.
                if self._readable():
                    return repaired
                problem = "git fsck found objects missing or corrupt"
            repaired.append(f"repository {self.name!r}: its mirror was unreadable ({problem}); cloned again")
            self._clone()
            return repaired

    def _remove_leftovers(self) -> list[str]:
        removed = [
            path
            for path in [*self.git_dir.glob("*.lock"), *self.git_dir.glob("refs/**/*.lock")]
            if path.is_file()
        ]
        for path in removed:
            path.unlink()
        for partial in self.git_dir.parent.glob(f"{self.git_dir.name}.partial-*"):
            shutil.rmtree(partial, ignore_errors=True)
        if not removed:
            return []
        names = ", ".join(str(p.relative_to(self.git_dir)) for p in removed)
        return [
            f"repository {self.name!r}: removed lock files a killed git process left in its mirror: {names}"
        ]

    def _readable(self) -> bool:
        """Every ref's history is there and whole: a few hundredths of a second for a model
        repository's few hundred commits, seconds for tens of thousands."""
        checked = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "fsck", "--connectivity-only", "--no-dangling"],
            capture_output=True,
            timeout=600,
            check=False,
        )
        return checked.returncode == 0

    def _clone(self) -> None:
        partial = self.git_dir.with_name(f"{self.git_dir.name}.partial-{os.getpid()}")
        completed = subprocess.run(
            ["git", "clone", "--mirror", "--quiet", self.location, str(partial)],
            capture_output=True,
            timeout=600,
            check=False,
        )
        if completed.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise GitError(
                f"repository {self.name!r}: cloning {self.location} failed: "
                f"{completed.stderr.decode(errors='replace').strip()}"
            )
        if self.git_dir.exists():
            shutil.rmtree(self.git_dir)
        partial.rename(self.git_dir)

    def head(self, branch: str) -> str:
        return self._git("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}").decode().strip()

    def commits_since(self, branch: str, since: str | None, limit: int = 50) -> list[Commit]:
        """Commits on `branch` after `since` (exclusive), oldest first.

        The cost follows the number of new commits, not the length of the history. With no
        `since`, the newest `limit` commits are returned.
        """
        revisions = [f"refs/heads/{branch}"] + ([f"^{since}"] if since else [])
        output = self._git("log", f"--format={_FORMAT}", f"--max-count={limit}", "--first-parent", *revisions)
        return list(reversed(_parse_log(output)))

    def commits_after(self, branch: str, since: str, limit: int) -> tuple[list[Commit], int]:
        """The oldest `limit` commits on `branch` after `since`, oldest first, and how many
        newer ones are left for later: a burst is worked off in order, none skipped."""
        shas = self._git("rev-list", "--first-parent", f"refs/heads/{branch}", f"^{since}").decode().split()
        oldest = shas[::-1][:limit]
        if not oldest:
            return [], 0
        output = self._git("log", "--no-walk=unsorted", f"--format={_FORMAT}", *oldest)
        return _parse_log(output), len(shas) - len(oldest)

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
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").decode().strip()
        except GitError as error:
            # --quiet leaves git's stderr empty: say what is wrong ourselves, unless git said more.
            said = str(error).rpartition("failed: ")[2].strip()
            raise GitError(
                f"repository {self.name!r} ({self.location}): commit {revision!r} is unknown"
                + (f" ({said})" if said else " (no commit of this repository has that id)")
            ) from None

    def ancestors(self, sha: str, limit: int = 1000) -> list[str]:
        """`sha` and its first-parent ancestors, nearest first: the branch history it was built on."""
        return self._git("rev-list", "--first-parent", f"--max-count={limit}", sha).decode().split()

    @contextlib.contextmanager
    def notes_lock(self) -> Iterator[None]:
        """Held while a note is read, merged, written and pushed, and while a mirror is fetched
        (its fetch rewrites the notes ref): two runs judging combinations of the same commit
        would otherwise each write their own note over the other's."""
        self._locks.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(str(self._resolved_git_dir().resolve()).encode()).hexdigest()[:12]
        with open(self._locks / f"{self.name}-{digest}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add_note(self, sha: str, text: str, ref: str = NOTES_REF) -> None:
        """Attach `text` to `sha` under `ref`, replacing the project's earlier note there."""
        self._git(*_IDENTITY, "notes", f"--ref={ref}", "add", "--force", "--message", text, sha)

    def note(self, sha: str, ref: str = NOTES_REF) -> str | None:
        try:
            return self._git("notes", f"--ref={ref}", "show", sha).decode("utf-8", errors="replace")
        except GitError:
            return None

    def push_notes(self, remote: str, ref: str = NOTES_REF) -> None:
        """Publish the notes ref, so `git log --notes=collab` shows them in every clone. A URL's
        mirror pushes to the URL itself: a `clone --mirror` refuses a refspec pushed to origin."""
        self._git("push", "--quiet", remote if self.is_local else self.location, f"{ref}:{ref}")

    def set_tag(self, tag: str, sha: str | None) -> None:
        """Point `tag` at `sha` (moving it if it exists), or delete it when `sha` is None; a URL's
        repository gets the change pushed to its remote."""
        ref = f"refs/tags/{tag}"
        # Under the lock every writer of a mirror holds, which lets sync remove dead locks.
        with self.notes_lock():
            if sha is not None:
                self._git("tag", "--force", tag, sha)
            elif self._git("tag", "--list", tag).strip():
                self._git("tag", "--delete", tag)
        if self.is_local:
            return
        # A `clone --mirror` refuses `git push origin <refspec>` ("--mirror can't be combined
        # with refspecs"): push to the URL itself, which no mirror setting applies to.
        self._git("push", "--quiet", "--force", self.location, f"{sha}:{ref}" if sha else f":{ref}")

    def tag_target(self, tag: str) -> str | None:
        try:
            return (
                self._git("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}").decode().strip()
            )
        except GitError:
            return None


def _parse_log(output: bytes) -> list[Commit]:
    commits = []
    for record in output.decode("utf-8", errors="replace").split(_RECORD):
        if not record.strip():
            continue
        sha, author, email, timestamp, subject = record.strip("\n").split(_FIELD)
        commits.append(Commit(sha, author, email, datetime.fromtimestamp(int(timestamp), UTC), subject))
    return commits
