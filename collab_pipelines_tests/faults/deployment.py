"""A deployment to break: PostgreSQL instance, warehouse and source, a code server, a daemon, run workers.

The processes are the separated-state test's (e2e/test_separated_state.py): each in its own
folder, runs started by `SeparateRunWorkerLauncher` as Kubernetes starts a pod, the instance
from deploy/dagster.yaml (queue, run monitoring, run retries). Two things differ: run
monitoring polls every second, so a lost run is failed within the test's patience rather
than the minute production waits; and every process that runs the project's code gets the
fault folder, so a test can stop one at a fault point (collab_pipelines/fault_points.py).

The source is the shop team's orders (product/team.py) with a watermark that releases no day
until a test moves it: nothing but the test starts an export. Uploads of the separated-state
test's store visits land in the shared folder.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
import yaml

from collab_pipelines import settings
from collab_pipelines.dagster_internals import data_version_of
from collab_pipelines.exports import ledger
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.e2e.processes import (
    BIN,
    PROJECT,
    Service,
    free_port,
    grpc_workspace,
    start_code_server,
    wait_for,
)
from collab_pipelines_tests.e2e.test_separated_state import UPLOADS, Process, instance_yaml
from collab_pipelines_tests.faults.coordinator import FaultPointQueuedRunCoordinator
from collab_pipelines_tests.faults.points import FaultPoint
from collab_pipelines_tests.product import team

LOCATION = "collab_pipelines"
JOB = "daily_exports"
EXPORT = "orders"
# One chunk per day: a three-day range writes chunks 1, 2 and 3.
CHUNK_ROWS = team.ORDERS_PER_DAY
RUN_CONFIG = {"resources": {"sources": {"config": {"chunk_rows": CHUNK_ROWS}}}}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def range_tags(first: str, last: str) -> dict:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def write_catalog(folder: Path) -> Path:
    folder.mkdir(parents=True)
    catalog = copy.deepcopy(team.CATALOG)
    # The source's clock releases days only when a test moves it (release()): until then the
    # new-data sensor and the schedule stay idle.
    catalog["exports"][0]["watermark_sql"] = "SELECT now FROM clock"
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    # An upload type, so the upload sensor has uploads to take (intake's faults).
    (folder / "uploads.yaml").write_text(yaml.safe_dump(UPLOADS, sort_keys=False))
    return folder


class Deployment:
    def __init__(self, root: Path, instance_url: str, warehouse_url: str, source_url: str):
        self.root = root
        self.warehouse_url = warehouse_url
        self.source_url = source_url
        self.config = write_catalog(root / "config")
        self.landing = root / "shared" / "landing"
        self.faults = FaultPoint(root / "faults")
        self.code, self.daemon_place, self.run = (Process(root, name) for name in ("code", "daemon", "run"))
        self.project = {
            settings.CONFIG_DIR_ENV: str(self.config),
            settings.WAREHOUSE_URL_ENV: warehouse_url,
            team.SOURCE_ENV: source_url,
            settings.SHARED_DIR_ENV: str(root / "shared"),
            # The instance names the tests' own run launcher, which only the project folder holds.
            "PYTHONPATH": str(PROJECT),
            **self.faults.env,
        }
        self.run_env = self.run.env(**self.project)
        config = yaml.safe_load(instance_yaml(instance_url, self.run, self.run_env))
        config["run_monitoring"].update(poll_interval_seconds=1, start_timeout_seconds=30)
        # deploy/dagster.yaml's queue, with a fault point where a sensor's run was submitted.
        config["run_coordinator"] = {
            "module": FaultPointQueuedRunCoordinator.__module__,
            "class": FaultPointQueuedRunCoordinator.__name__,
        }
        for process in (self.code, self.daemon_place, self.run):
            (process.home / "dagster.yaml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        (self.daemon_place.cwd / "workspace.yaml").write_text(
            yaml.safe_dump(grpc_workspace(self.port, LOCATION))
        )
        self.release("2024-03-01")
        self.services: list[Service] = []
        self.daemon: Service | None = None
        self.instance = dg.DagsterInstance.from_config(str(self.daemon_place.home))

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> None:
        self.services.append(
            start_code_server(self.port, self.code.env(**self.project), self.root, self.code.cwd)
        )
        self.start_daemon()

    def start_daemon(self) -> Service:
        self.daemon = Service(
            "daemon",
            [f"{BIN}/dagster-daemon", "run", "-w", "workspace.yaml"],
            self.daemon_place.env(PYTHONPATH=str(PROJECT), **self.faults.env),
            self.root,
            cwd=self.daemon_place.cwd,
        )
        self.services.append(self.daemon)
        return self.daemon

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.instance.dispose()

    def launch(self, first: str, last: str) -> None:
        """`dagster job launch`, as an engineer queues a range from a terminal: the daemon starts it."""
        subprocess.run(
            [
                f"{BIN}/dagster",
                "job",
                "launch",
                "-w",
                "workspace.yaml",
                "-j",
                JOB,
                "--tags",
                json.dumps(range_tags(first, last)),
                "--config-json",
                json.dumps(RUN_CONFIG),
            ],
            cwd=self.daemon_place.cwd,
            env=self.daemon_place.env(PYTHONPATH=str(PROJECT)),
            check=True,
            capture_output=True,
        )

    def cli_materialize(self, first: str, last: str) -> subprocess.Popen:
        """`dagster asset materialize --partition-range`, as issue 24's new user ran it: in-process."""
        log = (self.root / f"materialize-{first}.log").open("ab")
        return subprocess.Popen(
            [
                f"{BIN}/dagster",
                "asset",
                "materialize",
                "-m",
                "collab_pipelines.definitions",
                "-a",
                "defs",
                "--select",
                EXPORT,
                "--partition-range",
                f"{first}...{last}",
                "--config-json",
                json.dumps(RUN_CONFIG),
            ],
            cwd=self.run.cwd,
            env=self.run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def export_in_process(self, first: str, last: str) -> None:
        """The days' current version, exported by the real asset from the test process."""
        with_env = {settings.WAREHOUSE_URL_ENV: self.warehouse_url, team.SOURCE_ENV: self.source_url}
        result = dg.materialize(
            build_export_assets(load_catalog(self.config / "catalog.yaml")),
            instance=self.instance,
            resources={
                "warehouse": Warehouse(url=with_env[settings.WAREHOUSE_URL_ENV]),
                "sources": SqlSources(urls={"shop": self.source_url}, chunk_rows=CHUNK_ROWS),
            },
            tags=range_tags(first, last),
        )
        assert result.success

    # -- what the source and the warehouse hold ----------------------------------------------

    def release(self, through: str) -> None:
        """The source's clock moves: every day before `through` is complete."""
        engine = sa.create_engine(self.source_url)
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE IF NOT EXISTS clock (now timestamp)"))
            connection.execute(sa.text("DELETE FROM clock"))
            connection.execute(sa.text("INSERT INTO clock VALUES (:now)"), {"now": f"{through} 00:00:00"})
        engine.dispose()

    def exported_then_changed(self, days: list[str]) -> tuple[dict, dict]:
        """The days exported and recorded as they are (old), then changed in the source (new)."""
        self.export_in_process(days[0], days[-1])
        old = self.source_rows(days)
        self.bump_source(days)
        return old, self.source_rows(days)

    def bump_source(self, days: list[str]) -> None:
        """A new version of the days: every amount changes, so old and new rows differ."""
        engine = sa.create_engine(self.source_url)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE orders SET amount = amount + 1 WHERE placed_at >= :start AND placed_at < :end"
                ),
                {"start": pd.Timestamp(days[0]), "end": pd.Timestamp(days[-1]) + pd.Timedelta(days=1)},
            )
        engine.dispose()

    def source_rows(self, days: list[str]) -> dict[str, set[tuple]]:
        engine = sa.create_engine(self.source_url)
        frame = pd.read_sql(sa.text("SELECT id, placed_at, amount FROM orders"), engine)
        engine.dispose()
        return _by_day(frame, "placed_at", days)

    def warehouse_rows(self, days: list[str]) -> tuple[dict[str, set[tuple]], int]:
        """Rows per day, and how many rows repeat a key (0 unless something doubled them)."""
        engine = sa.create_engine(self.warehouse_url)
        frame = pd.read_sql(sa.text(f"SELECT id, placed_at, amount FROM {EXPORT}"), engine)
        engine.dispose()
        doubled = sum(count - 1 for count in Counter(frame["id"]).values() if count > 1)
        return _by_day(frame, "placed_at", days), doubled

    def ledger_days(self) -> dict[str, ledger.WrittenDay]:
        engine = sa.create_engine(self.warehouse_url)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(ledger.LEDGER_TABLE):
                return {}
            rows = connection.execute(
                sa.select(ledger.ledger).where(ledger.ledger.c.export == EXPORT)
            ).mappings()
            written = {
                row["day"]: ledger.WrittenDay(
                    row["export"], row["day"], row["run_id"], row["row_count"], row["data_version"]
                )
                for row in rows
            }
        engine.dispose()
        return written

    def recorded_versions(self, days: list[str]) -> dict[str, str | None]:
        """Dagster's record: each day's newest materialization's data version (None: missing)."""
        versions = {}
        for day in days:
            records = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(EXPORT), asset_partitions=[day]), limit=1
            ).records
            versions[day] = data_version_of(records[0].asset_materialization) if records else None
        return versions

    def record_agrees(self, days: list[str]) -> bool:
        """Every day in the warehouse has its materialization, with the version the ledger holds."""
        written = self.ledger_days()
        return self.recorded_versions(days) == {
            day: written[day].data_version if day in written else None for day in days
        }

    def runs(self) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs())

    def stuck_runs(self) -> list[dg.DagsterRun]:
        return [run for run in self.runs() if run.status not in FINISHED]

    def settle(self, figures, fault: str, expected: dict[str, set[tuple]]) -> None:
        """After recovery: record the fault's figures, then require the days whole, in
        `expected`'s version, recorded as the ledger says, nothing doubled, no run stuck."""
        days = sorted(expected)
        found, doubled = self.warehouse_rows(days)
        stuck = self.stuck_runs()
        figures(fault, rows_lost=lost_rows(expected, found), rows_doubled=doubled, runs_stuck=len(stuck))
        assert one_version(found, expected) == [], "a day is not the version the source holds"
        assert self.record_agrees(days), "Dagster's record and the warehouse disagree"
        assert (doubled, stuck) == (0, [])

    def runs_by_key(self) -> dict[str, list[dg.DagsterRun]]:
        """The runs sensors requested, by run key (a key twice would be a doubled request)."""
        keyed: dict[str, list[dg.DagsterRun]] = {}
        for run in self.runs():
            if "dagster/run_key" in run.tags and "dagster/parent_run_id" not in run.tags:
                keyed.setdefault(run.tags["dagster/run_key"], []).append(run)
        return keyed

    def wait(self, what: str, condition, timeout: float = 120) -> None:
        """Until `condition()` holds, failing at once if the daemon exits."""
        wait_for(what, condition, timeout, interval=0.5, service=self.daemon)


def _by_day(frame: pd.DataFrame, column: str, days: list[str]) -> dict[str, set[tuple]]:
    stamps = pd.to_datetime(frame[column])
    frame = frame.assign(_day=stamps.dt.strftime("%Y-%m-%d"), amount=frame["amount"].round(2))
    return {
        day: set(frame.loc[frame["_day"] == day, ["id", "amount"]].itertuples(index=False, name=None))
        for day in days
    }


def lost_rows(expected: dict[str, set[tuple]], found: dict[str, set[tuple]]) -> int:
    """Rows of the expected version missing from the warehouse, per day summed."""
    return sum(len(expected[day] - found.get(day, set())) for day in expected)


def one_version(found: dict[str, set[tuple]], *versions: dict[str, set[tuple]]) -> list[str]:
    """Days whose rows are exactly none of the given versions (a partial or mixed day)."""
    return [day for day in found if not any(found[day] == version[day] for version in versions)]
