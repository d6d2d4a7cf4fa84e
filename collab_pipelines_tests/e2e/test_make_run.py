"""`make run` as a newcomer runs it: it starts without warnings they cannot act on, and Ctrl-C
or a SIGTERM to its process group stops everything it started within 10 s."""

import json
import os
import signal
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from collab_pipelines.demo.up import GRACE_SECONDS, KILL_SECONDS
from collab_pipelines_tests.e2e.processes import PROJECT, free_port, wait_for

pytestmark = pytest.mark.e2e
STOP_WITHIN_SECONDS = 10
# Printed by Dagster at start, and nothing a newcomer can act on (issue 12, item 6).
UNACTIONABLE = ("SupersessionWarning", "Found a dagster instance configuration value")


def processes_marked(mark: str) -> list[int]:
    """Every live process whose environment carries the test's mark (children included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status < 500
    except OSError as error:
        return getattr(error, "code", 500) < 500


def location_loaded(port: int) -> bool:
    """Whether the UI reports the demo's code location loaded (or failed to load): its problems
    are in the log by then."""
    query = "{workspaceOrError {... on Workspace {locationEntries {name loadStatus}}}}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            entries = json.load(response)["data"]["workspaceOrError"].get("locationEntries", [])
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


def start(state: Path, mark: str, log: Path) -> tuple[subprocess.Popen, int, int]:
    port, api_port = free_port(), free_port()
    env = dict(os.environ, COLLAB_RUN_TEST_MARK=mark)
    for key in ("COLLAB_CONFIG_DIR", "COLLAB_SUITES_FILE", "COLLAB_WAREHOUSE_URL", "COLLAB_SOURCE_URL"):
        env.pop(key, None)
    # `-o` keeps make from reinstalling the venv when setup.py is newer than its marker.
    process = subprocess.Popen(
        ["make", "-o", ".venv/.installed", "run", f"STATE={state}", f"PORT={port}", f"API_PORT={api_port}"],
        cwd=PROJECT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, port, api_port


@pytest.mark.timeout(900)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_make_run_starts_quietly_and_stops_within_10s(tmp_path_factory, stop_signal):
    state = tmp_path_factory.getbasetemp() / "make-run-state"  # shared: the second start is quicker
    mark = uuid.uuid4().hex
    log = tmp_path_factory.mktemp("make-run") / "make-run.log"
    process, port, api_port = start(state, mark, log)
    try:
        wait_for("the UI", lambda: answers(f"http://127.0.0.1:{port}/server_info"), timeout=600, interval=3)
        wait_for("the data API", lambda: answers(f"http://127.0.0.1:{api_port}/docs"), timeout=60, interval=1)
        # The code location loads after the UI answers: wait for the UI to say it has.
        wait_for("the code location to load", lambda: location_loaded(port), timeout=300, interval=1)
        before_stop = log.read_text(errors="replace")
        os.killpg(process.pid, stop_signal)  # Ctrl-C in a terminal signals the whole group too
        # The event: make run has exited. Its supervisor bounds its own stop (a grace period,
        # then kills); the deadline here only keeps a hung stop from hanging the suite.
        process.wait(timeout=STOP_WITHIN_SECONDS * 6)
        survivors = processes_marked(mark)
    finally:
        for pid in processes_marked(mark):
            os.kill(pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    # Nothing it started outlives it: checked at the moment it exits, not after a wait.
    assert survivors == [], f"still running when make run exited: {survivors}\n{output[-3000:]}"
    assert GRACE_SECONDS + KILL_SECONDS < STOP_WITHIN_SECONDS
    for text in UNACTIONABLE:
        assert text not in output, f"make run printed {text!r}:\n{output[-3000:]}"
    # Runs still going when the demo stops are interrupted with a traceback; none before that.
    assert "Traceback" not in before_stop, before_stop[-3000:]
