"""README's command-line range: `dagster asset materialize --partition-range` is one run over
the days, as the UI's backfill is."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from collab_pipelines.warehouse.resources import Warehouse


def test_dagster_asset_materialize_partition_range_writes_every_day_in_one_run(
    product_db, state_dir, tmp_path
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "asset", "materialize", "-m", "collab_pipelines.definitions", "-a", "defs",
            "--select", "flights", "--partition-range", "2013-01-02...2013-01-04",
        ],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    flights = Warehouse(url=f"sqlite:///{state_dir / 'warehouse.db'}").read("flights")
    assert set(flights["_partition"]) == {"2013-01-02", "2013-01-03", "2013-01-04"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 1
        assert instance.get_materialized_partitions(dg.AssetKey("flights")) == {
            "2013-01-02",
            "2013-01-03",
            "2013-01-04",
        }
