"""The tests' side of collab_pipelines.fault_points: arm a point, wait for a process there, kill it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from collab_pipelines import fault_points
from collab_pipelines_tests.e2e.processes import wait_for


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
