"""A report's two files are stored whole or not at all (rendering.write_report). Here a file
that lands on /dev/full runs out of space; a full disk in a real run is
collab_pipelines_tests/faults/test_report_disk.py."""

import nbformat
import pytest

from collab_pipelines.reports.rendering import ReportExecutionError, ReportWriteError, write_report

TITLE = "orders_report 2024-03-01"


def report() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Orders on 2024-03-01")])


def test_both_files_are_written_whole(tmp_path):
    notebook = tmp_path / "orders_report" / "2024-03-01" / "abcd1234.ipynb"
    write_report(report(), notebook, TITLE)
    nbformat.validate(nbformat.read(notebook, as_version=4))
    assert "Orders on 2024-03-01" in notebook.with_suffix(".html").read_text(encoding="utf-8")


@pytest.mark.parametrize("full", [".ipynb", ".html"])
def test_a_full_disk_is_named_and_leaves_nothing(tmp_path, full):
    notebook = tmp_path / "abcd1234.ipynb"
    unwritten = notebook.with_suffix(full)
    unwritten.symlink_to("/dev/full")  # every write to it fails with ENOSPC
    with pytest.raises(ReportWriteError) as raised:
        write_report(report(), notebook, TITLE)
    assert str(raised.value) == (
        f"could not write {unwritten}: No space left on device (ENOSPC): the disk holding "
        f"{tmp_path} is full; free space there and render the report again. "
        "Nothing of this report was kept"
    )
    assert list(tmp_path.iterdir()) == []
    # A report step collects it with its other partitions' failures; it names no notebook.
    assert isinstance(raised.value, ReportExecutionError) and raised.value.notebook_path is None
