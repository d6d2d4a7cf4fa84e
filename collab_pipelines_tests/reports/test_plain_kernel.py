"""The shipped templates run top to bottom in a plain Jupyter kernel, as a data scientist opens them."""

import nbformat
import papermill
import pytest

from collab_pipelines.demo.paths import DEMO_TEMPLATES
from collab_pipelines.reports.templates import TEMPLATES_DIR
from collab_pipelines_tests.reports.conftest import CANDIDATE_KEY, LAST_DAY


@pytest.mark.parametrize(
    ("template", "about", "min_charts"),
    [
        ("flights_quality_report", f"**{LAST_DAY}**", 4),
        # One metric in the fixture's evaluations: its change, its days, the changed scores.
        ("evaluation_report", f"**{CANDIDATE_KEY}**", 3),
    ],
)
def test_a_shipped_template_runs_with_its_defaults_outside_dagster(
    warehouse, tmp_path, template, about, min_charts
):
    output = tmp_path / f"{template}.ipynb"
    # No parameters: every value comes from the parameters cell; the kernel finds the warehouse
    # through the environment, as in Jupyter started from the project.
    papermill.execute_notebook(
        str((DEMO_TEMPLATES if template.startswith("flights") else TEMPLATES_DIR) / f"{template}.ipynb"),
        str(output),
        kernel_name="python3",
        progress_bar=False,
    )
    notebook = nbformat.read(output, as_version=4)
    text = nbformat.writes(notebook)
    assert about in text, f"{template} did not report on the newest data ({about})"
    assert not any(o.output_type == "error" for c in notebook.cells for o in c.get("outputs", []))
    charts = sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))
    assert charts >= min_charts
