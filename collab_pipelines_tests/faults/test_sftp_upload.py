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

import paramiko
import pytest
import yaml

from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.sftp_accounts import password_hash
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.e2e.processes import BIN, free_port
from collab_pipelines_tests.faults.conftest import FaultPoint
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


def serve(config, state, port, faults: FaultPoint) -> subprocess.Popen:
    env = {**os.environ, "COLLAB_CONFIG_DIR": str(config), "COLLAB_STATE_DIR": str(state), **faults.env}
    env.pop("COLLAB_SHARED_DIR", None)
    return subprocess.Popen([str(BIN / "collab-sftp"), "serve", "--port", str(port)], env=env)


def put(port: int, content: str) -> None:
    transport = connect(port, "alice", PASSWORDS["alice"], time.monotonic() + 60)
    try:
        paramiko.SFTPClient.from_transport(transport).putfo(io.BytesIO(content.encode()), f"inbox/{NAME}")
    finally:
        transport.close()


def test_server_killed_mid_upload_then_uploaded_again(tmp_path, instance, figures):
    config, state = tmp_path / "config", tmp_path / "state"
    config.mkdir()
    accounts = {"users": {"alice": {"password_hash": password_hash(PASSWORDS["alice"])}}}
    (config / "sftp_accounts.yaml").write_text(yaml.safe_dump(accounts))
    faults, port, content = FaultPoint(tmp_path / "faults"), free_port(), observations()
    assert len(content) > 100_000

    faults.arm(POINT, 2)
    server = serve(config, state, port, faults)
    try:
        failures = []

        def upload_cut_short() -> None:
            try:
                put(port, content)
            except (OSError, EOFError, paramiko.SSHException) as error:
                failures.append(error)

        cut = threading.Thread(target=upload_cut_short)
        cut.start()
        faults.kill_at(POINT)
        server.wait(30)
        cut.join(60)
        assert failures, "the upload went through a killed server"
        inbox = state / "landing" / "alice" / "inbox"
        assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == [], (
            "a cut upload is visible"
        )
        [leftover] = list(inbox.iterdir())
        assert 0 < leftover.stat().st_size < len(content)

        server = serve(config, state, port, faults)
        put(port, content)
    finally:
        server.kill()
        server.wait(30)

    landing = LocalLandingZone(root=str(state / "landing"))
    intake = Intake(instance, landing, Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}"))
    # Two ticks (sizes hold still), then every requested ingestion; then a day later, when the
    # leftover is abandoned.
    intake.tick()
    runs = intake.run_all(intake.tick())
    assert [r.success for r in runs] == [True]
    os.utime(leftover, (time.time() - 25 * 3600,) * 2)
    intake.tick()

    rows = intake.warehouse.read("weather_observations_uploads")
    unique = len(rows.drop_duplicates(["origin", "observed_at"]))
    quarantined = sorted(p.name for p in (state / "landing" / "alice" / "quarantine").iterdir())
    figures(
        "SFTP server SIGKILLed mid-upload, uploaded again",
        rows_lost=ROWS - unique,
        rows_doubled=len(rows) - unique,
        runs_stuck=0,
        files_lost=int(not quarantined),
    )
    assert len(rows) == ROWS and not rows.duplicated(["origin", "observed_at"]).any()
    assert any(name.endswith(".error.txt") for name in quarantined), quarantined
    reason = next((state / "landing" / "alice" / "quarantine").glob("*.error.txt")).read_text()
    assert "unfinished upload" in reason, reason
    assert list((state / "landing" / "alice" / "inbox").iterdir()) == []
