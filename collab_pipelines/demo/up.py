"""`collab-demo up`: the UI and the data API side by side, stopped together within seconds.

`dagster dev` alone outlives Ctrl-C and SIGTERM for 20 s and more, and a plain SIGTERM to it
leaves its webserver, daemon and code servers behind (ARCHITECTURE.md). This supervisor asks
every process it started to stop, waits a few seconds, then kills whatever is left, so
`make run` ends within 10 s of Ctrl-C or a SIGTERM to its process group.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import yaml

# Seconds the services get to stop on their own before what is left is killed.
GRACE_SECONDS = 3.5
# Seconds spent killing what is left, including processes started while stopping (a run).
KILL_SECONDS = 3.0
# `dagster dev` names `dg dev` (a separate package) as its successor on every start; a
# newcomer can do nothing about it, so that one warning is silenced for the UI's process.
SILENCED_WARNINGS = "ignore:Function `dev_command` is superseded"
# Every process started here carries this variable, so orphans are found too: `dagster dev`
# may exit first and leave its code servers, daemon and run workers to init.
MARK_ENV = "COLLAB_DEMO_UP"


def dagster_dev_command(workspace: Path, host: str, port: int) -> list[str]:
    dagster = str(Path(sys.executable).with_name("dagster"))
    return [dagster, "dev", "-w", str(workspace), "-h", host, "-p", str(port)]


def data_api_command(host: str, port: int) -> list[str]:
    api = str(Path(sys.executable).with_name("collab-data-api"))
    return [api, "serve", "--host", host, "--port", str(port)]


def marked(mark: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get(MARK_ENV) == mark:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def signal_all(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def supervise(commands: dict[str, tuple[list[str], Path]], env: dict[str, str]) -> int:
    """Run each (command, working directory) until one exits or a stop signal arrives."""
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    mark = uuid.uuid4().hex
    env = {**env, MARK_ENV: mark}
    processes = [subprocess.Popen(command, cwd=cwd, env=env) for command, cwd in commands.values()]
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
    finally:
        # SIGINT is what Ctrl-C sends; Dagster's processes shut down cleanly on it.
        signal_all(marked(mark), signal.SIGINT)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and marked(mark):
            time.sleep(0.2)
        deadline = time.monotonic() + KILL_SECONDS
        while (left := marked(mark)) and time.monotonic() < deadline:
            signal_all(left, signal.SIGKILL)
            psutil.wait_procs(left, timeout=0.5)
        for process in processes:
            process.poll()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stopping else 1


def prepare_instance() -> None:
    """Create a new instance's storage before anything opens it: on SQLite, each process that
    opens a fresh instance creates its tables, and `dagster dev` and the data API starting
    together race ("table job_ticks already exists", seen in CI)."""
    if not os.environ.get("DAGSTER_HOME"):
        return  # dagster dev makes a temporary instance of its own
    import dagster as dg

    instance = dg.DagsterInstance.get()
    try:
        for _storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
            pass
    finally:
        instance.dispose()


def anchored_workspace(workspace: Path, folder: Path) -> Path:
    """A copy of the workspace file in `folder`, each location's working directory made absolute
    (relative to the workspace file's folder, its default).

    `dagster dev` then runs inside $DAGSTER_HOME: Dagster warns about a dagster.yaml in the
    current folder whenever that folder is not $DAGSTER_HOME, and the project keeps its
    dagster.yaml at the top, where `make run` copies it from. A python_module location's
    relative working_directory is taken from the current folder, hence the copy.
    """
    config = yaml.safe_load(workspace.read_text()) or {}
    for entry in config.get("load_from", []):
        for target in entry.values():
            if isinstance(target, dict):
                target["working_directory"] = str(workspace.parent / target.get("working_directory", "."))
    anchored = folder / "workspace.yaml"
    anchored.write_text(
        f"# Written by collab-demo up from {workspace}; edit that file.\n" + yaml.safe_dump(config)
    )
    return anchored


def _up(args: argparse.Namespace) -> None:
    prepare_instance()
    workspace = Path(args.workspace).resolve()
    project = workspace.parent
    home = Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else None
    ui_folder, ui_workspace = (home, anchored_workspace(workspace, home)) if home else (project, workspace)
    env = dict(os.environ, PYTHONWARNINGS=SILENCED_WARNINGS)
    if home:
        # Its code servers inherit the UI's folder; the demo location moves them back.
        from collab_pipelines.demo.definitions import CODE_SERVER_DIR_ENV

        env[CODE_SERVER_DIR_ENV] = str(project)
    commands = {
        "data API": (data_api_command(args.host, args.api_port), project),
        "UI": (dagster_dev_command(ui_workspace, args.host, args.port), ui_folder),
    }
    print(
        f"UI on http://{args.host}:{args.port}, data API on http://{args.host}:{args.api_port}; "
        "Ctrl-C stops both"
    )
    sys.exit(supervise(commands, env))


def register(commands) -> None:
    up = commands.add_parser("up", help="run the UI (dagster dev) and the data API until Ctrl-C")
    up.add_argument("--workspace", default="workspace.yaml")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=3000)
    up.add_argument("--api-port", type=int, default=8020)
    up.set_defaults(func=_up)
