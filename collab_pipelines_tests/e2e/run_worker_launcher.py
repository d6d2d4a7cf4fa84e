"""A run launcher that starts each run worker in a working directory and environment of its own.

Kubernetes' and Docker's run launchers start `dagster api execute_run` in a new pod or
container, which sees the launching process's disk only through the volumes the deployment
declares. This one does the same on one machine: a new process, in the folder and with exactly
the environment the instance's `run_launcher` config names, loading the instance from its own
`$DAGSTER_HOME` (no instance reference passed along, as a pod loads the chart's ConfigMap).
The separated-state test (test_separated_state.py) names it in its dagster.yaml.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from dagster import Field, Permissive
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from collab_pipelines import fault_points
from collab_pipelines.run_launcher import worker_health

PID_TAG = "collab-test/run-worker-pid"
CWD_TAG = "collab-test/run-worker-cwd"


class SeparateRunWorkerLauncher(RunLauncher, ConfigurableClass):
    def __init__(self, working_directory: str, env: dict, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self.working_directory = working_directory
        self.env = {str(k): str(v) for k, v in env.items()}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {"working_directory": Field(str), "env": Field(Permissive())}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict):
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        # The faults suite kills the daemon here: its sensor's runs queued, its cursor stored,
        # this run marked STARTING and no worker started yet.
        fault_points.reached("launcher.launching")
        run = context.dagster_run
        command = ExecuteRunArgs(
            job_origin=run.job_code_origin,  # type: ignore[arg-type]
            run_id=run.run_id,
            instance_ref=None,
            set_exit_code_on_failure=True,
        ).get_command_args()
        log = (Path(self.working_directory) / f"run-{run.run_id[:8]}.log").open("ab")
        # Same process group as the launcher (the daemon): stopping the daemon's group in a
        # test's teardown ends any run worker still going.
        process = subprocess.Popen(
            command, cwd=self.working_directory, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        # Reap it when it exits, so a long-lived launcher leaves no zombie behind.
        threading.Thread(target=process.wait, daemon=True).start()
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(process.pid), CWD_TAG: self.working_directory})

    @property
    def supports_check_run_worker_health(self) -> bool:
        # One machine, as the embedded instance: run monitoring fails a run whose worker was killed.
        return True

    def check_run_worker_health(self, run):
        return worker_health(self._instance, run)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or PID_TAG not in run.tags:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(int(run.tags[PID_TAG]), signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True
