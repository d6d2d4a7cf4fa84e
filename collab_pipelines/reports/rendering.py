"""Executing templates in a reusable Jupyter kernel, and publishing what they produced.

Three things dagstermill does not do for us, and why:

- It replaces the `parameters` cell, so the defaults written there vanish. We keep that cell
  (untagged, as "defaults") in front of the injected one, which is papermill's behaviour:
  defaults first, supplied values after.
- It starts a kernel per execution (about 1 to 1.5 s, plus the imports of every notebook).
  A `KernelSession` keeps one kernel for a whole step, so a range of partitions pays that
  once; each notebook starts with `%reset -f`, so no variable leaks from one to the next.
- Its executed notebook carries the instance configuration, the code pointer, DEBUG logs
  and Beta warnings. `scrub` removes them before anything is stored or shown.
"""

from __future__ import annotations

import copy
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import dagster as dg
import nbformat
import papermill
from papermill.engines import papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.translators import PythonTranslator
from papermill.utils import merge_kwargs, remove_args

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    from dagstermill.engine import DagstermillEngine, DagstermillNotebookClient

KERNEL_NAME = "python3"
DEFAULTS_TAG = "parameters-defaults"
INJECTED_TAG = "injected-parameters"
RESET_TAG = "collab-kernel-reset"
TEARDOWN_TAG = "injected-teardown"
CELL_TIMEOUT_SECONDS = 600
_KERNEL_START_RETRIES = 3
_RESET_SOURCE = (
    "%reset -f\nimport matplotlib.pyplot as __collab_plt\n__collab_plt.close('all')\ndel __collab_plt\n"
)
# Lines Dagster writes to a kernel's stderr: its log records and its Beta/Preview warnings.
_NOISE_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[.,\d]*\s*[+-]?\d*\s+-\s+dagster\b"
    r"|\b(Beta|Preview|Deprecation|Superseded)Warning\b"
    r"|^\s*warnings\.warn\("
    r"|^\s*MANAGER_FOR_NOTEBOOK_INSTANCE\b"
)
_DAGSTERMILL_MARKERS = ("__dm_", "_reconstitute_job_context", "instance_ref", "InstanceRef")

log = logging.getLogger(__name__)


class ReportExecutionError(RuntimeError):
    """A template failed. Carries where: the cell and the kept notebook."""

    def __init__(self, message: str, cell_number: int | None, notebook_path: Path | None):
        super().__init__(message)
        self.cell_number = cell_number
        self.notebook_path = notebook_path


@dataclass
class Rendered:
    notebook_path: Path
    html_path: Path
    seconds: float
    warm_kernel: bool


def python_assignments(values: Mapping[str, Any]) -> str:
    return "".join(f"{name} = {PythonTranslator.translate(value)}\n" for name, value in values.items())


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags") or [])


def prepare(
    template: nbformat.NotebookNode,
    assignments: str,
    boilerplate: str = "",
    reset_kernel: bool = False,
) -> nbformat.NotebookNode:
    """The notebook to execute: defaults kept, then one injected cell, then the rest.

    `boilerplate` is dagstermill's context reconstitution (empty outside Dagster);
    `assignments` are the supplied parameters as Python, which win over the defaults.
    """
    nb = copy.deepcopy(template)
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in _tags(cell))
    defaults = nb.cells[index]
    defaults.metadata["tags"] = [t for t in _tags(defaults) if t != "parameters"] + [DEFAULTS_TAG]
    injected = nbformat.v4.new_code_cell(
        source=(boilerplate.strip() + "\n\n" if boilerplate else "")
        + "# Parameters supplied for this run\n"
        + assignments
    )
    injected.metadata["tags"] = [INJECTED_TAG]
    cells = nb.cells[: index + 1] + [injected] + nb.cells[index + 1 :]
    if reset_kernel:
        reset = nbformat.v4.new_code_cell(source=_RESET_SOURCE)
        reset.metadata["tags"] = [RESET_TAG]
        cells = [reset] + cells
    nb.cells = cells
    return nb


def scrub(nb: nbformat.NotebookNode, assignments: str, note: str) -> nbformat.NotebookNode:
    """What may be stored and shown: no dagstermill boilerplate, instance config, logs or warnings."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        tags = _tags(cell)
        if RESET_TAG in tags or TEARDOWN_TAG in tags:
            continue
        if INJECTED_TAG in tags:
            cell.source = f"# {note}\n{assignments}"
            # Its traceback would quote the boilerplate, instance configuration included.
            cell.outputs = [
                nbformat.from_dict({**o, "traceback": [f"{o.get('ename')}: {o.get('evalue')}"]})
                for o in cell.get("outputs", [])
                if o.get("output_type") == "error"
            ]
        if cell.cell_type == "code":
            cell.outputs = [o for o in (_clean_output(o) for o in cell.outputs) if o is not None]
        cells.append(cell)
    nb.cells = cells
    papermill_meta = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {
        key: papermill_meta[key]
        for key in ("start_time", "end_time", "duration", "exception")
        if key in papermill_meta
    }
    nb.metadata.pop("collab_report_private", None)
    leaked = [m for m in _DAGSTERMILL_MARKERS if m in nbformat.writes(nb)]
    if leaked:
        # A template that prints its own context would publish it; refuse rather than leak.
        raise ReportExecutionError(
            f"the executed notebook still shows dagstermill internals ({leaked}); "
            "do not print `context` itself in a template",
            None,
            None,
        )
    return nb


def _clean_output(output):
    if output.get("output_type") != "stream":
        return output
    lines = output.get("text", "").splitlines(keepends=True)
    kept = []
    skip_next = False
    for line in lines:
        if skip_next and line.startswith(" "):
            skip_next = False
            continue
        skip_next = False
        if _NOISE_LINE.search(line):
            # A Python warning is printed as the message line, then the offending source line.
            skip_next = "Warning" in line
            continue
        kept.append(line)
    if not "".join(kept).strip():
        return None
    output["text"] = "".join(kept)
    return output


def to_html(nb: nbformat.NotebookNode, title: str) -> str:
    """The code-hidden rendering for sharing: prose, tables and charts, no inputs."""
    from nbconvert import HTMLExporter

    shared = copy.deepcopy(nb)
    for cell in shared.cells:
        if INJECTED_TAG in _tags(cell):
            # Readers want to know what the report is about, not how it was parameterised.
            cell.cell_type = "markdown"
            cell.source = "**Parameters**\n\n```\n" + cell.source + "\n```"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    shared.metadata["title"] = title
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _resources = exporter.from_notebook_node(shared)
    return body


def _failing_cell(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """The first line of the cell that raised, and the error."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
                return first_line.strip(), f"{output.get('ename')}: {output.get('evalue')}"
    return "", "unknown error"


class KernelSession:
    """One Jupyter kernel reused for many notebooks, started on first use.

    Not shared between threads. A kernel that died is replaced before the next notebook.
    """

    def __init__(self, kernel_name: str = KERNEL_NAME):
        self.kernel_name = kernel_name
        self.km = None
        self.executions = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _alive(self) -> bool:
        if self.km is None or not self.km.has_kernel:
            return False
        from nbclient.util import run_sync

        return bool(run_sync(self.km.is_alive)())

    def execute(self, nb: nbformat.NotebookNode, output_path: Path) -> nbformat.NotebookNode:
        """Run `nb`; on success return it executed, on failure raise PapermillExecutionError
        after papermill has written the failed notebook to `output_path`."""
        from jupyter_client.manager import AsyncKernelManager

        papermill_engines.register(WarmKernelEngine.name, WarmKernelEngine)
        for attempt in range(_KERNEL_START_RETRIES):
            fresh = not self._alive()
            if fresh:
                self.close()
                self.km = AsyncKernelManager(kernel_name=self.kernel_name)
            try:
                executed = papermill.execute_notebook(
                    nb,
                    str(output_path),
                    engine_name=WarmKernelEngine.name,
                    kernel_name=self.kernel_name,
                    km=self.km,
                    progress_bar=False,
                    log_output=False,
                    request_save_on_cell_execute=False,
                    start_timeout=120,
                    execution_timeout=CELL_TIMEOUT_SECONDS,
                )
                self.executions += 1
                return executed
            except RuntimeError as error:
                # Parallel kernels can pick the same ZMQ port; the kernel then dies at once.
                if (
                    fresh
                    and "Kernel died before replying" in str(error)
                    and attempt + 1 < _KERNEL_START_RETRIES
                ):
                    log.warning("kernel start failed (%s); retrying", error)
                    self.close()
                    continue
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.km is not None and self.km.has_kernel:
            from nbclient.util import run_sync

            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except RuntimeError as error:
                log.warning("kernel shutdown: %s", error)
        self.km = None


class WarmKernelEngine(DagstermillEngine):
    """dagstermill's engine (it runs dagstermill's teardown cell), given a kernel to keep."""

    name = "collab_warm_kernel"

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=120,
        execution_timeout=None,
        **kwargs,
    ):
        km = kwargs.pop("km")
        safe_kwargs = remove_args(["timeout", "startup_timeout", "input_path"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logging.getLogger("papermill"),
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client = DagstermillNotebookClient(nb_man, km=km, **final_kwargs)
        try:
            # A client that does not own its kernel manager leaves the kernel running.
            return client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
                client.kc = None


def render(
    session: KernelSession,
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
    other. A failed notebook is kept too, with its failing cell, and ReportExecutionError
    says which cell failed and where the notebook is.
    """
    template = nbformat.read(template_path, as_version=4)
    nb = prepare(template, assignments, boilerplate, reset_kernel=session.executions > 0)
    warm = session._alive()
    output_stem.parent.mkdir(parents=True, exist_ok=True)
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
    public = scrub(executed, assignments, note)
    nbformat.write(public, notebook_path)
    html_path.write_text(to_html(public, title), encoding="utf-8")
    if failure is not None:
        first_line, what = _failing_cell(public)
        cell_number = failure.exec_count
        raise ReportExecutionError(
            f"{template_path.name} failed in cell [{cell_number}] ({first_line[:80]!r}): {what}. "
            f"The executed notebook, stopped at that cell, is kept at {notebook_path}",
            cell_number,
            notebook_path,
        )
    return Rendered(notebook_path, html_path, time.perf_counter() - started, warm)
