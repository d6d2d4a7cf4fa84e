"""The embedded instance's run launcher: run monitoring can tell a run whose worker is gone.

The faults suite kills real run workers and `dagster asset materialize` runs and waits for the
daemon's run monitoring (faults/test_exports.py); this checks the pieces: the root dagster.yaml
names the launcher, a pid counts as the worker's only while that very process lives, and run
monitoring's own check fails a run whose worker was killed (the health check answers in
Dagster's private types: dagster_internals.py).
"""

import logging
import os
import signal
import subprocess
import sys
import time

import dagster as dg

# Run monitoring's check of one started run, as the daemon calls it on each of its ticks.
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

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


# A run that starts, says so on stdout, and waits for input that never comes.
WAITING_RUN = """
import sys
import dagster as dg

@dg.asset
def waits():
    print("started", flush=True)
    sys.stdin.read()

dg.materialize([waits], instance=dg.DagsterInstance.from_config(sys.argv[1]))
"""


def test_run_monitoring_fails_the_run_of_a_killed_worker(tmp_path):
    (tmp_path / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", WAITING_RUN, str(tmp_path)],
            cwd=PROJECT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        line = worker.stdout.readline()
        assert line == "started\n", (tmp_path / "worker.log").read_text()[-3000:]
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            (record,) = instance.get_run_records()
            launcher = instance.run_launcher
            assert launcher.check_run_worker_health(record.dagster_run).status.name == "RUNNING"
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            monitor_started_run(instance, None, record, logging.getLogger(__name__))
            run = instance.get_run_by_id(record.dagster_run.run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            failure = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
            ).records[0]
            assert f"pid {worker.pid}" in failure.event_log_entry.dagster_event.message
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
