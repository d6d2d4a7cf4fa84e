"""N daily reports: through the project vs plain papermill, same notebook, same parameters.

The project renders a range of daily partitions of `flights_quality_report` as one Dagster
run (a single-run backfill), on its warm kernels (one as shipped; `--kernels 2`
for two). Plain papermill executes the same template once per day with the same parameters,
a fresh kernel each time, the way a cron script would. Both read the same SQLite warehouse,
filled by the real exports. Prints both times and their ratio against the goal, at most 0.8
(docs/performance.md), and whether it is met, then where the project's time went: the run's
start and end around its step, the days' time in their kernels and in storing and
publishing them (each materialization's kernel_seconds and render_seconds).

    .venv/bin/python benchmarks/reports_render.py [--days 10] [--kernels N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from collab_pipelines.demo.paths import DEMO_CONFIG
from collab_pipelines.demo.paths import DEMO_TEMPLATES as TEMPLATES_DIR
from collab_pipelines.reports.definitions import build_defs
from collab_pipelines.warehouse.resources import Warehouse

ASSET = "flights_quality_report"
# At most this share of plain papermill's time: the warm kernel skips a kernel start per report.
GOAL = 0.8
FIRST_REPORT = date(2013, 2, 1)
# The template compares each day with the four weeks before it, so those are exported too.
BASELINE_DAYS = 28

PAPERMILL_LOOP = """
import json, sys, time
import papermill
template, out_dir, days = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
started = time.perf_counter()
for day in days:
    papermill.execute_notebook(
        template, f"{out_dir}/{day}.ipynb", kernel_name="python3", progress_bar=False,
        parameters={"partition_key": day, "partition_keys": [day], "datasets": {"flights": "flights"}},
    )
print(time.perf_counter() - started)
"""


def bench_job() -> dg.JobDefinition:
    defs = dg.Definitions.merge(
        build_defs(TEMPLATES_DIR),
        dg.Definitions(
            jobs=[dg.define_asset_job("bench_reports", selection=[ASSET])],
            resources={"warehouse": Warehouse()},
        ),
    )
    return defs.resolve_job_def("bench_reports")


def prepare_state(state: Path, days: list[str]) -> None:
    from collab_pipelines.demo.source import ProductDatabase
    from collab_pipelines.exports.assets import build_export_assets
    from collab_pipelines.exports.catalog import load_catalog
    from collab_pipelines.exports.resources import SqlSources

    last = date.fromisoformat(days[-1])
    engine = sa.create_engine(f"sqlite:///{state / 'product.db'}")
    ProductDatabase(engine).initialize(last + timedelta(days=1))
    engine.dispose()
    first = (date.fromisoformat(days[0]) - timedelta(days=BASELINE_DAYS)).isoformat()
    flights = [a for a in build_export_assets(load_catalog()) if a.key.path[0] == "flights"]
    with dg.instance_for_test() as instance:
        dg.materialize(
            flights,
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": days[-1],
            },
            resources={"warehouse": Warehouse(), "sources": SqlSources()},
        )


def through_project(days: list[str], kernels: int | None) -> tuple[float, dict[str, float]]:
    """The run's seconds, and where they went."""
    config = {"ops": {ASSET: {"config": {"kernels": kernels}}}} if kernels else None
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        result = dg.execute_job(
            dg.reconstructable(bench_job),
            instance=instance,
            run_config=config,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )
        elapsed = time.perf_counter() - started
        assert result.success
        rendered = instance.fetch_materializations(dg.AssetKey(ASSET), limit=len(days) + 1).records
        assert sorted(r.partition_key for r in rendered) == days
        metadata = [r.asset_materialization.metadata for r in rendered]
        times = {
            e.dagster_event.event_type_value: e.timestamp
            for e in instance.all_logs(result.run_id)
            if e.dagster_event
        }
        step = times["STEP_SUCCESS"] - times["STEP_START"]
        split = {
            "outside the step": elapsed - step,
            "step": step,
            "in kernels": sum(m["kernel_seconds"].value for m in metadata),
            "storing and publishing": sum(
                m["render_seconds"].value - m["kernel_seconds"].value for m in metadata
            ),
            "first day": max(m["render_seconds"].value for m in metadata),
        }
    return elapsed, split


def plain_papermill(days: list[str], out_dir: Path) -> float:
    # A separate interpreter: importing dagstermill re-registers papermill's Python translator.
    output = subprocess.run(
        [
            sys.executable,
            "-c",
            PAPERMILL_LOOP,
            str(TEMPLATES_DIR / f"{ASSET}.ipynb"),
            str(out_dir),
            json.dumps(days),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10, help="how many daily reports (default 10)")
    parser.add_argument(
        "--kernels", type=int, default=None, help="at most this many kernels (default: as shipped)"
    )
    args = parser.parse_args()
    days = [(FIRST_REPORT + timedelta(days=i)).isoformat() for i in range(args.days)]
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as work:
        state = Path(work) / "state"
        state.mkdir()
        os.environ["COLLAB_STATE_DIR"] = str(state)
        # The demo's catalog (flights) and template; the step processes inherit the variable.
        os.environ["COLLAB_CONFIG_DIR"] = str(DEMO_CONFIG)
        os.environ.pop("COLLAB_WAREHOUSE_URL", None)
        os.environ.pop("COLLAB_SOURCE_URL", None)
        # As shipped, unless --kernels says otherwise.
        os.environ.pop("COLLAB_REPORT_KERNELS", None)
        prepare_state(state, days)
        project, split = through_project(days, args.kernels)
        (state / "papermill").mkdir()
        baseline = plain_papermill(days, state / "papermill")
    print(f"reports_render: {args.days} daily {ASSET} reports")
    print(f"  project (one run, warm kernels):     {project:7.1f} s  ({project / args.days:.2f} s/report)")
    print(f"  plain papermill (kernel per report): {baseline:7.1f} s  ({baseline / args.days:.2f} s/report)")
    ratio = project / baseline
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(f"  ratio project / papermill: {ratio:.2f} (goal <= {GOAL}: {verdict})")
    print(
        "  the project's run: {outside the step:.1f} s starting and ending it, its step {step:.1f} s; "
        "the days, added up over the kernels: {in kernels:.1f} s in a kernel (the slowest, a kernel's "
        "first, {first day:.1f} s), {storing and publishing:.1f} s storing and publishing".format_map(split)
    )


if __name__ == "__main__":
    main()
