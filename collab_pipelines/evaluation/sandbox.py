"""The candidate's sandbox: bubblewrap (Debian's `bubblewrap`), not a jail of our own.

No Dagster. A data scientist's commit is untrusted code: inside the sandbox it has no network
(an empty network namespace), its own PID namespace (the time limit's kill ends every
descendant: when the namespace's first process dies, the kernel kills the rest), uid 65534
with no capabilities, and a filesystem of only
- the system's /usr (libraries the interpreter links), read-only;
- its interpreter and environment (the project's venv, or the commit's cached one), read-only;
- its commit's export and its input folder (data, training labels, the job), read-only;
- a size-limited tmpfs at /tmp, its scratch space and home.
Nothing of the state, configuration, shared or Dagster home folders, the warehouse file, the
tokens or other environments is mounted, and /proc shows only its own processes.

Limits on processes, files, CPU and memory are rlimits that the candidate script sets on
itself before it imports the commit (hard and soft, so the commit cannot raise them). The
kernel does not apply RLIMIT_NPROC to processes of host uid 0, which a user namespace made by
root still is: when this runs as root, the sandbox also joins a pids cgroup of its own.
"""

import functools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

INSIDE_ROOT = Path("/collab")
INSIDE_INPUT = INSIDE_ROOT / "input"
INSIDE_SCRIPT = INSIDE_ROOT / "candidate_script.py"
INSIDE_HOME = Path("/tmp/home")  # on the scratch tmpfs
NOBODY = "65534"
# bwrap's own processes and the interpreter's threads, on top of the model's processes, where
# a pids cgroup counts them all.
PROCESS_OVERHEAD = 8
_HOW_TO = (
    "Install Debian's bubblewrap (apt-get install bubblewrap) and allow unprivileged user "
    "namespaces: sysctl kernel.unprivileged_userns_clone=1 (Debian) or user.max_user_namespaces>0; "
    "in Docker, the default seccomp profile refuses them (docs/deploy.md gives the Compose and "
    "Kubernetes settings). A suite of trusted in-house repositories may set `unsandboxed: true`."
)
# Where a pids cgroup of our own can be made (v1, then v2's unified hierarchy).
_PIDS_CGROUPS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start here; the message says why and how to allow it."""


@dataclass
class Mounts:
    """What the candidate sees, each read-only except the scratch tmpfs."""

    sources: Sequence[Path]
    input_dir: Path
    script: Path
    python: str
    scratch_mb: int
    extra: list[Path] = field(default_factory=list)

    def inside_sources(self) -> list[Path]:
        return [INSIDE_ROOT / "src" / str(index) for index in range(len(self.sources))]


def interpreter_paths(python: str) -> list[Path]:
    """The folders an interpreter needs: its environment and the installation it was made from.

    A virtual environment's `python` is a symlink into the base installation (pyenv's, uv's or
    /usr/local), and the project's venv is on the environment's path through a .pth file.
    """
    import site
    import sys

    paths = [Path(python).parent.parent, Path(os.path.realpath(python)).parent.parent]
    paths += [Path(sys.prefix), Path(os.path.realpath(sys.base_prefix))]
    paths += [Path(p) for p in site.getsitepackages()]
    kept: list[Path] = []
    # Inside /usr is mounted already; a folder inside another kept one needs no mount of its own.
    for path in sorted({p.resolve() for p in paths if p.exists()}, key=lambda p: len(p.parts)):
        if path == Path("/usr") or Path("/usr") in path.parents:
            continue
        if not any(parent in kept for parent in path.parents):
            kept.append(path)
    return kept


def _system() -> list[str]:
    """Namespaces, identity and the read-only system every sandbox starts from."""
    args = [
        bwrap_path(),
        "--unshare-all",  # network, PID, IPC, UTS, cgroup and user namespaces
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into the parent's terminal
        "--uid",
        NOBODY,
        "--gid",
        NOBODY,
        "--hostname",
        "sandbox",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path("/", name).is_symlink():  # Debian's merged /usr
            args += ["--symlink", os.readlink(Path("/", name)), f"/{name}"]
        elif Path("/", name).is_dir():
            args += ["--ro-bind", f"/{name}", f"/{name}"]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--ro-bind-try", "/etc/alternatives", "/etc/alternatives"]
    return args + ["--proc", "/proc", "--dev", "/dev"]


def command(mounts: Mounts, argv: Sequence[str]) -> list[str]:
    """The bwrap command line that runs `argv` (paths as seen inside) in the sandbox."""
    args = _system()
    # The scratch space first: a later mount under /tmp (an environment in a test's temporary
    # folder) must not be hidden by it.
    args += ["--size", str(mounts.scratch_mb * 1024 * 1024), "--tmpfs", "/tmp", "--dir", str(INSIDE_HOME)]
    for path in [*interpreter_paths(mounts.python), *mounts.extra]:
        args += ["--ro-bind", str(path), str(path)]
    for source, inside in zip(mounts.sources, mounts.inside_sources(), strict=True):
        args += ["--ro-bind", str(source), str(inside)]
    args += ["--ro-bind", str(mounts.input_dir), str(INSIDE_INPUT)]
    args += ["--ro-bind", str(mounts.script), str(INSIDE_SCRIPT)]
    args += ["--chdir", str(mounts.inside_sources()[0]), "--"]
    return args + list(argv)


def bwrap_path() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(f"the sandbox's bwrap command is not installed. {_HOW_TO}")
    return found


@functools.cache
def check() -> None:
    """Start an empty sandbox once per process: a refusal is explained before any commit runs."""
    try:
        completed = subprocess.run(
            [*_system(), "--", "/usr/bin/true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxUnavailable(f"the sandbox could not start: {error}. {_HOW_TO}") from error
    if completed.returncode != 0:
        words = completed.stderr.strip()[-500:] or f"exit code {completed.returncode}"
        raise SandboxUnavailable(f"the sandbox could not start: {words}. {_HOW_TO}")


class ProcessCap:
    """A pids cgroup of the sandbox's own, where RLIMIT_NPROC does not hold (host uid 0).

    `wrap` makes the command join the group before it starts bwrap (a shell's `exec`, not a
    preexec_fn, which may deadlock in a process with threads); `close` removes the group once
    the kernel has reaped its processes.
    """

    def __init__(self, limit: int):
        self.path: Path | None = None
        if os.geteuid() != 0:
            return  # RLIMIT_NPROC, set by the candidate script, binds an unprivileged uid
        for root in _PIDS_CGROUPS:
            group = root / f"collab-eval-{uuid.uuid4().hex[:12]}"
            try:
                group.mkdir()
            except OSError:
                continue
            try:
                (group / "pids.max").write_text(str(limit))
            except OSError:  # no pids controller in this hierarchy
                group.rmdir()
                continue
            self.path = group
            return
        raise SandboxUnavailable(
            "the candidate's processes cannot be limited: this runs as root, where the kernel does "
            "not apply RLIMIT_NPROC, and no pids cgroup is writable. Run the evaluations as a "
            "non-root user (the project's Docker image does) or give this process a writable pids cgroup."
        )

    def wrap(self, argv: Sequence[str]) -> list[str]:
        if self.path is None:
            return list(argv)
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *argv]

    def close(self) -> None:
        if self.path is None:
            return
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # still busy for the moment the kernel takes to reap the namespace
                time.sleep(0.02)
