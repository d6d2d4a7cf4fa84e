"""A run worker killed mid-export: the warehouse keeps whole days, and Dagster's record catches up.

Two worst moments of a three-day range export (one chunk per day):
- after chunk 1 of 3 was written, before the commit: the warehouse must still hold the old
  version of every day, and the retry must write the new one;
- after chunk 1 of 3, with PostgreSQL (instance, warehouse and source) restarted under it: the
  run fails on its lost connection, and the retry writes the new version;
- after the commit, while the days' materializations are being recorded (issue 24's
  `dagster asset materialize` killed at that moment left 164 of 181 days unrecorded and the run
  STARTED forever): run monitoring must fail the run, and the records sensor must record the
  rest from the warehouse's ledger.
"""

from datetime import date, timedelta

import dagster as dg
import pytest

from collab_pipelines_tests.faults.deployment import JOB, Deployment, one_version

# One worker runs the module: its tests share one deployment and one PostgreSQL cluster, which
# a second worker would start again.
pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.xdist_group("faults-exports")]
# Each test its own days: they share one deployment.
CHUNKED = ["2024-03-01", "2024-03-02", "2024-03-03"]
RECORDING = ["2024-03-04", "2024-03-05", "2024-03-06"]
RESTARTED = ["2024-03-07", "2024-03-08", "2024-03-09"]
# Released by the source's clock for the daemon's sensor; the last tests of the module.
BEFORE_CURSOR = ["2024-03-10", "2024-03-11"]
BEFORE_LAUNCH = ["2024-03-12", "2024-03-13"]
TICK_RESTARTED = ["2024-03-14", "2024-03-15"]
LOST_WORKER = "is gone"


def run_of(deployment: Deployment, first_day: str, job: str) -> dg.DagsterRun:
    [run] = [
        r
        for r in deployment.runs()
        if r.job_name == job
        and r.tags.get("dagster/asset_partition_range_start") == first_day
        and "dagster/parent_run_id" not in r.tags
    ]
    return run


def said(deployment: Deployment, run_id: str, words: str) -> bool:
    """Whether the run's log, as the UI shows it (messages and step errors), says `words`."""
    for entry in deployment.instance.all_logs(run_id):
        error = getattr(entry.dagster_event and entry.dagster_event.event_specific_data, "error", None)
        if words in (entry.message or "") or (error is not None and words in error.to_string()):
            return True
    return False


@pytest.mark.timeout(400)
def test_worker_killed_after_chunk_1_of_3(deployment, figures):
    days = CHUNKED
    old, new = deployment.exported_then_changed(days)

    deployment.faults.arm("warehouse.chunk_written", 1)
    deployment.launch(days[0], days[-1])
    deployment.faults.kill_at("warehouse.chunk_written", keep={deployment.daemon.process.pid})

    # At once: every day whole and old, and Dagster's record says so.
    found, doubled = deployment.warehouse_rows(days)
    assert one_version(found, old) == [], "a day holds part of the killed run's rows"
    assert deployment.record_agrees(days)

    # Run monitoring fails the lost run; the run retry writes and records the new version.
    killed = run_of(deployment, days[0], JOB)
    deployment.wait("the retry of the killed run to succeed", lambda: retried(deployment, killed.run_id), 180)
    assert deployment.instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert said(deployment, killed.run_id, LOST_WORKER), (
        "the killed run's log does not say its worker was lost"
    )
    deployment.settle(figures, "export: worker SIGKILLed after chunk 1 of 3", new)


def retried(deployment: Deployment, run_id: str) -> bool:
    return any(
        r.tags.get("dagster/parent_run_id") == run_id and r.status == dg.DagsterRunStatus.SUCCESS
        for r in deployment.runs()
    )


@pytest.mark.timeout(400)
def test_postgres_restarted_mid_range_export(deployment, cluster, figures):
    days = RESTARTED
    old, new = deployment.exported_then_changed(days)

    deployment.faults.arm("warehouse.chunk_written", 1)
    deployment.launch(days[0], days[-1])
    deployment.faults.wait("warehouse.chunk_written", service=deployment.daemon)
    cluster.restart()
    found, _ = deployment.warehouse_rows(days)
    assert one_version(found, old) == [], "the restart left part of the run's transaction"
    deployment.faults.release("warehouse.chunk_written")

    interrupted = run_of(deployment, days[0], JOB)
    deployment.wait(
        "the retry of the interrupted run to succeed", lambda: retried(deployment, interrupted.run_id), 180
    )
    assert deployment.instance.get_run_by_id(interrupted.run_id).status == dg.DagsterRunStatus.FAILURE
    # Its step failure names the table, and that nothing of the day changed.
    assert said(deployment, interrupted.run_id, "the previous rows are unchanged")
    deployment.settle(figures, "export: PostgreSQL restarted after chunk 1 of 3", new)


@pytest.mark.timeout(400)
def test_cli_range_killed_while_recording_its_days(deployment, figures):
    days = RECORDING
    deployment.faults.arm("exports.day_recorded", 1)
    cli = deployment.cli_materialize(days[0], days[-1])
    deployment.faults.kill_at("exports.day_recorded")
    cli.wait(30)

    # Issue 24's state: the warehouse holds every day, Dagster's record does not, the run is STARTED.
    expected = deployment.source_rows(days)
    found, doubled = deployment.warehouse_rows(days)
    assert found == expected
    recorded = deployment.recorded_versions(days)
    assert sum(version is not None for version in recorded.values()) < len(days), recorded
    run = run_of(deployment, days[0], "__ASSET_JOB")
    # STARTED, unless run monitoring (polling every second here) has already failed it.
    assert run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.FAILURE)

    # Run monitoring fails it (a CLI run has no code location to retry it from), and the
    # records sensor reports the days it wrote from the ledger.
    deployment.wait(
        "run monitoring to fail the killed command-line run",
        lambda: deployment.instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE,
        60,
    )
    assert said(deployment, run.run_id, LOST_WORKER)
    deployment.wait(
        "Dagster's record to agree with the warehouse", lambda: deployment.record_agrees(days), 90
    )
    deployment.settle(figures, "export: CLI range SIGKILLed while recording", expected)


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    ("point", "days", "fault"),
    [
        (
            "coordinator.run_submitted",
            BEFORE_CURSOR,
            "daemon SIGKILLed between a sensor's run request and its cursor",
        ),
        (
            "launcher.launching",
            BEFORE_LAUNCH,
            "daemon SIGKILLed between a sensor's cursor and the run's launch",
        ),
    ],
    ids=["before-cursor", "before-launch"],
)
def test_daemon_killed_between_a_sensors_request_and_the_run(deployment, point, days, fault, figures):
    """Release days to the new-data sensor, SIGKILL the daemon at `point`, start it again:
    every day exported once, from one run per run key, and recorded."""
    deployment.faults.arm(point)
    release_after(deployment, days)
    deployment.faults.kill_at(point, service=deployment.daemon)
    deployment.daemon.process.wait(30)
    deployment.start_daemon()
    exported_once(deployment, days, figures, fault)


def release_after(deployment: Deployment, days: list[str]) -> None:
    """The source's clock moves past `days`: the new-data sensor's next tick requests them."""
    deployment.release((date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat())


def exported_once(deployment: Deployment, days: list[str], figures, fault: str) -> None:
    """Every day exported and recorded, from one run per run key, nothing stuck."""
    expected = deployment.source_rows(days)
    deployment.wait(
        "the released days to be exported and recorded",
        lambda: (
            not deployment.stuck_runs()
            and deployment.ledger_days().keys() >= set(days)
            and deployment.record_agrees(days)
        ),
        240,
    )
    doubled_runs = sum(len(runs) - 1 for runs in deployment.runs_by_key().values())
    assert doubled_runs == 0, deployment.runs_by_key()
    deployment.settle(figures, fault, expected)


@pytest.mark.timeout(400)
def test_postgres_restarted_during_a_sensor_tick(deployment, cluster, figures):
    """PostgreSQL restarted while the new-data sensor's tick is about to return its requests: the
    daemon's writes of the tick, its runs and its cursor reconnect, and the days export once."""
    days = TICK_RESTARTED
    deployment.faults.arm("exports.sensor_requesting")
    release_after(deployment, days)
    deployment.faults.wait("exports.sensor_requesting", service=deployment.daemon)
    cluster.restart()
    deployment.faults.release("exports.sensor_requesting")
    exported_once(deployment, days, figures, "PostgreSQL restarted during the new-data sensor's tick")
