"""The SFTP server SIGKILLed mid-upload; the uploader reconnects and uploads again.

`collab-sftp serve` is stopped at its worst moment (fault point `sftp.upload_chunk_written`, the
second 32 KB write of a larger file) and killed. Nothing of the cut upload may be taken for a
file: the upload sensor must ingest the file exactly once, from the second upload, and the
leftover of the first is quarantined as unfinished with its reason, not lost and not ingested.
"""

import io
import os
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import paramiko
import pytest
import yaml

from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.sftp_accounts import password_hash
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.e2e.processes import BIN, free_port
from collab_pipelines_tests.faults.points import FaultPoint
from collab_pipelines_tests.intake.conftest import PASSWORDS, Intake
from collab_pipelines_tests.intake.test_sftp_command import connect

pytestmark = pytest.mark.faults
POINT = "sftp.upload_chunk_written"
NAME = "observations.csv"
ROWS = 4000


def observations() -> str:
    start = datetime(2013, 1, 1)
    lines = ["origin,observed_at,temp"]
    for index in range(ROWS):
        origin = ("EWR", "JFK", "LGA")[index % 3]
        lines.append(f"{origin},{start + timedelta(hours=index // 3):%Y-%m-%d %H:%M},{20 + index % 40}.5")
    return "\n".join(lines) + "\n"


class Site:
    """`collab-sftp serve` for the uploader alice, its landing zone in `shared`, and the intake."""

    def __init__(self, root: Path, shared: Path):
        self.config, self.state, self.shared = root / "config", root / "state", shared
        self.config.mkdir()
        accounts = {"users": {"alice": {"password_hash": password_hash(PASSWORDS["alice"])}}}
        (self.config / "sftp_accounts.yaml").write_text(yaml.safe_dump(accounts))
        self.faults, self.port = FaultPoint(root / "faults"), free_port()
        self.folder = shared / "landing" / "alice"
        self.warehouse = Warehouse(url=f"sqlite:///{root / 'warehouse.db'}")

    def serve(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "COLLAB_CONFIG_DIR": str(self.config),
            "COLLAB_STATE_DIR": str(self.state),
            "COLLAB_SHARED_DIR": str(self.shared),
            **self.faults.env,
        }
        return subprocess.Popen([str(BIN / "collab-sftp"), "serve", "--port", str(self.port)], env=env)

    def put(self, content: str) -> None:
        transport = connect(self.port, "alice", PASSWORDS["alice"], time.monotonic() + 60)
        try:
            paramiko.SFTPClient.from_transport(transport).putfo(io.BytesIO(content.encode()), f"inbox/{NAME}")
        finally:
            transport.close()

    def put_failing(self, content: str) -> threading.Thread:
        """An upload that must fail; its thread, to join."""
        failures = []

        def upload() -> None:
            try:
                self.put(content)
            except (OSError, EOFError, paramiko.SSHException) as error:
                failures.append(error)

        thread = threading.Thread(target=upload)
        thread.failures = failures
        thread.start()
        return thread

    def ingest(self, instance) -> tuple[int, int]:
        """Two sensor ticks (sizes hold still), every requested ingestion, a tick a day later
        (abandoned leftovers are quarantined); the rows of the upload type's table left missing
        and doubled."""
        intake = Intake(instance, LocalLandingZone(root=str(self.shared / "landing")), self.warehouse)
        intake.tick()
        runs = intake.run_all(intake.tick())
        assert [r.success for r in runs] == [True]
        for leftover in (self.folder / "inbox").iterdir():
            os.utime(leftover, (time.time() - 25 * 3600,) * 2)
        intake.tick()
        rows = self.warehouse.read("weather_observations_uploads")
        unique = len(rows.drop_duplicates(["origin", "observed_at"]))
        return ROWS - unique, len(rows) - unique

    def quarantined(self) -> list[str]:
        folder = self.folder / "quarantine"
        return [p.read_text() for p in folder.glob("*.error.txt")] if folder.exists() else []


def test_server_killed_mid_upload_then_uploaded_again(tmp_path, instance, figures):
    site, content = Site(tmp_path, tmp_path / "shared"), observations()
    assert len(content) > 100_000
    site.faults.arm(POINT, 2)
    server = site.serve()
    try:
        cut = site.put_failing(content)
        site.faults.kill_at(POINT)
        server.wait(30)
        cut.join(60)
        assert cut.failures, "the upload went through a killed server"
        inbox = list((site.folder / "inbox").iterdir())
        assert [p.name for p in inbox if not p.name.startswith(".")] == [], "a cut upload is visible"
        [leftover] = inbox
        assert 0 < leftover.stat().st_size < len(content)
        server = site.serve()
        site.put(content)
    finally:
        server.kill()
        server.wait(30)

    lost, doubled = site.ingest(instance)
    reasons = site.quarantined()
    figures(
        "SFTP server SIGKILLed mid-upload, uploaded again",
        rows_lost=lost,
        rows_doubled=doubled,
        runs_stuck=0,
        files_lost=int(len(reasons) != 1),
    )
    assert (lost, doubled) == (0, 0)
    assert len(reasons) == 1 and "unfinished upload" in reasons[0], reasons
    assert list((site.folder / "inbox").iterdir()) == []


def test_upload_onto_a_full_disk(tmp_path, small_disk, instance, figures):
    site, content = Site(tmp_path, small_disk), observations()
    server = site.serve()
    try:
        # The shared disk is nearly full when the upload arrives: the uploader is told it failed,
        # and nothing of it stays to be taken, or to hold the space.
        connect(site.port, "alice", PASSWORDS["alice"], time.monotonic() + 60).close()
        filler = small_disk / "filler"
        filler.write_bytes(bytes(480 * 1024))
        refused = site.put_failing(content)
        refused.join(60)
        assert refused.failures, "a larger upload than the disk's room went through"
        assert list((site.folder / "inbox").iterdir()) == []
        # Room again (the operator cleared the disk): the uploader's retry goes through.
        filler.unlink()
        site.put(content)
    finally:
        server.kill()
        server.wait(30)

    lost, doubled = site.ingest(instance)
    figures(
        "SFTP upload onto a full disk, uploaded again",
        rows_lost=lost,
        rows_doubled=doubled,
        runs_stuck=0,
        files_lost=0,
    )
    assert (lost, doubled) == (0, 0)
    assert site.quarantined() == []
