"""The fault suite's table: one line per fault, printed after the run by the controller.

The hooks are imported by collab_pipelines_tests/conftest.py: under xdist only the controller
prints the summary, and it loads no conftest below the test root.
"""

from __future__ import annotations

import json

FIGURES_PROPERTY = "fault_figures"
_collected: list[dict] = []


def pytest_runtest_logreport(report):
    # On the xdist controller too: the worker's user_properties travel with its report.
    if report.when == "call":
        _collected.extend(json.loads(v) for k, v in report.user_properties if k == FIGURES_PROPERTY)


def pytest_terminal_summary(terminalreporter):
    if not _collected:
        return
    terminalreporter.section("faults: rows lost, rows doubled, runs stuck")
    for line in sorted(_collected, key=lambda item: item["fault"]):
        extra = ", ".join(f"{k} {v}" for k, v in line.items() if k not in ("fault",))
        terminalreporter.write_line(f"{line['fault']}: {extra}")
