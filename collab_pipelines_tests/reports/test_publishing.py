"""The code-hidden HTML of a report: one nbconvert exporter serves every report of a process."""

import base64
from concurrent.futures import ThreadPoolExecutor

import nbformat
from nbconvert import HTMLExporter

from collab_pipelines.reports import publishing
from collab_pipelines.reports.publishing import INJECTED_TAG, OFFLINE_TEMPLATES, to_html

# A chart's output: nbconvert embeds its base64 as it is.
PIXEL = base64.b64encode(b"a chart, as matplotlib leaves it").decode()


def report(day: str, lexer: str) -> nbformat.NotebookNode:
    injected = nbformat.v4.new_code_cell(f"partition_key = {day!r}")
    injected.metadata["tags"] = [INJECTED_TAG]
    chart = nbformat.v4.new_code_cell(
        "plt.show()",
        outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"}),
            nbformat.v4.new_output("stream", name="stdout", text=f"flights on {day}\n"),
        ],
    )
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(f"# Flights on {day}"), injected, chart],
        metadata={"language_info": {"name": "python", "pygments_lexer": lexer}},
    )


def fresh_html(nb: nbformat.NotebookNode, title: str) -> str:
    """What to_html gave when it built an exporter for each report."""
    exporter = HTMLExporter(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        extra_template_basedirs=[str(OFFLINE_TEMPLATES)],
    )
    shared = nbformat.from_dict(nb)
    shared.cells[1].cell_type = "markdown"
    shared.cells[1].source = "**Parameters**\n\n```\n" + shared.cells[1].source + "\n```"
    shared.cells[1].pop("outputs")
    shared.cells[1].pop("execution_count")
    shared.metadata["title"] = title
    return exporter.from_notebook_node(shared)[0]


def test_each_report_reads_as_if_it_had_an_exporter_of_its_own():
    first, second = report("2013-01-05", "ipython3"), report("2013-01-06", "python")
    pages = [to_html(first, "first"), to_html(second, "second"), to_html(first, "first")]
    assert publishing._exporter is not None, "no exporter is kept for the next report"
    assert pages[0] == pages[2] == fresh_html(first, "first"), "a report took something of the one before"
    assert pages[1] == fresh_html(second, "second")
    assert "flights on 2013-01-06" in pages[1] and "2013-01-05" not in pages[1]
    assert "partition_key = " in pages[1] and "plt.show()" not in pages[1], "the page shows code"


def test_reports_rendered_at_once_on_several_threads_each_get_their_own_page():
    days = [f"2013-01-{day:02d}" for day in range(1, 9)]
    notebooks = [report(day, "ipython3") for day in days]
    expected = [to_html(nb, day) for nb, day in zip(notebooks, days, strict=True)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        pages = list(pool.map(to_html, notebooks * 3, days * 3))
    assert pages == expected * 3
