"""The daemon on PostgreSQL storage turns new data into finished runs with no manual action,
and a restart in between loses nothing and repeats nothing."""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from collab_pipelines.demo.source import ProductDatabase
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.e2e.processes import PROJECT, Service, wait_for
from collab_pipelines_tests.evaluation.conftest import Repo, Suites
from collab_pipelines_tests.evaluation.test_evaluation import GOOD

pytestmark = pytest.mark.e2e
EXPORTS_SENSOR = "daily_exports_new_data_sensor"
UPLOAD_SENSOR = "upload_sensor"
COMMITS_SENSOR = "model_commits_sensor"
OBSERVATIONS = (
    "origin,observed_at,temp\n"
    "JFK,2013-01-0{day} 01:00,39.0\n"
    "LGA,2013-01-0{day} 01:00,39.9\n"
    "EWR,2013-01-0{day} 02:00,39.0\n"
)


def drop_upload(state_dir: Path, name: str, day: int) -> None:
    """What the SFTP server does for an uploader: a file, then its .done sidecar."""
    inbox = state_dir / "landing" / "meteo" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(OBSERVATIONS.format(day=day))
    (inbox / f"{name}.done").write_text("")


@pytest.fixture
def daemon_env(tmp_path, postgres_url, product_db, state_dir, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    config["storage"] = {"postgres": {"postgres_url": postgres_url}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    env = {**__import__("os").environ}
    # The test releases days itself: the demo's clock would start export runs at any moment,
    # and a run cut short by stopping the daemon is not what this test is about.
    subprocess.run(
        [
            str(Path(bin_dir) / "dagster"),
            "schedule",
            "stop",
            "replay_clock_schedule",
            "-w",
            str(PROJECT / "workspace.yaml"),
        ],
        cwd=PROJECT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return env


def start_daemon(env, log_dir) -> Service:
    daemon = shutil.which("dagster-daemon", path=env["PATH"])
    return Service("dagster-daemon", [daemon, "run", "-w", str(PROJECT / "workspace.yaml")], env, log_dir)


def sensor_runs(instance: dg.DagsterInstance, sensor: str):
    return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": sensor}))


def finished(instance, sensor, count):
    runs = sensor_runs(instance, sensor)
    done = [r for r in runs if r.is_finished]
    return len(done) >= count and all(r.is_finished for r in runs)


def failures(instance: dg.DagsterInstance, runs) -> list[str]:
    """Each unsuccessful run's status and error messages, for an assertion to show."""
    found = []
    for run in runs:
        if run.status != dg.DagsterRunStatus.SUCCESS:
            errors = [
                event.message
                for event in instance.all_logs(run.run_id)
                if event.dagster_event and event.dagster_event.is_failure
            ]
            found.append(f"{run.run_id} {run.status.value}: {errors}")
    return found


def test_new_data_becomes_runs_across_a_daemon_restart(daemon_env, product_db, state_dir, tmp_path):
    source = ProductDatabase(sa.create_engine(f"sqlite:///{product_db}"))
    repo = Repo(tmp_path / "model")  # no commit yet: the sensor skips it until there is one
    Suites(state_dir / "suites.yaml").add("daemon", {"model": repo}, initial_commits=1)
    instance = dg.DagsterInstance.get()
    drop_upload(state_dir, "monday.csv", 1)
    daemon = start_daemon(daemon_env, tmp_path)
    try:
        wait_for("the first export run", lambda: finished(instance, EXPORTS_SENSOR, 1), 240, service=daemon)
        wait_for("the first ingestion", lambda: finished(instance, UPLOAD_SENSOR, 1), 120, service=daemon)
        # A data scientist commits once the first days are exported.
        first = repo.commit("Baseline model", GOOD)
        wait_for("the first evaluation", lambda: finished(instance, COMMITS_SENSOR, 1), 240, service=daemon)
    finally:
        daemon.stop()

    # New days arrive while the daemon is down.
    source.advance(2)
    released_through = source.now().date()
    drop_upload(state_dir, "tuesday.csv", 2)
    second = repo.commit(
        "Regularise more",
        {"model.py": GOOD["model.py"].replace('class_weight="balanced"', 'class_weight="balanced", C=0.1')},
    )
    daemon = start_daemon(daemon_env, tmp_path)
    try:
        wait_for(
            "the export run of the new days",
            lambda: finished(instance, EXPORTS_SENSOR, 2),
            240,
            service=daemon,
        )
        wait_for("the second ingestion", lambda: finished(instance, UPLOAD_SENSOR, 2), 120, service=daemon)
        wait_for("the second evaluation", lambda: finished(instance, COMMITS_SENSOR, 2), 240, service=daemon)
    finally:
        daemon.stop()

    evaluations = sensor_runs(instance, COMMITS_SENSOR)
    assert sorted(r.tags["dagster/partition"] for r in evaluations) == sorted(
        f"daemon:model@{sha[:10]}" for sha in (first, second)
    )  # each commit once, none lost
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in evaluations), failures(instance, evaluations)

    uploads = sensor_runs(instance, UPLOAD_SENSOR)
    assert len(uploads) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in uploads)
    warehouse = Warehouse(url=f"sqlite:///{state_dir / 'warehouse.db'}")
    assert (
        sorted(warehouse.read("weather_observations_uploads")["file_name"])
        == ["monday.csv"] * 3 + ["tuesday.csv"] * 3
    )
    processed = sorted(p.name for p in (state_dir / "landing" / "meteo" / "processed").iterdir())
    assert len(processed) == 4 and not any((state_dir / "landing" / "meteo" / "inbox").iterdir())

    runs = sensor_runs(instance, EXPORTS_SENSOR)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), failures(instance, runs)
    materialized = Counter(
        record.event_log_entry.dagster_event.partition
        for record in instance.fetch_materializations(dg.AssetKey("flights"), limit=1000).records
    )
    complete_days = {f"2013-01-{d:02d}" for d in range(1, released_through.day)}
    assert complete_days == set(materialized), sorted(materialized)
    assert max(materialized.values()) == 1, f"a day was exported twice: {materialized}"
