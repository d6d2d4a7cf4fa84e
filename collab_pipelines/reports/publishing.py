"""Publishing an executed report: scrubbed of what must not be shown, and as self-contained HTML.

An executed dagstermill notebook carries the instance configuration, the code pointer,
Dagster's DEBUG logs and Beta warnings; `scrub` removes them before anything is stored or
shown. `to_html` writes the code-hidden copy for sharing with nbconvert's JupyterLab page
minus its CDN scripts (jupyter/nbconvert/templates/lab), so it opens on a closed network.
No Dagster here.
"""

from __future__ import annotations

import copy
import re
import threading
from pathlib import Path

import nbformat

INJECTED_TAG = "injected-parameters"
RESET_TAG = "collab-kernel-reset"
TEARDOWN_TAG = "injected-teardown"  # dagstermill's own tag for the cell it appends
# Found by nbconvert as `lab/index.html.j2`; the Dagster webserver finds it through JUPYTER_PATH.
JUPYTER_PATH = Path(__file__).with_name("jupyter")
OFFLINE_TEMPLATES = JUPYTER_PATH / "nbconvert" / "templates"
# Lines Dagster writes to a kernel's stderr: its log records and its Beta/Preview warnings.
_NOISE_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[.,\d]*\s*[+-]?\d*\s+-\s+dagster\b"
    r"|\b(Beta|Preview|Deprecation|Superseded)Warning\b"
    r"|^\s*warnings\.warn\("
    r"|^\s*MANAGER_FOR_NOTEBOOK_INSTANCE\b"
)
_DAGSTERMILL_MARKERS = ("__dm_", "_reconstitute_job_context", "instance_ref", "InstanceRef")


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags") or [])


class LeakError(RuntimeError):
    """An executed notebook would publish dagstermill internals."""


def scrub(nb: nbformat.NotebookNode, assignments: str, note: str) -> nbformat.NotebookNode:
    """What may be stored and shown: no dagstermill boilerplate, instance config, logs or warnings."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        cell_tags = tags(cell)
        if RESET_TAG in cell_tags or TEARDOWN_TAG in cell_tags:
            continue
        if INJECTED_TAG in cell_tags:
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
    leaked = [m for m in _DAGSTERMILL_MARKERS if m in nbformat.writes(nb)]
    if leaked:
        # A template that prints its own context would publish it; refuse rather than leak.
        raise LeakError(
            f"the executed notebook still shows dagstermill internals ({leaked}); "
            "do not print `context` itself in a template"
        )
    return nb


def _clean_output(output):
    if output.get("output_type") != "stream":
        return output
    kept = []
    skip_next = False
    for line in output.get("text", "").splitlines(keepends=True):
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


_exporter = None
_exporter_lock = threading.Lock()


def _html_exporter():
    """One exporter for the process, as nbconvert's own command uses one for many notebooks.

    Building one compiles its Jinja templates again: about 0.2 s of the 0.25 s a report's page
    takes (docs/reports.md, "Where a report's time goes"). Callers hold `_exporter_lock`: a
    conversion registers its notebook's filters on the exporter, so two threads must not share
    one at the same time.
    """
    global _exporter
    if _exporter is None:
        from nbconvert import HTMLExporter

        _exporter = HTMLExporter(
            exclude_input=True,
            exclude_input_prompt=True,
            exclude_output_prompt=True,
            extra_template_basedirs=[str(OFFLINE_TEMPLATES)],
        )
    return _exporter


def to_html(nb: nbformat.NotebookNode, title: str) -> str:
    """The code-hidden rendering for sharing: prose, tables and charts, no inputs, no CDN."""
    shared = copy.deepcopy(nb)
    for cell in shared.cells:
        if INJECTED_TAG in tags(cell):
            # Readers want to know what the report is about, not how it was parameterised.
            cell.cell_type = "markdown"
            cell.source = "**Parameters**\n\n```\n" + cell.source + "\n```"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    shared.metadata["title"] = title
    with _exporter_lock:
        body, _resources = _html_exporter().from_notebook_node(shared)
    return body


def failing_cell(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """The first line of the cell that raised, and the error."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
                return first_line.strip(), f"{output.get('ename')}: {output.get('evalue')}"
    return "", "unknown error"


def missing_inputs_notebook(title: str, missing: list[str]) -> nbformat.NotebookNode:
    """A report that says, at the top, which inputs are missing, instead of empty tables."""
    lines = "\n".join(f"- {reason}" for reason in missing)
    return nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                f"# {title}\n\n**Not rendered: missing inputs.**\n\n{lines}\n\n"
                "Materialize the upstream partition, then this report again."
            )
        ]
    )
