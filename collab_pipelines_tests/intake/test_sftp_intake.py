"""Uploads through a real SFTP server and client, taken by the real sensor and ingested."""

import hashlib
import threading

import pytest

from collab_pipelines.intake.landing import (
    LandingZoneError,
    LocalLandingZone,
    SftpLandingZone,
)
from collab_pipelines_tests.intake.conftest import GOOD_CSV, Intake, upload, verdict


def folder(landing_root, user, name):
    path = landing_root / user / name
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_a_partial_upload_waits_until_it_is_complete(connect, intake, landing_root, warehouse):
    alice = connect("alice")
    upload(alice, "obs.csv.filepart", GOOD_CSV[:60])
    assert intake.tick().run_requests == []
    assert intake.tick().run_requests == []  # a client's temporary name is never taken

    alice.rename("inbox/obs.csv.filepart", "inbox/obs.csv")
    first = intake.tick()
    assert first.run_requests == []  # seen once: size and mtime must hold still for a tick
    with alice.open("inbox/obs.csv", "ab") as handle:  # the upload was still going on
        handle.write(GOOD_CSV[60:].encode())
    assert intake.tick().run_requests == []
    ready = intake.tick()
    assert len(ready.run_requests) == 1
    key = ready.run_requests[0].partition_key
    digest = hashlib.sha256(GOOD_CSV.encode()).hexdigest()
    assert key == f"alice-{digest[:16]}"
    assert folder(landing_root, "alice", "inbox") == []

    result = intake.ingest(key)
    assert result.success
    metadata = result.asset_materializations_for_node("weather_observations_uploads")[0].metadata
    assert metadata["uploader"].value == "alice" and metadata["file_name"].value == "obs.csv"
    assert metadata["sha256"].value == digest and metadata["dagster/row_count"].value == 3
    rows = warehouse.read("weather_observations_uploads")
    assert rows["origin"].tolist() == ["JFK", "LGA", "EWR"] and set(rows["upload_id"]) == {key}
    assert folder(landing_root, "alice", "processed") == [f"{key}__obs.csv"]
    assert folder(landing_root, "alice", "staging") == []


def test_a_done_sidecar_marks_an_upload_complete_at_once(connect, intake, landing_root):
    alice = connect("alice")
    upload(alice, "obs.csv", GOOD_CSV)
    upload(alice, "obs.csv.done", "")
    result = intake.tick()
    assert len(result.run_requests) == 1
    assert intake.run_all(result)[0].success
    key = result.run_requests[0].partition_key
    assert folder(landing_root, "alice", "processed") == [f"{key}__obs.csv", f"{key}__obs.csv.done"]


def test_a_wrong_checksum_sidecar_is_quarantined(connect, intake, landing_root):
    alice = connect("alice")
    upload(alice, "obs.csv", GOOD_CSV)
    upload(alice, "obs.csv.sha256", "0" * 64 + "  obs.csv\n")
    assert intake.tick().run_requests == []  # maybe the sidecar or the file is still arriving
    assert intake.tick().run_requests == []
    quarantined = folder(landing_root, "alice", "quarantine")
    assert len(quarantined) == 3
    error = next(n for n in quarantined if n.endswith(".error.txt"))
    with alice.open(f"quarantine/{error}") as handle:  # the uploader reads why, over SFTP
        assert "SHA-256 is" in handle.read().decode()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            "origin,observed_at,temp\nJFK,2013-01-01 01:00,warm\n",
            "row 2, column temp: 'warm' is not a number",
        ),
        ("", "the file is empty"),
        ("origin,observed_at,temp\nJFK,2013-01-01 01:00,3°\n".encode("latin-1"), "not UTF-8"),
        ("origin,observed_at,temp\n" + "JFK,2013-01-01 01:00,3\n" * 100_000, "bytes; the limit"),
    ],
    ids=["malformed", "empty", "wrong-encoding", "oversized"],
)
def test_bad_uploads_are_quarantined_with_a_reason(connect, intake, landing_root, warehouse, content, reason):
    alice = connect("alice")
    upload(alice, "bad.csv", content)
    upload(alice, "bad.csv.done", "")
    result = intake.tick()
    outcome, passed, description = verdict(intake.run_all(result)[0])
    assert (outcome, passed) == ("refused", False)
    assert reason in description
    key = result.run_requests[0].partition_key
    assert folder(landing_root, "alice", "quarantine") == [
        f"{key}__bad.csv",
        f"{key}__bad.csv.done",
        f"{key}__bad.csv.error.txt",
    ]
    with alice.open(f"quarantine/{key}__bad.csv.error.txt") as handle:
        assert reason in handle.read().decode()
    assert not warehouse.has_table("weather_observations_uploads")


def test_the_same_content_is_ingested_once(connect, intake, landing_root, warehouse):
    alice = connect("alice")
    upload(alice, "monday.csv", GOOD_CSV)
    upload(alice, "monday.csv.done", "")
    assert all(r.success for r in intake.run_all(intake.tick()))
    upload(alice, "monday-again.csv", GOOD_CSV)
    upload(alice, "monday-again.csv.done", "")
    again = intake.tick()
    assert again.run_requests == []
    assert len(intake.partition_keys()) == 1
    assert warehouse.count("weather_observations_uploads") == 3
    processed = folder(landing_root, "alice", "processed")
    key = intake.partition_keys()[0]
    assert [n for n in processed if n.startswith("duplicate-")] == [
        n for n in processed if f"-of-{key}__monday-again.csv" in n
    ]
    assert len([n for n in processed if n.endswith("__monday-again.csv")]) == 1

    # A third copy, under the same name again, is set aside too: nothing collides, nothing is lost.
    upload(alice, "monday-again.csv", GOOD_CSV)
    upload(alice, "monday-again.csv.done", "")
    assert intake.tick().run_requests == []
    assert folder(landing_root, "alice", "inbox") == []
    assert (
        len([n for n in folder(landing_root, "alice", "processed") if n.endswith("__monday-again.csv")]) == 2
    )
    assert warehouse.count("weather_observations_uploads") == 3


def test_a_copy_of_a_refused_upload_is_refused_with_a_pointer(connect, intake, landing_root):
    alice = connect("alice")
    bad = "origin,observed_at,temp\nJFK,2013-01-01 01:00,warm\n"
    upload(alice, "bad.csv", bad)
    upload(alice, "bad.csv.done", "")
    assert verdict(intake.run_all(intake.tick())[0])[:2] == ("refused", False)
    upload(alice, "bad-again.csv", bad)
    upload(alice, "bad-again.csv.done", "")
    assert intake.tick().run_requests == []
    assert folder(landing_root, "alice", "processed") == []
    reports = [
        n
        for n in folder(landing_root, "alice", "quarantine")
        if n.startswith("duplicate-") and n.endswith("bad-again.csv.error.txt")
    ]
    assert len(reports) == 1
    with alice.open(f"quarantine/{reports[0]}") as handle:
        assert "same content as an earlier upload that was refused" in handle.read().decode()


def test_two_uploaders_at_once_stay_separate(connect, intake, landing_root, warehouse):
    bob_csv = GOOD_CSV.replace("39.0", "12.5")

    def send(user, content):
        client = connect(user)
        upload(client, "obs.csv", content)
        upload(client, "obs.csv.done", "")

    threads = [threading.Thread(target=send, args=args) for args in (("alice", GOOD_CSV), ("bob", bob_csv))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    result = intake.tick()
    assert sorted(r.tags["collab/uploader"] for r in result.run_requests) == ["alice", "bob"]
    assert all(r.success for r in intake.run_all(result))
    rows = warehouse.read("weather_observations_uploads")
    assert sorted(rows.loc[rows["uploader"] == "bob", "temp"]) == [12.5, 12.5, 39.9]
    assert sorted(rows.loc[rows["uploader"] == "alice", "temp"]) == [39.0, 39.0, 39.9]
    assert folder(landing_root, "alice", "processed") != folder(landing_root, "bob", "processed")


def test_path_traversal_and_links_are_refused(connect, landing_root, tmp_path):
    alice = connect("alice")
    connect("bob")  # bob's folders exist
    for path in ("../bob/inbox/evil.csv", "/../../bob/inbox/evil.csv", "inbox/../../bob/inbox/evil.csv"):
        # The chroot maps each of these inside alice's own folder, where writing is refused.
        with pytest.raises(OSError), alice.open(path, "wb") as handle:
            handle.write(b"x")
    assert folder(landing_root, "bob", "inbox") == []
    assert not (landing_root / "evil.csv").exists()

    with pytest.raises(OSError):
        alice.symlink("/etc/passwd", "inbox/passwd")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for alice")
    (landing_root / "alice" / "inbox" / "planted").symlink_to(secret)
    with pytest.raises(OSError):
        alice.open("inbox/planted").read()
    with pytest.raises(OSError), alice.open("processed/sneaky.csv", "wb") as handle:
        handle.write(b"x")


def test_the_remote_backend_verifies_the_host_key(sftp_server, connect, collector_key, tmp_path):
    upload(connect("alice"), "obs.csv", GOOD_CSV)
    remote = SftpLandingZone(
        host="127.0.0.1",
        port=sftp_server.port,
        username="collector",
        private_key_path=str(collector_key),
        known_hosts_path=str(sftp_server.known_hosts(tmp_path / "known_hosts_remote")),
    )
    try:
        assert "alice" in remote.users()
        assert [f.name for f in remote.list("alice", "inbox")] == ["obs.csv"]
        assert remote.read("alice", "inbox", "obs.csv") == GOOD_CSV.encode()
    finally:
        remote.close()

    empty_known_hosts = tmp_path / "empty_known_hosts"
    empty_known_hosts.write_text("")
    stranger = SftpLandingZone(
        host="127.0.0.1",
        port=sftp_server.port,
        username="collector",
        private_key_path=str(collector_key),
        known_hosts_path=str(empty_known_hosts),
    )
    with pytest.raises(LandingZoneError, match="not found in known_hosts"):
        stranger.users()


def test_a_crash_between_staging_and_ingestion_loses_nothing(connect, intake, landing_root, warehouse):
    alice = connect("alice")
    for name in ("a.csv", "b.csv"):
        upload(alice, name, GOOD_CSV.replace("39.9", "40.1" if name == "a.csv" else "41.2"))
        upload(alice, f"{name}.done", "")
    upload(alice, "c.csv", "origin,observed_at,temp\nJFK,2013-01-01 01:00,warm\n")
    upload(alice, "c.csv.done", "")
    # The sensor moved the files to staging, then the daemon died before its result was saved.
    crashed = intake.tick(apply=False)
    assert len(crashed.run_requests) == 3 and intake.partition_keys() == []
    assert len(folder(landing_root, "alice", "staging")) == 6

    recovered = intake.tick()
    assert sorted(r.partition_key for r in recovered.run_requests) == sorted(
        r.partition_key for r in crashed.run_requests
    )
    outcomes = intake.run_all(recovered)
    assert sorted(verdict(o)[0] for o in outcomes) == ["ingested", "ingested", "refused"]
    assert intake.tick().run_requests == []  # nothing asked twice

    processed, quarantined = (
        folder(landing_root, "alice", "processed"),
        folder(landing_root, "alice", "quarantine"),
    )
    for name in ("a.csv", "b.csv"):
        assert sum(p.endswith(f"__{name}") for p in processed) == 1
    assert sum(p.endswith("__c.csv") for p in quarantined) == 1
    assert folder(landing_root, "alice", "inbox") == folder(landing_root, "alice", "staging") == []
    assert warehouse.count("weather_observations_uploads") == 6


class _FlakyLandingZone(LocalLandingZone):
    """The real local landing zone, except that one file cannot be read (a seam for the test)."""

    def read(self, user: str, folder: str, name: str) -> bytes:
        if name == "locked.csv":
            raise LandingZoneError(f"cannot read {user}/{folder}/{name}: Permission denied")
        return super().read(user, folder, name)


def test_an_unreadable_upload_does_not_hold_back_the_others(connect, instance, landing_root, warehouse):
    alice = connect("alice")
    upload(alice, "locked.csv", GOOD_CSV.replace("39.9", "1.5"))
    upload(alice, "locked.csv.done", "")
    upload(alice, "obs.csv", GOOD_CSV)
    upload(alice, "obs.csv.done", "")
    intake = Intake(instance, _FlakyLandingZone(root=str(landing_root)), warehouse)
    result = intake.tick()
    assert [r.tags["collab/file"] for r in result.run_requests] == ["obs.csv"]
    assert all(outcome.success for outcome in intake.run_all(result))
    assert folder(landing_root, "alice", "inbox") == ["locked.csv", "locked.csv.done"]  # kept, tried again
    assert warehouse.count("weather_observations_uploads") == 3


def test_a_crash_midway_through_the_final_move_is_finished_by_the_next_tick(
    connect, intake, landing_root, warehouse
):
    alice = connect("alice")
    upload(alice, "obs.csv", GOOD_CSV)
    upload(alice, "obs.csv.done", "")
    key = intake.tick().run_requests[0].partition_key
    # The ingestion loaded the rows and moved the sidecar, then died before moving the upload.
    assert intake.ingest(key).success
    (landing_root / "alice" / "processed" / f"{key}__obs.csv").rename(
        landing_root / "alice" / "staging" / f"{key}__obs.csv"
    )

    retry = intake.tick()
    assert [r.partition_key for r in retry.run_requests] == [key]
    assert all(outcome.success for outcome in intake.run_all(retry))
    assert folder(landing_root, "alice", "staging") == []
    assert folder(landing_root, "alice", "processed") == [f"{key}__obs.csv", f"{key}__obs.csv.done"]
    assert warehouse.count("weather_observations_uploads") == 3  # replaced by upload id, not added
    assert intake.tick().run_requests == []


def test_the_sensor_and_ingestion_work_through_the_remote_backend(
    sftp_server, connect, collector_key, instance, landing_root, warehouse, tmp_path
):
    upload(connect("alice"), "obs.csv", GOOD_CSV)
    remote = SftpLandingZone(
        host="127.0.0.1",
        port=sftp_server.port,
        username="collector",
        private_key_path=str(collector_key),
        known_hosts_path=str(sftp_server.known_hosts(tmp_path / "known_hosts_remote")),
    )
    try:
        intake = Intake(instance, remote, warehouse)
        assert intake.tick().run_requests == []  # size and mtime seen once
        ready = intake.tick()
        assert len(ready.run_requests) == 1
        assert all(outcome.success for outcome in intake.run_all(ready))
    finally:
        remote.close()
    key = ready.run_requests[0].partition_key
    assert folder(landing_root, "alice", "processed") == [f"{key}__obs.csv"]
    assert warehouse.count("weather_observations_uploads") == 3
