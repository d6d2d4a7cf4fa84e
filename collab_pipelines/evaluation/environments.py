"""Per-commit environments: the packages a commit declares, installed with uv, cached by the
hash of the declaration.

Plain subprocesses, no Dagster. A commit declares its packages in `requirements.txt`, in
`pyproject.toml` (its [project] dependencies), or in the lock file its collab.toml names; a
commit without a declaration runs with the project's interpreter, as before. The
environment is a virtual environment whose own site-packages come first and the project's
follow (a `.pth` file), so a commit's pin of another scikit-learn wins while the candidate
script still finds pandas and pyarrow.

An environment is trusted by its content, not by its marker: the marker records the SHA-256
of every file's path and bytes (and every symlink's target) when the build ends, and each use
checks the folder still hashes to it. A folder that does not (a build cut short, a file changed
afterwards) is removed and built again. Within one process, a folder whose files' sizes and
modification times are those it had when last verified is not hashed again. Bytecode counts
too: candidates run with -B and mount their environment read-only, so nothing is written
into it after the build, and a planted .pyc would be loaded.

The cache lives in $COLLAB_ENVIRONMENTS_DIR (default: environments/ in the state folder);
on Celery or Kubernetes point it at a volume every worker mounts, or leave it per worker.
It keeps at most $COLLAB_ENVIRONMENTS_MAX environments (default 8) and
$COLLAB_ENVIRONMENTS_MAX_MB megabytes (default 4096), evicting the least recently used.

A caller that passes `output` sees the build as it happens (stream "environment"): each uv
command, every line it prints, and how long it took, or which cached environment is used, so
a slow or failing build shows in the evaluation's run rather than as minutes of silence.
"""

import functools
import hashlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable
from pathlib import Path

from collab_pipelines import settings

DIR_ENV, MAX_ENV, MAX_MB_ENV = (
    "COLLAB_ENVIRONMENTS_DIR",
    "COLLAB_ENVIRONMENTS_MAX",
    "COLLAB_ENVIRONMENTS_MAX_MB",
)
_READY = "collab-ready.json"
# What the installer may see of this process's environment: network and index settings,
# not the deployment's secrets (a package's build script runs with it).
_INSTALLER_ENV = ("PATH", "HOME", "LANG", "SSL_CERT_FILE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
_INSTALLER_PREFIXES = ("UV_", "PIP_")
_BUILD_TIMEOUT = 1800
STREAM = "environment"
BuildLog = Callable[[str, str], None]
"""(stream, line) -> None, the candidate process's OutputLog; the stream is always STREAM."""


class EnvironmentBuildError(RuntimeError):
    """A commit's environment cannot be built; the message holds the installer's own words."""


def cache_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or settings.state_dir() / "environments")


def declaration(source: Path, lock: str | None) -> Path | None:
    """The file that declares the commit's packages, or None for the project's interpreter."""
    if lock:
        path = source / lock
        if not path.is_file():
            raise EnvironmentBuildError(f"collab.toml names the lock file {lock!r}, which this commit lacks")
        return path
    if (source / "requirements.txt").is_file():
        return source / "requirements.txt"
    pyproject = source / "pyproject.toml"
    if pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text()).get("project", {})
        except tomllib.TOMLDecodeError as error:
            raise EnvironmentBuildError(f"pyproject.toml is not valid TOML: {error}") from error
        if project.get("dependencies"):
            return pyproject
    return None


def python_for(
    source: Path, lock: str | None, root: Path | None = None, output: BuildLog | None = None
) -> str:
    """The interpreter the commit at `source` runs with: its cached environment's, built if new."""
    say = (lambda line: output(STREAM, line)) if output else (lambda line: None)
    declared = declaration(source, lock)
    if declared is None:
        say("no requirements.txt, pyproject.toml dependencies or lock file: the project's interpreter")
        return sys.executable
    root = root or cache_dir()
    digest = hashlib.sha256(
        "\0".join([declared.name, declared.read_text(), sys.version, *site.getsitepackages()]).encode()
    ).hexdigest()[:20]
    target = root / digest
    ready = target / _READY
    if ready.exists():
        if _verified(target):
            _touch(ready)
            say(f"{declared.name}: the cached environment {target}")
            return str(target / "bin" / "python")
        # Not what was built: never run a commit on it. Set aside, then built anew below.
        say(f"{declared.name}: the cached environment {target} changed since its build; building it anew")
        shutil.rmtree(target, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    started = time.perf_counter()
    try:
        _build(building, declared, say)
        ready_text = json.dumps(
            {
                "declaration": declared.name,
                "bytes": _size(building),
                "built": time.time(),
                "sha256": content_digest(building),
            }
        )
        (building / _READY).write_text(ready_text)
        _touch(building / _READY)
        try:
            building.rename(target)
        except OSError:
            pass  # another run built the same environment meanwhile; use theirs
    finally:
        shutil.rmtree(building, ignore_errors=True)
    say(f"{declared.name}: environment built in {time.perf_counter() - started:.1f} s, cached as {target}")
    evict(root, keep=target)
    return str(target / "bin" / "python")


def _build(target: Path, declared: Path, say: Callable[[str], None]) -> None:
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if k in _INSTALLER_ENV or k.startswith(_INSTALLER_PREFIXES)}
    python = target / "bin" / "python"
    # Copies, not uv's default hard links into its own cache: a change to one environment must
    # not reach the cache and, through it, every environment built later.
    for command in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(target)],
        # Not --quiet: uv's own lines (resolved, prepared, installed, each with its time) are
        # what shows a slow index or a large download in the run's logs.
        [
            uv,
            "pip",
            "install",
            "--link-mode",
            "copy",
            "--python",
            str(python),
            *_index_args(),
            "-r",
            str(declared),
        ],
    ):
        returncode, words = _installer(command, env, say)
        if returncode != 0:
            raise EnvironmentBuildError(f"installing {declared.name} failed: {words}")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Appended after the environment's own site-packages: the commit's pins win.
    Path(purelib, "zz_collab_project.pth").write_text("\n".join(site.getsitepackages()) + "\n")


# user:password@ in an index URL (pip's configuration may hold one): never in a run's logs.
_CREDENTIALS = re.compile(r"(?<=://)[^/\s@]+@")


def _redacted(text: str) -> str:
    return _CREDENTIALS.sub("***@", text)


def _installer(command: list[str], env: dict[str, str], say: Callable[[str], None]) -> tuple[int, str]:
    """Run one installer command, each of its lines said as it is printed; the exit code and
    the output's last 3000 characters (the installer's own words for a failure). Credentials
    in index URLs are masked in both."""
    say(_redacted("$ " + " ".join(command)))
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    )
    # A hung index must not hold the run forever; the reader below ends when the kill closes
    # the pipe.
    timed_out = threading.Event()
    timer = threading.Timer(_BUILD_TIMEOUT, lambda: (timed_out.set(), process.kill()))
    timer.start()
    tail: deque[str] = deque(maxlen=200)
    try:
        for raw in process.stdout:
            line = _redacted(raw.rstrip("\n"))
            tail.append(line)
            say(line[:2000])
        returncode = process.wait()
    finally:
        timer.cancel()
        process.stdout.close()
    if timed_out.is_set():
        tail.append(f"stopped after {_BUILD_TIMEOUT} s")
    say(f"exit code {returncode} after {time.perf_counter() - started:.1f} s")
    return returncode, "\n".join(tail).strip()[-3000:]


def content_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes and every symlink's target, in order;
    the marker itself is left out."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if relative == _READY:
            continue
        if path.is_symlink():
            digest.update(f"L {relative} {os.readlink(path)}\0".encode())
        elif path.is_file():
            digest.update(f"F {relative}\0".encode())
            with path.open("rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


_VERIFIED: dict[Path, tuple] = {}


def _stat_manifest(folder: Path) -> tuple:
    return tuple(
        (str(p), s.st_size, s.st_mtime_ns, s.st_ino)
        for p in sorted(folder.rglob("*"))
        if p.name != _READY
        for s in [p.lstat()]
    )


def _verified(target: Path) -> bool:
    """Whether the environment still holds what was built (see the module's docstring)."""
    manifest = _stat_manifest(target)
    if _VERIFIED.get(target) == manifest:
        return True
    try:
        recorded = json.loads((target / _READY).read_text()).get("sha256")
    except (OSError, ValueError):
        return False
    if not recorded or content_digest(target) != recorded:
        return False
    _VERIFIED[target] = manifest
    return True


def _uv() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise EnvironmentBuildError("the uv installer is not installed (pip install uv)") from None
        return found


@functools.cache
def _index_args() -> tuple[str, ...]:
    """The package index pip is configured with, so a closed network's mirror serves uv too."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    pairs: list[tuple[str, str]] = []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        option = key.rpartition(".")[2]
        flag = {
            "index-url": "--index-url",
            "extra-index-url": "--extra-index-url",
            "find-links": "--find-links",
        }
        if option not in flag:
            continue
        for item in value.strip("'\"").split():
            local = item.removeprefix("file://")
            if item.startswith(("http://", "https://")) or Path(local).exists():
                pairs.append((flag[option], item))
    return tuple(part for pair in dict.fromkeys(pairs) for part in pair)


def _touch(ready: Path) -> None:
    # The LRU order. The clock's own time: a file system's "now" is coarse (a few ms), too
    # coarse to order two uses in quick succession.
    now = time.time()
    os.utime(ready, (now, now))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def evict(root: Path, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used environments beyond the count and size bounds."""
    max_count = int(os.environ.get(MAX_ENV) or 8)
    max_bytes = int(os.environ.get(MAX_MB_ENV) or 4096) * 1024 * 1024
    entries = []
    for ready in root.glob(f"*/{_READY}"):
        entries.append((ready.stat().st_mtime, json.loads(ready.read_text())["bytes"], ready.parent))
    entries.sort(key=lambda entry: entry[0], reverse=True)  # newest first
    removed, count, total = [], 0, 0
    for _, size, path in entries:
        count, total = count + 1, total + size
        if path != keep and (count > max_count or total > max_bytes):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            count, total = count - 1, total - size
    return removed
