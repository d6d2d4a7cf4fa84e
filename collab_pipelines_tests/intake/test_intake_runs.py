"""Ingestion runs under production's run retries, and with nothing shared but the landing zone."""

import dagster as dg
import pytest
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

from collab_pipelines import settings
from collab_pipelines.intake.landing import (
    LandingZoneError,
    LocalLandingZone,
    SftpLandingZone,
    landing_zone_from,
)
from collab_pipelines.intake.upload_types import parse_uploads
from collab_pipelines_tests.intake.conftest import GOOD_CSV, Intake, upload, verdict

RUN_RETRIES = {"run_retries": {"enabled": True, "max_retries": 2}}
READS = {"failures_left": 0}  # how many more staging reads fail (a module-level seam: resources are frozen)


@pytest.fixture
def retrying_instance():
    with dg.instance_for_test(overrides=RUN_RETRIES) as instance:
        yield instance


def retried(instance: dg.DagsterInstance, result) -> bool:
    """What the run-retry daemon decides for this run."""
    return should_retry(instance.get_run_by_id(result.run_id), instance)


def step_attempts(result) -> int:
    return sum(event.event_type_value == "STEP_START" for event in result.all_events) + sum(
        event.event_type_value == "STEP_RESTARTED" for event in result.all_events
    )


class _FlakyLandingZone(LocalLandingZone):
    """The real local landing zone, whose staging reads fail while READS says (a share gone away)."""

    def read(self, user: str, folder: str, name: str) -> bytes:
        if folder == "staging" and READS["failures_left"] > 0:
            READS["failures_left"] -= 1
            raise LandingZoneError(f"cannot read {user}/{folder}/{name}: Connection reset by peer")
        return super().read(user, folder, name)


def test_a_refused_upload_runs_once_with_run_retries_on(connect, retrying_instance, landing, warehouse):
    intake = Intake(retrying_instance, landing, warehouse)
    upload(connect("alice"), "bad.csv", "origin,observed_at,temp\nJFK,2013-01-01 01:00,warm\n")
    upload(connect("alice"), "bad.csv.done", "")
    [request] = intake.tick().run_requests
    result = intake.ingest(request.partition_key, request.tags)
    assert verdict(result)[:2] == ("refused", False)
    assert step_attempts(result) == 1 and not retried(retrying_instance, result)
    assert intake.tick().run_requests == []

    # Running it again cannot succeed (the file is in quarantine): final, not retried.
    again = intake.ingest(request.partition_key, request.tags)
    assert not again.success and step_attempts(again) == 1
    assert not retried(retrying_instance, again)
    assert intake.tick().run_requests == []

    # The same instance retries a run whose failure may pass next time: the test can fail.
    @dg.asset
    def flaky():
        raise ConnectionError("the database went away")

    control = dg.materialize([flaky], instance=retrying_instance, raise_on_error=False)
    assert retried(retrying_instance, control)


def test_a_dropped_landing_zone_is_retried_in_the_run_and_never_re_requested(
    connect, retrying_instance, landing_root, warehouse
):
    intake = Intake(retrying_instance, _FlakyLandingZone(root=str(landing_root)), warehouse)
    upload(connect("alice"), "obs.csv", GOOD_CSV)
    upload(connect("alice"), "obs.csv.done", "")
    [request] = intake.tick().run_requests
    READS["failures_left"] = 1
    result = intake.ingest(request.partition_key, request.tags)
    assert verdict(result)[0] == "ingested" and step_attempts(result) == 2
    assert intake.tick().run_requests == []
    assert warehouse.count("weather_observations_uploads") == 3

    # Down for longer than the retry policy waits: the run fails, and the sensor reports the
    # staged upload instead of stacking a request of its own on top of Dagster's retries.
    upload(connect("alice"), "later.csv", GOOD_CSV.replace("39.9", "41.0"))
    upload(connect("alice"), "later.csv.done", "")
    [request] = intake.tick().run_requests
    READS["failures_left"] = 10
    try:
        failed = intake.ingest(request.partition_key, request.tags)
    finally:
        READS["failures_left"] = 0
    assert not failed.success and step_attempts(failed) == 3
    assert intake.tick().run_requests == [] and intake.tick().run_requests == []


def test_the_run_reads_the_upload_from_the_landing_zone_not_the_code_servers_disk(
    sftp_server, connect, collector_key, instance, landing_root, warehouse, tmp_path, monkeypatch
):
    """Sensor and run each with their own state folder and working directory: only SFTP is shared."""
    upload(connect("alice"), "obs.csv", GOOD_CSV)
    upload(connect("alice"), "obs.csv.done", "")

    # The landing zone as a team declares it in uploads.yaml, not built in Python.
    uploads = parse_uploads(
        {
            "landing_zone": {
                "sftp": {
                    "host": "127.0.0.1",
                    "port": sftp_server.port,
                    "username": "collector",
                    "private_key_path": str(collector_key),
                    "known_hosts_path": str(sftp_server.known_hosts(tmp_path / "known_hosts_remote")),
                }
            }
        },
        "uploads.yaml",
    )

    def remote() -> SftpLandingZone:
        zone = landing_zone_from(uploads.landing_zone)
        assert isinstance(zone, SftpLandingZone)
        return zone

    for name in ("code_server", "run_worker"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv(settings.STATE_DIR_ENV, str(tmp_path / "code_server"))
    monkeypatch.chdir(tmp_path / "code_server")
    sensor_side = remote()
    try:
        [request] = Intake(instance, sensor_side, warehouse).tick().run_requests
    finally:
        sensor_side.close()

    monkeypatch.setenv(settings.STATE_DIR_ENV, str(tmp_path / "run_worker"))
    monkeypatch.chdir(tmp_path / "run_worker")
    run_side = remote()
    try:
        result = Intake(instance, run_side, warehouse).ingest(request.partition_key)
    finally:
        run_side.close()
    assert verdict(result)[0] == "ingested"
    assert warehouse.count("weather_observations_uploads") == 3
    assert [p.name for p in (landing_root / "alice" / "processed").iterdir()] != []
    for name in ("code_server", "run_worker"):
        assert not (tmp_path / name / "landing").exists()  # no local landing zone was used
