"""Rendering one report: inject the run's values, execute in a kept kernel, publish.

The three parts live apart: injection.py builds the notebook to run, kernel.py runs it in
a `KernelSession`, publishing.py scrubs the result and makes its self-contained HTML.
`write_report` here stores both files, whole or not at all.
"""

from __future__ import annotations

import errno
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
from papermill.exceptions import PapermillExecutionError

from collab_pipelines import fault_points
from collab_pipelines.reports.injection import prepare
from collab_pipelines.reports.publishing import LeakError, failing_cell, scrub, to_html

if TYPE_CHECKING:
    # kernel.py runs dagstermill's engine; a preview (no Dagster) hands render a FreshKernel.
    from collab_pipelines.reports.kernel import KernelSession

KERNEL_NAME = "python3"
CELL_TIMEOUT_SECONDS = 600


def papermill_options(kernel_name: str = KERNEL_NAME) -> dict:
    """How every report's notebook is executed, in a kept kernel or a fresh one."""
    return {
        "kernel_name": kernel_name,
        "progress_bar": False,
        "log_output": False,
        "request_save_on_cell_execute": False,
        "start_timeout": 120,
        "execution_timeout": CELL_TIMEOUT_SECONDS,
    }


class FreshKernel:
    """One Jupyter kernel for one notebook, started and shut down by papermill's own engine:
    a Dagster step keeps a KernelSession for its partitions, a preview renders one notebook."""

    executions = 0

    def alive(self) -> bool:
        return False

    def execute(self, nb: nbformat.NotebookNode, output_path: Path) -> nbformat.NotebookNode:
        import papermill

        executed = papermill.execute_notebook(nb, str(output_path), **papermill_options())
        self.executions += 1
        return executed


class ReportExecutionError(RuntimeError):
    """A template failed. Carries where: the cell and the kept notebook."""

    def __init__(self, message: str, cell_number: int | None, notebook_path: Path | None):
        super().__init__(message)
        self.cell_number = cell_number
        self.notebook_path = notebook_path


class ReportWriteError(ReportExecutionError):
    """A report's file could not be written (a full disk, a read-only share): nothing of it is kept."""


def _unwritten(path: Path, error: OSError, leftovers: list[str]) -> str:
    code = errno.errorcode.get(error.errno or 0, type(error).__name__)
    message = f"could not write {path}: {error.strerror or error} ({code})"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        message += f": the disk holding {path.parent} is full; free space there and render the report again"
    if leftovers:
        return message + ". Could not remove the partial files: " + "; ".join(leftovers)
    return message + ". Nothing of this report was kept"


def write_report(nb: nbformat.NotebookNode, notebook_path: Path, title: str) -> None:
    """Store a report: the notebook, then its HTML beside it, both whole or neither.

    The files are named by whoever renders (a run writes `<run>.ipynb`) and a materialization
    points at them only after this returns, so a half-written file is never published; on a
    failed write (a full disk) this removes the files it wrote too, or they would hold the
    space and read as a report. ReportWriteError names the file and why.
    """
    html = to_html(nb, title)
    html_path = notebook_path.with_suffix(".html")
    target, opened = notebook_path.parent, []
    try:
        target.mkdir(parents=True, exist_ok=True)
        target = notebook_path
        opened.append(target)
        nbformat.write(nb, target)
        # Half of the report is on disk: the notebook without its HTML, and no materialization yet.
        fault_points.reached("reports.notebook_written")
        target = html_path
        opened.append(target)
        target.write_text(html, encoding="utf-8")
    except OSError as error:
        leftovers = []
        for path in opened:
            try:
                path.unlink(missing_ok=True)
            except OSError as failed:
                leftovers.append(f"{path} ({failed.strerror or failed})")
        raise ReportWriteError(_unwritten(target, error, leftovers), None, None) from error


@dataclass
class Rendered:
    notebook_path: Path
    html_path: Path
    seconds: float
    warm_kernel: bool
    # The share of `seconds` spent executing in the kernel; the rest is storing and publishing.
    kernel_seconds: float = 0.0


def render(
    session: KernelSession | FreshKernel,
    template_path: Path,
    output_stem: Path,
    assignments: str,
    *,
    boilerplate: str = "",
    note: str = "Parameters supplied for this run",
    title: str = "Report",
) -> Rendered:
    """Execute a template and store the scrubbed notebook and its code-hidden HTML.

    `output_stem` is the path without suffix; `.ipynb` and `.html` are written beside each
    other (write_report). A failed notebook is kept too, with its failing cell, and
    ReportExecutionError says which cell failed and where the notebook is.
    """
    template = nbformat.read(template_path, as_version=4)
    nb = prepare(template, assignments, boilerplate, reset_kernel=session.executions > 0)
    warm = session.alive()
    notebook_path = output_stem.with_suffix(".ipynb")
    html_path = output_stem.with_suffix(".html")
    started = time.perf_counter()
    failure: PapermillExecutionError | None = None
    with tempfile.TemporaryDirectory(prefix="collab-report-") as work:
        raw_path = Path(work) / "executed.ipynb"
        try:
            executed = session.execute(nb, raw_path)
        except PapermillExecutionError as error:
            failure = error
            executed = nbformat.read(raw_path, as_version=4)
        in_kernel = time.perf_counter() - started
    try:
        public = scrub(executed, assignments, note)
    except LeakError as error:
        raise ReportExecutionError(f"{template_path.name}: {error}", None, None) from None
    write_report(public, notebook_path, title)
    if failure is not None:
        first_line, what = failing_cell(public)
        cell_number = failure.exec_count
        raise ReportExecutionError(
            f"{template_path.name} failed in cell [{cell_number}] ({first_line[:80]!r}): {what}. "
            f"The executed notebook, stopped at that cell, is kept at {notebook_path}",
            cell_number,
            notebook_path,
        )
    return Rendered(notebook_path, html_path, time.perf_counter() - started, warm, in_kernel)
