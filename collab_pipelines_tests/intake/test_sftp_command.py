"""`collab-sftp serve`: the product's SFTP server reads the team's accounts file from its configuration folder."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import yaml

from collab_pipelines.intake.sftp_accounts import password_hash

# The console scripts of whichever environment runs the tests, not this checkout's .venv.
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(config: Path, state: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "COLLAB_CONFIG_DIR": str(config), "COLLAB_STATE_DIR": str(state)}
    return subprocess.Popen(
        [str(BIN / "collab-sftp"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def connect(port: int, user: str, password: str, deadline: float) -> paramiko.Transport:
    while True:
        try:
            transport = paramiko.Transport(("127.0.0.1", port))
            transport.connect(username=user, password=password)
            return transport
        except (OSError, paramiko.SSHException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_the_server_takes_accounts_from_the_configuration_folder(tmp_path):
    config, state = tmp_path / "config", tmp_path / "state"
    config.mkdir()
    accounts = {"users": {"hydro": {"password_hash": password_hash("s3cret-upload")}}}
    (config / "sftp_accounts.yaml").write_text(yaml.safe_dump(accounts))
    port = free_port()
    server = start(config, state, port)
    try:
        transport = connect(port, "hydro", "s3cret-upload", time.monotonic() + 60)
        sftp = paramiko.SFTPClient.from_transport(transport)
        with sftp.open("inbox/levels.csv", "w") as remote:
            remote.write("station,level\nA,1.5\n")
        transport.close()
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    landed = state / "landing" / "hydro" / "inbox" / "levels.csv"
    assert landed.read_text() == "station,level\nA,1.5\n", output
    assert str(config / "sftp_accounts.yaml") in output


def test_a_broken_accounts_file_is_refused_naming_the_file_and_the_field(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "sftp_accounts.yaml").write_text(yaml.safe_dump({"users": {"hydro": {"pasword_hash": "x"}}}))
    server = start(config, tmp_path / "state", free_port())
    output = server.communicate(timeout=60)[0]
    assert server.returncode == 2, output
    assert "sftp_accounts.yaml" in output and "pasword_hash" in output
