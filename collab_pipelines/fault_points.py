"""Named moments where the fault-injection tests stop a process (collab_pipelines_tests/faults/).

A test cannot find "the export has written chunk 1 of 3 and not yet committed" by sleeping;
the code under test says when it is there. Off by default: with `COLLAB_FAULT_DIR` unset,
`reached()` costs one environment lookup and does nothing.

With `COLLAB_FAULT_DIR=<dir>` set in a process's environment, the test arms one point by writing
its name to `<dir>/armed` (`<name>`, or `<name>#<n>` for the n-th time a process reaches it,
1-based), so the same long-lived processes serve several faults in turn. The first process to
get there writes `<dir>/<name>.reached` (its pid) and waits on the FIFO `<dir>/<name>.release`,
which the test created: the test kills it there, or restarts a database and opens the FIFO for
writing to let it go on. A point fires once per folder, so the retry of a killed run passes it.
Nothing here is meant for a deployment; docs/reliability.md lists the points.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_ENV = "COLLAB_FAULT_DIR"
_counts: dict[str, int] = {}


def reached(name: str) -> None:
    folder = os.environ.get(DIR_ENV)
    if not folder:
        return
    try:
        armed = (Path(folder) / "armed").read_text().strip()
    except FileNotFoundError:
        return
    point, _, nth = armed.partition("#")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    marker = Path(folder) / f"{name}.reached"
    if _counts[name] != int(nth or 1) or marker.exists():
        return
    scratch = Path(folder) / f"{name}.{os.getpid()}"
    scratch.write_text(str(os.getpid()))
    try:
        # A hard link appears whole (the test reads the pid) and only once (two processes race).
        os.link(scratch, marker)
    except FileExistsError:
        return
    finally:
        scratch.unlink()
    # Opening a FIFO for reading blocks until a writer opens it: no clock, no polling.
    with (Path(folder) / f"{name}.release").open("rb"):
        pass
