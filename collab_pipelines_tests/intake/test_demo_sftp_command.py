"""`collab-demo sftp`, the one command that starts the demo's SFTP server, as a real process."""

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paramiko

from collab_pipelines_tests.e2e.processes import free_port


def test_the_demo_server_accepts_the_meteorology_account(state_dir):
    port = free_port()
    command = [str(Path(sys.executable).with_name("collab-demo")), "sftp", "--port", str(port)]
    server = subprocess.Popen(
        command,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        password_file = state_dir / "sftp" / "meteo.password"
        deadline = time.monotonic() + 60
        client = paramiko.SSHClient()
        # Pin the key the server created, as an operator would from the .pub file.
        while True:
            try:
                public = (state_dir / "sftp" / "ssh_host_ed25519_key.pub").read_text().split()
                key = paramiko.Ed25519Key(data=base64.b64decode(public[1]))
                client.get_host_keys().add(f"[127.0.0.1]:{port}", public[0], key)
                client.connect(
                    "127.0.0.1",
                    port=port,
                    username="meteo",
                    password=password_file.read_text().strip(),
                    allow_agent=False,
                    look_for_keys=False,
                    timeout=5,
                )
                break
            except (OSError, IndexError, paramiko.SSHException):
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "the demo SFTP server did not come up"
                time.sleep(0.5)
        sftp = client.open_sftp()
        assert sorted(sftp.listdir(".")) == ["inbox", "processed", "quarantine", "staging"]
        with sftp.open("inbox/hello.csv", "wb") as handle:
            handle.write(b"origin,observed_at,temp\n")
        client.close()
        assert (state_dir / "landing" / "meteo" / "inbox" / "hello.csv").exists()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
