"""The embedded instance's run launcher: Dagster's default, plus a health check for run monitoring.

Dagster's `DefaultRunLauncher` cannot say whether a run's worker is alive, so run monitoring
skips its runs: a run worker killed under `dagster dev`, or a `dagster asset materialize` killed
in a terminal, stays STARTED forever (issue 24). Every event of a run carries the pid of the
process that wrote it, and on one machine (the embedded instance, where everything runs on the
same host) that is enough: a run whose worker process is gone is failed by run monitoring
within its `poll_interval_seconds`, with the reason in the run's log. A deployment whose runs
start on other hosts uses its own launcher (Kubernetes' and Docker's check their pods and
containers); docs/reliability.md says which settings to use.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher

# A health check answers in types Dagster exports under no public name (dagster_internals.py).
from collab_pipelines.dagster_internals import CheckRunHealthResult, WorkerStatus, launcher_instance

# A process whose start is later than this after the run's first event is another process that
# reused the pid (/proc's start time is in clock ticks, and the boot time in whole seconds).
_START_SLACK_SECONDS = 2.0


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether `pid` is a live, non-zombie process that, if `started_by` (epoch seconds) is given,
    had started by then, so a reused pid does not pass for the run's worker."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.parent.parent.joinpath("self").exists():
        # No /proc (macOS): only whether some process has the pid.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        # The command name may hold spaces and parentheses; the fields after its last ")" do not.
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if fields[0] in ("Z", "X"):
        return False
    if started_by is None:
        return True
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= started_by + _START_SLACK_SECONDS


def worker_pid(instance, run: DagsterRun) -> tuple[int, float] | None:
    """The pid of the process that started the run's execution, and when: from its RUN_START event."""
    records = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
    ).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event else None
    return (pid, entry.timestamp) if pid else None


def worker_health(instance, run: DagsterRun) -> CheckRunHealthResult:
    """Whether the process that started executing `run` on this host is still there."""
    found = worker_pid(instance, run)
    if found is None:
        # Not started executing yet: run monitoring's start timeout covers that.
        return CheckRunHealthResult(WorkerStatus.RUNNING, "the run has not started executing yet")
    pid, started_at = found
    if process_alive(pid, started_by=started_at):
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker process {pid} is alive")
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"the run worker process (pid {pid}) that started this run is gone: it was killed or "
        "crashed before the run could record its end",
    )


class LocalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose run workers run monitoring can check: see the module's docstring.

    Only for an instance whose runs all start on the daemon's host (the embedded one): a pid
    means nothing in another container's process namespace.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return worker_health(launcher_instance(self), run)
