"""The fault-injection suite's fixtures: a PostgreSQL cluster and a deployment per module, a full
disk, and the figures each fault prints.

Every fault test records, through `figures`, the rows it lost, the rows it doubled and the runs
left stuck; `pytest_terminal_summary` prints one line per fault after the run, gathered from
every xdist worker (faults/figures.py; docs/reliability.md holds one run's table).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from collab_pipelines_tests.conftest import require_service
from collab_pipelines_tests.faults.deployment import Deployment
from collab_pipelines_tests.faults.figures import FIGURES_PROPERTY
from collab_pipelines_tests.faults.postgres import PrivateCluster
from collab_pipelines_tests.product import team


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


@pytest.fixture(scope="module")
def cluster():
    """The instance, the warehouse and the source on a PostgreSQL cluster the tests may restart."""
    cluster = PrivateCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def deployed(root: Path, cluster: PrivateCluster, prepare: Callable[[Deployment], None] | None = None):
    """A started deployment on `cluster`; `prepare` adds to its configuration before it starts."""
    urls = {name: cluster.new_database(name) for name in ("instance", "warehouse", "source")}
    team.create_source(urls["source"])
    deployment = Deployment(root, urls["instance"], urls["warehouse"], urls["source"])
    if prepare is not None:
        prepare(deployment)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, cluster):
    with deployed(tmp_path_factory.mktemp("faults-exports"), cluster) as deployment:
        yield deployment
