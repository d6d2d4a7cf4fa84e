"""Starting and stopping the project's long-running processes the way users run them."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A process group started in its own session, stopped with SIGINT then SIGKILL.

    `dagster dev` and `dagster-daemon` leave children behind on a plain SIGTERM to the
    parent, so the whole group is signalled.
    """

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path, cwd: Path = PROJECT):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, grace: float = 20) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        # Children that outlived their parent still hold the group id.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(what: str, condition: Callable[[], object], timeout: float, interval: float = 2.0, service=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if service is not None and service.process.poll() is not None:
            raise AssertionError(f"{service.name} exited while waiting for {what}:\n{service.tail()}")
        time.sleep(interval)
    detail = f"\n{service.name} log:\n{service.tail()}" if service is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def start_code_server(port: int, env: dict, log_dir: Path, cwd: Path) -> Service:
    """The project's code location served over gRPC, as a deployment's code server container runs it."""
    service = Service(
        "code-server",
        [
            f"{BIN}/dagster",
            "code-server",
            "start",
            "-m",
            "collab_pipelines.definitions",
            "-a",
            "defs",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env,
        log_dir,
        cwd=cwd,
    )
    health = [f"{BIN}/dagster", "api", "grpc-health-check", "-p", str(port)]
    wait_for(
        "the code server",
        lambda: subprocess.run(health, capture_output=True, timeout=60, check=False).returncode == 0,
        180,
        service=service,
    )
    return service


def grpc_workspace(port: int, location: str) -> dict:
    """workspace.yaml of a webserver or daemon that reaches the code server on `port`."""
    return {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": location}}]}
