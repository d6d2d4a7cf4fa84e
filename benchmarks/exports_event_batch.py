"""Does Dagster's batched event write (DAGSTER_EVENT_BATCH_SIZE) shorten a year's range run on
the production (PostgreSQL) instance?

Runs the same one-year backfill of flights and weather as exports_backfill.py, through
Dagster on a fresh PostgreSQL instance database, without and with the variable set, and
prints both times and their ratio. The variable is read by Dagster at each write, so one
process measures both.

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
from exports_backfill import drop_database, postgres_instance_database, through_dagster  # noqa: E402

from collab_pipelines.demo.source import ProductDatabase  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["COLLAB_STATE_DIR"] = str(work)
        source_url = f"sqlite:///{work / 'product.db'}"
        ProductDatabase(sa.create_engine(source_url)).initialize(date(2014, 1, 1))
        for label, size in (("unbatched", None), (f"batch {args.batch_size}", args.batch_size)):
            instance_db = postgres_instance_database()
            if instance_db is None:
                print("no PostgreSQL server: the batched event write is PostgreSQL's; nothing to compare")
                return 0
            if size is None:
                os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
            else:
                os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(size)
            try:
                overrides = {"storage": {"postgres": {"postgres_url": instance_db}}}
                times[label] = through_dagster(work, overrides, label.replace(" ", "_"))
            finally:
                drop_database(instance_db)
    base = times["unbatched"]
    print("year backfill of flights and weather, one run, PostgreSQL instance")
    for label, seconds in times.items():
        print(f"  {label:12s} {seconds:8.2f} s   ratio to unbatched {seconds / base:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
