"""Which of Dagster's event settings shorten a year's range run of the exports?

Runs the same one-year backfill of flights and weather as exports_backfill.py through Dagster,
on fresh instances, with each setting Dagster 1.13 reads for the events of a range run:

- DAGSTER_EVENT_BATCH_SIZE (PostgreSQL instance only: SQLite's event log writes a batch one
  event at a time). Dagster batches the materializations it derives from an asset's output;
  the exports yield their own per-day materializations (each day's data version is its own),
  which Dagster writes one by one whatever the setting. The floor (assets that do nothing,
  whose materializations Dagster derives) shows what the setting does where it applies.
- DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS: one planned event per asset and run instead
  of one per day. Not adopted: the comment beside it in Dagster (storage/event_log/base.py)
  says partitions are then not marked failed when the run fails, and a running range's days
  are no longer shown in progress (both are read from the per-day planned events).

Prints each time and its ratio to the instance's default. The variables are read by Dagster
at each write, so one process measures every variant.

    .venv/bin/python benchmarks/exports_event_batch.py [--batch-size 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _goals import judged  # noqa: E402
from exports_backfill import (  # noqa: E402
    dagster_floor,
    drop_database,
    postgres_instance_database,
    through_dagster,
)

from collab_pipelines.demo.source import ProductDatabase  # noqa: E402

SETTINGS = ("DAGSTER_EVENT_BATCH_SIZE", "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS")


def measured(work: Path, environment: dict[str, str], postgres: bool, floor: bool) -> float | None:
    for name in SETTINGS:
        os.environ.pop(name, None)
    os.environ.update(environment)
    instance_db = postgres_instance_database() if postgres else None
    if postgres and instance_db is None:
        return None
    overrides = {"storage": {"postgres": {"postgres_url": instance_db}}} if instance_db else None
    try:
        if floor:
            return dagster_floor(overrides)
        return through_dagster(work, overrides, f"{'pg' if postgres else 'sqlite'}_{len(environment)}")
    finally:
        if instance_db:
            drop_database(instance_db)
        for name in SETTINGS:
            os.environ.pop(name, None)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    batch = {"DAGSTER_EVENT_BATCH_SIZE": str(args.batch_size)}
    subset = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
    variants = [
        ("SQLite instance", False, "default", {}),
        ("SQLite instance", False, "one planned event per asset", subset),
        ("PostgreSQL instance", True, "unbatched", {}),
        ("PostgreSQL instance", True, f"batch {args.batch_size}", batch),
        ("PostgreSQL instance", True, f"batch {args.batch_size} + one planned event", {**batch, **subset}),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["COLLAB_STATE_DIR"] = str(work)
        source_url = f"sqlite:///{work / 'product.db'}"
        ProductDatabase(sa.create_engine(source_url)).initialize(date(2014, 1, 1))
        for instance, postgres, label, environment in variants:
            run = measured(work, environment, postgres, floor=False)
            floor = measured(work, environment, postgres, floor=True)
            if run is None:
                print(f"no PostgreSQL server: {instance} variants skipped")
                continue
            rows.append((instance, label, run, floor))
    print("year backfill of flights and weather, one run, by Dagster event setting")
    defaults = {}
    for instance, label, run, floor in rows:
        # The instance's first line is the default the others are measured against.
        first = instance not in defaults
        base_run, base_floor = defaults.setdefault(instance, (run, floor))
        verdict = "" if first else f"   {judged(run / base_run, below=1)}"
        print(
            f"  {instance:20s} {label:34s} run {run:7.2f} s ({run / base_run:4.2f})"
            f"   floor {floor:7.2f} s ({floor / base_floor:4.2f}){verdict}"
        )
    print("  (ratios against the instance's first line; the floor's assets do nothing)")
    print(
        "  goal: adopt a setting whose ratio is < 1 without losing what the UI shows of a run's days;"
        " adopted: DAGSTER_EVENT_BATCH_SIZE on PostgreSQL; not: the planned-event subset, which"
        " leaves a failed run's days unmarked (docs/performance.md)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
