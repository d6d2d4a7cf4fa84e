"""The SFTP server's rules, through real clients: paramiko and OpenSSH's `sftp`."""

import os
import shutil
import subprocess
import sys
import time

import paramiko
import pytest

from collab_pipelines.intake.sftp_accounts import Account, check_password, dummy_hash, password_hash
from collab_pipelines_tests.intake.conftest import GOOD_CSV, upload


@pytest.fixture
def login_limits() -> dict:
    # A floor well above a hash's cost, even on a loaded machine: both kinds of failure meet it.
    return {"slow_after": 50, "ban_after": 100, "failure_seconds": 1.0}


def snapshot(path):
    """What an uploader must not be able to change: content, mode and times of everything."""
    state = {}
    for root, folders, files in os.walk(path):
        for name in [*folders, *files]:
            full = os.path.join(root, name)
            info = os.stat(full, follow_symlinks=False)
            content = open(full, "rb").read() if os.path.isfile(full) else None
            state[os.path.relpath(full, path)] = (info.st_mode, info.st_mtime_ns, content)
    return state


@pytest.fixture
def archived(connect, landing_root):
    """alice's folders with one file in each read-only folder, as the pipeline leaves them."""
    alice = connect("alice")
    for folder in ("staging", "processed", "quarantine"):
        (landing_root / "alice" / folder / "k__obs.csv").write_text(GOOD_CSV)
    upload(alice, "mine.csv", GOOD_CSV)
    return alice


def attempts(alice: paramiko.SFTPClient):
    for folder in ("staging", "processed", "quarantine"):
        path = f"{folder}/k__obs.csv"
        yield f"chmod {folder}/", lambda f=folder: alice.chmod(f, 0o777)
        yield f"chmod {path}", lambda p=path: alice.chmod(p, 0o666)
        yield f"truncate {path}", lambda p=path: alice.truncate(p, 10)
        yield f"utime {path}", lambda p=path: alice.utime(p, (0, 0))
        yield f"truncate {path} through a read handle", lambda p=path: alice.open(p, "rb").truncate(10)
        yield f"chmod {path} through a read handle", lambda p=path: alice.open(p, "rb").chmod(0o777)
        yield f"utime {path} through a read handle", lambda p=path: alice.open(p, "rb").utime((0, 0))
        yield f"write {path}", lambda p=path: alice.open(p, "r+").write(b"x")
        yield f"rename {path} to inbox/", lambda p=path: alice.rename(p, "inbox/taken.csv")
        yield f"posix-rename {path} to inbox/", lambda p=path: alice.posix_rename(p, "inbox/taken.csv")
        yield (
            f"rename inbox/mine.csv into {folder}/",
            lambda f=folder: alice.rename("inbox/mine.csv", f"{f}/x"),
        )
        yield f"remove {path}", lambda p=path: alice.remove(p)
        yield f"rmdir {folder}/", lambda f=folder: alice.rmdir(f)
    yield "rmdir inbox/", lambda: alice.rmdir("inbox")
    yield "rename inbox/", lambda: alice.rename("inbox", "outbox")
    yield "mkdir inbox/sub", lambda: alice.mkdir("inbox/sub")
    yield "chmod inbox/mine.csv", lambda: alice.chmod("inbox/mine.csv", 0o000)
    yield "chmod inbox/", lambda: alice.chmod("inbox", 0o000)
    yield "utime inbox/", lambda: alice.utime("inbox", (0, 0))


def test_the_uploader_cannot_change_what_it_may_only_read(archived, landing_root):
    before = snapshot(landing_root / "alice")
    allowed = [name for name, attempt in attempts(archived) if not _refused(attempt)]
    assert allowed == []
    assert snapshot(landing_root / "alice") == before


def _refused(attempt) -> bool:
    try:
        attempt()
    except OSError:
        return True
    return False


def test_the_uploader_may_still_manage_its_own_inbox_files(archived, landing_root):
    archived.truncate("inbox/mine.csv", 10)
    archived.utime("inbox/mine.csv", (1_000_000, 1_000_000))
    archived.rename("inbox/mine.csv", "inbox/renamed.csv")
    assert os.stat(landing_root / "alice" / "inbox" / "renamed.csv").st_mtime == 1_000_000
    assert (landing_root / "alice" / "inbox" / "renamed.csv").read_text() == GOOD_CSV[:10]
    archived.remove("inbox/renamed.csv")
    assert os.listdir(landing_root / "alice" / "inbox") == []


@pytest.fixture
def openssh(sftp_server, collector_key, tmp_path):
    """OpenSSH's `sftp` client in batch mode, as carol, pinning the server's host key."""
    if shutil.which("sftp") is None:
        pytest.skip("OpenSSH's sftp client is not installed")
    known_hosts = sftp_server.known_hosts(tmp_path / "known_hosts_openssh")
    collector_key.chmod(0o600)  # OpenSSH refuses a private key others can read

    def run(*commands: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "sftp", "-b", "-", "-P", str(sftp_server.port), "-i", str(collector_key),
                "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "carol@127.0.0.1",
            ],
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip

    return run


def test_openssh_sftp_is_refused_outside_inbox_and_for_sub_folders(openssh, landing_root, tmp_path):
    local = tmp_path / "obs.csv"
    local.write_text(GOOD_CSV)
    assert openssh(f"put {local} inbox/obs.csv").returncode == 0
    (landing_root / "carol" / "processed" / "k__obs.csv").write_text(GOOD_CSV)
    before = snapshot(landing_root / "carol")
    for command in (
        "chmod 777 processed",
        "chmod 666 processed/k__obs.csv",
        "rename processed/k__obs.csv inbox/again.csv",
        "rm processed/k__obs.csv",
        "mkdir inbox/sub",
        f"put {local} processed/obs.csv",
        f"put -p {local} staging/obs.csv",
    ):
        result = openssh(command)
        assert result.returncode != 0, command
        assert "Permission denied" in result.stderr or "denied" in result.stderr.lower(), result.stderr
    assert snapshot(landing_root / "carol") == before


def _failed_login_seconds(port: int, user: str, password: str) -> float:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.start_client(timeout=10)
        started = time.perf_counter()
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_password(user, password)
        return time.perf_counter() - started
    finally:
        transport.close()


def test_a_failed_login_is_answered_no_sooner_than_the_floor_whether_or_not_the_user_exists(sftp_server):
    # Only a lower bound: a loaded machine can make an answer later, never earlier, so this
    # cannot flake. Comparing the two users' medians could, and the floor is what makes them
    # equal: both answers wait for it, and the hash below costs far less than it.
    for user in ("alice", "nobody"):
        seconds = _failed_login_seconds(sftp_server.port, user, "wrong password")
        assert seconds >= 1.0, (user, seconds)  # the configured floor


def _scrypt_calls(check) -> list[str]:
    """The C-level scrypt calls a password check makes (Python's profiler sees every one)."""
    calls: list[str] = []

    def profile(_frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", "") == "scrypt":
            calls.append(arg.__name__)

    sys.setprofile(profile)
    try:
        check()
    finally:
        sys.setprofile(None)
    return calls


def test_an_unknown_user_costs_the_same_hash_as_a_wrong_password():
    account = Account(name="alice", password_hash=password_hash("alice-secret"))
    # The same scrypt parameters (n, r, p) and sizes of salt and digest: the same work.
    shape = [part if i < 4 else len(part) for i, part in enumerate(account.password_hash.split("$"))]
    assert [part if i < 4 else len(part) for i, part in enumerate(dummy_hash().split("$"))] == shape
    known = _scrypt_calls(lambda: check_password(account, "wrong password"))
    unknown = _scrypt_calls(lambda: check_password(None, "wrong password"))
    assert known == unknown == ["scrypt"]
