"""A full disk while a report renders.

`dagster asset materialize` renders the shop's daily orders report in a real Jupyter kernel,
into a shared folder (`COLLAB_SHARED_DIR`, whose `reports/` holds every rendering) that lies on
a 512 KiB tmpfs, nearly full: the executed notebook fits, its HTML does not. The run must fail
saying which file it could not write and that the disk is full; nothing of it may be published
or left behind (no materialization of the day, no `.ipynb` or `.html` of the run). Once space
is freed, rendering the day again publishes one whole report.
"""

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml

from collab_pipelines import settings
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.e2e.processes import BIN
from collab_pipelines_tests.e2e.test_separated_state import REPORT, write_template
from collab_pipelines_tests.faults.test_report_render import whole
from collab_pipelines_tests.product import team

pytestmark = [pytest.mark.faults]
DAY = "2024-03-01"
# Room for the executed notebook (a few KiB) and not for its HTML (about 260 KiB of nbconvert's page).
ROOM = 64 * 1024
DISK_FULL = "No space left on device"
# The step in the run's own process: a step process of its own would load the definitions again.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


class Shop:
    """The shop's orders exported for DAY into a SQLite warehouse, its daily report's template,
    and a Dagster home: what `dagster asset materialize --select orders_report` needs."""

    def __init__(self, root: Path, shared: Path):
        self.root, self.shared = root, shared
        self.config, self.home = root / "config", root / "dagster"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
        write_template(self.config)
        (self.config / "catalog.yaml").write_text(yaml.safe_dump(team.CATALOG, sort_keys=False))
        self.source_url = f"sqlite:///{root / 'shop.db'}"
        self.warehouse_url = f"sqlite:///{root / 'warehouse.db'}"
        self.orders = team.create_source(self.source_url)
        self.instance = dg.DagsterInstance.from_config(str(self.home))

    def export(self) -> None:
        result = dg.materialize(
            build_export_assets(load_catalog(self.config / "catalog.yaml")),
            instance=self.instance,
            resources={
                "warehouse": Warehouse(url=self.warehouse_url),
                "sources": SqlSources(urls={"shop": self.source_url}),
            },
            partition_key=DAY,
        )
        assert result.success

    def render(self) -> subprocess.CompletedProcess:
        """The day's report, rendered by a `dagster asset materialize` process of its own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLAB_", "DAGSTER_"))}
        env.update(
            {
                "DAGSTER_HOME": str(self.home),
                "PATH": f"{BIN}:{env.get('PATH', '')}",
                settings.CONFIG_DIR_ENV: str(self.config),
                settings.STATE_DIR_ENV: str(self.root / "state"),
                settings.SHARED_DIR_ENV: str(self.shared),
                settings.WAREHOUSE_URL_ENV: self.warehouse_url,
            }
        )
        return subprocess.run(
            [f"{BIN}/dagster", "asset", "materialize", "-m", "collab_pipelines.definitions", "-a", "defs",
             "--select", REPORT, "--partition", DAY, "--config-json", json.dumps(IN_PROCESS)],
            cwd=self.root, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    def runs(self) -> list[dg.DagsterRun]:
        return [r for r in self.instance.get_runs() if dg.AssetKey(REPORT) in (r.asset_selection or ())]

    def published(self) -> list[Path]:
        """The files the day's materializations of the report point at."""
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(REPORT), asset_partitions=[DAY]), limit=100
        ).records
        return [Path(r.asset_materialization.metadata["notebook"].value) for r in records]

    def log(self, run_id: str) -> str:
        """The run's log as the UI shows it: its messages and its step's error."""
        lines = []
        for entry in self.instance.all_logs(run_id):
            lines.append(entry.message or "")
            error = getattr(entry.dagster_event and entry.dagster_event.event_specific_data, "error", None)
            if error is not None:
                lines.append(error.to_string())
        return "\n".join(lines)

    def files_of(self, run: dg.DagsterRun) -> list[Path]:
        return sorted(self.shared.rglob(f"{run.run_id[:8]}.*"))


def fill(disk: Path, leaving: int) -> Path:
    """A file that takes all of the disk's room but `leaving` bytes."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(bytes(stats.f_bavail * stats.f_frsize - leaving))
    return filler


@pytest.mark.timeout(300)
def test_disk_full_while_rendering_a_report(tmp_path, small_disk, figures):
    shop = Shop(tmp_path, small_disk)
    try:
        shop.export()
        line = f"orders on {DAY}: {(shop.orders['placed_at'].dt.strftime('%Y-%m-%d') == DAY).sum()} rows"
        filler = fill(small_disk, ROOM)

        refused = shop.render()
        assert refused.returncode != 0, "the render onto a full disk succeeded"
        [failed] = shop.runs()
        assert failed.status == dg.DagsterRunStatus.FAILURE
        html = small_disk / "reports" / REPORT / DAY / f"{failed.run_id[:8]}.html"
        said = shop.log(failed.run_id)
        assert f"could not write {html}: {DISK_FULL} (ENOSPC)" in said, said[-3000:]
        assert "the disk holding" in said and "is full" in said, said[-3000:]
        # Nothing of the failed run is published or left: no materialization, no partial file.
        assert shop.published() == []
        assert shop.files_of(failed) == []

        # The operator frees space; the day is rendered again.
        filler.unlink()
        rendered = shop.render()
        assert rendered.returncode == 0, (rendered.stdout + rendered.stderr)[-3000:]
        notebooks = shop.published()
        stuck = [r for r in shop.runs() if not r.is_finished]
        figures(
            "report: disk full while rendering",
            rows_lost=int(not any(whole(n, line) for n in notebooks)),
            rows_doubled=max(len(notebooks) - 1, 0),
            runs_stuck=len(stuck),
            partial_left=len(shop.files_of(failed)),
        )
        assert len(notebooks) == 1 and whole(notebooks[0], line), notebooks
        [again] = [r for r in shop.runs() if r.run_id != failed.run_id]
        assert notebooks[0].stem == again.run_id[:8]
        assert sorted(p.name for p in (small_disk / "reports").rglob("*.*")) == [
            f"{again.run_id[:8]}.html",
            f"{again.run_id[:8]}.ipynb",
        ]
        assert stuck == []
    finally:
        shop.instance.dispose()
