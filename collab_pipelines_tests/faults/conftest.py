"""The fault-injection suite's tools: a fault point to stop a process at, and the figures it prints.

Every fault test records, through `figures`, the rows it lost, the rows it doubled and the runs
left stuck; `pytest_terminal_summary` prints one line per fault after the run, gathered from
every xdist worker (faults/figures.py; docs/reliability.md holds one run's table).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from collab_pipelines import fault_points
from collab_pipelines_tests.conftest import require_service
from collab_pipelines_tests.e2e.processes import wait_for
from collab_pipelines_tests.faults.figures import FIGURES_PROPERTY


class FaultPoint:
    """Arms a named point of collab_pipelines.fault_points in every process given `env`."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = {fault_points.DIR_ENV: str(folder)}

    def arm(self, name: str, nth: int = 1) -> None:
        release = self.folder / f"{name}.release"
        if not release.exists():
            os.mkfifo(release)
        # A point fires once per arming: the retry of the run it stopped passes it.
        (self.folder / f"{name}.reached").unlink(missing_ok=True)
        (self.folder / "armed").write_text(f"{name}#{nth}")

    def wait(self, name: str, timeout: float = 180, service=None) -> int:
        """The pid of the process that stopped at the point."""
        marker = self.folder / f"{name}.reached"
        wait_for(
            f"a process to reach fault point {name}", marker.exists, timeout, interval=0.1, service=service
        )
        return int(marker.read_text())

    def release(self, name: str) -> None:
        """Let the process waiting at the point go on (opening the FIFO for writing wakes it)."""
        (self.folder / "armed").unlink(missing_ok=True)
        fd = os.open(self.folder / f"{name}.release", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)

    def kill_at(
        self, name: str, keep: set[int] = frozenset(), timeout: float = 180, service=None
    ) -> list[int]:
        """SIGKILL the process that stops at `name` the moment it is there, with the run worker
        around it: its ancestors up to (not including) `keep`, this test and init. A step runs in
        a child of its run worker (the multiprocess executor); killing only the child would let
        the worker report the failure, which is not the fault. Returns the pids killed."""
        pid = self.wait(name, timeout, service)
        (self.folder / "armed").unlink(missing_ok=True)
        stop = {*keep, os.getpid(), 1}
        doomed = [pid]
        while (parent := parent_pid(doomed[-1])) and parent not in stop:
            doomed.append(parent)
        # The worker first, so it cannot report its step's death.
        for victim in reversed(doomed):
            os.kill(victim, signal.SIGKILL)
        return doomed


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


SLOW_ENV = "COLLAB_SLOW_FAULTS"


def pytest_collection_modifyitems(config, items):
    # The slowest faults would add minutes to `make test`; `make test-faults` runs them.
    if os.environ.get(SLOW_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"a slow fault: `make test-faults` (or {SLOW_ENV}=1) runs it")
    for item in items:
        if "slow_faults" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def figures(record_property):
    """Call with the fault's name and its figures; a test that records none has not finished."""

    def record(fault: str, *, rows_lost: int, rows_doubled: int, runs_stuck: int, **extra) -> None:
        line = {
            "fault": fault,
            "rows_lost": rows_lost,
            "rows_doubled": rows_doubled,
            "runs_stuck": runs_stuck,
        }
        record_property(FIGURES_PROPERTY, json.dumps({**line, **extra}))

    return record


def can_mount() -> bool:
    """Whether this process holds CAP_SYS_ADMIN, which mounting a tmpfs needs."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 21 & 1)
    return False


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs: a shared folder whose disk fills up. Mounting needs root's CAP_SYS_ADMIN;
    without it the test skips, saying so, even under CI=true (the privilege was not expected).
    A process that has it and still cannot mount fails under CI=true."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if not can_mount():
        pytest.skip("a full disk needs a tmpfs mount, and this process lacks CAP_SYS_ADMIN (not root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        require_service(
            "a tmpfs mount", f"mount -t tmpfs failed with CAP_SYS_ADMIN held: {mounted.stderr.strip()}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
