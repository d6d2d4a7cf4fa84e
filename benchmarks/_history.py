"""A long instance history, written fast and then timed where a real instance keeps it.

Writing thousands of events through the instance costs a synced SQLite commit each (about 6 ms
on this disk), so a 10,000-item history took most of a benchmark's time. It is written on a
memory filesystem instead and copied to a disk folder, where the ticks are then timed: the same
SQLite files, read from the same kind of storage as a deployed instance's.

Not a benchmark itself: `make bench` runs the scripts whose names do not start with "_".
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg


@contextmanager
def instance_with_history(
    folder: Path, fill: Callable[[dg.DagsterInstance], None]
) -> Iterator[tuple[dg.DagsterInstance, float]]:
    """An instance in `folder` (created here) holding what `fill` wrote; also fill's seconds."""
    memory = Path("/dev/shm") if Path("/dev/shm").is_dir() else folder.parent
    with tempfile.TemporaryDirectory(dir=memory) as filling:
        started = time.perf_counter()
        with dg.instance_for_test(temp_dir=filling) as instance:
            fill(instance)
        seconds = time.perf_counter() - started
        shutil.copytree(filling, folder)
    with dg.instance_for_test(temp_dir=str(folder)) as instance:
        yield instance, seconds
