"""Kept kernels, for real: a notebook after another forgets it, and a range runs on several at once.

Each notebook here is a cell or two run by `KernelSession` in a real Jupyter kernel. Where two
must run at the same time, each waits in its kernel for the other's file: run one after the
other, the first would wait in vain and fail.
"""

import json
import threading
import time
from pathlib import Path

import nbformat
import pytest

from collab_pipelines import settings
from collab_pipelines.reports.assets import kernels_for
from collab_pipelines.reports.injection import prepare
from collab_pipelines.reports.kernel import KernelSession, in_kernels

# How long a kernel's cell waits for the file another kernel writes: far beyond a kernel start.
WAIT_SECONDS = 120


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    return nb


def printed(nb: nbformat.NotebookNode) -> dict:
    """The last JSON line the notebook printed."""
    lines = [
        line
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
        for line in output.text.splitlines()
        if line.startswith("{")
    ]
    return json.loads(lines[-1])


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def meet(folder: Path, me: str, other: str) -> str:
    """A cell that says it started, then waits for `other` to say so too."""
    return (
        "import os, time, json, pathlib\n"
        f"here = pathlib.Path({str(folder)!r})\n"
        f"(here / {me!r}).write_text(str(os.getpid()))\n"
        f"deadline = time.monotonic() + {WAIT_SECONDS}\n"
        f"while not (here / {other!r}).exists():\n"
        "    if time.monotonic() > deadline:\n"
        f"        raise TimeoutError('{other} never started beside {me}')\n"
        "    time.sleep(0.05)\n"
        "print(json.dumps({'pid': os.getpid()}))\n"
    )


def test_a_kept_kernel_forgets_the_last_notebook_and_keeps_its_imports(tmp_path):
    template = notebook("import json, os")
    template.cells.insert(0, nbformat.v4.new_code_cell("day = None"))
    template.cells[0].metadata["tags"] = ["parameters"]
    probe = (
        "import gc, json, os, sys\n"
        "print(json.dumps({'pid': os.getpid(), 'leftover': 'leftover' in globals(),"
        " 'frozen': gc.get_freeze_count(), 'imported': 'pandas' in sys.modules}))\n"
    )
    with KernelSession() as session:
        first = session.execute(
            prepare(template, "day = 1\nleftover = 'from the first day'\nimport pandas\n"),
            tmp_path / "first.ipynb",
        )
        second_nb = prepare(template, "day = 2\n", reset_kernel=True)
        second_nb.cells.append(nbformat.v4.new_code_cell(probe))
        second = session.execute(second_nb, tmp_path / "second.ipynb")
        third_nb = prepare(template, "day = 3\n", reset_kernel=True)
        third_nb.cells.append(nbformat.v4.new_code_cell(probe))
        third = session.execute(third_nb, tmp_path / "third.ipynb")
    assert not any(
        o.output_type == "error" for nb in (first, second, third) for c in nb.cells for o in c.outputs
    )
    after, later = printed(second), printed(third)
    assert after["pid"] == later["pid"], "the days did not share one kernel"
    assert not after["leftover"] and not later["leftover"], "a variable of the day before leaked"
    assert after["imported"], "the kept kernel lost its imports"
    # Frozen once, at the first reset (what is frozen may still be freed, never added to).
    assert after["frozen"] > 0 and 0 < later["frozen"] <= after["frozen"]


def test_a_range_runs_on_two_kernels_at_once(tmp_path):
    def work(session: KernelSession, item: str) -> dict:
        other = "b" if item == "a" else "a"
        executed = session.execute(notebook(meet(tmp_path, item, other)), tmp_path / f"{item}.ipynb")
        return printed(executed)

    results = dict(in_kernels(["a", "b"], work, kernels=2))
    assert sorted(results) == ["a", "b"]
    assert results["a"]["pid"] != results["b"]["pid"]


def test_two_kernels_take_every_item_once_and_each_keeps_its_kernel(tmp_path):
    def work(session: KernelSession, item: int) -> tuple[int, bool]:
        warm = session.alive()
        executed = session.execute(
            notebook("import os, json\nprint(json.dumps({'pid': os.getpid()}))"), tmp_path / f"{item}.ipynb"
        )
        return printed(executed)["pid"], warm

    results = dict(in_kernels(list(range(5)), work, kernels=2))
    assert sorted(results) == [0, 1, 2, 3, 4]
    kernels = {pid for pid, _warm in results.values()}
    assert 1 <= len(kernels) <= 2
    # Each kernel started once: its first notebook found it cold, every later one warm.
    assert sum(not warm for _pid, warm in results.values()) == len(kernels)


def test_an_unexpected_error_stops_the_range(tmp_path):
    def work(session: KernelSession, item: int) -> int:
        if item == 1:
            raise RuntimeError("the kernel's host broke")
        session.execute(notebook("pass"), tmp_path / f"{item}.ipynb")
        return item

    done = []
    with pytest.raises(RuntimeError, match="the kernel's host broke"):
        for _item, result in in_kernels([0, 1, 2], work, kernels=1):
            done.append(result)
    assert done == [0], "an item after the error was rendered"


def test_an_unexpected_error_lets_the_other_kernel_finish_and_closes_both(tmp_path):
    sessions: dict[int, KernelSession] = {}
    broke = threading.Event()

    def work(session: KernelSession, item: int) -> int:
        sessions[item] = session
        if item == 0:
            # Both kernels are busy when this one breaks: item 1 waits for it in its own kernel.
            session.execute(notebook(meet(tmp_path, "0", "1")), tmp_path / "0.ipynb")
            broke.set()
            raise RuntimeError("the kernel's host broke")
        session.execute(notebook(meet(tmp_path, "1", "0")), tmp_path / "1.ipynb")
        assert broke.wait(WAIT_SECONDS)
        return item

    done = []
    with pytest.raises(RuntimeError, match="the kernel's host broke"):
        for _item, result in in_kernels([0, 1], work, kernels=2):
            done.append(result)
    assert done == [1], "the other kernel's notebook, under way, was not finished and handed over"
    assert sessions[0] is not sessions[1]
    assert sessions[0].km is None and sessions[1].km is None, "a kernel was left running"


def test_a_stopped_range_kills_its_kernels(tmp_path):
    running: dict[int, KernelSession] = {}

    def work(session: KernelSession, item: int) -> int:
        running[item] = session
        if item == 0:
            return item
        # Item 1 waits for a file nobody writes: only a kill ends it.
        session.execute(notebook(meet(tmp_path, "1", "never")), tmp_path / "1.ipynb")
        return item

    outcomes = in_kernels([0, 1], work, kernels=2)
    assert next(outcomes) == (0, 0)
    wait_for(tmp_path / "1")  # the waiting cell runs: its kernel is up
    process = running[1].km.provisioner.process
    outcomes.close()
    assert process.poll() is not None, "closing the range left the busy kernel running"
    assert running[1].km is None, "the killed kernel's session was not closed"


@pytest.mark.parametrize(
    ("partitions", "configured", "environment", "expected"),
    [
        (1, None, None, 1),
        (30, None, None, 1),  # the default
        (3, None, "2", 1),  # two days a kernel: a small range keeps one
        (4, None, "2", 2),
        (30, None, "3", 3),
        (30, 1, "3", 1),  # the run's config wins
        (5, 4, None, 2),
    ],
)
def test_how_many_kernels_render_a_range(monkeypatch, partitions, configured, environment, expected):
    if environment is None:
        monkeypatch.delenv(settings.REPORT_KERNELS_ENV, raising=False)
    else:
        monkeypatch.setenv(settings.REPORT_KERNELS_ENV, environment)
    assert kernels_for(partitions, configured) == expected


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_kernel_count_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(settings.REPORT_KERNELS_ENV, value)
    with pytest.raises(ValueError, match=f"COLLAB_REPORT_KERNELS={value!r}"):
        settings.report_kernels()
