"""Parameter injection: the notebook a kernel executes, built from a template and a run's values.

dagstermill replaces the `parameters` cell, so the defaults written there vanish. We keep that
cell (untagged, as "defaults") in front of the injected one, which is papermill's behaviour:
defaults first, supplied values after. The injected cell holds dagstermill's context
reconstitution (so `context` works as in any dagstermill notebook) and the run's values.
`collab-report preview` builds the same notebook without the context (Dagster is not needed).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import nbformat
from papermill.translators import PythonTranslator

from collab_pipelines.reports.publishing import INJECTED_TAG, RESET_TAG, tags

if TYPE_CHECKING:
    import dagster as dg

DEFAULTS_TAG = "parameters-defaults"
# Evaluated in the kernel, so a warehouse URL with a password is never written into a notebook.
WAREHOUSE_URL_CODE = "context.resources.warehouse.resolved_url()"
_RESET_SOURCE = (
    "import matplotlib.pyplot as __collab_plt\n__collab_plt.close('all')\n%reset -f\n"
    # %reset makes two full garbage collections; in a kernel that has imported Dagster, pandas
    # and matplotlib each walks every object of them (0.5 to 1 s a notebook, docs/reports.md).
    # Frozen once, after the first reset has freed the first notebook's data, they stay for the
    # kernel's life and later collections walk only what the notebooks made since.
    "import gc as __collab_gc\nif not __collab_gc.get_freeze_count():\n    __collab_gc.freeze()\ndel __collab_gc\n"
)


def python_assignments(values: Mapping[str, Any]) -> str:
    return "".join(f"{name} = {PythonTranslator.translate(value)}\n" for name, value in values.items())


def report_assignments(
    datasets: Mapping[str, str],
    partition_key: str | None,
    partition_keys: Sequence[str] | None,
    parameters: Mapping[str, Any],
    warehouse_url_code: str = WAREHOUSE_URL_CODE,
) -> str:
    """The runtime names every template receives (docs/reports.md), then its own parameters.

    `warehouse_url_code` is the Python the kernel evaluates for `warehouse_url`: the run's
    warehouse resource under Dagster, `None` in a preview (which reads through the data API)."""
    values = {
        "partition_key": partition_key,
        "partition_keys": list(partition_keys) if partition_keys else None,
        "datasets": dict(datasets),
    }
    return (
        python_assignments(values)
        + f"warehouse_url = {warehouse_url_code}\n"
        + python_assignments(dict(parameters))
    )


def dagstermill_boilerplate(context: dg.AssetExecutionContext, work: str) -> str:
    """dagstermill's context reconstitution for this step, as notebook source."""
    # dagstermill builds this cell only inside its own op, which runs one notebook per kernel;
    # here one step renders many partitions in each kernel it keeps (dagstermill_internals.py says why).
    from collab_pipelines.reports.dagstermill_internals import context_cell

    return context_cell(context, work)


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
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in tags(cell))
    defaults = nb.cells[index]
    defaults.metadata["tags"] = [t for t in tags(defaults) if t != "parameters"] + [DEFAULTS_TAG]
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
