"""`make run` as a newcomer runs it: it starts without warnings they cannot act on, and Ctrl-C
or a SIGTERM to its process group stops everything it started within 10 s."""

import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from collab_pipelines_tests.e2e.processes import PROJECT, free_port, wait_for

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
        # The code location loads after the UI answers; its problems would show by now.
        time.sleep(5)
        before_stop = log.read_text(errors="replace")
        started = time.monotonic()
        os.killpg(process.pid, stop_signal)  # Ctrl-C in a terminal signals the whole group too
        wait_for(
            "every process make run started to exit",
            lambda: process.poll() is not None and not processes_marked(mark),
            timeout=STOP_WITHIN_SECONDS + 20,
            interval=0.25,
        )
        elapsed = time.monotonic() - started
    finally:
        for pid in processes_marked(mark):
            os.kill(pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert elapsed <= STOP_WITHIN_SECONDS, f"make run took {elapsed:.1f}s to stop:\n{output[-3000:]}"
    for text in UNACTIONABLE:
        assert text not in output, f"make run printed {text!r}:\n{output[-3000:]}"
    # Runs still going when the demo stops are interrupted with a traceback; none before that.
    assert "Traceback" not in before_stop, before_stop[-3000:]
