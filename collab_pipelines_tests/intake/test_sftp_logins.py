"""Repeated failed logins from one address are slowed, then refused for a while, and logged."""

import logging

import paramiko
import pytest

from collab_pipelines_tests.intake.conftest import PASSWORDS
from collab_pipelines_tests.intake.test_sftp_server import _failed_login_seconds


@pytest.fixture
def login_limits() -> dict:
    return {
        "slow_after": 2,
        "delay_seconds": 1.0,
        "ban_after": 4,
        "ban_seconds": 60,
        "window_seconds": 60,
        "failure_seconds": 0.1,
    }


def test_failures_are_slowed_then_the_address_is_refused(sftp_server, caplog):
    caplog.set_level(logging.WARNING, logger="collab_pipelines.intake.sftp")
    seconds = [_failed_login_seconds(sftp_server.port, "alice", f"guess {n}") for n in range(4)]
    # The first failures cost the floor and the hash; then each one is a second slower.
    assert seconds[2] >= seconds[0] + 0.6 and seconds[3] >= seconds[0] + 1.5, seconds

    # Banned now: even the right password is refused, before any password is checked.
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 -- loopback test server
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        client.connect(
            "127.0.0.1",
            port=sftp_server.port,
            username="alice",
            password=PASSWORDS["alice"],
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
    client.close()
    messages = [record.getMessage() for record in caplog.records]
    assert sum("SFTP login failed for user 'alice' from 127.0.0.1" in m for m in messages) == 4
    assert any("SFTP logins from 127.0.0.1 refused for 60 s after 4 failures" in m for m in messages)
