"""The embedded instance's run launcher: run monitoring can tell a run whose worker is gone.

The faults suite kills real run workers and `dagster asset materialize` runs and waits for run
monitoring (faults/test_exports.py); this checks the pieces: the root dagster.yaml names the
launcher, and a pid counts as the worker's only while that very process lives.
"""

import os
import subprocess
import sys
import time

import dagster as dg

from collab_pipelines.run_launcher import LocalRunLauncher, process_alive
from collab_pipelines_tests.e2e.processes import PROJECT


def test_the_embedded_instance_checks_its_run_workers(tmp_path):
    (tmp_path / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0


def test_a_pid_is_the_workers_only_while_that_process_lives():
    now = time.time()
    assert process_alive(os.getpid(), started_by=now)
    # A process that started after the run's first event is another one that reused the pid.
    assert not process_alive(os.getpid(), started_by=now - 3600 * 24 * 365)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)
